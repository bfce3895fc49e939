//! What the Anthropic and Bedrock mappers share: the rule for what counts
//! as unmapped (docs/architecture.md §12), the OpenAI tool definitions and
//! calls they both translate, and the OpenAI message and response they
//! both build. One owner, so the two providers cannot drift apart.

use std::borrow::Cow;

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::types::{AssistantMessage, Choice, Delta, ExtraFields, Message, Response, Usage};

/// Whether a value says nothing (`null`, `false`, `""`, `[]`, `{}`): such a
/// field is never reported as unmapped.
pub(crate) fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Names a message's fields the provider has no place for: `name`, and
/// every other field with a value except an assistant's `thinking_blocks`
/// (mapped) and the `reasoning_content` that goes with them.
pub(crate) fn report_message_fields(i: usize, m: &Message, unmapped: &mut Vec<String>) {
    if m.name.as_deref().is_some_and(|n| !n.is_empty()) {
        unmapped.push(format!("messages[{i}].name"));
    }
    for (k, v) in &m.other {
        let mapped = m.role == "assistant" && k == "thinking_blocks";
        // `reasoning_content` is the text of `thinking_blocks`: with the
        // blocks it is sent; alone it has no signature and cannot be.
        let with_blocks = k == "reasoning_content" && m.other.contains_key("thinking_blocks");
        if !mapped && !with_blocks && !is_blank(v) {
            unmapped.push(format!("messages[{i}].{k}"));
        }
    }
}

/// The `function` objects of `params.tools`; other tool types and
/// `strict` are reported.
pub(crate) fn function_tools<'a>(p: &'a Map<String, Value>, unmapped: &mut Vec<String>) -> Vec<&'a Value> {
    let Some(Value::Array(tools)) = p.get("tools") else { return Vec::new() };
    let mut out = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        let Some(f) = t.get("function").filter(|_| t.get("type").and_then(Value::as_str) == Some("function")) else {
            unmapped.push(format!("tools[{i}]"));
            continue;
        };
        if f.get("strict").is_some_and(|s| !is_blank(s)) {
            unmapped.push(format!("tools[{i}].function.strict"));
        }
        out.push(f);
    }
    out
}

/// One OpenAI tool call of an assistant message: its id, name and
/// arguments parsed as JSON (empty arguments are `{}`).
pub(crate) struct ToolCall {
    pub id: Value,
    pub name: Value,
    pub input: Value,
}

/// The assistant message's `tool_calls`, parsed.
pub(crate) fn tool_calls(m: &Message) -> Result<Vec<ToolCall>> {
    let Some(Value::Array(calls)) = &m.tool_calls else { return Ok(Vec::new()) };
    calls
        .iter()
        .map(|c| {
            let f = c.get("function").ok_or_else(|| Error::invalid("tool_calls[].function is required"))?;
            let args = f.get("arguments").and_then(Value::as_str).filter(|a| !a.trim().is_empty()).unwrap_or("{}");
            let input = serde_json::from_str(args)
                .map_err(|e| Error::invalid(format!("tool_calls[].function.arguments is not JSON: {e}")))?;
            Ok(ToolCall {
                id: c.get("id").cloned().unwrap_or(Value::Null),
                name: f.get("name").cloned().unwrap_or(Value::Null),
                input,
            })
        })
        .collect()
}

/// Adds a tool-result block in a user turn: consecutive results share one
/// turn (both Anthropic and Converse want the answers to one assistant
/// turn's calls together). The turn to join is a user turn that began
/// with a result, i.e. one this function made.
pub(crate) fn push_tool_result(messages: &mut Vec<Value>, block: Value) {
    let kind =
        |b: &Value| b.get("type").cloned().or_else(|| b.as_object().and_then(|o| o.keys().next()).map(|k| json!(k)));
    if let Some(last) = messages.last_mut() {
        let joins = last["role"] == "user" && last["content"].get(0).map(kind) == Some(kind(&block));
        if let (true, Some(arr)) = (joins, last["content"].as_array_mut()) {
            arr.push(block);
            return;
        }
    }
    messages.push(json!({"role": "user", "content": [block]}));
}

