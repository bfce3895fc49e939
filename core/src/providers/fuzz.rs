//! Property-based fuzzing of the parsers of untrusted upstream bytes
//! (docs/architecture.md §13): the SSE parser, the OpenAI / Anthropic / Bedrock stream
//! decoders and `Retry-After`.
//!
//! Every property runs a fixed number of cases from a fixed seed, so a run
//! is deterministic (set `PROPTEST_RNG_SEED` for another seed and
//! `PROPTEST_CASES` for a longer run, e.g. `PROPTEST_CASES=20000`). Failures
//! are not persisted to files: a minimized failure is checked in below as a
//! plain `#[test]` at the end.
//!
//! The properties:
//! - SSE: pushing a body in any pieces yields the events of a one-shot
//!   parse; `buffered()` is exactly the bytes after the last separator;
//!   well-formed events come back unchanged; nothing panics.
//! - Decoders: arbitrary bytes, random JSON and schema-shaped events, in
//!   any pieces: no panic, every error is PROTOCOL or PROVIDER, and the
//!   items (chunks, `Done`, the first error) do not depend on the split.
//! - Bedrock: frames built with `aws-smithy-eventstream`'s encoder (random
//!   headers and payloads) and corrupted copies decode the same in any
//!   pieces; well-formed ConverseStream events reassemble their text.
//! - `parse_retry_after`: never panics; numbers and dates mean what they say.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message as EsMessage};
use aws_smithy_types::str_bytes::StrBytes;
use aws_smithy_types::DateTime;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{RngSeed, TestCaseError};
use serde_json::{json, Map, Value};

use super::anthropic::AnthropicDecoder;
use super::bedrock::BedrockDecoder;
use super::http::{parse_retry_after, SseEvent, SseParser, StreamDecoder, StreamItem};
use super::openai::OpenAiDecoder;
use crate::error::{Error, ErrorKind};
use crate::types::Chunk;

/// `cases` cases from a fixed seed, no failure files (see the module doc).
fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::with_cases(cases);
    if let Some(n) = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()) {
        c.cases = n;
    }
    c.failure_persistence = None;
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        c.rng_seed = RngSeed::Fixed(0x00bf_0057_f022);
    }
    c
}

/// `data` cut at `cuts` (empty pieces included: an empty read is legal).
fn pieces<'a>(data: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
    at.sort_unstable();
    let mut out = Vec::with_capacity(at.len() + 1);
    let mut prev = 0;
    for a in at {
        out.push(&data[prev..a]);
        prev = a;
    }
    out.push(&data[prev..]);
    out
}

fn cuts() -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 0..12)
}

/// Bytes rich in what matters to SSE: line ends, colons, field names,
/// NULs and invalid UTF-8.
fn sse_noise() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        3 => any::<u8>().prop_map(|b| vec![b]),
        2 => prop::sample::select(vec![
            &b"\n"[..], b"\r", b"\r\n", b"\n\n", b"\r\n\r\n", b"\r\r", b":", b" ", b"data:", b"data: ",
            b"event:", b"event: ", b"id: 1", b"retry: 5", b"\0", b"\xff", b"\xe2\x82", b"\xac", b"[DONE]", b"{}",
            b"x",
        ])
        .prop_map(|s| s.to_vec()),
    ];
    prop::collection::vec(token, 0..64).prop_map(|v| v.concat())
}

fn sse_all(p: &mut SseParser, out: &mut Vec<SseEvent>) {
    while let Some(e) = p.next_event() {
        out.push(e);
    }
}

/// How many leading bytes of `b` a parser has consumed once it has seen
/// `b` whole: up to the end of the line end of the last empty line (a
/// plain scan, written independently of the parser, as a reference).
fn consumed(b: &[u8]) -> usize {
    // Lines end in CRLF, LF or CR; an empty line ends an event.
    let (mut j, mut line_start, mut end) = (0, 0, 0);
    while j < b.len() {
        if b[j] == b'\n' || b[j] == b'\r' {
            let term = if b[j] == b'\r' && b.get(j + 1) == Some(&b'\n') { 2 } else { 1 };
            if j == line_start {
                end = j + term;
            }
            j += term;
            line_start = j;
        } else {
            j += 1;
        }
    }
    end
}

/// One generated well-formed event (or a block without fields, which
/// yields nothing).
#[derive(Debug, Clone)]
struct GenEvent {
    /// `event:` values in order (the last one wins), each placed at a
    /// position among the data lines.
    events: Vec<(Index, String)>,
    data: Vec<String>,
    /// Comments and ignored fields, each at a position among the lines.
    noise: Vec<(Index, String)>,
    /// Write `data:v` rather than `data: v` where that means the same.
    tight: bool,
    crlf: bool,
}

impl GenEvent {
    fn lines(&self) -> Vec<String> {
        let field = |name: &str, v: &str| {
            if v.is_empty() && self.tight {
                name.to_string() // a field without colon has an empty value
            } else if self.tight && !v.starts_with(' ') {
                format!("{name}:{v}")
            } else {
                format!("{name}: {v}")
            }
        };
        // Data lines in order; event lines inserted among them, in order.
        let mut lines: Vec<String> = self.data.iter().map(|d| field("data", d)).collect();
        let mut lo = 0;
        for (i, e) in &self.events {
            let at = lo + i.index(lines.len() - lo + 1);
            lines.insert(at, field("event", e));
            lo = at + 1;
        }
        for (i, n) in &self.noise {
            let at = i.index(lines.len() + 1);
            lines.insert(at, n.clone());
        }
        lines
    }

