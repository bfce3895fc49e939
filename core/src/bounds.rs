//! The hard bounds on untrusted input (docs/architecture.md §13), in one place.
//!
//! Everything a provider, a config or a caller sends is bounded here or
//! checked by a function of this module, so every binding refuses the same
//! input with the same error kind:
//!
//! - **Durations** from a binding (seconds or milliseconds as a float):
//!   any finite value ≥ 0 is accepted and clamped to [`MAX_WAIT`]; NaN,
//!   ±Infinity and negatives are INVALID_REQUEST. Nothing panics on a huge
//!   value (`Duration::from_secs_f64(1e300)` would).
//! - **JSON text** ([`parse_strict`]): trailing characters and duplicate
//!   object keys (at any depth) are errors, nesting is bounded by
//!   [`MAX_NESTING`], and error messages
//!   never quote a string value (it may be a key in the wrong place).
//! - **Bodies and events**: [`MAX_ERROR_BODY_BYTES`] of an error body are
//!   read, a success body is bounded by `network_config.max_response_bytes`
//!   (default [`DEFAULT_MAX_RESPONSE_BYTES`]) and one SSE event by
//!   `network_config.max_event_bytes` (default [`DEFAULT_MAX_EVENT_BYTES`]).
//! - **Retry-After** is never waited longer than the request deadline, nor
//!   `retry_backoff_max_ms` × [`RETRY_AFTER_BACKOFF_FACTOR`] without one.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::{Error, Result};

/// The longest wait any bifrost API accepts; longer finite values are
/// clamped to it (a year: far past any real deadline, far below
/// `Instant` overflow).
pub const MAX_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Deepest nesting of arrays and objects accepted in a request or config,
/// from JSON text or from Python/JS values (below serde_json's own limit of
/// 127, so every input meets this bound and its message first).
pub const MAX_NESTING: usize = 100;

/// Bytes of an error body read (and kept in a PROVIDER error).
pub const MAX_ERROR_BODY_BYTES: usize = 16 * 1024;

/// Default bound on a success body (`network_config.max_response_bytes`).
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

/// Default bound on one SSE event or line (`network_config.max_event_bytes`).
pub const DEFAULT_MAX_EVENT_BYTES: u64 = 8 * 1024 * 1024;

/// Without a request deadline, a `Retry-After` pause is capped at
/// `retry_backoff_max_ms` times this.
pub const RETRY_AFTER_BACKOFF_FACTOR: u64 = 10;

/// A duration of `seconds` given by a caller: finite and ≥ 0, clamped to
/// [`MAX_WAIT`]; otherwise INVALID_REQUEST naming `what`.
pub fn seconds(value: f64, what: &str) -> Result<Duration> {
    if !(value.is_finite() && value >= 0.0) {
        return Err(Error::invalid(format!("{what} must be a finite number of seconds >= 0, got {value}")));
    }
    if value >= MAX_WAIT.as_secs_f64() {
        return Ok(MAX_WAIT);
    }
    Ok(Duration::from_secs_f64(value))
}

/// Like [`seconds`], for a number of milliseconds.
pub fn millis(value: f64, what: &str) -> Result<Duration> {
    if !(value.is_finite() && value >= 0.0) {
        return Err(Error::invalid(format!("{what} must be a finite number of milliseconds >= 0, got {value}")));
    }
    seconds(value / 1000.0, what)
}

/// The pause a provider's `Retry-After` asks for, bounded: never past the
/// request's remaining time, and at most `backoff_max_ms` ×
/// [`RETRY_AFTER_BACKOFF_FACTOR`] when the request has no deadline.
pub fn retry_after_pause(asked_ms: u64, backoff_max_ms: u64, remaining: Option<Duration>) -> Duration {
    let cap = Duration::from_millis(backoff_max_ms.saturating_mul(RETRY_AFTER_BACKOFF_FACTOR));
    let asked = Duration::from_millis(asked_ms);
    match remaining {
        Some(r) => asked.min(r),
        None => asked.min(cap),
    }
}

