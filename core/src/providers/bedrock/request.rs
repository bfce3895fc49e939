//! An OpenAI-shaped [`Request`] → the body of Bedrock's Converse and
//! ConverseStream, and the list of what had no equivalent
//! (docs/providers.md has the table).
//!
//! Invariant: every request param and every message field is either sent
//! (as itself or mapped) or named in the returned `unmapped` list, which
//! becomes `extra_fields.unmapped_params` (docs/architecture.md §12). A
//! field that says nothing (`null`, `false`, `""`, `[]`, `{}`) is not
//! reported.

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::providers::mapping::{function_tools, is_blank, push_tool_result, report_message_fields, tool_calls};
use crate::types::{Content, Message, Request};

/// Params that are mapped or are bifrost's own business.
const MAPPED_PARAMS: &[&str] = &[
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "thinking",
    "additionalModelRequestFields",
    // ConverseStream always reports usage, which is what this asks for.
    "stream_options",
];

/// Converse's own top-level fields a caller may give in `params`: sent as
/// they are.
const NATIVE: &[&str] = &[
    "additionalModelResponseFieldPaths",
    "guardrailConfig",
    "performanceConfig",
    "promptVariables",
    "requestMetadata",
    "serviceTier",
];

/// The Converse body for `req`, and the names of what could not be sent.
pub(crate) fn request_body(req: &Request) -> Result<(Value, Vec<String>)> {
    let mut unmapped = Vec::new();
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        report_message_fields(i, m, &mut unmapped);
        match m.role.as_str() {
            "system" | "developer" => system.extend(content_blocks(&m.content)?),
            "user" => {
                let blocks = content_blocks(&m.content)?;
                messages.push(json!({"role": "user", "content": blocks}));
            }
            "assistant" => {
                let mut blocks = reasoning_blocks(i, m)?;
                blocks.extend(content_blocks(&m.content)?);
                blocks.extend(tool_use_blocks(m)?);
                // An assistant turn with nothing to say is not sent
                // (Converse refuses empty content).
                if !blocks.is_empty() {
                    messages.push(json!({"role": "assistant", "content": blocks}));
                }
            }
            "tool" => {
                let id =
                    m.tool_call_id.as_deref().ok_or_else(|| Error::invalid("a tool message needs tool_call_id"))?;
                let text = m.content.text();
                let content = if text.trim().is_empty() { json!([]) } else { json!([{"text": text}]) };
                let block = json!({"toolResult": {"toolUseId": id, "content": content}});
                push_tool_result(&mut messages, block);
            }
            other => return Err(Error::invalid(format!("role {other:?} cannot be sent to Bedrock"))),
        }
    }
    let p = &req.params;
    let mut inference = Map::new();
    if let Some(v) = p.get("max_tokens").or_else(|| p.get("max_completion_tokens")) {
        inference.insert("maxTokens".into(), v.clone());
    }
    if let Some(v) = p.get("temperature") {
        inference.insert("temperature".into(), v.clone());
    }
    if let Some(v) = p.get("top_p") {
        inference.insert("topP".into(), v.clone());
    }
    if let Some(stops) = super::super::stop_sequences(p) {
        inference.insert("stopSequences".into(), stops);
    }
    let mut body = Map::new();
    body.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    if !inference.is_empty() {
        body.insert("inferenceConfig".into(), Value::Object(inference));
    }
    if let Some(tool_config) = tool_config(p, &mut unmapped) {
        body.insert("toolConfig".into(), tool_config);
    }
    // Model-specific fields: the caller's, and Anthropic-style `thinking`
    // (Claude on Bedrock reads it there).
    let mut additional = match p.get("additionalModelRequestFields") {
        Some(Value::Object(o)) => o.clone(),
        Some(v) if !is_blank(v) => {
            unmapped.push("additionalModelRequestFields".into());
            Map::new()
        }
        _ => Map::new(),
    };
    if let Some(thinking) = p.get("thinking").filter(|v| !is_blank(v)) {
        additional.insert("thinking".into(), thinking.clone());
    }
    if !additional.is_empty() {
        body.insert("additionalModelRequestFields".into(), Value::Object(additional));
    }
    for key in NATIVE {
        if let Some(v) = p.get(*key) {
            body.insert((*key).into(), v.clone());
        }
    }
    if p.get("parallel_tool_calls") == Some(&Value::Bool(false)) {
        unmapped.push("parallel_tool_calls".into());
    }
    for (k, v) in p {
        if !MAPPED_PARAMS.contains(&k.as_str()) && !NATIVE.contains(&k.as_str()) && !is_blank(v) {
            unmapped.push(k.clone());
        }
    }
    Ok((Value::Object(body), unmapped))
}