    fn text(&self) -> String {
        let nl = if self.crlf { "\r\n" } else { "\n" };
        let mut s = String::new();
        for l in self.lines() {
            s.push_str(&l);
            s.push_str(nl);
        }
        s.push_str(nl);
        s
    }

    fn expected(&self) -> Option<SseEvent> {
        if self.events.is_empty() && self.data.is_empty() {
            return None;
        }
        Some(SseEvent { event: self.events.last().map(|(_, e)| e.clone()), data: self.data.join("\n") })
    }
}

fn field_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[^\r\n]{0,12}",
        "[ a-z{}\":,\\[\\]0-9]{0,16}",
        prop::sample::select(vec!["", " ", "  lead", "[DONE]", "{\"a\":1}", "a:b", "\u{0}", "é€"])
            .prop_map(str::to_string),
    ]
}

fn gen_event() -> impl Strategy<Value = GenEvent> {
    let noise = prop_oneof![
        "[^\r\n]{0,8}".prop_map(|c| format!(":{c}")),
        Just(":".to_string()),
        "[0-9a-z]{0,6}".prop_map(|v| format!("id: {v}")),
        "[0-9]{1,4}".prop_map(|v| format!("retry: {v}")),
        "[a-z]{1,6}".prop_map(|v| format!("x-{v}: ignored")),
    ];
    (
        prop::collection::vec((any::<Index>(), field_value()), 0..3),
        prop::collection::vec(field_value(), 0..5),
        prop::collection::vec((any::<Index>(), noise), 0..3),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(events, data, noise, tight, crlf)| GenEvent { events, data, noise, tight, crlf })
        // A block needs a line: a lone blank line is no separator.
        .prop_filter("empty block", |e| !(e.events.is_empty() && e.data.is_empty() && e.noise.is_empty()))
}

// ------------------------------------------------------------------ decoders

/// What a decoder produced, comparable across runs (`created` is the
/// decoder's clock, not part of the stream).
#[derive(Debug, PartialEq)]
enum Item {
    Chunk(Chunk),
    Done,
    Err(Error),
}

#[derive(Debug, PartialEq)]
struct Run {
    items: Vec<Item>,
    /// `complete_at_eof` after the last push.
    complete: bool,
    /// `buffered` after the last push, unless the stream had ended.
    buffered: Option<usize>,
}

fn check_kind(e: &Error) -> Result<(), TestCaseError> {
    prop_assert!(
        matches!(e.kind(), ErrorKind::Protocol | ErrorKind::Provider),
        "decoder error of kind {} (must be PROTOCOL or PROVIDER): {e}",
        e.kind()
    );
    Ok(())
}

/// Feeds `parts` as `StreamReader::pump` does: push, then take items until
/// "need more"; the first `Done` or error ends the stream. Afterwards the
/// rest is pushed anyway and items taken (results ignored but for their
/// kind): a decoder must not panic even when used past its end.
fn run<D: StreamDecoder>(mut d: D, parts: &[&[u8]]) -> Result<Run, TestCaseError> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut items = Vec::new();
    let mut ended_at = None;
    'outer: for (k, p) in parts.iter().enumerate() {
        d.push(p);
        loop {
            prop_assert!(items.len() <= total + 1, "decoder yields items without consuming bytes");
            match d.next_item() {
                Ok(None) => break,
                Ok(Some(StreamItem::Chunk(mut c))) => {
                    c.created = 0;
                    items.push(Item::Chunk(c));
                }
                Ok(Some(StreamItem::Done)) => {
                    items.push(Item::Done);
                    ended_at = Some(k);
                    break 'outer;
                }
                Err(e) => {
                    check_kind(&e)?;
                    items.push(Item::Err(e));
                    ended_at = Some(k);
                    break 'outer;
                }
            }
        }
    }
    let out = Run {
        items,
        complete: d.complete_at_eof(),
        buffered: if ended_at.is_none() { Some(d.buffered()) } else { None },
    };
    if let Some(k) = ended_at {
        let mut calls = 0;
        for p in &parts[k + 1..] {
            d.push(p);
            while calls < 10_000 {
                calls += 1;
                match d.next_item() {
                    Ok(None) => break,
                    Ok(Some(_)) => {}
                    Err(e) => check_kind(&e)?,
                }
            }
        }
    }
    Ok(out)
}

/// The decoder's items are the same whether `data` comes in one piece or
/// cut at `cuts`, or one byte at a time.
fn split_invariant<D: StreamDecoder>(make: impl Fn() -> D, data: &[u8], cuts: &[Index]) -> Result<(), TestCaseError> {
    let whole = run(make(), &[data])?;
    let split = run(make(), &pieces(data, cuts))?;
    prop_assert_eq!(&whole, &split, "one push vs pieces differ");
    if data.len() <= 512 {
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        let bytewise = run(make(), &bytes)?;
        prop_assert_eq!(&whole, &bytewise, "one push vs byte by byte differ");
    }
    Ok(())
}

