//! Behaviour directives: how one request should misbehave.
//!
//! A directive string is `key=value&key=value`. It comes from the `x-mock`
//! request header or from the model name after a `~`
//! (`gpt-4o~fail_status=503&fail_first=2&scenario=s1`; for Bedrock the model
//! id in the path). Each request starts from the server's defaults (CLI flags
//! of the same names), then applies the model suffix, then the header, so the
//! header wins when both name a key.
//!
//! | key | meaning |
//! |---|---|
//! | `latency_ms` | wait before the response head (time to first byte) |
//! | `jitter_ms` | uniform extra wait in `0..=jitter_ms` |
//! | `fail_status` | fail with this HTTP status (400..=599) … |
//! | `fail_rate` | … with this probability (0..=1, default 1 when `fail_status` is given) |
//! | `retry_after` | seconds, sent as `Retry-After` on 429 answers |
//! | `fail_first` | with `scenario`: only the first N requests of the scenario misbehave (with `fail_status`, or the other faults given here, or else a 500); later ones are healthy |
//! | `outage_ms` | with `scenario`: requests within T ms of the scenario's first request misbehave like `fail_first`'s (default status 503); later ones are healthy |
//! | `scenario` | an id counted in `/_mock/stats` `by_scenario` |
//! | `chunks` | stream content chunks (default 4) |
//! | `chunk_delay_ms` | wait before each stream content chunk |
//! | `truncate_after` | stream: close the body after N content chunks, without the terminal event |
//! | `stream_error_after` | stream: send the provider's in-stream error event after N content chunks (its kind follows `fail_status` when given with `fail_rate=0`, else 500) |
//! | `hang` | `1`: accept the request and never answer |
//! | `first_chunk_delay_ms` | stream: wait this long after the response head before the first content chunk (a slow first token) |
//! | `stall_after` | stream: after N content chunks send nothing more and keep the connection open |
//! | `invalid_event_at` | stream: after N content chunks send an event the protocol cannot parse, then end |
//! | `terminator` | `0`: end a complete stream without its terminal event (OpenAI `[DONE]`, Anthropic `message_stop`, Bedrock `metadata`); the finish still comes |
//! | `reject_prefill` | `1`: answer 400 when the last message is the assistant's (a route without assistant prefill); otherwise a trailing assistant message is continued: the reply is the echo after that text |
//! | `fail_reason` | with a 4xx `fail_status`: `context_length` or `content_policy`, the provider's error for a prompt too long for the model or refused content (OpenAI codes `context_length_exceeded` / `content_policy_violation`) |
//! | `record` | `1`: keep the request as it arrived, for `GET /_mock/requests` |
//! | `fixture` | answer with a recorded provider response from `tests/fixtures/` instead of the echo (see the `fixture` module) |
//!
//! Unknown keys and unparsable values are errors that name the key; the
//! provider answers them with a 400 in its own error format.

use std::fmt;

/// Every directive key, in the order of the table above.
pub const KEYS: &[&str] = &[
    "latency_ms",
    "jitter_ms",
    "fail_status",
    "fail_rate",
    "retry_after",
    "fail_first",
    "scenario",
    "chunks",
    "chunk_delay_ms",
    "truncate_after",
    "stream_error_after",
    "hang",
    "fixture",
    "record",
    "fail_reason",
    "outage_ms",
    "first_chunk_delay_ms",
    "stall_after",
    "invalid_event_at",
    "terminator",
    "reject_prefill",
];

/// The resolved behaviour of one request (see the module docs for each key).
#[derive(Clone, Debug, PartialEq)]
pub struct Directives {
    /// Wait before answering, in milliseconds.
    pub latency_ms: u64,
    /// Uniform extra wait in `0..=jitter_ms` milliseconds.
    pub jitter_ms: u64,
    /// Injected failure status.
    pub fail_status: Option<u16>,
    /// Probability of the injected failure; `None` means 1 when `fail_status` is set.
    pub fail_rate: Option<f64>,
    /// `Retry-After` seconds on 429 answers.
    pub retry_after: Option<u64>,
    /// The first N requests of `scenario` fail.
    pub fail_first: Option<u64>,
    /// Scenario id for counting and `fail_first`.
    pub scenario: Option<String>,
    /// Stream content chunk count (at least 1).
    pub chunks: u32,
    /// Wait before each stream content chunk, in milliseconds.
    pub chunk_delay_ms: u64,
    /// Close the stream after N content chunks without the terminal event.
    pub truncate_after: Option<u32>,
    /// Send the in-stream error event after N content chunks.
    pub stream_error_after: Option<u32>,
    /// Never answer.
    pub hang: bool,
    /// Answer with this recorded fixture (`[A-Za-z0-9_-]+`).
    pub fixture: Option<String>,
    /// Keep the request for `GET /_mock/requests`.
    pub record: bool,
    /// What an injected 4xx says: `context_length` or `content_policy`.
    pub fail_reason: Option<&'static str>,
    /// The scenario misbehaves for this long after its first request.
    pub outage_ms: Option<u64>,
    /// Wait before the first stream content chunk, in milliseconds.
    pub first_chunk_delay_ms: u64,
    /// Stop sending (connection kept open) after N content chunks.
    pub stall_after: Option<u32>,
    /// Send an unparsable event after N content chunks.
    pub invalid_event_at: Option<u32>,
    /// Send the stream's terminal event (default true).
    pub terminator: bool,
    /// Refuse a trailing assistant message with a 400.
    pub reject_prefill: bool,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            latency_ms: 0,
            jitter_ms: 0,
            fail_status: None,
            fail_rate: None,
            retry_after: None,
            fail_first: None,
            scenario: None,
            chunks: 4,
            chunk_delay_ms: 0,
            truncate_after: None,
            stream_error_after: None,
            hang: false,
            fixture: None,
            record: false,
            fail_reason: None,
            outage_ms: None,
            first_chunk_delay_ms: 0,
            stall_after: None,
            invalid_event_at: None,
            terminator: true,
            reject_prefill: false,
        }
    }
}

