//! An OpenAI-shaped [`Request`] → the body of Anthropic's `POST /v1/messages`,
//! and the list of what had no equivalent (docs/providers.md has the table).
//!
//! Invariant: every request param and every message field is either sent
//! (as itself or mapped) or named in the returned `unmapped` list, which
//! becomes `extra_fields.unmapped_params` (docs/architecture.md §12). A
//! field that is `null`, `false`, `""` or `[]` says nothing and is not
//! reported.

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::providers::mapping::{function_tools, is_blank, push_tool_result, report_message_fields, tool_calls};
use crate::types::{Content, Message, Request};

const DEFAULT_MAX_TOKENS: u64 = 1024;

/// Params that are sent, mapped or are bifrost's own business.
const MAPPED_PARAMS: &[&str] = &[
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    // Anthropic's own, sent as they are.
    "thinking",
    "metadata",
    "user",
    "service_tier",
    // Anthropic streams always report usage, which is what this asks for.
    "stream_options",
];

/// The Messages API body for `req` (`model` is the model name), and the
/// names of what could not be sent.
pub(crate) fn request_body(req: &Request, model: &str, stream: bool) -> Result<(Value, Vec<String>)> {
    let mut unmapped = Vec::new();
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        report_message_fields(i, m, &mut unmapped);
        match m.role.as_str() {
            "system" | "developer" => {
                let text = m.content.text();
                if !text.is_empty() {
                    system.push(json!({"type": "text", "text": text}));
                }
            }
            "user" => messages.push(json!({"role": "user", "content": content_blocks(&m.content)?})),
            "assistant" => {
                // Thinking blocks go first, as Anthropic returned them
                // (their signatures make them valid to send back).
                let mut blocks = thinking_blocks(i, m)?;
                // The API refuses empty text blocks (an assistant turn of
                // `""` beside its tool calls is common in OpenAI history).
                blocks.extend(content_blocks(&m.content)?.into_iter().filter(|b| !is_empty_text(b)));
                blocks.extend(tool_use_blocks(m)?);
                // With nothing left, the turn is not sent at all.
                if !blocks.is_empty() {
                    messages.push(json!({"role": "assistant", "content": blocks}));
                }
            }
            "tool" => {
                let id =
                    m.tool_call_id.as_deref().ok_or_else(|| Error::invalid("a tool message needs tool_call_id"))?;
                let block = json!({"type": "tool_result", "tool_use_id": id, "content": m.content.text()});
                push_tool_result(&mut messages, block);
            }
            other => return Err(Error::invalid(format!("role {other:?} cannot be sent to Anthropic"))),
        }
    }
    let p = &req.params;
    let max_tokens = p
        .get("max_tokens")
        .or_else(|| p.get("max_completion_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("max_tokens".into(), json!(max_tokens));
    body.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    for key in ["temperature", "top_p", "top_k", "thinking"] {
        if let Some(v) = p.get(key) {
            body.insert(key.into(), v.clone());
        }
    }
    if let Some(stops) = super::super::stop_sequences(p) {
        body.insert("stop_sequences".into(), stops);
    }
    map_metadata(p, &mut body, &mut unmapped);
    match p.get("service_tier") {
        Some(Value::String(t)) if t == "auto" || t == "standard_only" => {
            body.insert("service_tier".into(), json!(t));
        }
        Some(v) if !is_blank(v) => unmapped.push("service_tier".into()),
        _ => {}
    }
    map_tools(p, &mut body, &mut unmapped);
    if stream {
        body.insert("stream".into(), json!(true));
    }
    for (k, v) in p {
        if !MAPPED_PARAMS.contains(&k.as_str()) && !is_blank(v) {
            unmapped.push(k.clone());
        }
    }
    Ok((Value::Object(body), unmapped))
}

/// `metadata.user_id` from OpenAI's `user` or from `metadata.user_id`;
/// other metadata keys have no Anthropic equivalent.
fn map_metadata(p: &Map<String, Value>, body: &mut Map<String, Value>, unmapped: &mut Vec<String>) {
    let mut user_id = p.get("user").filter(|v| v.is_string()).cloned();
    if let Some(Value::Object(meta)) = p.get("metadata") {
        for (k, v) in meta {
            if k == "user_id" {
                user_id = Some(v.clone());
            } else {
                unmapped.push(format!("metadata.{k}"));
            }
        }
    }
    if let Some(id) = user_id {
        body.insert("metadata".into(), json!({"user_id": id}));
    }
}

fn map_tools(p: &Map<String, Value>, body: &mut Map<String, Value>, unmapped: &mut Vec<String>) {
    let mapped: Vec<Value> = function_tools(p, unmapped)
        .into_iter()
        .map(|f| {
            json!({
                "name": f.get("name").cloned().unwrap_or(Value::Null),
                "description": f.get("description").cloned().unwrap_or(Value::String(String::new())),
                "input_schema": f.get("parameters").cloned().unwrap_or(json!({"type": "object"})),
            })
        })
        .collect();
    if !mapped.is_empty() {
        body.insert("tools".into(), Value::Array(mapped));
    }
    match p.get("tool_choice") {
        Some(Value::String(s)) if s == "auto" => {
            body.insert("tool_choice".into(), json!({"type": "auto"}));
        }
        None if p.get("parallel_tool_calls") == Some(&Value::Bool(false)) && body.contains_key("tools") => {
            body.insert("tool_choice".into(), json!({"type": "auto"}));
        }
        Some(Value::String(s)) if s == "required" => {
            body.insert("tool_choice".into(), json!({"type": "any"}));
        }
        Some(Value::String(s)) if s == "none" => {
            body.insert("tool_choice".into(), json!({"type": "none"}));
        }
        Some(Value::Object(o)) if o.get("function").and_then(|f| f.get("name")).is_some() => {
            let name = o.get("function").and_then(|f| f.get("name")).cloned().unwrap_or(Value::Null);
            body.insert("tool_choice".into(), json!({"type": "tool", "name": name}));
        }
        Some(v) if !is_blank(v) => unmapped.push("tool_choice".into()),
        _ => {}
    }
    // `parallel_tool_calls: false` is Anthropic's
    // `tool_choice.disable_parallel_tool_use` (not for `none`).
    if p.get("parallel_tool_calls") == Some(&Value::Bool(false)) {
        if let Some(Value::Object(choice)) = body.get_mut("tool_choice") {
            if choice.get("type").and_then(Value::as_str) != Some("none") {
                choice.insert("disable_parallel_tool_use".into(), json!(true));
            }
        }
    }
}

/// An assistant message's `thinking_blocks` (as bifrost returned them from
/// Anthropic), sent back first.
fn thinking_blocks(i: usize, m: &Message) -> Result<Vec<Value>> {
    let Some(blocks) = m.other.get("thinking_blocks") else { return Ok(Vec::new()) };
    let Value::Array(blocks) = blocks else {
        return Err(Error::invalid(format!("messages[{i}].thinking_blocks must be a list of thinking blocks")));
    };
    blocks
        .iter()
        .map(|b| match b.get("type").and_then(Value::as_str) {
            Some("thinking" | "redacted_thinking") => {
                // A streamed block's `index` is bifrost's numbering, not Anthropic's.
                let mut block = b.clone();
                if let Value::Object(o) = &mut block {
                    o.remove("index");
                }
                Ok(block)
            }
            _ => Err(Error::invalid(format!(
                "messages[{i}].thinking_blocks holds only blocks of type thinking or redacted_thinking"
            ))),
        })
        .collect()
}

/// An OpenAI content part → an Anthropic content block; a part's
/// `cache_control` (Anthropic's prompt caching) goes with it.
fn part_to_block(part: &Value) -> Result<Value> {
    let mut block = part_block(part)?;
    if let (Some(cache), Value::Object(b)) = (part.get("cache_control").filter(|c| !is_blank(c)), &mut block) {
        b.insert("cache_control".into(), cache.clone());
    }
    Ok(block)
}

fn part_block(part: &Value) -> Result<Value> {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => {
            Ok(json!({"type": "text", "text": part.get("text").cloned().unwrap_or(Value::String(String::new()))}))
        }
        Some("image_url") => {
            let url = part
                .get("image_url")
                .and_then(|u| u.get("url").or(Some(u)))
                .and_then(Value::as_str)
                .ok_or_else(|| Error::invalid("image_url content part needs image_url.url"))?;
            if let Some(rest) = url.strip_prefix("data:") {
                let (media, data) = rest
                    .split_once(";base64,")
                    .ok_or_else(|| Error::invalid("image data URLs must be base64 (data:<type>;base64,<data>)"))?;
                Ok(json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}))
            } else {
                Ok(json!({"type": "image", "source": {"type": "url", "url": url}}))
            }
        }
        other => Err(Error::invalid(format!(
            "content part type {other:?} has no Anthropic equivalent (text and image_url are supported)"
        ))),
    }
}