fn openai() -> OpenAiDecoder {
    OpenAiDecoder::new("openai", true)
}

fn anthropic() -> AnthropicDecoder {
    AnthropicDecoder::new("anthropic", "claude")
}

fn bedrock() -> BedrockDecoder {
    BedrockDecoder::new("bedrock", "m", "bedrock-1".into())
}

/// A token count: small, near the u32/u64 limits, negative, fractional or
/// not a number at all.
fn count() -> BoxedStrategy<Value> {
    let big = prop_oneof![Just(json!(u64::MAX)), Just(json!(u64::MAX - 1)), any::<u64>().prop_map(|n| json!(n))];
    prop_oneof![
        80 => (0u64..100).prop_map(|n| json!(n)),
        2 => big,
        1 => Just(json!(u32::MAX)),
        1 => Just(json!(u64::from(u32::MAX) + 1)),
        1 => any::<i64>().prop_map(|n| json!(n)),
        1 => any::<f64>().prop_map(|f| json!(f)),
        1 => Just(json!(1e300)),
        1 => Just(json!("12")),
        1 => Just(Value::Null),
    ]
    .boxed()
}

/// Words the decoders look for, and some they do not.
const VOCAB: &[&str] = &[
    "id",
    "object",
    "created",
    "model",
    "choices",
    "index",
    "delta",
    "role",
    "content",
    "tool_calls",
    "function",
    "arguments",
    "name",
    "finish_reason",
    "usage",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "error",
    "message",
    "type",
    "text",
    "message_start",
    "content_block_start",
    "content_block",
    "content_block_delta",
    "text_delta",
    "input_json_delta",
    "partial_json",
    "message_delta",
    "stop_reason",
    "message_stop",
    "input_tokens",
    "output_tokens",
    "ping",
    "tool_use",
    "overloaded_error",
    "[DONE]",
    "stop",
    "assistant",
    "chat.completion.chunk",
    "",
    "\u{0}",
    "é",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![4 => prop::sample::select(VOCAB).prop_map(str::to_string), 1 => "[^\r\n]{0,8}"]
}

