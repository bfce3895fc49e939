//! OpenAI wire protocol: `POST /v1/chat/completions` (unary `chat.completion`
//! or an SSE stream of `chat.completion.chunk` ending in `data: [DONE]`) and
//! `POST /v1/embeddings`, both also without the `/v1` prefix.
//!
//! Auth is `Authorization: Bearer <key>`; errors use OpenAI's body
//! `{"error":{"message","type","param","code"}}`. A `max_tokens` (or
//! `max_completion_tokens`) smaller than the reply's word count cuts the reply
//! and sets `finish_reason: "length"`. A mid-stream error is a
//! `data: {"error":{...}}` event after which the body ends without `[DONE]`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::behave::{self, behave, ending, json, respond, with_retry_after, Ending, Failure, Shared};
use crate::body::{FrameBody, Frames};
use crate::directives::split_model;
use crate::fixture;
use crate::limits::Flavor;
use crate::stats::Route;
use crate::text::{self, words, Reply, Text};

#[derive(Deserialize)]
struct ChatRequest<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(borrow)]
    messages: Vec<Message<'a>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(default, borrow)]
    content: Text<'a>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Serialize, Clone, Copy)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: Usage,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [ChunkChoice<'a>],
    /// Absent without `include_usage`; `null` on every chunk but the last with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<Usage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// OpenAI's `(type, code)` for a status.
fn error_kind(status: u16) -> (&'static str, Option<&'static str>) {
    match status {
        401 => ("invalid_request_error", Some("invalid_api_key")),
        403 => ("invalid_request_error", Some("unsupported_country_region_territory")),
        404 => ("invalid_request_error", Some("model_not_found")),
        429 => ("requests", Some("rate_limit_exceeded")),
        400..=499 => ("invalid_request_error", None),
        _ => ("server_error", None),
    }
}

fn error_detail(f: &Failure) -> ErrorDetail<'_> {
    let (kind, code) = error_kind(f.status);
    // `kind` overrides the code; an empty kind means `code: null`.
    let code = match f.kind {
        Some("") => None,
        Some(k) => Some(k),
        None => code,
    };
    ErrorDetail { message: &f.message, kind, param: None, code }
}

/// An error response in OpenAI's format.
pub(crate) fn error(f: Failure) -> Response {
    let mut r = json(f.status, &ErrorBody { error: error_detail(&f) });
    if let Some(v) = &f.limits {
        v.apply(&mut r, Flavor::OpenAi);
    }
    with_retry_after(r, &f)
}

/// Checks `Authorization: Bearer <key>`.
fn auth(shared: &Shared, headers: &HeaderMap) -> Result<(), Failure> {
    let value = headers.get("authorization").and_then(|v| v.to_str().ok());
    let Some(value) = value else {
        return Err(Failure::new(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization header \
             using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        )
        .kind(""));
    };
    let key = value.strip_prefix("Bearer ").unwrap_or("").trim();
    if shared.accepts(key) {
        Ok(())
    } else {
        Err(Failure::new(401, format!("Incorrect API key provided: {}.", mask(key))))
    }
}

/// Shows only the ends of a key, as OpenAI does.
pub(crate) fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let _open = shared.hit(Route::OpenAiChat);
    match chat_inner(&shared, &headers, &body).await {
        Ok(r) => r,
        Err(f) => error(f),
    }
}

async fn chat_inner(shared: &Arc<Shared>, headers: &HeaderMap, body: &[u8]) -> Result<Response, Failure> {
    auth(shared, headers)?;
    let req: ChatRequest = serde_json::from_slice(body).map_err(Failure::body)?;
    let (model, spec) = split_model(&req.model);
    let d = behave::resolve(shared, spec, headers)?;
    if d.record {
        shared.recorder.record("/v1/chat/completions", headers, body);
    }
    let prompt: u64 = req.messages.iter().map(|m| words(m.content.as_str())).sum();
    let last_user = req.messages.iter().rev().find(|m| m.role == "user").map_or("", |m| m.content.as_str());
    let max_tokens = req.max_completion_tokens.or(req.max_tokens);
    let last = req.messages.last();
    let prefill = last.filter(|m| m.role == "assistant").map_or("", |m| m.content.as_str());
    let reply = Reply::new(last_user, prompt, max_tokens).continued(prefill);
    let verdict = shared.limit(prompt + max_tokens.unwrap_or(0))?;
    let d = behave(shared, d).await?;
    behave::check_prefill(&d, last.map(|m| m.role.as_ref()))?;
    let limited = |mut r: Response| {
        if let Some(v) = &verdict {
            v.apply(&mut r, Flavor::OpenAi);
        }
        r
    };
    if let Some(name) = &d.fixture {
        let r = if req.stream == Some(true) {
            fixture::sse(shared, "openai", name)?
        } else {
            fixture::unary("openai", name)?
        };
        return Ok(limited(r));
    }

    let id = format!("chatcmpl-mock{}", shared.next_id());
    let created = behave::unix_now();
    let usage = Usage {
        prompt_tokens: reply.prompt_tokens,
        completion_tokens: reply.completion_tokens,
        total_tokens: reply.prompt_tokens + reply.completion_tokens,
    };
    let finish = if reply.truncated { "length" } else { "stop" };
    if req.stream != Some(true) {
        let c = Completion {
            id: &id,
            object: "chat.completion",
            created,
            model,
            choices: [Choice {
                index: 0,
                message: AssistantMessage { role: "assistant", content: &reply.text },
                finish_reason: finish,
            }],
            usage,
        };
        return Ok(limited(json(200, &c)));
    }

    let include_usage = req.stream_options.and_then(|o| o.include_usage).unwrap_or(false);
    let usage_field = if include_usage { Some(None) } else { None };
    let pieces = text::split_chunks(&reply.text, d.chunks);
    let (sent, end) = ending(&d, pieces.len());
    let mut frames: Frames = Vec::with_capacity(sent + 3);
    let chunk = |choices: &[ChunkChoice<'_>], usage: Option<Option<Usage>>| {
        let c = Chunk { id: &id, object: "chat.completion.chunk", created, model, choices, usage };
        sse_data(&c)
    };
    for (i, piece) in pieces.iter().take(sent).enumerate() {
        let delta = Delta { role: (i == 0).then_some("assistant"), content: Some(piece) };
        frames.push((true, chunk(&[ChunkChoice { index: 0, delta, finish_reason: None }], usage_field)));
    }
    match end {
        Ending::Normal => {
            let done = ChunkChoice { index: 0, delta: Delta::default(), finish_reason: Some(finish) };
            frames.push((false, chunk(&[done], usage_field)));
            if include_usage {
                frames.push((false, chunk(&[], Some(Some(usage)))));
            }
            if d.terminator {
                frames.push((false, Bytes::from_static(b"data: [DONE]\n\n")));
            }
        }
        Ending::Truncated | Ending::Stall => {}
        Ending::Invalid => {
            frames.push((false, Bytes::from_static(b"data: {\"id\": \"chatcmpl-mock\", \"choices\": [\n\n")))
        }
        Ending::Error => {
            let status = d.stream_error_status();
            let f = Failure::new(status, format!("mock: injected in-stream error ({status})"));
            frames.push((false, sse_data(&ErrorBody { error: error_detail(&f) })));
        }
    }
    let body = FrameBody::new(shared.clone(), frames, Duration::from_millis(d.chunk_delay_ms))
        .first_delay(Duration::from_millis(d.first_chunk_delay_ms))
        .stall(end == Ending::Stall);
    Ok(limited(sse_response(Body::from_stream(body))))
}

