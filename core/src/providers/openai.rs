//! OpenAI and every OpenAI-compatible server (vLLM, Ollama, Groq, Mistral,
//! OpenRouter, …) through `network_config.base_url`.
//!
//! `POST {base}/chat/completions` unary and streaming (SSE ending with
//! `data: [DONE]`), `POST {base}/embeddings`. The request's `params` are
//! forwarded unchanged, unknown ones included; only `model`, `messages`
//! and `stream` are set by bifrost. Streams ask for usage
//! (`stream_options.include_usage`) unless the caller set `stream_options`.

use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::ProviderConfig;
use crate::error::{Error, Result};
use crate::objpool::BufferPool;
use crate::providers::http::{Endpoint, HttpClient, SseParser, StreamDecoder, StreamItem};
use crate::providers::{CallCtx, ChunkStream};
use crate::types::{Chunk, EmbedRequest, EmbedResponse, Message, Request, Response};

pub(crate) struct OpenAi {
    pub(crate) http: HttpClient,
    chat_url: Endpoint,
    embed_url: Endpoint,
}

/// The wire body of a chat request.
struct ChatBody<'a> {
    model: &'a str,
    messages: &'a [Message],
    params: &'a Map<String, Value>,
    stream: bool,
}

impl Serialize for ChatBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("model", self.model)?;
        m.serialize_entry("messages", self.messages)?;
        for (k, v) in self.params {
            // stream_options only means something on a streamed request.
            let reserved = matches!(k.as_str(), "model" | "messages" | "stream");
            if !reserved && (k != "stream_options" || self.stream) {
                m.serialize_entry(k, v)?;
            }
        }
        if self.stream {
            m.serialize_entry("stream", &true)?;
            if !self.params.contains_key("stream_options") {
                m.serialize_entry("stream_options", &serde_json::json!({"include_usage": true}))?;
            }
        }
        m.end()
    }
}

/// The wire body of an embeddings request.
struct EmbedBody<'a> {
    model: &'a str,
    req: &'a EmbedRequest,
}