/// Why strict JSON text was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonError {
    /// The key path of the problem (`messages[0].role`), empty at the top.
    pub path: String,
    /// What is wrong, without quoting any string value.
    pub message: String,
}

/// Parses JSON text into `T`: trailing characters, duplicate keys (at any
/// depth) and nesting past [`MAX_NESTING`] are errors, and so is any shape
/// `T` refuses; the error names the key path and never quotes a string
/// value.
pub fn parse_strict<T: de::DeserializeOwned>(text: &str) -> std::result::Result<T, JsonError> {
    // Pass 1: syntax, nesting, duplicates (no allocation for objects of up
    // to 16 unescaped keys), without a trail: only a refused text is walked
    // again, keeping one, to say where. Pass 2: the typed parse; again only
    // a failure pays for path tracking.
    if check_text(text, None).is_err() {
        let trail = RefCell::new(Vec::new());
        if let Err(e) = check_text(text, Some(&trail)) {
            let message = scrub(&e.to_string());
            return Err(JsonError {
                path: path_of(&trail.borrow()),
                message: if e.is_syntax() || e.is_eof() { format!("not valid JSON: {message}") } else { message },
            });
        }
    }
    if let Ok(v) = serde_json::from_str(text) {
        return Ok(v);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, T>(&mut de).map_err(JsonError::from_path)
}

/// Pass 1 of [`parse_strict`] over `text`; with a `trail`, where it stopped.
fn check_text<'de>(text: &'de str, trail: Option<&RefCell<Vec<Step<'de>>>>) -> serde_json::Result<()> {
    let mut de = serde_json::Deserializer::from_str(text);
    NoDuplicates { depth: 0, trail }.deserialize(&mut de)?;
    de.end()
}

impl JsonError {
    /// From a serde_path_to_error failure: path kept, message scrubbed.
    pub fn from_path(e: serde_path_to_error::Error<serde_json::Error>) -> JsonError {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        JsonError { path, message: scrub(&e.into_inner().to_string()) }
    }

    /// As `path: message` (or the message alone at the top level).
    pub fn joined(&self) -> String {
        if self.path.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.path, self.message)
        }
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.joined())
    }
}

/// A serde message without the values it quotes and without serde_json's
/// " at line L column C" suffix when a path says where.
///
/// serde writes a refused string as `string "…"` (invalid type / invalid
/// value) and an unknown enum value as ``unknown variant `…` ``; either may
/// be a credential put in the wrong place, so the first becomes `a string`
/// and the second loses its value (the message still lists the variants
/// that are expected, and the key path says where). Key names
/// (``unknown field `…` ``) stay: they are what the user must fix.
pub fn scrub(message: &str) -> String {
    let message = cut_quoted(message, "string \"", "a string", '"', "\", expected");
    cut_quoted(&message, "unknown variant `", "unknown variant", '`', "`, expected")
}

