//! AWS Bedrock runtime wire protocol: `POST /model/{modelId}/converse`
//! (JSON) and `POST /model/{modelId}/converse-stream` (binary AWS
//! event-stream frames, `application/vnd.amazon.eventstream`).
//!
//! Auth: a SigV4 `Authorization` header (`AWS4-HMAC-SHA256 Credential=AKID/
//! yyyymmdd/region/bedrock/aws4_request, SignedHeaders=…, Signature=<64 hex>`)
//! plus `x-amz-date`. The signature cannot be checked without the secret, so
//! the header is checked for well-formedness (`InvalidSignatureException`) and
//! the access key id against the accepted keys (`UnrecognizedClientException`).
//! A Bedrock API key (`Authorization: Bearer <key>`) is accepted as well.
//! Errors are `{"message": ...}` with the type in `x-amzn-ErrorType`; a
//! mid-stream error is an exception frame (`:message-type` = `exception`).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message as Frame};
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header::HeaderName;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::behave::{self, behave, ending, json, respond, with_retry_after, Ending, Failure, Shared};
use crate::body::{FrameBody, Frames};
use crate::directives::split_model;
use crate::fixture;
use crate::stats::Route;
use crate::text::{self, words, Reply, Text};

#[derive(Deserialize)]
struct ConverseRequest<'a> {
    #[serde(borrow)]
    messages: Vec<Message<'a>>,
    #[serde(default, borrow)]
    system: Text<'a>,
    #[serde(default, rename = "inferenceConfig")]
    inference_config: Option<InferenceConfig>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(default, borrow)]
    content: Text<'a>,
}

#[derive(Deserialize)]
struct InferenceConfig {
    #[serde(default, rename = "maxTokens")]
    max_tokens: Option<u64>,
}

#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct Usage {
    input_tokens: u64,
    output_tokens: u64,
    total_tokens: u64,
}

#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct Metrics {
    latency_ms: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConverseResponse<'a> {
    output: Output<'a>,
    stop_reason: &'static str,
    usage: Usage,
    metrics: Metrics,
}

#[derive(Serialize)]
struct Output<'a> {
    message: OutMessage<'a>,
}

#[derive(Serialize)]
struct OutMessage<'a> {
    role: &'static str,
    content: [TextBlock<'a>; 1],
}

#[derive(Serialize)]
struct TextBlock<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    message: &'a str,
}

/// Bedrock's exception name for a status.
fn error_type(status: u16) -> &'static str {
    match status {
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        400..=499 => "ValidationException",
        _ => "InternalServerException",
    }
}

/// An error response in Bedrock's format (`x-amzn-ErrorType` names the exception).
pub(crate) fn error(f: Failure) -> Response {
    let kind = f.kind.unwrap_or(error_type(f.status));
    let mut r = json(f.status, &ErrorBody { message: &f.message });
    r.headers_mut().insert(HeaderName::from_static("x-amzn-errortype"), axum::http::HeaderValue::from_static(kind));
    with_retry_after(r, &f)
}

fn malformed(msg: impl Into<String>) -> Failure {
    Failure::new(403, msg).kind("InvalidSignatureException")
}

fn unknown_key() -> Failure {
    Failure::new(403, "The security token included in the request is invalid.").kind("UnrecognizedClientException")
}

