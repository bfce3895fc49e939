//! Anthropic wire protocol: `POST /v1/messages`, unary or streamed as the
//! named SSE events Anthropic sends (`message_start`, `content_block_start`,
//! `ping`, `content_block_delta`…, `content_block_stop`, `message_delta`,
//! `message_stop`).
//!
//! Auth is `x-api-key`, and `anthropic-version` is required. `max_tokens` is
//! required; a reply longer than it (in words) is cut and ends with
//! `stop_reason: "max_tokens"`. Errors are `{"type":"error","error":{"type","message"}}`;
//! a mid-stream error is an `event: error` SSE event that ends the body.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::behave::{self, behave, ending, json, with_retry_after, Ending, Failure, Shared};
use crate::body::{FrameBody, Frames};
use crate::directives::split_model;
use crate::fixture;
use crate::limits::Flavor;
use crate::openai::sse_response;
use crate::stats::Route;
use crate::text::{self, words, Reply, Text};

#[derive(Deserialize)]
struct MessagesRequest<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(borrow)]
    messages: Vec<Message<'a>>,
    #[serde(default, borrow)]
    system: Text<'a>,
    #[serde(default)]
    stream: Option<bool>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(default, borrow)]
    content: Text<'a>,
}

#[derive(Serialize, Clone, Copy)]
struct Usage {
    input_tokens: u64,
    output_tokens: u64,
}

#[derive(Serialize)]
struct MessageBody<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    content: &'a [TextBlock<'a>],
    model: &'a str,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'static str>,
    usage: Usage,
}

#[derive(Serialize)]
struct TextBlock<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

/// Anthropic's error type for a status.
fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

fn error_body(f: &Failure) -> ErrorBody<'_> {
    ErrorBody {
        kind: "error",
        error: ErrorDetail { kind: f.kind.unwrap_or(error_type(f.status)), message: &f.message },
    }
}

/// An error response in Anthropic's format.
pub(crate) fn error(f: Failure) -> Response {
    let mut r = json(f.status, &error_body(&f));
    if let Some(v) = &f.limits {
        v.apply(&mut r, Flavor::Anthropic);
    }
    with_retry_after(r, &f)
}

fn auth(shared: &Shared, headers: &HeaderMap) -> Result<(), Failure> {
    match headers.get("x-api-key").map(|v| v.to_str()) {
        None => return Err(Failure::new(401, "x-api-key header is required")),
        Some(Ok(k)) if shared.accepts(k.trim()) => {}
        Some(_) => return Err(Failure::new(401, "invalid x-api-key")),
    }
    if headers.get("anthropic-version").is_none() {
        return Err(Failure::new(400, "anthropic-version: header is required"));
    }
    Ok(())
}

/// `POST /v1/messages`.
pub(crate) async fn messages(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let _open = shared.hit(Route::AnthropicMessages);
    match messages_inner(&shared, &headers, &body).await {
        Ok(r) => r,
        Err(f) => error(f),
    }
}