/// A random JSON value built from the decoders' vocabulary.
fn json_ish() -> impl Strategy<Value = Value> {
    let leaf =
        prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::Bool), count(), word().prop_map(Value::String),];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((word(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// `v` or, sometimes, something of another type in its place.
fn or_junk(v: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
    prop_oneof![100 => v, 1 => json_ish()]
}

fn maybe(key: &'static str, v: impl Strategy<Value = Value>) -> impl Strategy<Value = Option<(String, Value)>> {
    prop::option::weighted(0.7, or_junk(v).prop_map(move |v| (key.to_string(), v)))
}

fn object(fields: Vec<BoxedStrategy<Option<(String, Value)>>>) -> BoxedStrategy<Value> {
    fields.prop_map(|kv| Value::Object(kv.into_iter().flatten().collect::<Map<_, _>>())).boxed()
}

fn text() -> impl Strategy<Value = Value> {
    prop_oneof![word(), "[^\"]{0,10}"].prop_map(Value::String)
}

/// A chat.completion.chunk (or an in-stream error) with random fields.
fn openai_event() -> impl Strategy<Value = Value> {
    let delta = object(vec![
        maybe("role", prop::sample::select(vec!["assistant", "user", "x"]).prop_map(|s| json!(s))).boxed(),
        maybe("content", text()).boxed(),
        maybe("tool_calls", json_ish()).boxed(),
    ]);
    let choice = object(vec![
        maybe("index", count()).boxed(),
        maybe("delta", delta).boxed(),
        maybe("finish_reason", prop_oneof![Just(Value::Null), text()]).boxed(),
    ]);
    let usage = object(vec![
        maybe("prompt_tokens", count()).boxed(),
        maybe("completion_tokens", count()).boxed(),
        maybe("total_tokens", count()).boxed(),
    ]);
    let chunk = object(vec![
        maybe("id", text()).boxed(),
        maybe("object", Just(json!("chat.completion.chunk"))).boxed(),
        maybe("created", count()).boxed(),
        maybe("model", text()).boxed(),
        maybe("choices", prop::collection::vec(choice, 0..3).prop_map(Value::Array)).boxed(),
        maybe("usage", usage).boxed(),
    ]);
    let error = prop_oneof![object(vec![maybe("message", text()).boxed(), maybe("type", text()).boxed()]), text(),]
        .prop_map(|e| json!({ "error": e }));
    prop_oneof![30 => chunk, 1 => error, 1 => json_ish()]
}

/// An Anthropic stream event of a random type with random fields.
fn anthropic_event() -> impl Strategy<Value = Value> {
    let usage = object(vec![
        maybe("input_tokens", count()).boxed(),
        maybe("output_tokens", count()).boxed(),
        maybe("cache_read_input_tokens", count()).boxed(),
        maybe("cache_creation_input_tokens", count()).boxed(),
        maybe("server_tool_use", json_ish()).boxed(),
    ]);
    let message = object(vec![
        maybe("id", text()).boxed(),
        maybe("model", text()).boxed(),
        maybe("usage", usage.clone()).boxed(),
    ]);
    let block = object(vec![
        maybe(
            "type",
            prop::sample::select(vec!["tool_use", "text", "thinking", "redacted_thinking", "server_tool_use"])
                .prop_map(|s| json!(s)),
        )
        .boxed(),
        maybe("id", text()).boxed(),
        maybe("name", text()).boxed(),
        maybe("text", text()).boxed(),
        maybe("data", text()).boxed(),
    ]);
    let delta = object(vec![
        maybe(
            "type",
            prop::sample::select(vec![
                "text_delta",
                "input_json_delta",
                "thinking_delta",
                "signature_delta",
                "citations_delta",
            ])
            .prop_map(|s| json!(s)),
        )
        .boxed(),
        maybe("text", text()).boxed(),
        maybe("thinking", text()).boxed(),
        maybe("signature", text()).boxed(),
        maybe("partial_json", text()).boxed(),
        maybe("stop_reason", text()).boxed(),
    ]);
    let error = object(vec![
        maybe(
            "type",
            prop::sample::select(vec!["overloaded_error", "rate_limit_error", "invalid_request_error", "api_error"])
                .prop_map(|s| json!(s)),
        )
        .boxed(),
        maybe("message", text()).boxed(),
    ]);
    let kind = prop::sample::select(vec![
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
        "unknown",
    ]);
    let event = (
        prop::option::weighted(0.9, kind.clone()),
        object(vec![
            maybe("message", message).boxed(),
            maybe("index", count()).boxed(),
            maybe("content_block", block).boxed(),
            maybe("delta", delta).boxed(),
            maybe("usage", usage).boxed(),
            maybe("error", error).boxed(),
        ]),
    )
        .prop_map(|(kind, mut v)| {
            if let (Some(k), Value::Object(m)) = (kind, &mut v) {
                m.insert("type".into(), json!(k));
            }
            v
        });
    prop_oneof![30 => event, 1 => json_ish()]
}

/// The char boundary at or before `i`.
fn char_floor(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// SSE framing of payloads: an optional `event:` line, the JSON on one or
/// two `data:` lines (split inside the text, or not JSON at all), a
/// separator of `\n\n` or `\r\n\r\n`; sometimes a comment or `[DONE]`.
fn sse_stream(payload: impl Strategy<Value = Value>) -> impl Strategy<Value = Vec<u8>> {
    let event = (prop::option::weighted(0.5, word()), payload, any::<Index>(), 0u8..20, any::<bool>()).prop_map(
        |(name, v, at, how, crlf)| {
            let nl = if crlf { "\r\n" } else { "\n" };
            let mut s = String::new();
            if let Some(n) = name {
                s.push_str(&format!("event: {n}{nl}"));
            }
            let text = v.to_string();
            match how {
                0 => {
                    // two data lines, cut inside the text
                    let i = char_floor(&text, at.index(text.len() + 1));
                    s.push_str(&format!("data: {}{nl}data: {}{nl}", &text[..i], &text[i..]));
                }
                1 => s.push_str(&format!("data: [DONE]{nl}")),
                2 => s.push_str(&format!(": keep-alive{nl}")),
                3 => s.push_str(&format!("data: {}{nl}", &text[..char_floor(&text, at.index(text.len() + 1))])),
                _ => s.push_str(&format!("data: {text}{nl}")),
            }
            s.push_str(nl);
            s.into_bytes()
        },
    );
    prop::collection::vec(event, 0..8).prop_map(|v| v.concat())
}

// ------------------------------------------------------------------- bedrock

fn header_value() -> impl Strategy<Value = HeaderValue> {
    prop_oneof![
        any::<bool>().prop_map(HeaderValue::Bool),
        any::<i8>().prop_map(HeaderValue::Byte),
        any::<i16>().prop_map(HeaderValue::Int16),
        any::<i32>().prop_map(HeaderValue::Int32),
        any::<i64>().prop_map(HeaderValue::Int64),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(|b| HeaderValue::ByteArray(b.into())),
        "[^\u{0}]{0,12}".prop_map(|s| HeaderValue::String(StrBytes::from(s))),
        (-(1i64 << 40)..(1i64 << 40)).prop_map(|ms| HeaderValue::Timestamp(DateTime::from_millis(ms))),
        any::<u128>().prop_map(HeaderValue::Uuid),
    ]
}

fn string_header(name: &'static str, values: Vec<&'static str>) -> impl Strategy<Value = Option<Header>> {
    prop::option::weighted(
        0.85,
        prop_oneof![
            8 => prop::sample::select(values).prop_map(|v| HeaderValue::String(StrBytes::from(v))),
            1 => header_value(),
        ]
        .prop_map(move |v| Header::new(name, v)),
    )
}

/// A ConverseStream-shaped payload with random fields.
fn bedrock_payload() -> impl Strategy<Value = Vec<u8>> {
    let usage = object(vec![
        maybe("inputTokens", count()).boxed(),
        maybe("outputTokens", count()).boxed(),
        maybe("totalTokens", count()).boxed(),
        maybe("cacheReadInputTokens", count()).boxed(),
        maybe("cacheWriteInputTokens", count()).boxed(),
    ]);
    let reasoning = object(vec![
        maybe("text", text()).boxed(),
        maybe("signature", text()).boxed(),
        maybe("redactedContent", text()).boxed(),
    ]);
    let delta = object(vec![
        maybe("text", text()).boxed(),
        maybe("toolUse", object(vec![maybe("input", text()).boxed()])).boxed(),
        maybe("reasoningContent", reasoning).boxed(),
    ]);
    let start =
        object(vec![
            maybe("toolUse", object(vec![maybe("toolUseId", text()).boxed(), maybe("name", text()).boxed()])).boxed()
        ]);
    let json = object(vec![
        maybe("delta", delta).boxed(),
        maybe("start", start).boxed(),
        maybe("stopReason", text()).boxed(),
        maybe("usage", usage).boxed(),
        maybe("message", text()).boxed(),
        maybe("contentBlockIndex", count()).boxed(),
    ]);
    prop_oneof![
        6 => json.prop_map(|v| v.to_string().into_bytes()),
        1 => json_ish().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..32),
    ]
}

/// One event-stream frame, encoded by `aws-smithy-eventstream`.
fn bedrock_frame() -> impl Strategy<Value = Vec<u8>> {
    let headers = (
        string_header(
            ":message-type",
            vec!["event", "event", "event", "event", "event", "event", "exception", "error", "other"],
        ),
        string_header(
            ":event-type",
            vec![
                "messageStart",
                "contentBlockStart",
                "contentBlockDelta",
                "contentBlockStop",
                "messageStop",
                "metadata",
                "x",
            ],
        ),
        string_header(
            ":exception-type",
            vec![
                "throttlingException",
                "validationException",
                "serviceUnavailableException",
                "modelStreamErrorException",
                "x",
            ],
        ),
        string_header(":error-code", vec!["InternalFailure", "x"]),
        string_header(":content-type", vec!["application/json"]),
        prop::collection::vec(("[a-z:-]{1,12}", header_value()), 0..3),
        any::<Index>(),
    );
    (headers, bedrock_payload()).prop_map(|((mt, et, ex, ec, ct, extra, at), payload)| {
        let mut hs: Vec<Header> = [mt, et, ex, ec, ct].into_iter().flatten().collect();
        for (n, v) in extra {
            let i = at.index(hs.len() + 1);
            hs.insert(i, Header::new(n, v));
        }
        let msg = EsMessage::new_from_parts(hs, payload);
        let mut out = Vec::new();
        write_message_to(&msg, &mut out).expect("generated frames are encodable");
        out
    })
}

/// Frames, then maybe a corruption: flipped bits, a cut, inserted or
/// removed bytes.
fn bedrock_stream() -> impl Strategy<Value = Vec<u8>> {
    let corruption = prop_oneof![
        12 => Just(None),
        1 => (any::<Index>(), 1u8..=255).prop_map(|(i, x)| Some((0u8, i, x))),
        1 => any::<Index>().prop_map(|i| Some((1, i, 0))),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, x)| Some((2, i, x))),
        1 => any::<Index>().prop_map(|i| Some((3, i, 0))),
    ];
    (prop::collection::vec(bedrock_frame(), 0..6), prop::collection::vec(corruption, 1..3)).prop_map(
        |(frames, corruptions)| {
            let mut b = frames.concat();
            for c in corruptions.into_iter().flatten() {
                match c {
                    (0, i, x) if !b.is_empty() => {
                        let i = i.index(b.len());
                        b[i] ^= x;
                    }
                    (1, i, _) => b.truncate(i.index(b.len() + 1)),
                    (2, i, x) => b.insert(i.index(b.len() + 1), x),
                    (3, i, _) if !b.is_empty() => {
                        b.remove(i.index(b.len()));
                    }
                    _ => {}
                }
            }
            b
        },
    )
}

fn es_frame(event_type: &'static str, payload: Value) -> Vec<u8> {
    let msg = EsMessage::new_from_parts(
        vec![
            Header::new(":message-type", HeaderValue::String("event".into())),
            Header::new(":event-type", HeaderValue::String(event_type.into())),
            Header::new(":content-type", HeaderValue::String("application/json".into())),
        ],
        payload.to_string().into_bytes(),
    );
    let mut out = Vec::new();
    write_message_to(&msg, &mut out).unwrap();
    out
}

// --------------------------------------------------------------- retry-after

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// An IMF-fixdate with every field in range, and its Unix time.
fn valid_http_date() -> impl Strategy<Value = (String, u64)> {
    (1970i64..=9999, 0usize..12, 1u64..=28, 0u64..24, 0u64..60, 0u64..60, 0usize..7).prop_map(
        |(y, m, d, h, mi, s, wd)| {
            let text = format!("{}, {d:02} {} {y} {h:02}:{mi:02}:{s:02} GMT", WEEKDAYS[wd], MONTHS[m]);
            // Days from civil, computed independently of the parser (by
            // counting days per month).
            let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let mut days: i64 = (1970..y).map(|yy| if leap(yy) { 366 } else { 365 }).sum();
            let lens = [31, if leap(y) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
            days += lens[..m].iter().sum::<i64>() + d as i64 - 1;
            (text, days as u64 * 86_400 + h * 3_600 + mi * 60 + s)
        },
    )
}

/// Date-shaped strings with fields anywhere in their type's range.
fn wild_http_date() -> impl Strategy<Value = String> {
    let num = |small: std::ops::RangeInclusive<u64>| -> BoxedStrategy<String> {
        prop_oneof![(small).prop_map(|n| n.to_string()), any::<u64>().prop_map(|n| n.to_string())].boxed()
    };
    let year = prop_oneof![(0i64..=99_999).prop_map(|n| n.to_string()), any::<i64>().prop_map(|n| n.to_string())];
    (
        prop::sample::select(WEEKDAYS.to_vec()),
        num(1..=99),
        prop_oneof![prop::sample::select(MONTHS.to_vec()).prop_map(str::to_string), "[A-Za-z]{0,4}"],
        year,
        num(0..=999),
        num(0..=999),
        num(0..=999),
        prop::sample::select(vec!["GMT", "UTC", "gmt", ""]),
    )
        .prop_map(|(wd, d, m, y, h, mi, s, tz)| format!("{wd}, {d} {m} {y} {h}:{mi}:{s} {tz}"))
}

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

proptest! {
    #![proptest_config(config(256))]

    // ------------------------------------------------------------- SSE

    #[test]
    fn sse_split_invariance_and_buffered(data in sse_noise(), cuts in cuts()) {
        let mut whole = SseParser::default();
        whole.push(&data);
        let mut expected = Vec::new();
        sse_all(&mut whole, &mut expected);
        prop_assert_eq!(whole.buffered(), data.len() - consumed(&data));

        let mut split = SseParser::default();
        let mut got = Vec::new();
        let mut seen = 0;
        for p in pieces(&data, &cuts) {
            split.push(p);
            seen += p.len();
            sse_all(&mut split, &mut got);
            prop_assert_eq!(split.buffered(), seen - consumed(&data[..seen]), "after {} bytes", seen);
        }
        prop_assert_eq!(&got, &expected);

        let mut bytewise = SseParser::default();
        let mut got = Vec::new();
        for b in &data {
            bytewise.push(std::slice::from_ref(b));
            sse_all(&mut bytewise, &mut got);
        }
        prop_assert_eq!(&got, &expected);
        prop_assert_eq!(bytewise.buffered(), whole.buffered());
    }

    #[test]
    fn sse_arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256), cuts in cuts()) {
        let mut p = SseParser::default();
        let mut events = Vec::new();
        let mut seen = 0;
        for piece in pieces(&data, &cuts) {
            p.push(piece);
            seen += piece.len();
            sse_all(&mut p, &mut events);
            prop_assert_eq!(p.buffered(), seen - consumed(&data[..seen]));
        }
    }

    #[test]
    fn sse_well_formed_events_round_trip(events in prop::collection::vec(gen_event(), 0..8), cuts in cuts()) {
        let text: String = events.iter().map(GenEvent::text).collect();
        let expected: Vec<SseEvent> = events.iter().filter_map(GenEvent::expected).collect();
        let mut p = SseParser::default();
        let mut got = Vec::new();
        for piece in pieces(text.as_bytes(), &cuts) {
            p.push(piece);
            sse_all(&mut p, &mut got);
        }
        prop_assert_eq!(got, expected, "text: {:?}", text);
        prop_assert_eq!(p.buffered(), 0);
    }

    // -------------------------------------------------------- decoders

    #[test]
    fn openai_arbitrary_bytes(data in sse_noise(), cuts in cuts()) {
        split_invariant(openai, &data, &cuts)?;
    }

    #[test]
    fn openai_random_json_events(data in sse_stream(json_ish()), cuts in cuts()) {
        split_invariant(openai, &data, &cuts)?;
    }

    #[test]
    fn openai_chunk_shaped_events(data in sse_stream(openai_event()), cuts in cuts()) {
        split_invariant(openai, &data, &cuts)?;
        split_invariant(|| OpenAiDecoder::new("openai", false), &data, &cuts)?;
    }

    #[test]
    fn anthropic_arbitrary_bytes(data in sse_noise(), cuts in cuts()) {
        split_invariant(anthropic, &data, &cuts)?;
    }

    #[test]
    fn anthropic_random_json_events(data in sse_stream(json_ish()), cuts in cuts()) {
        split_invariant(anthropic, &data, &cuts)?;
    }

    #[test]
    fn anthropic_shaped_events(data in sse_stream(anthropic_event()), cuts in cuts()) {
        split_invariant(anthropic, &data, &cuts)?;
    }

    #[test]
    fn bedrock_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..128), cuts in cuts()) {
        split_invariant(bedrock, &data, &cuts)?;
    }

    #[test]
    fn bedrock_frames_and_corruptions(data in bedrock_stream(), cuts in cuts()) {
        split_invariant(bedrock, &data, &cuts)?;
    }

    #[test]
    fn bedrock_well_formed_stream_reassembles(
        texts in prop::collection::vec("[^\u{0}]{0,12}", 0..6),
        stop in prop::sample::select(vec!["end_turn", "max_tokens", "tool_use", "weird"]),
        tokens in (0u64..1_000_000, 0u64..1_000_000),
        cuts in cuts(),
    ) {
        let mut data = es_frame("messageStart", json!({"role": "assistant"}));
        for t in &texts {
            data.extend(es_frame("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": t}})));
        }
        data.extend(es_frame("contentBlockStop", json!({"contentBlockIndex": 0})));
        data.extend(es_frame("messageStop", json!({"stopReason": stop})));
        data.extend(es_frame("metadata", json!({"usage": {"inputTokens": tokens.0, "outputTokens": tokens.1}})));
        split_invariant(bedrock, &data, &cuts)?;
        let r = run(bedrock(), &pieces(&data, &cuts))?;
        let mut text = String::new();
        let mut finish = None;
        let mut usage = None;
        for it in &r.items[..r.items.len() - 1] {
            let Item::Chunk(c) = it else { return Err(TestCaseError::fail(format!("not a chunk: {it:?}"))) };
            if let Some(ch) = c.choices.first() {
                text.push_str(ch.delta.content.as_deref().unwrap_or(""));
                finish = finish.or(ch.finish_reason.clone());
            }
            usage = usage.or(c.usage.clone());
        }
        prop_assert_eq!(r.items.last(), Some(&Item::Done));
        prop_assert_eq!(r.items.len(), texts.len() + 4);
        prop_assert_eq!(text, texts.concat());
        prop_assert_eq!(finish, Some(super::bedrock::finish_reason(stop)));
        let u = usage.unwrap();
        prop_assert_eq!((u.prompt_tokens, u.completion_tokens, u.total_tokens), (tokens.0, tokens.1, tokens.0 + tokens.1));
    }

    // ----------------------------------------------------- Retry-After

    #[test]
    fn retry_after_arbitrary_strings(s in any::<String>(), t in "[0-9 .:,A-Za-z+-]{0,40}") {
        let _ = parse_retry_after(&s);
        let _ = parse_retry_after(&t);
    }

    #[test]
    fn retry_after_numbers(f in any::<f64>()) {
        for text in [f.to_string(), format!("{f:e}"), format!("  {f}\t")] {
            let got = parse_retry_after(&text);
            if f.is_finite() && f >= 0.0 {
                let ms = f * 1000.0;
                let want = if ms >= u64::MAX as f64 { u64::MAX } else { ms as u64 };
                prop_assert_eq!(got, Some(want), "{}", text);
            } else {
                prop_assert_eq!(got, None, "{}", text);
            }
        }
    }

    #[test]
    fn retry_after_valid_dates((text, at) in valid_http_date()) {
        let before = now_s();
        let got = parse_retry_after(&text);
        let after = now_s();
        let lo = at.saturating_sub(after) * 1000;
        let hi = at.saturating_sub(before) * 1000;
        prop_assert!(got.is_some_and(|ms| (lo..=hi).contains(&ms)), "{text}: {got:?}, want {lo}..={hi}");
    }

    #[test]
    fn retry_after_wild_dates(text in wild_http_date()) {
        let _ = parse_retry_after(&text);
    }
}