/// An OpenAI `tool_calls[]` entry for a provider's tool use.
pub(crate) fn openai_tool_call(id: Option<&Value>, name: Option<&Value>, input: Option<&Value>) -> Value {
    json!({
        "id": id.cloned().unwrap_or(Value::Null),
        "type": "function",
        "function": {"name": name.cloned().unwrap_or(Value::Null),
                     "arguments": input.map(Value::to_string).unwrap_or_else(|| "{}".into())},
    })
}

/// Records cache reads and writes as `usage.prompt_tokens_details`
/// (`cached_tokens`, `cache_creation_tokens`) when the provider reported either.
pub(crate) fn cache_details(usage: &mut Usage, reads: Option<u64>, writes: Option<u64>) {
    if reads.is_some() || writes.is_some() {
        usage.other.insert(
            "prompt_tokens_details".into(),
            json!({"cached_tokens": reads.unwrap_or(0), "cache_creation_tokens": writes.unwrap_or(0)}),
        );
    }
}

/// What a provider's answer held, before it becomes a `chat.completion`.
#[derive(Default)]
pub(crate) struct Answer {
    pub text: String,
    pub tool_calls: Vec<Value>,
    /// The thinking text, if there was any thinking block.
    pub reasoning: Option<String>,
    /// The thinking blocks in Anthropic's shape (to send back).
    pub thinking: Vec<Value>,
}

impl Answer {
    /// The `chat.completion` of this answer: `content` is `null` when the
    /// answer is only tool calls.
    pub(crate) fn into_response(
        self,
        id: String,
        model: String,
        finish_reason: Option<Cow<'static, str>>,
        usage: Usage,
    ) -> Response {
        let mut message = AssistantMessage {
            role: "assistant".into(),
            content: if self.text.is_empty() && !self.tool_calls.is_empty() { None } else { Some(self.text) },
            tool_calls: (!self.tool_calls.is_empty()).then_some(Value::Array(self.tool_calls)),
            reasoning_content: self.reasoning,
            ..Default::default()
        };
        if !self.thinking.is_empty() {
            message.other.insert("thinking_blocks".into(), Value::Array(self.thinking));
        }
        Response {
            id,
            object: "chat.completion".into(),
            created: super::unix_now_s(),
            model,
            choices: vec![Choice { index: 0, message, finish_reason, other: Map::new() }],
            usage,
            other: Map::new(),
            extra_fields: ExtraFields::default(),
        }
    }
}

/// A stream's thinking, as both decoders emit it: text pieces as
/// `delta.reasoning_content`, and each whole block (its text plus its
/// signature, or a redacted block) once as `delta.thinking_blocks`,
/// numbered by `index` (OpenAI-style accumulators merge list entries by it).
#[derive(Default)]
pub(crate) struct StreamThinking {
    /// The text of the block being streamed.
    text: String,
    /// Blocks sent so far: the next one's `index`.
    sent: u32,
}

impl StreamThinking {
    /// A new thinking block starts.
    pub(crate) fn start(&mut self) {
        self.text.clear();
    }

    /// A piece of thinking text.
    pub(crate) fn piece(&mut self, text: &str) -> Delta {
        self.text.push_str(text);
        Delta { reasoning_content: Some(text.to_string()), ..Delta::default() }
    }

    /// The block's signature arrived: the whole block, once.
    pub(crate) fn signed(&mut self, signature: Value) -> Delta {
        let block = json!({"type": "thinking", "thinking": std::mem::take(&mut self.text), "signature": signature});
        self.block(block)
    }

    /// A redacted block (its opaque `data`).
    pub(crate) fn redacted(&mut self, data: Value) -> Delta {
        self.block(json!({"type": "redacted_thinking", "data": data}))
    }

    fn block(&mut self, mut block: Value) -> Delta {
        block["index"] = json!(self.sent);
        self.sent += 1;
        let mut delta = Delta::default();
        delta.other.insert("thinking_blocks".into(), json!([block]));
        delta
    }
}