/// `message` with each `opener … closer` replaced by `with`: the value ends
/// at the last `stop` (a value may itself contain one), else at the last
/// `closer`, else at the end of the message.
fn cut_quoted(message: &str, opener: &str, with: &str, closer: char, stop: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(opener) {
        out.push_str(&rest[..i]);
        out.push_str(with);
        let after = &rest[i + opener.len()..];
        rest = match after.rfind(stop).or_else(|| after.rfind(closer)) {
            Some(end) => &after[end + closer.len_utf8()..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// Pass 1 of [`parse_strict`]: walks any JSON value, refusing duplicate
/// keys and nesting deeper than [`MAX_NESTING`].
struct NoDuplicates<'t, 'de> {
    depth: usize,
    /// Where the walk is (kept as it was when an error stops it); `None`
    /// on the first, fast walk.
    trail: Option<&'t RefCell<Vec<Step<'de>>>>,
}

/// One step of a key path into a JSON value (bindings that walk their
/// own values before conversion build paths from these too).
#[non_exhaustive]
pub enum Step<'a> {
    Key(Cow<'a, str>),
    Index(usize),
}

/// A key path as serde_path_to_error spells it (`messages[0].content`),
/// keys cut at 64 characters: the one spelling of paths in every message.
pub fn path_of(trail: &[Step<'_>]) -> String {
    let mut out = String::new();
    for step in trail {
        match step {
            Step::Index(i) => out.push_str(&format!("[{i}]")),
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&truncate(k, 64));
            }
        }
    }
    out
}

impl<'de> DeserializeSeed<'de> for NoDuplicates<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// A map key, borrowed from the text when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> std::result::Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'t, 'de> NoDuplicates<'t, 'de> {
    fn deeper<E: de::Error>(&self) -> std::result::Result<NoDuplicates<'t, 'de>, E> {
        if self.depth >= MAX_NESTING {
            return Err(E::custom(format!("nested deeper than {MAX_NESTING} levels")));
        }
        Ok(NoDuplicates { depth: self.depth + 1, trail: self.trail })
    }
}

impl<'de> Visitor<'de> for NoDuplicates<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let inner = self.deeper()?;
        let Some(trail) = inner.trail else {
            while seq.next_element_seed(NoDuplicates { depth: inner.depth, trail: None })?.is_some() {}
            return Ok(());
        };
        for i in 0.. {
            trail.borrow_mut().push(Step::Index(i));
            let more = seq.next_element_seed(NoDuplicates { depth: inner.depth, trail: inner.trail })?.is_some();
            trail.borrow_mut().pop();
            if !more {
                break;
            }
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let inner = self.deeper()?;
        // Small objects: a linear scan; large ones switch to a hash set so a
        // hostile object of 100k keys stays linear.
        let mut few: Vec<Cow<'de, str>> = Vec::new();
        let mut many: Option<HashSet<Cow<'de, str>>> = None;
        while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
            let dup = match &mut many {
                Some(set) => !set.insert(k.clone()),
                None if few.len() < 16 => {
                    let dup = few.contains(&k);
                    few.push(k.clone());
                    dup
                }
                None => {
                    let mut set: HashSet<Cow<'de, str>> = few.drain(..).collect();
                    let dup = !set.insert(k.clone());
                    many = Some(set);
                    dup
                }
            };
            if dup {
                return Err(de::Error::custom(format!("duplicate key `{}`", truncate(&k, 64))));
            }
            match inner.trail {
                None => map.next_value_seed(NoDuplicates { depth: inner.depth, trail: None })?,
                Some(trail) => {
                    trail.borrow_mut().push(Step::Key(k));
                    map.next_value_seed(NoDuplicates { depth: inner.depth, trail: inner.trail })?;
                    trail.borrow_mut().pop();
                }
            }
        }
        Ok(())
    }
}

