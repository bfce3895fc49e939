//! Anthropic's Messages API (`POST {base}/v1/messages`), unary and SSE
//! streaming, mapped to and from the OpenAI shape.
//!
//! Requests are built by [`request`], which names what it cannot send.
//! Responses: text blocks join into `content`, client `tool_use` blocks
//! become `tool_calls` (server tool blocks never do), thinking becomes
//! `reasoning_content` with the signed blocks in `thinking_blocks` (to send
//! back), stop reasons map to OpenAI finish reasons, and usage to prompt
//! tokens (input + cache) with the cache in `prompt_tokens_details`.
//! Streams end with `message_stop`; an `error` event is a PROVIDER error.
//! The whole table is docs/providers.md.

mod request;
pub(crate) use request::request_body;

use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Map, Value};

use crate::config::ProviderConfig;
use crate::error::{Error, Result};
use crate::objpool::BufferPool;
use crate::providers::http::{Endpoint, HttpClient, SseParser, StreamDecoder, StreamItem};
use crate::providers::mapping::{cache_details, openai_tool_call, Answer, StreamThinking};
use crate::providers::{CallCtx, ChunkStream};
use crate::types::{Chunk, Delta, Request, Response, Usage};

const API_VERSION: &str = "2023-06-01";

pub(crate) struct Anthropic {
    pub(crate) http: HttpClient,
    messages_url: Endpoint,
}

/// The prompt tokens of an Anthropic `usage`: `input_tokens` plus the
/// cache's writes and reads, which Anthropic counts apart (OpenAI's
/// `prompt_tokens` includes cached tokens).
fn prompt_tokens(usage: Option<&Value>) -> Option<u64> {
    let u = usage?;
    let field = |k: &str| u.get(k).and_then(Value::as_u64);
    let input = field("input_tokens")?;
    Some(
        input
            .saturating_add(field("cache_creation_input_tokens").unwrap_or(0))
            .saturating_add(field("cache_read_input_tokens").unwrap_or(0)),
    )
}

/// An Anthropic `usage` → OpenAI usage: prompt tokens include the cache,
/// whose reads are `prompt_tokens_details.cached_tokens` and writes
/// `prompt_tokens_details.cache_creation_tokens`; `server_tool_use` is
/// kept as it came.
fn usage_from(u: Option<&Value>) -> Usage {
    let field = |k: &str| u.and_then(|u| u.get(k)).and_then(Value::as_u64);
    let mut usage = Usage::counts(prompt_tokens(u).unwrap_or(0), field("output_tokens").unwrap_or(0));
    cache_details(&mut usage, field("cache_read_input_tokens"), field("cache_creation_input_tokens"));
    if let Some(server) = u.and_then(|u| u.get("server_tool_use")).filter(|v| !v.is_null()) {
        usage.other.insert("server_tool_use".into(), server.clone());
    }
    usage
}

/// Anthropic stop reason → OpenAI finish reason.
pub(crate) fn finish_reason(stop: &str) -> std::borrow::Cow<'static, str> {
    crate::types::well_known(match stop {
        "end_turn" | "stop_sequence" | "pause_turn" => "stop",
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        other => other,
    })
}

/// Maps a Messages API response to a `chat.completion`.
pub(crate) fn response_from(v: &Value, model: &str) -> Result<Response> {
    let blocks = v.get("content").and_then(Value::as_array).ok_or_else(|| Error::Network {
        provider: String::new(),
        message: "Anthropic response has no content array".into(),
    })?;
    let mut a = Answer::default();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => a.text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("thinking") => {
                let text = b.get("thinking").and_then(Value::as_str).unwrap_or("");
                a.reasoning.get_or_insert_with(String::new).push_str(text);
                a.thinking.push(b.clone());
            }
            Some("redacted_thinking") => a.thinking.push(b.clone()),
            Some("tool_use") => a.tool_calls.push(openai_tool_call(b.get("id"), b.get("name"), b.get("input"))),
            _ => {}
        }
    }
    Ok(a.into_response(
        v.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
        v.get("model").and_then(Value::as_str).unwrap_or(model).to_string(),
        v.get("stop_reason").and_then(Value::as_str).map(finish_reason),
        usage_from(v.get("usage")),
    ))
}

