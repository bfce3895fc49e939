//! JSON text of a [`Response`], written directly: the bindings that hand
//! responses out as JSON (C, Node) do it once per request, and serde_json's
//! generic path spends most of its time escaping the constant field names
//! byte by byte and growing its buffer.
//!
//! Invariant: the output is byte-for-byte what `serde_json::to_vec` writes
//! for the same value (same field order, same escapes, `null` for `None`,
//! `tool_calls` omitted when absent, a provider's other fields where
//! serde's `flatten` puts them) — checked by the tests below against
//! serde_json itself, including on random strings. The output never
//! contains a NUL byte (U+0000 is escaped), so it can become a C string
//! as is.

use std::io::Write as _;

use serde_json::{Map, Value};

use crate::types::{ExtraFields, Response, Usage};

/// Appends the JSON text of `r` to `out`.
pub fn write_response(out: &mut Vec<u8>, r: &Response) {
    out.reserve(
        320 + r.id.len() + r.choices.iter().map(|c| c.message.content.as_ref().map_or(0, |s| s.len())).sum::<usize>(),
    );
    out.extend_from_slice(b"{\"id\":");
    write_str(out, &r.id);
    out.extend_from_slice(b",\"object\":");
    write_str(out, &r.object);
    out.extend_from_slice(b",\"created\":");
    write_u64(out, r.created);
    out.extend_from_slice(b",\"model\":");
    write_str(out, &r.model);
    out.extend_from_slice(b",\"choices\":[");
    for (i, c) in r.choices.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"index\":");
        write_u64(out, c.index.into());
        out.extend_from_slice(b",\"message\":{\"role\":");
        write_str(out, &c.message.role);
        out.extend_from_slice(b",\"content\":");
        write_opt_str(out, c.message.content.as_deref());
        if let Some(calls) = &c.message.tool_calls {
            out.extend_from_slice(b",\"tool_calls\":");
            write_value(out, calls);
        }
        if let Some(text) = &c.message.reasoning_content {
            out.extend_from_slice(b",\"reasoning_content\":");
            write_str(out, text);
        }
        write_other(out, &c.message.other);
        out.extend_from_slice(b"},\"finish_reason\":");
        write_opt_str(out, c.finish_reason.as_deref());
        write_other(out, &c.other);
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"usage\":");
    write_usage(out, &r.usage);
    write_other(out, &r.other);
    out.extend_from_slice(b",\"extra_fields\":");
    write_extra(out, &r.extra_fields);
    out.push(b'}');
}

fn write_usage(out: &mut Vec<u8>, u: &Usage) {
    out.extend_from_slice(b"{\"prompt_tokens\":");
    write_u64(out, u.prompt_tokens);
    out.extend_from_slice(b",\"completion_tokens\":");
    write_u64(out, u.completion_tokens);
    out.extend_from_slice(b",\"total_tokens\":");
    write_u64(out, u.total_tokens);
    write_other(out, &u.other);
    out.push(b'}');
}

/// The fields a provider sent that bifrost does not name, each as
/// `,"key":value` (what serde's `flatten` writes at that place).
fn write_other(out: &mut Vec<u8>, other: &Map<String, Value>) {
    for (k, v) in other {
        out.push(b',');
        write_str(out, k);
        out.push(b':');
        write_value(out, v);
    }
}

fn write_value(out: &mut Vec<u8>, v: &Value) {
    // A `Value` writes into a Vec without failing.
    let _ = serde_json::to_writer(&mut *out, v);
}

fn write_extra(out: &mut Vec<u8>, e: &ExtraFields) {
    out.extend_from_slice(b"{\"provider\":");
    write_str(out, &e.provider);
    out.extend_from_slice(b",\"model\":");
    write_str(out, &e.model);
    out.extend_from_slice(b",\"latency_ms\":");
    write_u64(out, e.latency_ms);
    out.extend_from_slice(b",\"queue_wait_us\":");
    write_u64(out, e.queue_wait_us);
    out.extend_from_slice(b",\"attempts\":");
    write_u64(out, e.attempts.into());
    out.extend_from_slice(b",\"fallback_index\":");
    write_u64(out, e.fallback_index.into());
    out.extend_from_slice(b",\"key_id\":");
    write_opt_str(out, e.key_id.as_deref());
    if !e.unmapped_params.is_empty() {
        out.extend_from_slice(b",\"unmapped_params\":[");
        for (i, p) in e.unmapped_params.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, p);
        }
        out.push(b']');
    }
    out.push(b'}');
}