/// At most `max` characters of `s` (key names in messages).
fn truncate(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        Some((i, _)) => Cow::Owned(format!("{}…", &s[..i])),
        None => Cow::Borrowed(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn durations_clamp_or_refuse_and_never_panic() {
        assert_eq!(seconds(1.5, "t").unwrap(), Duration::from_millis(1500));
        for huge in [1e20, 1e22, 1e300, f64::MAX] {
            assert_eq!(seconds(huge, "t").unwrap(), MAX_WAIT);
            assert_eq!(millis(huge, "t").unwrap(), MAX_WAIT);
        }
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0, -0.001] {
            let e = seconds(bad, "timeout").unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidRequest, "{bad}");
            assert!(e.to_string().contains("timeout"), "{e}");
            assert_eq!(millis(bad, "t").unwrap_err().kind(), crate::ErrorKind::InvalidRequest);
        }
        assert_eq!(millis(250.0, "t").unwrap(), Duration::from_millis(250));
    }

    #[test]
    fn retry_after_is_bounded_by_deadline_or_backoff() {
        assert_eq!(retry_after_pause(999_999_000, 5_000, None), Duration::from_millis(50_000));
        assert_eq!(retry_after_pause(u64::MAX, 5_000, Some(Duration::from_secs(3))), Duration::from_secs(3));
        assert_eq!(retry_after_pause(200, 5_000, None), Duration::from_millis(200));
    }

    #[test]
    fn strict_json_refuses_trailing_duplicates_and_depth() {
        assert!(parse_strict::<Value>(r#"{"a": 1}"#).is_ok());
        assert!(parse_strict::<Value>(r#"{"a": 1} x"#).unwrap_err().message.contains("trailing"));
        let e = parse_strict::<Value>(r#"{"a": {"b": 1, "b": 2}}"#).unwrap_err();
        assert!(e.message.contains("duplicate key `b`"), "{e}");
        // Escaped and unescaped spellings of one key are the same key.
        assert!(parse_strict::<Value>(r#"{"ab": 1, "a\u0062": 2}"#).is_err());
        let many: String = format!("{{{}}}", (0..40).map(|i| format!("\"k{i}\": {i}")).collect::<Vec<_>>().join(","));
        assert!(parse_strict::<Value>(&many).is_ok());
        let many_dup = format!("{}, \"k3\": 0}}", &many[..many.len() - 1]);
        assert!(parse_strict::<Value>(&many_dup).unwrap_err().message.contains("k3"));
        let deep = format!("{}{}", "[".repeat(MAX_NESTING + 1), "]".repeat(MAX_NESTING + 1));
        assert!(parse_strict::<Value>(&deep).is_err());
        let ok = format!("{}{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
        assert!(parse_strict::<Value>(&ok).is_ok());
        let very_deep = "[".repeat(1_000_000);
        assert!(parse_strict::<Value>(&very_deep).is_err());
    }

    #[test]
    fn strict_errors_say_where() {
        let e = parse_strict::<serde_json::Value>(r#"{"a": [1, {"b": 1, "b": 2}]}"#).unwrap_err();
        assert_eq!((e.path.as_str(), e.message.starts_with("duplicate key `b`")), ("a[1]", true), "{e}");
        let e = parse_strict::<serde_json::Value>(r#"{"a": {"c": [1, }}"#).unwrap_err();
        assert_eq!(e.path, "a.c[1]");
        assert!(e.message.starts_with("not valid JSON: "), "{e}");
        let e = parse_strict::<serde_json::Value>("{} x").unwrap_err();
        assert!(e.message.starts_with("not valid JSON: trailing characters"), "{e}");
        let deep = format!("{{\"k\": {}{}}}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
        let e = parse_strict::<serde_json::Value>(&deep).unwrap_err();
        assert!(e.message.starts_with("nested deeper than 100 levels"), "{e}");
        assert!(e.path.starts_with("k[0][0]"), "{e}");
    }

    #[test]
    fn scrub_removes_quoted_string_values() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct K {
            keys: Vec<u32>,
        }
        let e = parse_strict::<K>(r#"{"keys": "sk-live-secret\"quoted"}"#).unwrap_err();
        assert!(!e.message.contains("sk-live"), "{e}");
        assert_eq!(e.path, "keys");
        assert!(e.message.contains("a string"), "{e}");
        assert_eq!(scrub("invalid value: string \"x\", expected y"), "invalid value: a string, expected y");
        assert_eq!(scrub("unknown field `foo`"), "unknown field `foo`");
        // A value that contains the text serde puts after it.
        assert_eq!(
            scrub(r#"invalid type: string "sk-a\", expected b", expected a sequence"#),
            "invalid type: a string, expected a sequence"
        );
        assert_eq!(
            scrub("unknown variant `sk-live-x`, expected one of `fifo`, `drop_oldest`"),
            "unknown variant, expected one of `fifo`, `drop_oldest`"
        );
        assert_eq!(
            scrub("unknown variant `a`, expected b`, expected one of `fifo`"),
            "unknown variant, expected one of `fifo`"
        );
        assert_eq!(scrub("unknown variant `sk-unterminated"), "unknown variant");
    }
}