// ------------------------------------------- minimized failures (open bugs)

/// Drains `d`, expecting no panic; returns the items.
fn drain<D: StreamDecoder>(d: &mut D) -> Vec<Result<StreamItem, Error>> {
    let mut out = Vec::new();
    loop {
        match d.next_item() {
            Ok(None) => return out,
            Ok(Some(StreamItem::Done)) => {
                out.push(Ok(StreamItem::Done));
                return out;
            }
            Err(e) => {
                out.push(Err(e));
                return out;
            }
            Ok(Some(c)) => out.push(Ok(c)),
        }
    }
}

/// A usage total that does not fit u64 must saturate or be PROTOCOL.
fn assert_total_saturates_or_protocol(item: Option<&Result<StreamItem, Error>>) {
    match item {
        Some(Ok(StreamItem::Chunk(c))) => assert_eq!(c.usage.as_ref().map(|u| u.total_tokens), Some(u64::MAX)),
        Some(Err(e)) => assert_eq!(e.kind(), ErrorKind::Protocol, "{e}"),
        other => panic!("expected the usage chunk, got {other:?}"),
    }
}

#[test]
fn regression_anthropic_stream_usage_total_saturates() {
    // anthropic.rs, `message_delta`: `total_tokens: self.prompt_tokens + out`.
    let mut d = anthropic();
    d.push(
        b"data: {\"message\":{\"usage\":{\"input_tokens\":1}},\"type\":\"message_start\"}\n\n\
data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":18446744073709551615}}\n\n",
    );
    let items = drain(&mut d);
    assert_total_saturates_or_protocol(items.get(1));
}

