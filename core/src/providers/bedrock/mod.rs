//! AWS Bedrock's Converse and ConverseStream APIs
//! (`POST {base}/model/{modelId}/converse` and `/converse-stream`), signed
//! with SigV4 (`aws-sigv4`), mapped to and from the OpenAI shape.
//!
//! Keys carry `bedrock_key_config` (`access_key`, `secret_key`,
//! `session_token`, `region`, optional `deployments` and `arn`); a key with
//! only a `value` is sent as a Bedrock API key (`Authorization: Bearer`).
//! The endpoint defaults to `https://bedrock-runtime.{region}.amazonaws.com`.
//! Streams are AWS event-stream frames (decoded with
//! `aws-smithy-eventstream`, CRCs checked); `messageStop` ends the content,
//! `metadata` carries usage, an exception frame is a PROVIDER error.
//!
//! Requests are built by [`request`], which names what it cannot send.
//! Back: text, `toolUse` blocks as `tool_calls`, reasoning as
//! `reasoning_content` with the signed blocks in `thinking_blocks`
//! (Anthropic's shape, so a conversation can move between the two), cache
//! tokens in `prompt_tokens_details`. The whole table is docs/providers.md.

mod request;
pub(crate) use request::request_body;

use std::sync::Arc;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{HeaderValue as EsHeaderValue, Message as EsMessage};
use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};

use crate::config::{KeyConfig, ProviderConfig};
use crate::error::{Error, Result};
use crate::objpool::BufferPool;
use crate::providers::http::{Endpoint, HttpClient, StreamDecoder, StreamItem};
use crate::providers::mapping::{cache_details, openai_tool_call, Answer, StreamThinking};
use crate::providers::{CallCtx, ChunkStream};
use crate::types::{Chunk, Delta, Request, Response, Usage};

pub(crate) struct Bedrock {
    pub(crate) http: HttpClient,
    /// True when `network_config.base_url` was set (else per-key region).
    custom_base: bool,
}

/// Percent-encodes a path segment (RFC 3986 unreserved characters stay).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Converse stop reason → OpenAI finish reason.
pub(crate) fn finish_reason(stop: &str) -> std::borrow::Cow<'static, str> {
    crate::types::well_known(match stop {
        "end_turn" | "stop_sequence" => "stop",
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "content_filtered" | "guardrail_intervened" => "content_filter",
        other => other,
    })
}

/// Converse usage → OpenAI usage: prompt tokens include the cache, whose
/// reads are `prompt_tokens_details.cached_tokens` and writes
/// `prompt_tokens_details.cache_creation_tokens`.
fn usage_from(u: Option<&Value>) -> Usage {
    let field = |k: &str| u.and_then(|u| u.get(k)).and_then(Value::as_u64);
    let (reads, writes) = (field("cacheReadInputTokens"), field("cacheWriteInputTokens"));
    let prompt =
        field("inputTokens").unwrap_or(0).saturating_add(reads.unwrap_or(0)).saturating_add(writes.unwrap_or(0));
    let completion = field("outputTokens").unwrap_or(0);
    let mut usage = Usage::counts(prompt, completion);
    if let Some(total) = field("totalTokens") {
        usage.total_tokens = total;
    }
    cache_details(&mut usage, reads, writes);
    usage
}

/// A `reasoningContent` block → the `thinking_blocks` entry (Anthropic's
/// shape) and its text.
fn thinking_block(r: &Value) -> Option<(Value, &str)> {
    if let Some(t) = r.get("reasoningText") {
        let text = t.get("text").and_then(Value::as_str).unwrap_or("");
        let mut block = json!({"type": "thinking", "thinking": text});
        if let Some(sig) = t.get("signature") {
            block["signature"] = sig.clone();
        }
        return Some((block, text));
    }
    r.get("redactedContent").map(|d| (json!({"type": "redacted_thinking", "data": d}), ""))
}