fn is_digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// Checks the SigV4 `Authorization` and `x-amz-date` headers (or a Bedrock API key).
fn auth(shared: &Shared, headers: &HeaderMap) -> Result<(), Failure> {
    let Some(value) = headers.get("authorization") else {
        return Err(Failure::new(403, "Missing Authentication Token").kind("MissingAuthenticationTokenException"));
    };
    let value = value.to_str().map_err(|_| malformed("Authorization header is not valid ASCII"))?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        return if shared.accepts(token.trim()) { Ok(()) } else { Err(unknown_key()) };
    }
    let Some(rest) = value.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Err(malformed("Authorization header requires the 'AWS4-HMAC-SHA256' algorithm"));
    };
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or_else(|| malformed(format!("malformed '{}'", part.trim())))?;
        let slot = match k {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => return Err(malformed(format!("unexpected Authorization component '{k}'"))),
        };
        if slot.replace(v).is_some() {
            return Err(malformed(format!("duplicate Authorization component '{k}'")));
        }
    }
    let credential = credential.ok_or_else(|| malformed("Authorization header requires 'Credential' parameter"))?;
    let signed = signed.ok_or_else(|| malformed("Authorization header requires 'SignedHeaders' parameter"))?;
    let signature = signature.ok_or_else(|| malformed("Authorization header requires 'Signature' parameter"))?;

    let scope: Vec<&str> = credential.split('/').collect();
    let [akid, date, region, service, terminator] = scope[..] else {
        return Err(malformed(format!("Credential should have 5 '/'-separated parts, got '{credential}'")));
    };
    let region_ok =
        !region.is_empty() && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if akid.is_empty() || !is_digits(date, 8) || !region_ok || service != "bedrock" || terminator != "aws4_request" {
        return Err(malformed(format!(
            "Credential should be scoped as <key id>/<yyyymmdd>/<region>/bedrock/aws4_request, got '{credential}'"
        )));
    }
    let names_ok = signed
        .split(';')
        .all(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
    if !names_ok || !signed.split(';').any(|h| h == "host") {
        return Err(malformed(format!(
            "SignedHeaders must be ';'-separated lowercase names including host, got '{signed}'"
        )));
    }
    if let Some(missing) = signed.split(';').find(|h| *h != "host" && !headers.contains_key(*h)) {
        return Err(malformed(format!("signed header '{missing}' is not present in the request")));
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(malformed("Signature must be 64 lowercase hex characters"));
    }
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| malformed("Authorization header requires existence of a 'X-Amz-Date' header"))?;
    let well_formed = amz_date.len() == 16
        && is_digits(&amz_date[..8], 8)
        && amz_date.as_bytes()[8] == b'T'
        && is_digits(&amz_date[9..15], 6)
        && amz_date.as_bytes()[15] == b'Z';
    if !well_formed {
        return Err(malformed(format!("X-Amz-Date must be yyyymmddThhmmssZ, got '{amz_date}'")));
    }
    if &amz_date[..8] != date {
        return Err(malformed(format!("Credential date '{date}' does not match X-Amz-Date '{amz_date}'")));
    }
    if shared.accepts(akid) {
        Ok(())
    } else {
        Err(unknown_key())
    }
}

/// `POST /model/{modelId}/converse`.
pub(crate) async fn converse(
    State(shared): State<Arc<Shared>>,
    model: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _open = shared.hit(Route::BedrockConverse);
    match run(&shared, model, uri.path(), &headers, &body, false).await {
        Ok(r) => r,
        Err(f) => error(f),
    }
}

/// `POST /model/{modelId}/converse-stream`.
pub(crate) async fn converse_stream(
    State(shared): State<Arc<Shared>>,
    model: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _open = shared.hit(Route::BedrockConverseStream);
    match run(&shared, model, uri.path(), &headers, &body, true).await {
        Ok(r) => r,
        Err(f) => error(f),
    }
}