#[test]
fn regression_anthropic_unary_usage_total_saturates() {
    // anthropic.rs, `response_from`: `total_tokens: prompt + completion`.
    let v = json!({"content": [], "usage": {"input_tokens": u64::MAX, "output_tokens": 1}});
    match super::anthropic::response_from(&v, "m") {
        Ok(r) => assert_eq!(r.usage.total_tokens, u64::MAX),
        Err(e) => assert_eq!(e.kind(), ErrorKind::Protocol, "{e}"),
    }
}

#[test]
fn regression_bedrock_usage_total_saturates() {
    // bedrock.rs, `usage_from`: `unwrap_or(i + o)` (stream `metadata` and
    // unary `response_from` alike).
    let mut data = es_frame("messageStop", json!({}));
    data.extend(es_frame("metadata", json!({"usage": {"inputTokens": u64::MAX, "outputTokens": 1}})));
    let mut d = bedrock();
    d.push(&data);
    let items = drain(&mut d);
    assert_total_saturates_or_protocol(items.get(1));
    let v = json!({"output": {"message": {"content": []}}, "usage": {"inputTokens": u64::MAX, "outputTokens": 1}});
    let r = super::bedrock::response_from(&v, "m", "id".into()).unwrap();
    assert_eq!(r.usage.total_tokens, u64::MAX);
}