/// `{"type":"error","error":{"type":..,"message":..}}` → "type: message".
pub(crate) fn error_message(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let e = v.get("error")?;
    let msg = e.get("message").and_then(Value::as_str)?;
    Some(match e.get("type").and_then(Value::as_str) {
        Some(t) => format!("{t}: {msg}"),
        None => msg.to_string(),
    })
}

impl Anthropic {
    pub fn new(name: &str, cfg: &ProviderConfig, buffers: Arc<BufferPool>) -> Result<Self> {
        let http = HttpClient::new(name, cfg, "https://api.anthropic.com".into(), buffers)?;
        Ok(Anthropic { messages_url: http.endpoint("/v1/messages"), http })
    }

    fn headers(&self, ctx: &CallCtx<'_>) -> Result<HeaderMap> {
        let mut h = HeaderMap::new();
        h.insert("anthropic-version", HeaderValue::from_static(API_VERSION));
        if let Some(key) = ctx.key {
            let v = HeaderValue::from_str(key.value.expose())
                .map_err(|_| Error::invalid(format!("key {} is not a valid header value", ctx.key_id())))?;
            h.insert("x-api-key", v);
        }
        Ok(h)
    }

    pub async fn chat(&self, req: &Request, ctx: &CallCtx<'_>) -> Result<Response> {
        let (body, unmapped) = request_body(req, ctx.model, false)?;
        let body = self.http.json_body(&body)?;
        let resp = self.http.post(&self.messages_url, self.headers(ctx)?, body, error_message, ctx).await?;
        let bytes = self.http.read_body(resp).await?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| self.http.protocol_error(format!("response is not JSON: {e}")))?;
        let mut out = response_from(&v, ctx.model)
            .map_err(|_| self.http.protocol_error("response is not an Anthropic message".into()))?;
        out.extra_fields.unmapped_params = unmapped;
        Ok(out)
    }

    pub async fn stream(&self, req: &Request, ctx: &CallCtx<'_>) -> Result<ChunkStream> {
        let (body, unmapped) = request_body(req, ctx.model, true)?;
        let body = self.http.json_body(&body)?;
        let resp = self.http.post(&self.messages_url, self.headers(ctx)?, body, error_message, ctx).await?;
        let decoder = AnthropicDecoder::new(ctx.provider, ctx.model).with_unmapped(unmapped);
        Ok(self.http.stream(resp, decoder, ctx.deadline, ctx.timeout_ms))
    }
}

/// Maps Anthropic's stream events to chunks; `message_stop` ends it. A
/// body that ends without it after a `message_delta` with a `stop_reason`
/// (which carries the usage too) is complete (docs/architecture.md §11).
pub(crate) struct AnthropicDecoder {
    sse: SseParser,
    /// A `message_delta` with a `stop_reason` arrived.
    stopped: bool,
    provider: String,
    id: String,
    model: String,
    created: u64,
    /// The usage so far: `message_start`'s, updated by `message_delta`'s.
    usage: Map<String, Value>,
    /// Tool-use block index → position in `tool_calls` deltas.
    tool_index: Vec<(u64, u32)>,
    /// The thinking being streamed.
    thinking: StreamThinking,
    /// What of the request was not sent: told on the first chunk.
    unmapped: Vec<String>,
}

impl AnthropicDecoder {
    pub fn new(provider: &str, model: &str) -> Self {
        AnthropicDecoder {
            sse: SseParser::default(),
            stopped: false,
            provider: provider.to_string(),
            id: String::new(),
            model: model.to_string(),
            created: super::unix_now_s(),
            usage: Map::new(),
            tool_index: Vec::new(),
            thinking: StreamThinking::default(),
            unmapped: Vec::new(),
        }
    }

    /// Reports `unmapped` on the stream's first chunk.
    pub fn with_unmapped(mut self, unmapped: Vec<String>) -> Self {
        self.unmapped = unmapped;
        self
    }

    fn chunk(&self, delta: Delta, finish: Option<std::borrow::Cow<'static, str>>, usage: Option<Usage>) -> Chunk {
        Chunk::of(&self.id, self.created, &self.model, delta, finish, usage)
    }

    fn bad(&self, what: &str) -> Error {
        Error::Protocol {
            provider: self.provider.clone(),
            message: format!("malformed Anthropic stream event: {what}"),
        }
    }
}

impl StreamDecoder for AnthropicDecoder {
    fn push(&mut self, bytes: &[u8]) {
        self.sse.push(bytes);
    }

    fn buffered(&self) -> usize {
        self.sse.buffered()
    }