/// Maps a Converse response to a `chat.completion`.
pub(crate) fn response_from(v: &Value, model: &str, id: String) -> Option<Response> {
    let blocks = v.get("output")?.get("message")?.get("content")?.as_array()?;
    let mut a = Answer::default();
    for b in blocks {
        if let Some(t) = b.get("text").and_then(Value::as_str) {
            a.text.push_str(t);
        } else if let Some(u) = b.get("toolUse") {
            a.tool_calls.push(openai_tool_call(u.get("toolUseId"), u.get("name"), u.get("input")));
        } else if let Some((block, t)) = b.get("reasoningContent").and_then(thinking_block) {
            if block["type"] == "thinking" {
                a.reasoning.get_or_insert_with(String::new).push_str(t);
            }
            a.thinking.push(block);
        }
    }
    let finish = v.get("stopReason").and_then(Value::as_str).map(finish_reason);
    Some(a.into_response(id, model.to_string(), finish, usage_from(v.get("usage"))))
}

/// `{"message": ...}` (or `Message`) → the message.
pub(crate) fn error_message(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    v.get("message").or_else(|| v.get("Message")).and_then(Value::as_str).map(str::to_string)
}

impl Bedrock {
    pub fn new(name: &str, cfg: &ProviderConfig, buffers: Arc<BufferPool>) -> Result<Self> {
        for (i, k) in cfg.keys.iter().enumerate() {
            if k.bedrock_key_config.is_none() && k.value.expose().is_empty() {
                return Err(Error::config(
                    format!("providers.{name}.keys[{i}]"),
                    "a bedrock key needs bedrock_key_config {access_key, secret_key, region} or an API key in value",
                ));
            }
        }
        let custom_base = cfg.network_config.base_url.is_some();
        // Without a base_url, the region comes from each key (see `base_for`).
        let http = HttpClient::new(name, cfg, String::new(), buffers)?;
        Ok(Bedrock { http, custom_base })
    }

    fn base_for(&self, key: &KeyConfig) -> String {
        if self.custom_base {
            return self.http.base_url.clone();
        }
        let region = key.bedrock_key_config.as_ref().map(|b| b.region.expose()).unwrap_or("us-east-1");
        format!("https://bedrock-runtime.{region}.amazonaws.com")
    }

    /// The model id for the URL: a deployment (prefixed with `arn`) if the
    /// key maps this model, else the model name itself.
    fn model_id(key: &KeyConfig, model: &str) -> String {
        match &key.bedrock_key_config {
            Some(b) => match b.deployments.get(model) {
                Some(dep) => match &b.arn {
                    Some(arn) => format!("{}/{dep}", arn.expose().trim_end_matches('/')),
                    None => dep.clone(),
                },
                None => model.to_string(),
            },
            None => model.to_string(),
        }
    }

    /// Signs (SigV4) or authorizes (API key) one POST of `body` to `url`.
    fn auth_headers(&self, key: &KeyConfig, ctx: &CallCtx<'_>, url: &str, body: &[u8]) -> Result<HeaderMap> {
        let mut out = HeaderMap::new();
        let Some(b) = &key.bedrock_key_config else {
            let v = HeaderValue::from_str(&format!("Bearer {}", key.value.expose()))
                .map_err(|_| Error::invalid(format!("key {} is not a valid header value", ctx.key_id())))?;
            out.insert(reqwest::header::AUTHORIZATION, v);
            return Ok(out);
        };
        let (Some(ak), Some(sk)) = (&b.access_key, &b.secret_key) else {
            return Err(Error::invalid(format!(
                "key {} of provider '{}' has bedrock_key_config without access_key/secret_key",
                ctx.key_id(),
                ctx.provider
            )));
        };
        let identity = Credentials::new(
            ak.expose(),
            sk.expose(),
            b.session_token.as_ref().map(|t| t.expose().to_string()),
            None,
            "bifrost-config",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(b.region.expose())
            .name("bedrock")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| Error::Internal { message: format!("SigV4 parameters: {e}") })?
            .into();
        let headers = [("content-type", "application/json")];
        let signable = SignableRequest::new("POST", url, headers.into_iter(), SignableBody::Bytes(body))
            .map_err(|e| Error::invalid(format!("cannot sign the Bedrock request URL {url}: {e}")))?;
        let (instructions, _sig) = sign(signable, &params)
            .map_err(|e| Error::Internal { message: format!("SigV4 signing failed: {e}") })?
            .into_parts();
        for (name, value) in instructions.headers() {
            let n = HeaderName::from_bytes(name.as_bytes()).map_err(|e| Error::Internal { message: e.to_string() })?;
            let v = HeaderValue::from_str(value).map_err(|e| Error::Internal { message: e.to_string() })?;
            out.insert(n, v);
        }
        Ok(out)
    }