/// Each of these panics in a debug build (arithmetic overflow in
/// `httpdate` / `parse_retry_after`) and yields a wrapped, meaningless
/// `retry_after_ms` in a release build. A hostile upstream controls the
/// header. None of them is a date that can be waited for: `None` (or a
/// saturated value for the far future) is the answer.
#[test]
fn regression_retry_after_out_of_range_dates_do_not_panic() {
    let mut panicked = Vec::new();
    for (text, site) in [
        ("Sun, 00 Mar 2024 00:00:00 GMT", "httpdate: `day - 1` with day 0 in March (doy underflow)"),
        ("Mon, 18446744073709551615 Jan 1970 00:00:00 GMT", "httpdate: `+ day` (doy overflow)"),
        ("Mon, 01 Jan 1970 5124095576030432:00:00 GMT", "httpdate: `hms[0] * 3_600`"),
        ("Mon, 02 Jan 1970 0:0:18446744073709551615 GMT", "httpdate: `+ hms[2]`"),
        ("Mon, 01 Jan 9223372036854775807 00:00:00 GMT", "httpdate: `era * 146_097`"),
        ("Mon, 01 Jan -9223372036854775808 00:00:00 GMT", "httpdate: `year - 1`"),
        ("Mon, 01 Jan 999999999 00:00:00 GMT", "parse_retry_after: `(at - now) * 1000`"),
    ] {
        if std::panic::catch_unwind(|| parse_retry_after(text)).is_err() {
            panicked.push(format!("{text:?} ({site})"));
        }
    }
    assert!(panicked.is_empty(), "parse_retry_after panicked on:\n{}", panicked.join("\n"));
}