    fn complete_at_eof(&self) -> bool {
        self.stopped
    }

    fn next_item(&mut self) -> Result<Option<StreamItem>> {
        while let Some(ev) = self.sse.next_event() {
            let v: Value = match serde_json::from_str(&ev.data) {
                Ok(v) => v,
                Err(_) if ev.data.trim().is_empty() => continue,
                Err(_) => return Err(self.bad("data is not JSON")),
            };
            let kind = v.get("type").and_then(Value::as_str).or(ev.event.as_deref()).unwrap_or("");
            match kind {
                "message_start" => {
                    let m = v.get("message").ok_or_else(|| self.bad("message_start without message"))?;
                    self.id = m.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
                    if let Some(model) = m.get("model").and_then(Value::as_str) {
                        self.model = model.to_string();
                    }
                    if let Some(Value::Object(u)) = m.get("usage") {
                        self.usage = u.clone();
                    }
                    let delta = Delta { role: Some("assistant".into()), ..Delta::text(String::new()) };
                    let mut first = self.chunk(delta, None, None);
                    first.extra_fields = super::unmapped_report(&mut self.unmapped);
                    return Ok(Some(StreamItem::Chunk(first)));
                }
                "content_block_start" => {
                    let block = v.get("content_block");
                    let kind = block.and_then(|b| b.get("type")).and_then(Value::as_str);
                    if kind == Some("thinking") {
                        self.thinking.start();
                    }
                    if let (Some("redacted_thinking"), Some(b)) = (kind, block) {
                        let delta = self.thinking.redacted(b.get("data").cloned().unwrap_or(Value::Null));
                        return Ok(Some(StreamItem::Chunk(self.chunk(delta, None, None))));
                    }
                    if kind == Some("tool_use") {
                        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                        let pos = self.tool_index.len() as u32;
                        self.tool_index.push((index, pos));
                        let b = block.unwrap_or(&Value::Null);
                        let call = json!([{"index": pos, "id": b.get("id"), "type": "function",
                                           "function": {"name": b.get("name"), "arguments": ""}}]);
                        let delta = Delta { tool_calls: Some(call), ..Delta::default() };
                        return Ok(Some(StreamItem::Chunk(self.chunk(delta, None, None))));
                    }
                }
                "content_block_delta" => {
                    let d = v.get("delta").ok_or_else(|| self.bad("content_block_delta without delta"))?;
                    match d.get("type").and_then(Value::as_str) {
                        Some("text_delta") => {
                            let text = d.get("text").and_then(Value::as_str).unwrap_or("").to_string();
                            let delta = Delta::text(text);
                            return Ok(Some(StreamItem::Chunk(self.chunk(delta, None, None))));
                        }
                        Some("thinking_delta") => {
                            let delta = self.thinking.piece(d.get("thinking").and_then(Value::as_str).unwrap_or(""));
                            return Ok(Some(StreamItem::Chunk(self.chunk(delta, None, None))));
                        }
                        Some("signature_delta") => {
                            let delta = self.thinking.signed(d.get("signature").cloned().unwrap_or(Value::Null));
                            return Ok(Some(StreamItem::Chunk(self.chunk(delta, None, None))));
                        }
                        Some("input_json_delta") => {
                            let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                            // Only a client `tool_use` block's input is a
                            // tool call's arguments (a `server_tool_use`
                            // block's is the provider's own business).
                            let Some(pos) = self.tool_index.iter().find(|(i, _)| *i == index).map(|(_, p)| *p) else {
                                continue;
                            };
                            let partial = d.get("partial_json").and_then(Value::as_str).unwrap_or("");
                            let call = json!([{"index": pos, "function": {"arguments": partial}}]);
                            let delta = Delta { tool_calls: Some(call), ..Delta::default() };
                            return Ok(Some(StreamItem::Chunk(self.chunk(delta, None, None))));
                        }
                        _ => {}
                    }
                }
                "message_delta" => {
                    let stop = v.get("delta").and_then(|d| d.get("stop_reason")).and_then(Value::as_str);
                    self.stopped |= stop.is_some();
                    // `message_delta`'s counts are totals so far; it may
                    // report the input again, and more of it (server
                    // tools read more): for a count, the larger holds.
                    if let Some(Value::Object(u)) = v.get("usage") {
                        for (k, new) in u {
                            match (self.usage.get(k).and_then(Value::as_u64), new.as_u64()) {
                                (Some(old), Some(n)) if old > n => {}
                                _ if new.is_null() => {}
                                _ => {
                                    self.usage.insert(k.clone(), new.clone());
                                }
                            }
                        }
                    }
                    let usage = usage_from(Some(&Value::Object(self.usage.clone())));
                    return Ok(Some(StreamItem::Chunk(self.chunk(
                        Delta::default(),
                        stop.map(finish_reason),
                        Some(usage),
                    ))));
                }
                "message_stop" => return Ok(Some(StreamItem::Done)),
                "error" => {
                    let message = error_message(&ev.data).unwrap_or_else(|| ev.data.clone());
                    let status = match v.get("error").and_then(|e| e.get("type")).and_then(Value::as_str) {
                        Some("overloaded_error") => 529,
                        Some("rate_limit_error") => 429,
                        Some("invalid_request_error") => 400,
                        _ => 500,
                    };
                    return Err(Error::Provider {
                        provider: self.provider.clone(),
                        status,
                        message: format!("error inside the stream: {message}"),
                        body: ev.data,
                        retry_after_ms: None,
                    });
                }
                _ => {} // ping, content_block_stop
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example request/response pair of Anthropic's Messages API docs.
    #[test]
    fn golden_request_and_response_mapping() {
        let req: Request = serde_json::from_value(json!({
            "model": "anthropic/claude-3-5-haiku-latest",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": [{"type": "text", "text": "Hello, Claude"},
                                             {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "toolu_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"}
            ],
            "params": {"max_tokens": 256, "temperature": 0.2, "stop": "END", "frequency_penalty": 1,
                       "tools": [{"type": "function", "function": {"name": "get_weather", "description": "w",
                                  "parameters": {"type": "object"}}}], "tool_choice": "required"}
        }))
        .unwrap();
        let body = request_body(&req, "claude-3-5-haiku-latest", false).unwrap().0;
        assert_eq!(
            body,
            json!({
                "model": "claude-3-5-haiku-latest",
                "max_tokens": 256,
                "system": [{"type": "text", "text": "You are terse."}],
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "Hello, Claude"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}]},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                                       "input": {"city": "Paris"}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]}
                ],
                "temperature": 0.2,
                "stop_sequences": ["END"],
                "tools": [{"name": "get_weather", "description": "w", "input_schema": {"type": "object"}}],
                "tool_choice": {"type": "any"}
            })
        );
        let resp = response_from(
            &json!({
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
                "content": [{"type": "text", "text": "Hello!"}], "model": "claude-3-5-haiku-20241022",
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 12, "output_tokens": 6}
            }),
            "claude-3-5-haiku-latest",
        )
        .unwrap();
        assert_eq!(resp.id, "msg_01XFDUDYJgAACzvnptvVoYEL");
        assert_eq!(resp.text(), Some("Hello!"));
        assert_eq!(resp.choices[0].finish_reason.as_deref(), Some("stop"));
        assert_eq!((resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens), (12, 6, 18));
    }

    #[test]
    fn stream_events_map_to_chunks() {
        let mut d = AnthropicDecoder::new("anthropic", "claude");
        d.push(
            b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: ping\ndata: {\"type\": \"ping\"}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        let mut chunks = Vec::new();
        loop {
            match d.next_item().unwrap() {
                Some(StreamItem::Chunk(c)) => chunks.push(c),
                Some(StreamItem::Done) => break,
                None => panic!("ended without message_stop"),
            }
        }
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0].choices[0].delta.role.as_deref(), Some("assistant"));
        assert_eq!(chunks[1].choices[0].delta.content.as_deref(), Some("Hello"));
        assert_eq!(chunks[2].choices[0].finish_reason.as_deref(), Some("length"));
        assert_eq!(chunks[2].usage, Some(Usage::counts(25, 15)));
        assert!(chunks.iter().all(|c| c.id == "msg_1" && c.model == "claude-x"));
    }

    fn drain(d: &mut AnthropicDecoder) -> Vec<Chunk> {
        let mut chunks = Vec::new();
        loop {
            match d.next_item().unwrap() {
                Some(StreamItem::Chunk(c)) => chunks.push(c),
                Some(StreamItem::Done) => return chunks,
                None => panic!("ended without message_stop"),
            }
        }
    }

    /// Requests the API would refuse or read otherwise: empty assistant
    /// text, and `parallel_tool_calls: false`.
    #[test]
    fn empty_assistant_text_is_not_sent_and_parallel_tool_calls_false_disables_parallel_use() {
        let call = json!([{"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]);
        let req: Request = serde_json::from_value(json!({
            "model": "a/claude",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "", "tool_calls": call},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "ok"},
                {"role": "assistant", "content": ""},
                {"role": "user", "content": "again"}
            ],
            "params": {"parallel_tool_calls": false,
                       "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}
        }))
        .unwrap();
        let body = request_body(&req, "claude", false).unwrap().0;
        let msgs = body["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 4, "the empty assistant turn is dropped: {msgs:?}");
        assert_eq!(msgs[1]["content"], json!([{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]));
        assert_eq!(body["tool_choice"], json!({"type": "auto", "disable_parallel_tool_use": true}));
        let mut req = req;
        req.params.insert("tool_choice".into(), json!("required"));
        let body = request_body(&req, "claude", false).unwrap().0;
        assert_eq!(body["tool_choice"], json!({"type": "any", "disable_parallel_tool_use": true}));
        req.params.insert("tool_choice".into(), json!("none"));
        assert_eq!(request_body(&req, "claude", false).unwrap().0["tool_choice"], json!({"type": "none"}));
    }

    /// A web search answer (the shape of Anthropic's web search tool docs):
    /// the server tool's blocks are not tool calls, the client tool call
    /// is, and cache tokens count in the prompt.
    #[test]
    fn server_tool_blocks_are_not_tool_calls_and_cache_tokens_count_in_the_prompt() {
        let resp = response_from(
            &json!({
                "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                "content": [
                    {"type": "text", "text": "Searching."},
                    {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
                    {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1",
                     "content": [{"type": "web_search_result", "url": "https://e.com", "title": "E"}]},
                    {"type": "tool_use", "id": "toolu_2", "name": "f", "input": {"a": 1}}
                ],
                "stop_reason": "model_context_window_exceeded",
                "usage": {"input_tokens": 10, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1000,
                          "output_tokens": 5}
            }),
            "claude",
        )
        .unwrap();
        let calls = resp.choices[0].message.tool_calls.as_ref().unwrap().as_array().unwrap().clone();
        assert_eq!(calls.len(), 1);
        assert_eq!(
            (calls[0]["id"].as_str(), calls[0]["function"]["arguments"].as_str()),
            (Some("toolu_2"), Some("{\"a\":1}"))
        );
        assert_eq!(resp.choices[0].finish_reason.as_deref(), Some("length"));
        assert_eq!((resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens), (1110, 5, 1115));
        for (stop, reason) in [("pause_turn", "stop"), ("refusal", "content_filter")] {
            assert_eq!(finish_reason(stop), reason);
        }
    }

    #[test]
    fn a_streamed_server_tool_does_not_leak_into_the_client_tool_calls() {
        let mut d = AnthropicDecoder::new("anthropic", "claude");
        d.push(
            br#"event: message_start
data: {"type":"message_start","message":{"id":"msg_2","model":"claude-x","usage":{"input_tokens":20,"cache_read_input_tokens":5,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"query\": \"weather\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[]}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_3","name":"f","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"1}"}}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"input_tokens":900,"cache_read_input_tokens":5,"output_tokens":7}}

event: message_stop
data: {"type":"message_stop"}

"#,
        );
        let chunks = drain(&mut d);
        let args: String = chunks
            .iter()
            .filter_map(|c| c.choices[0].delta.tool_calls.as_ref())
            .flat_map(|t| t.as_array().cloned().unwrap_or_default())
            .inspect(|t| assert_eq!(t["index"], 0, "one client call: {t}"))
            .filter_map(|t| t["function"]["arguments"].as_str().map(str::to_string))
            .collect();
        assert_eq!(args, "{\"a\":1}", "only the client tool's arguments");
        let last = chunks.last().unwrap();
        assert_eq!(last.choices[0].finish_reason.as_deref(), Some("tool_calls"));
        // The larger input count (the search read more) plus the cache reads.
        let usage = last.usage.as_ref().expect("usage");
        assert_eq!((usage.prompt_tokens, usage.completion_tokens, usage.total_tokens), (905, 7, 912));
        assert_eq!(usage.other["prompt_tokens_details"], json!({"cached_tokens": 5, "cache_creation_tokens": 0}));
    }
}