    /// Sends the request; also returns what of it could not be sent.
    async fn send(&self, req: &Request, ctx: &CallCtx<'_>, stream: bool) -> Result<(reqwest::Response, Vec<String>)> {
        let key = ctx.key.ok_or_else(|| Error::invalid(format!("provider '{}' has no key", ctx.provider)))?;
        let route = if stream { "converse-stream" } else { "converse" };
        let url = format!("{}/model/{}/{route}", self.base_for(key), encode_segment(&Self::model_id(key, ctx.model)));
        let (body, unmapped) = request_body(req)?;
        let body: Bytes = self.http.json_body(&body)?;
        let headers = self.auth_headers(key, ctx, &url, &body)?;
        Ok((self.http.post(&Endpoint::new(url), headers, body, error_message, ctx).await?, unmapped))
    }

    pub async fn chat(&self, req: &Request, ctx: &CallCtx<'_>) -> Result<Response> {
        let (resp, unmapped) = self.send(req, ctx, false).await?;
        let id = resp
            .headers()
            .get("x-amzn-requestid")
            .and_then(|v| v.to_str().ok())
            .map(|s| format!("bedrock-{s}"))
            .unwrap_or_else(|| format!("bedrock-{}", ctx.job_id));
        let bytes = self.http.read_body(resp).await?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| self.http.protocol_error(format!("response is not JSON: {e}")))?;
        let mut out = response_from(&v, ctx.model, id)
            .ok_or_else(|| self.http.protocol_error("response is not a Converse output".into()))?;
        out.extra_fields.unmapped_params = unmapped;
        Ok(out)
    }

    pub async fn stream(&self, req: &Request, ctx: &CallCtx<'_>) -> Result<ChunkStream> {
        let (resp, unmapped) = self.send(req, ctx, true).await?;
        let decoder =
            BedrockDecoder::new(ctx.provider, ctx.model, format!("bedrock-{}", ctx.job_id)).with_unmapped(unmapped);
        Ok(self.http.stream(resp, decoder, ctx.deadline, ctx.timeout_ms))
    }
}

/// Decodes ConverseStream's event-stream frames into chunks.
pub(crate) struct BedrockDecoder {
    buf: BytesMut,
    frames: MessageFrameDecoder,
    provider: String,
    model: String,
    id: String,
    created: u64,
    /// `messageStop` seen: the content is complete.
    stopped: bool,
    /// `metadata` seen: report the end on the next call.
    done: bool,
    /// Tool-use block index → position in `tool_calls` deltas.
    tool_index: Vec<(u64, u32)>,
    /// The thinking being streamed.
    thinking: StreamThinking,
    /// What of the request was not sent: told on the first chunk.
    unmapped: Vec<String>,
}

fn header<'a>(m: &'a EsMessage, name: &str) -> Option<&'a str> {
    m.headers().iter().find(|h| h.name().as_str() == name).and_then(|h| match h.value() {
        EsHeaderValue::String(s) => Some(s.as_str()),
        _ => None,
    })
}