/// A directive string that could not be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirectiveError {
    /// The key is not a known directive.
    Unknown(String),
    /// The key is known but its value does not parse or is out of range.
    Invalid {
        /// The directive key.
        key: String,
        /// The offending value.
        value: String,
        /// What the key accepts.
        expected: &'static str,
    },
}

impl fmt::Display for DirectiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirectiveError::Unknown(k) => {
                write!(f, "unknown mock directive '{k}' (known: {})", KEYS.join(", "))
            }
            DirectiveError::Invalid { key, value, expected } => {
                write!(f, "invalid value '{value}' for mock directive '{key}': expected {expected}")
            }
        }
    }
}

impl std::error::Error for DirectiveError {}

fn flag(key: &str, value: &str) -> Result<bool, DirectiveError> {
    match value {
        "1" | "true" | "" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(DirectiveError::Invalid { key: key.to_string(), value: value.to_string(), expected: "1 or 0" }),
    }
}

fn num<T: std::str::FromStr>(key: &str, value: &str, expected: &'static str) -> Result<T, DirectiveError> {
    value.parse().map_err(|_| DirectiveError::Invalid { key: key.to_string(), value: value.to_string(), expected })
}

impl Directives {
    /// Parses a directive string on top of the defaults.
    pub fn parse(spec: &str) -> Result<Directives, DirectiveError> {
        let mut d = Directives::default();
        d.apply(spec)?;
        Ok(d)
    }

    /// Applies `key=value&key=value` on top of `self`; empty parts are ignored.
    pub fn apply(&mut self, spec: &str) -> Result<(), DirectiveError> {
        for part in spec.split('&') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            self.set(key.trim(), value.trim())?;
        }
        Ok(())
    }

    /// Sets one directive.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), DirectiveError> {
        let invalid = |expected| DirectiveError::Invalid { key: key.to_string(), value: value.to_string(), expected };
        match key {
            "latency_ms" => self.latency_ms = num(key, value, "milliseconds (an integer)")?,
            "jitter_ms" => self.jitter_ms = num(key, value, "milliseconds (an integer)")?,
            "fail_status" => {
                let s: u16 = num(key, value, "an HTTP status 400..=599")?;
                if !(400..=599).contains(&s) {
                    return Err(invalid("an HTTP status 400..=599"));
                }
                self.fail_status = Some(s);
            }
            "fail_rate" => {
                let r: f64 = num(key, value, "a probability 0..=1")?;
                if !(0.0..=1.0).contains(&r) {
                    return Err(invalid("a probability 0..=1"));
                }
                self.fail_rate = Some(r);
            }
            "retry_after" => self.retry_after = Some(num(key, value, "seconds (an integer)")?),
            "fail_first" => self.fail_first = Some(num(key, value, "a request count (an integer)")?),
            "scenario" => {
                if value.is_empty() {
                    return Err(invalid("a non-empty scenario id"));
                }
                self.scenario = Some(value.to_string());
            }
            "chunks" => {
                let n: u32 = num(key, value, "a chunk count 1..=100000")?;
                if !(1..=100_000).contains(&n) {
                    return Err(invalid("a chunk count 1..=100000"));
                }
                self.chunks = n;
            }
            "chunk_delay_ms" => self.chunk_delay_ms = num(key, value, "milliseconds (an integer)")?,
            "truncate_after" => self.truncate_after = Some(num(key, value, "a chunk count (an integer)")?),
            "stream_error_after" => self.stream_error_after = Some(num(key, value, "a chunk count (an integer)")?),
            "hang" => self.hang = flag(key, value)?,
            "terminator" => self.terminator = flag(key, value)?,
            "reject_prefill" => self.reject_prefill = flag(key, value)?,
            "outage_ms" => self.outage_ms = Some(num(key, value, "milliseconds (an integer)")?),
            "first_chunk_delay_ms" => self.first_chunk_delay_ms = num(key, value, "milliseconds (an integer)")?,
            "stall_after" => self.stall_after = Some(num(key, value, "a chunk count (an integer)")?),
            "invalid_event_at" => self.invalid_event_at = Some(num(key, value, "a chunk count (an integer)")?),
            "fail_reason" => {
                self.fail_reason = Some(match value {
                    "context_length" => "context_length",
                    "content_policy" => "content_policy",
                    _ => return Err(invalid("context_length or content_policy")),
                })
            }
            "record" => self.record = flag(key, value)?,
            "fixture" => {
                if !crate::fixture::valid_name(value) {
                    return Err(invalid("a fixture name ([A-Za-z0-9_-]+)"));
                }
                self.fixture = Some(value.to_string());
            }
            _ => return Err(DirectiveError::Unknown(key.to_string())),
        }
        Ok(())
    }

    /// Whether any fault besides an error status is asked for (what
    /// `fail_first` / `outage_ms` then inject instead of a status).
    pub(crate) fn has_other_fault(&self) -> bool {
        self.hang
            || self.first_chunk_delay_ms > 0
            || self.truncate_after.is_some()
            || self.stream_error_after.is_some()
            || self.stall_after.is_some()
            || self.invalid_event_at.is_some()
    }

    /// A healthy request: every injected failure removed (what a
    /// scenario's requests after `fail_first` / `outage_ms` get).
    pub(crate) fn clear_faults(&mut self) {
        self.fail_status = None;
        self.fail_rate = None;
        self.hang = false;
        self.first_chunk_delay_ms = 0;
        self.truncate_after = None;
        self.stream_error_after = None;
        self.stall_after = None;
        self.invalid_event_at = None;
    }

    /// The status of an in-stream error event (`fail_status`, else 500).
    pub(crate) fn stream_error_status(&self) -> u16 {
        self.fail_status.unwrap_or(500)
    }
}