async fn messages_inner(shared: &Arc<Shared>, headers: &HeaderMap, body: &[u8]) -> Result<Response, Failure> {
    auth(shared, headers)?;
    let req: MessagesRequest = serde_json::from_slice(body).map_err(Failure::body)?;
    let Some(max_tokens) = req.max_tokens else {
        return Err(Failure::new(400, "max_tokens: Field required"));
    };
    let (model, spec) = split_model(&req.model);
    let d = behave::resolve(shared, spec, headers)?;
    if d.record {
        shared.recorder.record("/v1/messages", headers, body);
    }
    let prompt = words(req.system.as_str()) + req.messages.iter().map(|m| words(m.content.as_str())).sum::<u64>();
    let last_user = req.messages.iter().rev().find(|m| m.role == "user").map_or("", |m| m.content.as_str());
    let last = req.messages.last();
    let prefill = last.filter(|m| m.role == "assistant").map_or("", |m| m.content.as_str());
    let reply = Reply::new(last_user, prompt, Some(max_tokens)).continued(prefill);
    let verdict = shared.limit(prompt + max_tokens)?;
    let d = behave(shared, d).await?;
    behave::check_prefill(&d, last.map(|m| m.role.as_ref()))?;
    let limited = |mut r: Response| {
        if let Some(v) = &verdict {
            v.apply(&mut r, Flavor::Anthropic);
        }
        r
    };
    if let Some(name) = &d.fixture {
        let r = if req.stream == Some(true) {
            fixture::sse(shared, "anthropic", name)?
        } else {
            fixture::unary("anthropic", name)?
        };
        return Ok(limited(r));
    }

    let id = format!("msg_mock{:020}", shared.next_id());
    let stop_reason = if reply.truncated { "max_tokens" } else { "end_turn" };
    if req.stream != Some(true) {
        let m = MessageBody {
            id: &id,
            kind: "message",
            role: "assistant",
            content: &[TextBlock { kind: "text", text: &reply.text }],
            model,
            stop_reason: Some(stop_reason),
            stop_sequence: None,
            usage: Usage { input_tokens: reply.prompt_tokens, output_tokens: reply.completion_tokens },
        };
        return Ok(limited(json(200, &m)));
    }

    let pieces = text::split_chunks(&reply.text, d.chunks);
    let (sent, end) = ending(&d, pieces.len());
    let mut frames: Frames = Vec::with_capacity(sent + 6);
    let start = MessageBody {
        id: &id,
        kind: "message",
        role: "assistant",
        content: &[],
        model,
        stop_reason: None,
        stop_sequence: None,
        usage: Usage { input_tokens: reply.prompt_tokens, output_tokens: 1 },
    };
    frames.push((false, event("message_start", &Start { kind: "message_start", message: start })));
    frames.push((
        false,
        event(
            "content_block_start",
            &BlockStart { kind: "content_block_start", index: 0, content_block: TextBlock { kind: "text", text: "" } },
        ),
    ));
    frames.push((false, Bytes::from_static(b"event: ping\ndata: {\"type\": \"ping\"}\n\n")));
    for piece in pieces.iter().take(sent) {
        let delta =
            BlockDelta { kind: "content_block_delta", index: 0, delta: TextDelta { kind: "text_delta", text: piece } };
        frames.push((true, event("content_block_delta", &delta)));
    }
    match end {
        Ending::Normal => {
            frames.push((false, event("content_block_stop", &BlockStop { kind: "content_block_stop", index: 0 })));
            let md = MessageDelta {
                kind: "message_delta",
                delta: StopDelta { stop_reason, stop_sequence: None },
                usage: OutputUsage { output_tokens: reply.completion_tokens },
            };
            frames.push((false, event("message_delta", &md)));
            if d.terminator {
                frames.push((false, Bytes::from_static(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")));
            }
        }
        Ending::Truncated | Ending::Stall => {}
        Ending::Invalid => frames.push((
            false,
            Bytes::from_static(b"event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \n\n"),
        )),
        Ending::Error => {
            let status = d.stream_error_status();
            let f = Failure::new(status, format!("mock: injected in-stream error ({status})"));
            frames.push((false, event("error", &error_body(&f))));
        }
    }
    let body = FrameBody::new(shared.clone(), frames, Duration::from_millis(d.chunk_delay_ms))
        .first_delay(Duration::from_millis(d.first_chunk_delay_ms))
        .stall(end == Ending::Stall);
    Ok(limited(sse_response(Body::from_stream(body))))
}

#[derive(Serialize)]
struct Start<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: MessageBody<'a>,
}

#[derive(Serialize)]
struct BlockStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    content_block: TextBlock<'a>,
}

#[derive(Serialize)]
struct BlockDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    delta: TextDelta<'a>,
}

#[derive(Serialize)]
struct TextDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

#[derive(Serialize)]
struct BlockStop {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
}

#[derive(Serialize)]
struct MessageDelta {
    #[serde(rename = "type")]
    kind: &'static str,
    delta: StopDelta,
    usage: OutputUsage,
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: Option<&'static str>,
}

#[derive(Serialize)]
struct OutputUsage {
    output_tokens: u64,
}

/// One `event: <name>\ndata: <json>\n\n` SSE event.
fn event<T: Serialize>(name: &str, value: &T) -> Bytes {
    let mut v = Vec::with_capacity(256);
    v.extend_from_slice(b"event: ");
    v.extend_from_slice(name.as_bytes());
    v.extend_from_slice(b"\ndata: ");
    // Serializing these plain structs into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut v, value);
    v.extend_from_slice(b"\n\n");
    Bytes::from(v)
}