fn write_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn write_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => write_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends `s` as a JSON string, escaped as serde_json escapes: `"` and
/// `\`, the short forms `\b \t \n \f \r`, other control bytes as `\u00XX`;
/// everything else (UTF-8 included) verbatim.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::types::{AssistantMessage, Choice};

    fn response(text: &str, content: Option<String>, reason: Option<&str>, key: Option<String>) -> Response {
        Response {
            id: format!("id-{text}"),
            object: Cow::Borrowed("chat.completion"),
            created: 1_700_000_000,
            model: text.to_string(),
            choices: vec![Choice {
                index: 0,
                message: AssistantMessage { role: "assistant".into(), content, ..Default::default() },
                finish_reason: reason.map(|r| Cow::Owned(r.to_string())),
                other: Default::default(),
            }],
            usage: Usage { prompt_tokens: 3, completion_tokens: u64::MAX, total_tokens: 0, other: Default::default() },
            other: Default::default(),
            extra_fields: ExtraFields {
                provider: "p\"q".into(),
                model: text.into(),
                latency_ms: 12,
                queue_wait_us: 0,
                attempts: 1,
                fallback_index: u32::MAX,
                key_id: key,
                unmapped_params: Vec::new(),
            },
        }
    }

    fn ours(r: &Response) -> String {
        let mut out = Vec::new();
        write_response(&mut out, r);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn matches_serde_json_on_edge_cases() {
        let all_controls: String = (0u8..0x20).map(char::from).collect();
        for text in ["", "echo: hi", "quote \" backslash \\ slash /", "tab\tnl\nbs\u{8}ff\u{c}cr\r", "é ✓ 😀 \u{7f}"]
        {
            for r in [
                response(text, Some(text.to_string()), Some("stop"), None),
                response(text, None, None, Some(format!("k#{text}"))),
                response(&all_controls, Some(all_controls.clone()), Some(&all_controls), Some(all_controls.clone())),
            ] {
                assert_eq!(ours(&r), serde_json::to_string(&r).expect("serde"));
            }
        }
        let mut r = response("t", Some("x".into()), Some("tool_calls"), None);
        r.choices[0].message.tool_calls = Some(json!([{"id": "c1", "type": "function",
            "function": {"name": "f", "arguments": "{\"a\":1}"}}]));
        r.choices.push(r.choices[0].clone());
        r.choices[1].index = 1;
        assert_eq!(ours(&r), serde_json::to_string(&r).expect("serde"));
        // What an OpenAI-compatible provider sent beyond the named fields.
        let mut r = response("t", None, Some("stop"), None);
        r.other.insert("system_fingerprint".into(), json!("fp_\"x\n"));
        r.other.insert("service_tier".into(), Value::Null);
        r.choices[0].other.insert("logprobs".into(), json!({"content": [{"token": "a", "logprob": -0.125}]}));
        r.choices[0].message.other.insert("refusal".into(), json!("I can't help with that."));
        r.choices[0].message.reasoning_content = Some("think \u{1}".into());
        r.usage.other.insert("prompt_tokens_details".into(), json!({"cached_tokens": 3, "audio_tokens": 0}));
        r.extra_fields.unmapped_params = vec!["frequency_penalty".into(), "messages[1].name \"q\"".into()];
        assert_eq!(ours(&r), serde_json::to_string(&r).expect("serde"));
        let nul = response("a\0b", Some("\0".into()), Some("\0"), Some("\0".into()));
        assert!(!ours(&nul).contains('\0'));
        assert_eq!(ours(&nul), serde_json::to_string(&nul).expect("serde"));
        let empty = Response::default();
        assert_eq!(ours(&empty), serde_json::to_string(&empty).expect("serde"));
    }

    proptest! {
        #[test]
        fn matches_serde_json_on_random_strings(text in ".{0,40}", content in proptest::option::of(".{0,80}"),
                                                bytes in proptest::collection::vec(0u8..0x80, 0..40)) {
            let ascii = String::from_utf8(bytes).expect("ascii");
            let r = response(&text, content, Some(&ascii), Some(ascii.clone()));
            prop_assert_eq!(ours(&r), serde_json::to_string(&r).expect("serde"));
        }
    }
}