fn content_blocks(content: &Content) -> Result<Vec<Value>> {
    match content {
        Content::Text(t) => Ok(vec![json!({"type": "text", "text": t})]),
        Content::Parts(parts) => parts.iter().map(part_to_block).collect(),
        Content::Null => Ok(Vec::new()),
    }
}

fn is_empty_text(block: &Value) -> bool {
    block.get("type").and_then(Value::as_str) == Some("text") && block.get("text").and_then(Value::as_str) == Some("")
}

fn tool_use_blocks(m: &Message) -> Result<Vec<Value>> {
    Ok(tool_calls(m)?
        .into_iter()
        .map(|c| json!({"type": "tool_use", "id": c.id, "name": c.name, "input": c.input}))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(v: Value) -> (Value, Vec<String>) {
        let req: Request = serde_json::from_value(v).expect("request");
        request_body(&req, "claude", false).expect("body")
    }

    #[test]
    fn what_has_no_equivalent_is_named_and_blank_values_are_not() {
        let (body, unmapped) = body_of(json!({
            "model": "anthropic/claude",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
                 "name": "alice"},
                {"role": "assistant", "content": "yes", "refusal": null, "annotations": [], "audio": {"id": "a1"}},
                {"role": "user", "content": "more"}
            ],
            "params": {"temperature": 0.5, "frequency_penalty": 0.2, "logprobs": false, "seed": 7,
                       "response_format": {"type": "json_object"}, "user": "u-1", "service_tier": "flex",
                       "tools": [{"type": "function", "function": {"name": "f", "strict": true}},
                                 {"type": "custom", "custom": {"name": "g"}}]}
        }));
        assert_eq!(body["metadata"], json!({"user_id": "u-1"}));
        assert_eq!(
            body["messages"][0]["content"][0],
            json!({"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}})
        );
        assert_eq!(body["temperature"], json!(0.5));
        assert_eq!(body["tools"].as_array().map(Vec::len), Some(1));
        assert!(body.get("service_tier").is_none());
        let mut unmapped = unmapped;
        unmapped.sort();
        assert_eq!(
            unmapped,
            [
                "frequency_penalty",
                "messages[0].name",
                "messages[1].audio",
                "response_format",
                "seed",
                "service_tier",
                "tools[0].function.strict",
                "tools[1]"
            ]
        );
    }

    #[test]
    fn thinking_blocks_go_back_first_and_thinking_is_sent() {
        let sig = json!({"type": "thinking", "thinking": "think", "signature": "sig"});
        let streamed = json!({"type": "thinking", "thinking": "think", "signature": "sig", "index": 0});
        let (body, unmapped) = body_of(json!({
            "model": "anthropic/claude",
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "", "reasoning_content": "think", "thinking_blocks": [streamed],
                 "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "t1", "content": "ok"}
            ],
            "params": {"thinking": {"type": "enabled", "budget_tokens": 2048}, "max_tokens": 4096}
        }));
        assert!(unmapped.is_empty(), "{unmapped:?}");
        assert_eq!(body["thinking"], json!({"type": "enabled", "budget_tokens": 2048}));
        let blocks = &body["messages"][1]["content"];
        assert_eq!(blocks[0], sig);
        assert_eq!(blocks[1]["type"], "tool_use");
        // Reasoning without its signed blocks cannot be sent back.
        let (_, unmapped) = body_of(json!({"model": "anthropic/claude", "messages": [
            {"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "reasoning_content": "r"}]}));
        assert_eq!(unmapped, ["messages[1].reasoning_content"]);
        let req: Request = serde_json::from_value(json!({"model": "anthropic/claude", "messages": [
            {"role": "assistant", "content": "a", "thinking_blocks": [{"type": "text", "text": "x"}]}]}))
        .expect("request");
        assert!(request_body(&req, "claude", false).is_err());
    }
}