/// Splits a model name into the echoed name and its directive suffix (after `~`).
pub(crate) fn split_model(model: &str) -> (&str, Option<&str>) {
    match model.split_once('~') {
        Some((name, spec)) => (name, Some(spec)),
        None => (model, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key() {
        let d = Directives::parse(
            "latency_ms=5&jitter_ms=2&fail_status=503&fail_rate=0.5&retry_after=3&fail_first=2&scenario=s1\
             &chunks=7&chunk_delay_ms=1&truncate_after=2&stream_error_after=3&hang=1",
        )
        .unwrap();
        assert_eq!(d.latency_ms, 5);
        assert_eq!(d.jitter_ms, 2);
        assert_eq!(d.fail_status, Some(503));
        assert_eq!(d.fail_rate, Some(0.5));
        assert_eq!(d.retry_after, Some(3));
        assert_eq!(d.fail_first, Some(2));
        assert_eq!(d.scenario.as_deref(), Some("s1"));
        assert_eq!(d.chunks, 7);
        assert_eq!(d.chunk_delay_ms, 1);
        assert_eq!(d.truncate_after, Some(2));
        assert_eq!(d.stream_error_after, Some(3));
        assert!(d.hang);
        let d = Directives::parse(
            "outage_ms=500&first_chunk_delay_ms=20&stall_after=2&invalid_event_at=3&terminator=0&reject_prefill=1",
        )
        .unwrap();
        assert_eq!((d.outage_ms, d.first_chunk_delay_ms), (Some(500), 20));
        assert_eq!((d.stall_after, d.invalid_event_at), (Some(2), Some(3)));
        assert!(!d.terminator && d.reject_prefill && d.has_other_fault());
        assert!(Directives::parse("terminator=maybe").is_err());
    }

    #[test]
    fn errors_name_the_key() {
        let e = Directives::parse("latency_ms=1&bogus=2").unwrap_err();
        assert_eq!(e, DirectiveError::Unknown("bogus".into()));
        assert!(e.to_string().contains("'bogus'"));
        let e = Directives::parse("fail_status=200").unwrap_err();
        assert!(e.to_string().contains("fail_status"), "{e}");
        let e = Directives::parse("fail_rate=2").unwrap_err();
        assert!(e.to_string().contains("fail_rate"), "{e}");
        assert!(Directives::parse("chunks=0").is_err());
        assert!(Directives::parse("latency_ms=abc").is_err());
    }

    #[test]
    fn layers_and_model_suffix() {
        let mut d = Directives::parse("latency_ms=5&chunks=2").unwrap();
        d.apply("chunks=3&&").unwrap();
        assert_eq!((d.latency_ms, d.chunks), (5, 3));
        assert_eq!(split_model("gpt-4o~fail_status=503"), ("gpt-4o", Some("fail_status=503")));
        assert_eq!(split_model("gpt-4o"), ("gpt-4o", None));
    }
}