/// `tools` / `tool_choice` → `toolConfig`.
fn tool_config(p: &Map<String, Value>, unmapped: &mut Vec<String>) -> Option<Value> {
    let mut specs = Vec::new();
    for f in function_tools(p, unmapped) {
        let mut spec = Map::new();
        spec.insert("name".into(), f.get("name").cloned().unwrap_or(Value::Null));
        // Converse refuses an empty description: none is sent then.
        if let Some(d) = f.get("description").filter(|d| !is_blank(d)) {
            spec.insert("description".into(), d.clone());
        }
        let schema = f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object"}));
        spec.insert("inputSchema".into(), json!({"json": schema}));
        specs.push(json!({"toolSpec": spec}));
    }
    let choice = match p.get("tool_choice") {
        Some(Value::String(s)) if s == "auto" => Some(json!({"auto": {}})),
        Some(Value::String(s)) if s == "required" => Some(json!({"any": {}})),
        Some(Value::Object(o)) if o.get("function").and_then(|f| f.get("name")).is_some() => {
            Some(json!({"tool": {"name": o.get("function").and_then(|f| f.get("name")).cloned()}}))
        }
        // Converse has no "none": the tools stay, and this is reported.
        Some(v) if !is_blank(v) => {
            unmapped.push("tool_choice".into());
            None
        }
        _ => None,
    };
    if specs.is_empty() {
        if choice.is_some() {
            unmapped.push("tool_choice".into());
        }
        return None;
    }
    let mut config = Map::new();
    config.insert("tools".into(), Value::Array(specs));
    if let Some(c) = choice {
        config.insert("toolChoice".into(), c);
    }
    Some(Value::Object(config))
}

/// An assistant message's `thinking_blocks` (Anthropic's shape, as bifrost
/// returns them from Bedrock too) → `reasoningContent` blocks, first.
fn reasoning_blocks(i: usize, m: &Message) -> Result<Vec<Value>> {
    let Some(blocks) = m.other.get("thinking_blocks") else { return Ok(Vec::new()) };
    let bad = || Error::invalid(format!("messages[{i}].thinking_blocks must be a list of thinking blocks"));
    let Value::Array(blocks) = blocks else { return Err(bad()) };
    blocks
        .iter()
        .map(|b| match b.get("type").and_then(Value::as_str) {
            Some("thinking") => {
                let mut text = Map::new();
                text.insert("text".into(), b.get("thinking").cloned().unwrap_or(Value::String(String::new())));
                if let Some(sig) = b.get("signature").filter(|s| !is_blank(s)) {
                    text.insert("signature".into(), sig.clone());
                }
                Ok(json!({"reasoningContent": {"reasoningText": text}}))
            }
            Some("redacted_thinking") => {
                Ok(json!({"reasoningContent": {"redactedContent": b.get("data").cloned().unwrap_or(Value::Null)}}))
            }
            _ => Err(bad()),
        })
        .collect()
}

/// Converse content blocks of `content`. Blank text is not sent (Bedrock
/// refuses a blank text block); a part with `cache_control` is followed by
/// a `cachePoint`.
fn content_blocks(content: &Content) -> Result<Vec<Value>> {
    let blank = |t: &str| t.trim().is_empty();
    match content {
        Content::Text(t) if blank(t) => Ok(Vec::new()),
        Content::Text(t) => Ok(vec![json!({"text": t})]),
        Content::Null => Ok(Vec::new()),
        Content::Parts(parts) => {
            let mut out = Vec::with_capacity(parts.len());
            for p in parts {
                let block = match p.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let t = p.get("text").and_then(Value::as_str).unwrap_or("");
                        if blank(t) {
                            continue;
                        }
                        json!({"text": t})
                    }
                    Some("image_url") => image_block(p)?,
                    other => {
                        return Err(Error::invalid(format!("content part type {other:?} has no Bedrock equivalent")))
                    }
                };
                out.push(block);
                if p.get("cache_control").is_some_and(|c| !is_blank(c)) {
                    out.push(json!({"cachePoint": {"type": "default"}}));
                }
            }
            Ok(out)
        }
    }
}