async fn run(
    shared: &Arc<Shared>,
    model: Result<Path<String>, PathRejection>,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    stream: bool,
) -> Result<Response, Failure> {
    let started = Instant::now();
    auth(shared, headers)?;
    let Path(model_id) = model.map_err(|e| Failure::new(400, format!("invalid model id in path: {e}")))?;
    let req: ConverseRequest = serde_json::from_slice(body).map_err(Failure::body)?;
    let (_, spec) = split_model(&model_id);
    let d = behave::resolve(shared, spec, headers)?;
    if d.record {
        shared.recorder.record(path, headers, body);
    }
    if req.messages.is_empty() {
        return Err(Failure::new(400, "A conversation must start with a user message. Try again with a conversation that starts with a user message."));
    }
    let prompt = words(req.system.as_str()) + req.messages.iter().map(|m| words(m.content.as_str())).sum::<u64>();
    let last_user = req.messages.iter().rev().find(|m| m.role == "user").map_or("", |m| m.content.as_str());
    let max_tokens = req.inference_config.and_then(|c| c.max_tokens);
    let last = req.messages.last();
    let prefill = last.filter(|m| m.role == "assistant").map_or("", |m| m.content.as_str());
    let reply = Reply::new(last_user, prompt, max_tokens).continued(prefill);
    let d = behave(shared, d).await?;
    behave::check_prefill(&d, last.map(|m| m.role.as_ref()))?;
    if let Some(name) = &d.fixture {
        return if stream { fixture::event_stream(shared, name) } else { fixture::unary("bedrock", name) };
    }

    let stop_reason = if reply.truncated { "max_tokens" } else { "end_turn" };
    let usage = Usage {
        input_tokens: reply.prompt_tokens,
        output_tokens: reply.completion_tokens,
        total_tokens: reply.prompt_tokens + reply.completion_tokens,
    };
    let metrics = Metrics { latency_ms: started.elapsed().as_millis() as u64 };
    if !stream {
        let r = ConverseResponse {
            output: Output { message: OutMessage { role: "assistant", content: [TextBlock { text: &reply.text }] } },
            stop_reason,
            usage,
            metrics,
        };
        return Ok(json(200, &r));
    }

    let pieces = text::split_chunks(&reply.text, d.chunks);
    let (sent, end) = ending(&d, pieces.len());
    let mut frames: Frames = Vec::with_capacity(sent + 4);
    frames.push((false, event("messageStart", &MessageStart { role: "assistant" })));
    for piece in pieces.iter().take(sent) {
        let delta = BlockDelta { content_block_index: 0, delta: TextBlock { text: piece } };
        frames.push((true, event("contentBlockDelta", &delta)));
    }
    match end {
        Ending::Normal => {
            frames.push((false, event("contentBlockStop", &BlockStop { content_block_index: 0 })));
            frames.push((false, event("messageStop", &MessageStop { stop_reason })));
            if d.terminator {
                frames.push((false, event("metadata", &Metadata { usage, metrics })));
            }
        }
        Ending::Truncated | Ending::Stall => {}
        // A frame whose prelude checksum is wrong.
        Ending::Invalid => {
            frames.push((false, Bytes::from_static(&[0, 0, 0, 16, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4])))
        }
        Ending::Error => {
            let status = d.stream_error_status();
            let name = error_type(status);
            // Exception frames name the exception in lowerCamelCase.
            let exception = match name {
                "ThrottlingException" => "throttlingException",
                "ServiceUnavailableException" => "serviceUnavailableException",
                "ValidationException" => "validationException",
                "ModelTimeoutException" => "modelTimeoutException",
                "ModelErrorException" => "modelStreamErrorException",
                _ => "internalServerException",
            };
            let message = format!("mock: injected in-stream error ({status})");
            frames.push((false, exception_frame(exception, &message)));
        }
    }
    let body = FrameBody::new(shared.clone(), frames, Duration::from_millis(d.chunk_delay_ms))
        .first_delay(Duration::from_millis(d.first_chunk_delay_ms))
        .stall(end == Ending::Stall);
    Ok(respond(200, "application/vnd.amazon.eventstream", Body::from_stream(body)))
}

#[derive(Serialize)]
struct MessageStart {
    role: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BlockDelta<'a> {
    content_block_index: u32,
    delta: TextBlock<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BlockStop {
    content_block_index: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageStop {
    stop_reason: &'static str,
}

#[derive(Serialize)]
struct Metadata {
    usage: Usage,
    metrics: Metrics,
}

fn string(s: &'static str) -> HeaderValue {
    HeaderValue::String(s.into())
}

/// Encodes one event-stream message (prelude, headers, payload, CRCs).
fn encode(frame: &Frame) -> Bytes {
    let mut out = Vec::with_capacity(frame.payload().len() + 128);
    // Only fails for names/payloads beyond the format's limits, which ours never reach.
    if write_message_to(frame, &mut out).is_err() {
        out.clear();
    }
    Bytes::from(out)
}

/// An `event` frame with a JSON payload.
fn event<T: Serialize>(event_type: &'static str, payload: &T) -> Bytes {
    let payload = serde_json::to_vec(payload).unwrap_or_default();
    let frame = Frame::new(payload)
        .add_header(Header::new(":event-type", string(event_type)))
        .add_header(Header::new(":content-type", string("application/json")))
        .add_header(Header::new(":message-type", string("event")));
    encode(&frame)
}

/// An `exception` frame, as Bedrock sends for errors after the stream started.
fn exception_frame(exception_type: &'static str, message: &str) -> Bytes {
    let payload = serde_json::to_vec(&ErrorBody { message }).unwrap_or_default();
    let frame = Frame::new(payload)
        .add_header(Header::new(":exception-type", string(exception_type)))
        .add_header(Header::new(":content-type", string("application/json")))
        .add_header(Header::new(":message-type", string("exception")));
    encode(&frame)
}