impl BedrockDecoder {
    pub fn new(provider: &str, model: &str, id: String) -> Self {
        BedrockDecoder {
            buf: BytesMut::new(),
            frames: MessageFrameDecoder::new(),
            provider: provider.to_string(),
            model: model.to_string(),
            id,
            created: super::unix_now_s(),
            stopped: false,
            done: false,
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
}

impl StreamDecoder for BedrockDecoder {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn complete_at_eof(&self) -> bool {
        // `metadata` is optional in practice; `messageStop` ends the content.
        self.stopped
    }

    fn next_item(&mut self) -> Result<Option<StreamItem>> {
        if self.done {
            return Ok(Some(StreamItem::Done));
        }
        loop {
            let frame = self.frames.decode_frame(&mut self.buf).map_err(|e| Error::Protocol {
                provider: self.provider.clone(),
                message: format!("malformed event-stream frame: {e}"),
            })?;
            let msg = match frame {
                DecodedFrame::Incomplete => return Ok(None),
                DecodedFrame::Complete(m) => m,
            };
            let payload: Value = serde_json::from_slice(msg.payload()).unwrap_or(Value::Null);
            match header(&msg, ":message-type") {
                Some("exception") | Some("error") => {
                    let kind = header(&msg, ":exception-type").or(header(&msg, ":error-code")).unwrap_or("exception");
                    let status = match kind {
                        "throttlingException" => 429,
                        "validationException" => 400,
                        "serviceUnavailableException" => 503,
                        "modelStreamErrorException" => 424,
                        _ => 500,
                    };
                    // An exception's text is in its payload; an error
                    // frame's in its `:error-message` header.
                    let text = payload
                        .get("message")
                        .or_else(|| payload.get("Message"))
                        .and_then(Value::as_str)
                        .or(header(&msg, ":error-message"))
                        .unwrap_or("")
                        .to_string();
                    return Err(Error::Provider {
                        provider: self.provider.clone(),
                        status,
                        message: format!("error inside the stream: {kind}: {text}"),
                        body: String::from_utf8_lossy(msg.payload()).into_owned(),
                        retry_after_ms: None,
                    });
                }
                _ => {}
            }
            match header(&msg, ":event-type").unwrap_or("") {
                "messageStart" => {
                    let delta = Delta { role: Some("assistant".into()), ..Delta::text(String::new()) };
                    let mut first = self.chunk(delta, None, None);
                    first.extra_fields = super::unmapped_report(&mut self.unmapped);
                    return Ok(Some(StreamItem::Chunk(first)));
                }
                "contentBlockStart" => {
                    let index = payload.get("contentBlockIndex").and_then(Value::as_u64).unwrap_or(0);
                    if let Some(u) = payload.get("start").and_then(|s| s.get("toolUse")) {
                        let pos = self.tool_index.len() as u32;
                        self.tool_index.push((index, pos));
                        let call = json!([{"index": pos, "id": u.get("toolUseId"), "type": "function",
                                           "function": {"name": u.get("name"), "arguments": ""}}]);
                        let delta = Delta { tool_calls: Some(call), ..Delta::default() };
                        return Ok(Some(StreamItem::Chunk(self.chunk(delta, None, None))));
                    }
                }
                "contentBlockDelta" => {
                    let index = payload.get("contentBlockIndex").and_then(Value::as_u64).unwrap_or(0);
                    let Some(d) = payload.get("delta") else { continue };
                    if let Some(t) = d.get("text").and_then(Value::as_str) {
                        let delta = Delta::text(t.to_string());
                        return Ok(Some(StreamItem::Chunk(self.chunk(delta, None, None))));
                    }
                    if let Some(input) = d.get("toolUse").and_then(|u| u.get("input")).and_then(Value::as_str) {
                        let Some(pos) = self.tool_index.iter().find(|(i, _)| *i == index).map(|(_, p)| *p) else {
                            continue;
                        };
                        let call = json!([{"index": pos, "function": {"arguments": input}}]);
                        let delta = Delta { tool_calls: Some(call), ..Delta::default() };
                        return Ok(Some(StreamItem::Chunk(self.chunk(delta, None, None))));
                    }
                    if let Some(r) = d.get("reasoningContent") {
                        let delta = if let Some(t) = r.get("text").and_then(Value::as_str) {
                            self.thinking.piece(t)
                        } else if let Some(sig) = r.get("signature") {
                            self.thinking.signed(sig.clone())
                        } else if let Some(data) = r.get("redactedContent") {
                            self.thinking.redacted(data.clone())
                        } else {
                            continue;
                        };
                        return Ok(Some(StreamItem::Chunk(self.chunk(delta, None, None))));
                    }
                }
                "messageStop" => {
                    self.stopped = true;
                    let reason = payload.get("stopReason").and_then(Value::as_str).map(finish_reason);
                    return Ok(Some(StreamItem::Chunk(self.chunk(Delta::default(), reason, None))));
                }
                "metadata" => {
                    if !self.stopped {
                        return Err(Error::Protocol {
                            provider: self.provider.clone(),
                            message: "Bedrock stream sent metadata before messageStop".into(),
                        });
                    }
                    // Usage is the last event: the stream is complete.
                    self.done = true;
                    let usage = usage_from(payload.get("usage"));
                    return Ok(Some(StreamItem::Chunk(self.chunk(Delta::default(), None, Some(usage)))));
                }
                _ => {} // contentBlockStop
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_converse_mapping() {
        let req: Request = serde_json::from_value(json!({
            "model": "bedrock/anthropic.claude-3-haiku-20240307-v1:0",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
            "params": {"max_tokens": 100, "temperature": 0.5, "top_p": 0.9, "stop": ["END"], "seed": 1}
        }))
        .unwrap();
        let (body, unmapped) = request_body(&req).unwrap();
        assert_eq!(
            body,
            json!({"messages": [{"role": "user", "content": [{"text": "Hello"}]}],
                   "system": [{"text": "Be brief."}],
                   "inferenceConfig": {"maxTokens": 100, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]}})
        );
        assert_eq!(unmapped, ["seed"]);
        let resp = response_from(
            &json!({"output": {"message": {"role": "assistant", "content": [{"text": "Hi there."}]}},
                    "stopReason": "end_turn", "usage": {"inputTokens": 10, "outputTokens": 3, "totalTokens": 13},
                    "metrics": {"latencyMs": 300}}),
            "anthropic.claude-3-haiku-20240307-v1:0",
            "bedrock-1".into(),
        )
        .unwrap();
        assert_eq!(resp.text(), Some("Hi there."));
        assert_eq!(resp.choices[0].finish_reason.as_deref(), Some("stop"));
        assert_eq!(resp.usage.total_tokens, 13);
        assert_eq!(
            encode_segment("anthropic.claude-3-haiku-20240307-v1:0"),
            "anthropic.claude-3-haiku-20240307-v1%3A0"
        );
    }

    /// Requests Converse would refuse: a `jpg` image format, blank text.
    #[test]
    fn jpg_is_jpeg_and_blank_text_is_not_sent() {
        let req: Request = serde_json::from_value(json!({
            "model": "bedrock/m",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "text", "text": "  "},
                    {"type": "image_url", "image_url": {"url": "data:image/jpg;base64,/9j/"}}]},
                {"role": "assistant", "content": " "},
                {"role": "user", "content": "well?"}
            ]
        }))
        .unwrap();
        let body = request_body(&req).unwrap().0;
        assert_eq!(
            body["messages"][0]["content"],
            json!([{"text": "look"}, {"image": {"format": "jpeg", "source": {"bytes": "/9j/"}}}])
        );
        let msgs = body["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 2, "the blank assistant turn is not sent: {msgs:?}");
        assert_eq!(msgs[1]["content"], json!([{"text": "well?"}]));
    }

    /// An event-stream `error` frame (written by the real encoder) keeps
    /// its `:error-message` text.
    #[test]
    fn an_error_frame_keeps_its_error_message() {
        use aws_smithy_types::event_stream::{Header, HeaderValue, Message as Frame};
        let frame = Frame::new(Vec::<u8>::new())
            .add_header(Header::new(":message-type", HeaderValue::String("error".into())))
            .add_header(Header::new(":error-code", HeaderValue::String("ThrottlingException".into())))
            .add_header(Header::new(":error-message", HeaderValue::String("Too many tokens, slow down".into())));
        let mut bytes = Vec::new();
        aws_smithy_eventstream::frame::write_message_to(&frame, &mut bytes).unwrap();
        let mut d = BedrockDecoder::new("bedrock", "m", "bedrock-1".into());
        d.push(&bytes);
        let e = d.next_item().unwrap_err();
        assert!(e.to_string().contains("Too many tokens, slow down"), "{e}");
        assert!(e.to_string().contains("ThrottlingException"), "{e}");
    }
}