impl Serialize for EmbedBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("model", self.model)?;
        m.serialize_entry("input", &self.req.input)?;
        for (k, v) in &self.req.params {
            if !matches!(k.as_str(), "model" | "input") {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

/// `{"error": {"message": ...}}` → the message.
pub(crate) fn error_message(body: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Wrapper {
        error: Value,
    }
    error_text(&serde_json::from_str::<Wrapper>(body).ok()?.error)
}

/// The message of an `error` member: `{"message": "…", …}` or a bare string.
fn error_text(error: &Value) -> Option<String> {
    match error {
        Value::Object(o) => o.get("message").and_then(Value::as_str).map(str::to_string),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

impl OpenAi {
    pub fn new(name: &str, cfg: &ProviderConfig, buffers: Arc<BufferPool>) -> Result<Self> {
        let http = HttpClient::new(name, cfg, "https://api.openai.com/v1".into(), buffers)?;
        Ok(OpenAi { chat_url: http.endpoint("/chat/completions"), embed_url: http.endpoint("/embeddings"), http })
    }

    fn headers(&self, ctx: &CallCtx<'_>) -> Result<HeaderMap> {
        let mut h = HeaderMap::new();
        if let Some(key) = ctx.key {
            if !key.value.expose().is_empty() {
                let v = HeaderValue::from_str(&format!("Bearer {}", key.value.expose())).map_err(|_| {
                    Error::invalid(format!(
                        "key {} of provider '{}' is not a valid header value",
                        ctx.key_id(),
                        ctx.provider
                    ))
                })?;
                h.insert(AUTHORIZATION, v);
            }
        }
        Ok(h)
    }

    pub async fn chat(&self, req: &Request, ctx: &CallCtx<'_>) -> Result<Response> {
        let body = self.http.json_body(&ChatBody {
            model: ctx.model,
            messages: &req.messages,
            params: &req.params,
            stream: false,
        })?;
        let resp = self.http.post(&self.chat_url, self.headers(ctx)?, body, error_message, ctx).await?;
        let bytes = self.http.read_body(resp).await?;
        let mut out: Response = serde_json::from_slice(&bytes)
            .map_err(|e| self.http.protocol_error(format!("response is not a chat.completion object: {e}")))?;
        if out.object.is_empty() {
            out.object = "chat.completion".into();
        }
        Ok(out)
    }

    pub async fn stream(&self, req: &Request, ctx: &CallCtx<'_>) -> Result<ChunkStream> {
        let body = self.http.json_body(&ChatBody {
            model: ctx.model,
            messages: &req.messages,
            params: &req.params,
            stream: true,
        })?;
        let resp = self.http.post(&self.chat_url, self.headers(ctx)?, body, error_message, ctx).await?;
        // Usage comes last when asked for: ours by default, or the caller's.
        let expect_usage = match req.params.get("stream_options") {
            None => true,
            Some(o) => o.get("include_usage").and_then(Value::as_bool).unwrap_or(false),
        };
        Ok(self.http.stream(resp, OpenAiDecoder::new(ctx.provider, expect_usage), ctx.deadline, ctx.timeout_ms))
    }

    pub async fn embed(&self, req: &EmbedRequest, ctx: &CallCtx<'_>) -> Result<EmbedResponse> {
        let body = self.http.json_body(&EmbedBody { model: ctx.model, req })?;
        let resp = self.http.post(&self.embed_url, self.headers(ctx)?, body, error_message, ctx).await?;
        let bytes = self.http.read_body(resp).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| self.http.protocol_error(format!("response is not an embeddings list: {e}")))
    }
}

/// Decodes OpenAI's SSE chunks; `data: [DONE]` is the terminal event.
///
/// A body that ends without `[DONE]` is still complete once a chunk with a
/// `finish_reason` arrived, and the usage chunk too when usage was asked
/// for (docs/architecture.md §11): many OpenAI-compatible servers never send `[DONE]`.
pub(crate) struct OpenAiDecoder {
    sse: SseParser,
    provider: String,
    expect_usage: bool,
    finished: bool,
    usage_seen: bool,
}

impl OpenAiDecoder {
    pub fn new(provider: &str, expect_usage: bool) -> Self {
        OpenAiDecoder {
            sse: SseParser::default(),
            provider: provider.to_string(),
            expect_usage,
            finished: false,
            usage_seen: false,
        }
    }

    /// An error event inside the stream: PROVIDER, with the event as body.
    fn stream_error(&self, message: String, data: &str) -> Error {
        Error::Provider {
            provider: self.provider.clone(),
            status: 500,
            message: format!("error inside the stream: {message}"),
            body: data.to_string(),
            retry_after_ms: None,
        }
    }
}

impl StreamDecoder for OpenAiDecoder {
    fn push(&mut self, bytes: &[u8]) {
        self.sse.push(bytes);
    }

    fn buffered(&self) -> usize {
        self.sse.buffered()
    }

    fn complete_at_eof(&self) -> bool {
        self.finished && (self.usage_seen || !self.expect_usage)
    }

    fn next_item(&mut self) -> Result<Option<StreamItem>> {
        while let Some(ev) = self.sse.next_event() {
            let data = ev.data.trim();
            if data.is_empty() {
                continue;
            }
            if data == "[DONE]" {
                return Ok(Some(StreamItem::Done));
            }
            // One parse per event: an error event (`{"error": …}`) lands in
            // the chunk's `other`; one that is not even a chunk is looked at
            // as an error body before it counts as a protocol error.
            let chunk: Chunk = match serde_json::from_str(data) {
                Ok(chunk) => chunk,
                Err(e) => {
                    return Err(match error_message(data) {
                        Some(message) => self.stream_error(message, data),
                        None => Error::Protocol {
                            provider: self.provider.clone(),
                            message: format!("stream event is not a chat.completion.chunk: {e}"),
                        },
                    })
                }
            };
            if let Some(message) = chunk.other.get("error").and_then(error_text) {
                return Err(self.stream_error(message, data));
            }
            self.finished |= chunk.choices.iter().any(|c| c.finish_reason.is_some());
            self.usage_seen |= chunk.usage.is_some();
            return Ok(Some(StreamItem::Chunk(chunk)));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The chat.completion and chunk examples of OpenAI's API reference.
    #[test]
    fn golden_openai_shapes() {
        let resp: Response = serde_json::from_value(json!({
            "id": "chatcmpl-123", "object": "chat.completion", "created": 1677652288,
            "model": "gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "\n\nHello there, how may I assist you today?",
                         "refusal": null}, "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21,
                      "completion_tokens_details": {"reasoning_tokens": 0}}
        }))
        .unwrap();
        assert_eq!(resp.id, "chatcmpl-123");
        assert_eq!(resp.text(), Some("\n\nHello there, how may I assist you today?"));
        assert_eq!(resp.usage.total_tokens, 21);
        let chunk: Chunk = serde_json::from_value(json!({
            "id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190,
            "model": "gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]
        }))
        .unwrap();
        assert_eq!(chunk.choices[0].delta.role.as_deref(), Some("assistant"));
        let usage_chunk: Chunk = serde_json::from_value(json!({
            "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
        }))
        .unwrap();
        assert_eq!(usage_chunk.usage.unwrap().completion_tokens, 7);
    }

    #[test]
    fn request_body_forwards_params_and_forces_stream_fields() {
        let req: Request = serde_json::from_value(json!({
            "model": "openai/gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi"}],
            "params": {"temperature": 0.2, "response_format": {"type": "json_object"}, "some_new_param": 1,
                       "stream": false, "model": "ignored"}
        }))
        .unwrap();
        let body = ChatBody { model: "gpt-4o-mini", messages: &req.messages, params: &req.params, stream: true };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2,
                   "response_format": {"type": "json_object"}, "some_new_param": 1, "stream": true,
                   "stream_options": {"include_usage": true}})
        );
    }

    #[test]
    fn sse_decoder_stops_at_done_and_reports_errors() {
        let mut d = OpenAiDecoder::new("openai", false);
        d.push(b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\ndata: [DONE]\n\n");
        assert!(
            matches!(d.next_item().unwrap(), Some(StreamItem::Chunk(c)) if c.choices[0].delta.content.as_deref() == Some("Hi"))
        );
        assert!(matches!(d.next_item().unwrap(), Some(StreamItem::Done)));
        let mut d = OpenAiDecoder::new("openai", false);
        d.push(b"data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n");
        let err = d.next_item().unwrap_err();
        assert!(err.to_string().contains("overloaded"), "{err}");
    }

    /// Every form of error event, each parsed once: as a chunk whose
    /// `other` holds the error, or (not even a chunk) as an error body.
    #[test]
    fn error_events_in_every_shape() {
        let item = |event: &str| {
            let mut d = OpenAiDecoder::new("openai", false);
            d.push(format!("data: {event}\n\n").as_bytes());
            d.next_item()
        };
        for (event, message) in [
            (r#"{"error":{"message":"overloaded","type":"server_error"}}"#, "overloaded"),
            (r#"{"error":"plain text"}"#, "plain text"),
            // Not a chunk (`choices` is no list), but an error all the same.
            (r#"{"choices":"x","error":{"message":"bad gateway"}}"#, "bad gateway"),
        ] {
            let err = item(event).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Provider, "{event}: {err}");
            assert!(err.to_string().contains(message), "{event}: {err}");
        }
        // Neither a chunk nor an error: PROTOCOL.
        assert_eq!(item(r#"{"choices":"x"}"#).unwrap_err().kind(), crate::ErrorKind::Protocol);
        // An `error` member without a message is a field like any other.
        match item(r#"{"id":"c","choices":[],"error":5}"#) {
            Ok(Some(StreamItem::Chunk(c))) => assert_eq!(c.other.get("error"), Some(&json!(5))),
            other => panic!("expected a chunk, got {other:?}"),
        }
    }
}