/// One `data: <json>\n\n` SSE event.
fn sse_data<T: Serialize>(value: &T) -> Bytes {
    let mut v = Vec::with_capacity(256);
    v.extend_from_slice(b"data: ");
    // Serializing these plain structs into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut v, value);
    v.extend_from_slice(b"\n\n");
    Bytes::from(v)
}

/// A `text/event-stream` response with the headers OpenAI and Anthropic send.
pub(crate) fn sse_response(body: Body) -> Response {
    let r = respond(200, "text/event-stream; charset=utf-8", body);
    behave::with_header(r, "cache-control", "no-cache")
}

#[derive(Deserialize)]
struct EmbedRequest<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(borrow)]
    input: Input<'a>,
    #[serde(default)]
    dimensions: Option<u64>,
    #[serde(default, borrow)]
    encoding_format: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Input<'a> {
    One(#[serde(borrow)] Cow<'a, str>),
    Many(#[serde(borrow)] Vec<Cow<'a, str>>),
}

#[derive(Serialize)]
struct EmbedResponse<'a> {
    object: &'static str,
    data: Vec<EmbeddingItem>,
    model: &'a str,
    usage: EmbedUsage,
}

#[derive(Serialize)]
struct EmbeddingItem {
    object: &'static str,
    index: usize,
    embedding: EmbeddingValue,
}

#[derive(Serialize)]
#[serde(untagged)]
enum EmbeddingValue {
    Floats(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct EmbedUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// `POST /v1/embeddings`.
pub(crate) async fn embeddings(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let _open = shared.hit(Route::OpenAiEmbeddings);
    match embeddings_inner(&shared, &headers, &body).await {
        Ok(r) => r,
        Err(f) => error(f),
    }
}

async fn embeddings_inner(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Response, Failure> {
    auth(shared, headers)?;
    let req: EmbedRequest = serde_json::from_slice(body).map_err(Failure::body)?;
    let (model, spec) = split_model(&req.model);
    let d = behave::resolve(shared, spec, headers)?;
    let dims = match req.dimensions {
        None => 16,
        Some(n @ 1..=4096) => n as usize,
        Some(n) => return Err(Failure::new(400, format!("dimensions must be 1..=4096, got {n}"))),
    };
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(Failure::new(400, format!("encoding_format must be 'float' or 'base64', got '{other}'")))
        }
    };
    let inputs: Vec<&str> = match &req.input {
        Input::One(s) => vec![s],
        Input::Many(v) => v.iter().map(|s| s.as_ref()).collect(),
    };
    if inputs.is_empty() {
        return Err(Failure::new(400, "input must not be empty"));
    }
    let d = behave(shared, d).await?;
    if let Some(name) = &d.fixture {
        return fixture::unary("openai", name);
    }
    let mut tokens = 0;
    let data = inputs
        .iter()
        .enumerate()
        .map(|(index, t)| {
            tokens += words(t);
            let v = text::embedding(t, dims);
            let embedding =
                if base64 { EmbeddingValue::Base64(text::base64_f32(&v)) } else { EmbeddingValue::Floats(v) };
            EmbeddingItem { object: "embedding", index, embedding }
        })
        .collect();
    let r = EmbedResponse {
        object: "list",
        data,
        model,
        usage: EmbedUsage { prompt_tokens: tokens, total_tokens: tokens },
    };
    Ok(json(200, &r))
}
