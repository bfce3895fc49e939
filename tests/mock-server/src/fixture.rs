//! Recorded provider answers replayed byte for byte (`fixture=<name>`).
//!
//! The fidelity tests (docs/architecture.md §12) judge bifrost by what it
//! makes of a provider's real bytes, so the mock can answer with a file
//! from `tests/fixtures/<provider>/` instead of its echo:
//!
//! | route | file |
//! |---|---|
//! | OpenAI chat, unary / stream | `openai/<name>.json` / `openai/<name>.sse` |
//! | OpenAI embeddings | `openai/<name>.json` |
//! | Anthropic messages, unary / stream | `anthropic/<name>.json` / `anthropic/<name>.sse` |
//! | Bedrock converse / converse-stream | `bedrock/<name>.json` / `bedrock/<name>.events.json` |
//!
//! A `.json` file is the body as is. A `.sse` file is sent one event per
//! frame (split at blank lines), so the client's parser sees real event
//! boundaries. A Bedrock `.events.json` file lists the stream's messages,
//! `{"event": "<:event-type>", "payload": {...}}` or
//! `{"exception": "<:exception-type>", "payload": {...}}`, each encoded as a
//! real AWS event-stream frame. Names are `[A-Za-z0-9_-]`, so a directive
//! cannot reach outside the directory.

use std::sync::Arc;
use std::time::Duration;

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message as Frame};
use axum::body::{Body, Bytes};
use axum::response::Response;
use serde::Deserialize;

use crate::behave::{respond, Failure, Shared};
use crate::body::{FrameBody, Frames};

/// Where the recorded answers live (`tests/fixtures` of this repository).
pub const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");

/// Whether `name` may name a fixture: `[A-Za-z0-9_-]+`, at most 100 bytes.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 100 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn read(provider: &str, name: &str, ext: &str) -> Result<Vec<u8>, Failure> {
    if !valid_name(name) {
        return Err(Failure::new(400, "mock: fixture names are [A-Za-z0-9_-]+"));
    }
    let path = format!("{DIR}/{provider}/{name}{ext}");
    std::fs::read(&path)
        .map_err(|e| Failure::new(400, format!("mock: cannot read fixture {provider}/{name}{ext}: {e}")))
}

/// A unary answer: the `.json` file as the body.
pub(crate) fn unary(provider: &str, name: &str) -> Result<Response, Failure> {
    Ok(respond(200, "application/json", read(provider, name, ".json")?))
}

/// A server-sent-events answer: the `.sse` file, one event per frame.
pub(crate) fn sse(shared: &Arc<Shared>, provider: &str, name: &str) -> Result<Response, Failure> {
    let text = read(provider, name, ".sse")?;
    let text = String::from_utf8(text).map_err(|_| Failure::new(500, "mock: fixture is not UTF-8"))?;
    let normalized = text.replace("\r\n", "\n");
    let frames: Frames = normalized
        .split_inclusive("\n\n")
        .filter(|event| !event.trim().is_empty())
        .map(|event| (true, Bytes::from(event.to_string())))
        .collect();
    let body = FrameBody::new(shared.clone(), frames, Duration::ZERO);
    Ok(crate::openai::sse_response(Body::from_stream(body)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Message {
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    exception: Option<String>,
    payload: serde_json::Value,
}

/// A Bedrock event stream: each message of the `.events.json` file as a frame.
pub(crate) fn event_stream(shared: &Arc<Shared>, name: &str) -> Result<Response, Failure> {
    let text = read("bedrock", name, ".events.json")?;
    let messages: Vec<Message> = serde_json::from_slice(&text).map_err(Failure::body)?;
    let mut frames: Frames = Vec::with_capacity(messages.len());
    for m in messages {
        let (kind, header, value) = match (m.event, m.exception) {
            (Some(e), None) => ("event", ":event-type", e),
            (None, Some(x)) => ("exception", ":exception-type", x),
            _ => return Err(Failure::new(500, "mock: a fixture message names one event or one exception")),
        };
        let payload = serde_json::to_vec(&m.payload).map_err(Failure::body)?;
        let frame = Frame::new(payload)
            .add_header(Header::new(header, HeaderValue::String(value.into())))
            .add_header(Header::new(":content-type", HeaderValue::String("application/json".into())))
            .add_header(Header::new(":message-type", HeaderValue::String(kind.into())));
        let mut out = Vec::new();
        write_message_to(&frame, &mut out).map_err(|e| Failure::new(500, format!("mock: cannot encode frame: {e}")))?;
        frames.push((true, Bytes::from(out)));
    }
    let body = FrameBody::new(shared.clone(), frames, Duration::ZERO);
    Ok(respond(200, "application/vnd.amazon.eventstream", Body::from_stream(body)))
}