/// SSE allows CRLF, LF and CR line ends, mixed (WHATWG HTML §9.2.5); the
/// parser only knows `\n\n` and `\r\n\r\n` as the blank line.
#[test]
fn regression_sse_mixed_and_cr_line_ends() {
    let parse = |b: &[u8]| {
        let mut p = SseParser::default();
        p.push(b);
        let mut v = Vec::new();
        sse_all(&mut p, &mut v);
        v.into_iter().map(|e| e.data).collect::<Vec<_>>()
    };
    let wrong: Vec<String> = [
        // Gives ["a\r", "b"]: the \r of the CRLF stays in the data.
        &b"data: a\r\n\ndata: b\n\n"[..],
        // Gives ["a\nb"]: `\n\r\n` is not seen as a blank line, two events merge.
        b"data: a\n\r\ndata: b\n\n",
        // Gives []: CR-only streams never dispatch (until max_event_bytes).
        b"data: a\r\rdata: b\r\r",
    ]
    .into_iter()
    .map(|b| (String::from_utf8_lossy(b).into_owned(), parse(b)))
    .filter(|(_, got)| got != &["a", "b"])
    .map(|(text, got)| format!("{text:?} gave {got:?}"))
    .collect();
    assert!(wrong.is_empty(), "want [\"a\", \"b\"] from each:\n{}", wrong.join("\n"));
}

/// A restart marker as `pool::recover` writes it, or a malformed one.
fn marker_event() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => count().prop_map(|n| json!({"id": "", "object": "chat.completion.chunk", "choices": [],
            "extra_fields": {"restart": {"attempt": n, "provider": "p", "model": "m", "reason": "cut"}}})),
        1 => json_ish().prop_map(|v| json!({"choices": [], "extra_fields": v})),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// The stream accumulator (every binding's `collect()` / `Accumulator`)
    /// takes any JSON without panicking, and what it keeps of choice 0 is
    /// exactly the content that came after the last restart marker.
    #[test]
    fn accumulating_any_chunks_keeps_the_text_after_the_last_marker(
        events in prop::collection::vec(prop_oneof![6 => openai_event(), 1 => marker_event()], 0..24)
    ) {
        let mut acc = crate::accumulate::StreamAccumulator::new();
        let mut want = String::new();
        let mut markers = 0;
        for v in events {
            let parsed: Result<Chunk, _> = serde_json::from_value(v.clone());
            let ok = acc.push_value(v).is_ok();
            prop_assert_eq!(ok, parsed.is_ok());
            let Ok(c) = parsed else { continue };
            if c.extra_fields.as_ref().is_some_and(|x| x.restart.is_some()) {
                want.clear();
                markers += 1;
                continue;
            }
            for ch in c.choices.iter().filter(|ch| ch.index == 0) {
                want.push_str(ch.delta.content.as_deref().unwrap_or(""));
            }
        }
        prop_assert_eq!(acc.text(), want.as_str());
        prop_assert_eq!(acc.restarts(), markers);
        let message = acc.message();
        prop_assert_eq!(&message["extra_fields"]["restarts"], &json!(markers));
        prop_assert!(serde_json::to_string(&message).is_ok());
    }
}