fn image_block(p: &Value) -> Result<Value> {
    let url = p.get("image_url").and_then(|u| u.get("url").or(Some(u))).and_then(Value::as_str).unwrap_or("");
    let (media, data) = url
        .strip_prefix("data:")
        .and_then(|r| r.split_once(";base64,"))
        .ok_or_else(|| Error::invalid("Bedrock takes images only as base64 data URLs"))?;
    // Converse names formats png, jpeg, gif, webp (`image/jpg` is a common
    // misspelling of jpeg).
    let format = match media.strip_prefix("image/").unwrap_or(media) {
        "jpg" => "jpeg",
        f => f,
    };
    Ok(json!({"image": {"format": format, "source": {"bytes": data}}}))
}

fn tool_use_blocks(m: &Message) -> Result<Vec<Value>> {
    Ok(tool_calls(m)?
        .into_iter()
        .map(|c| json!({"toolUse": {"toolUseId": c.id, "name": c.name, "input": c.input}}))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(v: Value) -> (Value, Vec<String>) {
        let req: Request = serde_json::from_value(v).expect("request");
        request_body(&req).expect("body")
    }

    #[test]
    fn tools_calls_and_results_map_to_converse() {
        let (body, unmapped) = body_of(json!({
            "model": "bedrock/m",
            "messages": [
                {"role": "user", "content": "weather in Paris and Rome?"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "t2", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]},
                {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "t2", "content": "rain"}
            ],
            "params": {"tools": [{"type": "function", "function": {"name": "get_weather", "description": "",
                                  "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
                       "tool_choice": "required"}
        }));
        assert!(unmapped.is_empty(), "{unmapped:?}");
        assert_eq!(
            body["toolConfig"],
            json!({"tools": [{"toolSpec": {"name": "get_weather",
                   "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}],
                   "toolChoice": {"any": {}}})
        );
        let msgs = body["messages"].as_array().expect("messages");
        assert_eq!(msgs.len(), 3, "the two results share one user turn");
        assert_eq!(
            msgs[1]["content"][0]["toolUse"],
            json!({"toolUseId": "t1", "name": "get_weather", "input": {"city": "Paris"}})
        );
        assert_eq!(msgs[1]["content"][1]["toolUse"]["input"], json!({}));
        assert_eq!(msgs[2]["content"][1], json!({"toolResult": {"toolUseId": "t2", "content": [{"text": "rain"}]}}));
    }

    #[test]
    fn reasoning_cache_points_and_the_unmapped() {
        let (body, mut unmapped) = body_of(json!({
            "model": "bedrock/m",
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": "long rules", "cache_control": {"type": "ephemeral"}}]},
                {"role": "user", "content": "q", "name": "ann"},
                {"role": "assistant", "content": "a", "reasoning_content": "r",
                 "thinking_blocks": [{"type": "thinking", "thinking": "r", "signature": "s"},
                                     {"type": "redacted_thinking", "data": "ZGF0YQ=="}]},
                {"role": "user", "content": "more"}
            ],
            "params": {"thinking": {"type": "enabled", "budget_tokens": 1024}, "tool_choice": "none",
                       "parallel_tool_calls": false, "seed": 3, "guardrailConfig": {"guardrailIdentifier": "g", "guardrailVersion": "1"}}
        }));
        assert_eq!(body["system"], json!([{"text": "long rules"}, {"cachePoint": {"type": "default"}}]));
        assert_eq!(
            body["additionalModelRequestFields"],
            json!({"thinking": {"type": "enabled", "budget_tokens": 1024}})
        );
        assert_eq!(body["guardrailConfig"]["guardrailIdentifier"], "g");
        let assistant = &body["messages"][1]["content"];
        assert_eq!(assistant[0], json!({"reasoningContent": {"reasoningText": {"text": "r", "signature": "s"}}}));
        assert_eq!(assistant[1], json!({"reasoningContent": {"redactedContent": "ZGF0YQ=="}}));
        assert_eq!(assistant[2], json!({"text": "a"}));
        unmapped.sort();
        assert_eq!(unmapped, ["messages[1].name", "parallel_tool_calls", "seed", "tool_choice"]);
    }
}
