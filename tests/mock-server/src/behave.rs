//! The part of every request that does not depend on the provider: resolving
//! the directives, counting the scenario, waiting the latency, rolling the
//! injected failure, and the response helpers.
//!
//! A handler runs: count the route → check auth → parse the body → resolve
//! directives → [`behave`] → answer. Anything that goes wrong becomes a
//! [`Failure`], which each provider renders in its own error format.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;

use crate::directives::Directives;
use crate::limits::{Limiter, MockLimits, Verdict};
use crate::stats::{Counters, Route};

/// State shared by every connection of one server.
pub(crate) struct Shared {
    pub keys: Vec<String>,
    pub defaults: Directives,
    pub counters: Counters,
    pub limiter: Limiter,
    pub recorder: crate::record::Recorder,
    next_id: AtomicU64,
}

impl Shared {
    pub(crate) fn new(keys: Vec<String>, defaults: Directives, limits: MockLimits) -> Shared {
        Shared {
            keys,
            defaults,
            counters: Counters::default(),
            limiter: Limiter::new(limits),
            recorder: Default::default(),
            next_id: AtomicU64::new(1),
        }
    }

    /// Applies the rate limits to a request costing `tokens`: `None` without
    /// limits, else the verdict (a refusal is the 429 to answer).
    pub(crate) fn limit(&self, tokens: u64) -> Result<Option<Verdict>, Failure> {
        if self.limiter.is_off() {
            return Ok(None);
        }
        let v = self.limiter.admit(tokens);
        if v.retry_after.is_some() {
            let mut f = Failure::new(429, "mock: rate limit reached (requests or tokens per minute)");
            f.limits = Some(Box::new(v));
            return Err(f);
        }
        Ok(Some(v))
    }

    /// Whether `key` is an accepted API key (or Bedrock access key id).
    pub(crate) fn accepts(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k == key)
    }

    /// A fresh number for response ids.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Relaxed)
    }

    /// Counts a request to `route` (before anything can fail).
    /// Counts one request to `route`; it is *open* (counted in
    /// `open_requests`, `max_open_requests`) until the guard is dropped,
    /// when its handler has its response.
    pub(crate) fn hit(&self, route: Route) -> crate::stats::Open<'_> {
        self.counters.record(route);
        self.counters.open()
    }
}

/// Why a request is answered with an error, before or instead of a normal reply.
#[derive(Debug)]
pub(crate) struct Failure {
    pub status: u16,
    pub message: String,
    /// The provider's error type/code when the status alone does not decide it.
    pub kind: Option<&'static str>,
    /// Seconds for a `Retry-After` header (429 only).
    pub retry_after: Option<u64>,
    /// The rate limits' verdict, when they refused the request (boxed:
    /// most failures have none).
    pub limits: Option<Box<Verdict>>,
}

impl Failure {
    pub(crate) fn new(status: u16, message: impl Into<String>) -> Failure {
        Failure { status, message: message.into(), kind: None, retry_after: None, limits: None }
    }

    pub(crate) fn kind(mut self, kind: &'static str) -> Failure {
        self.kind = Some(kind);
        self
    }

    /// A malformed request body (the serde message says where).
    pub(crate) fn body(e: serde_json::Error) -> Failure {
        Failure::new(400, format!("invalid request body: {e}"))
    }
}

/// The request's directives: server defaults, then the model suffix, then the `x-mock` header.
pub(crate) fn resolve(shared: &Shared, model_spec: Option<&str>, headers: &HeaderMap) -> Result<Directives, Failure> {
    let header = match headers.get("x-mock") {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| Failure::new(400, "x-mock header is not valid UTF-8"))?),
    };
    if model_spec.is_none() && header.is_none() {
        return Ok(shared.defaults.clone());
    }
    let mut d = shared.defaults.clone();
    for spec in model_spec.into_iter().chain(header) {
        d.apply(spec).map_err(|e| Failure::new(400, e.to_string()))?;
    }
    if d.fail_first.is_some() && d.scenario.is_none() {
        return Err(Failure::new(400, "mock directive 'fail_first' needs a 'scenario' id to count requests in"));
    }
    Ok(d)
}

/// Counts the scenario, hangs or waits as told, then rolls the injected
/// failure. Returns the directives the rest of the request follows: a
/// scenario's requests past `fail_first` / `outage_ms` have no faults.
pub(crate) async fn behave(shared: &Shared, mut d: Directives) -> Result<Directives, Failure> {
    let (seen, age) = match &d.scenario {
        Some(s) => shared.counters.scenario_hit(s),
        None => (0, Duration::ZERO),
    };
    // `fail_first` / `outage_ms` gate every fault; inside the gate, a
    // request without another fault fails with a status.
    let gated = match (d.fail_first, d.outage_ms) {
        (Some(n), _) => Some((seen <= n, 500)),
        (None, Some(ms)) => Some((age < Duration::from_millis(ms), 503)),
        (None, None) => None,
    };
    match gated {
        Some((false, _)) => d.clear_faults(),
        Some((true, default)) if d.fail_status.is_some() || !d.has_other_fault() => {
            d.fail_status = Some(d.fail_status.unwrap_or(default));
            d.fail_rate = Some(1.0);
        }
        _ => {}
    }
    if d.hang {
        std::future::pending::<()>().await;
    }
    let wait = d.latency_ms + if d.jitter_ms > 0 { fastrand::u64(0..=d.jitter_ms) } else { 0 };
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    let status = match d.fail_status {
        Some(s) if fastrand::f64() < d.fail_rate.unwrap_or(1.0) => Some(s),
        _ => None,
    };
    match status {
        None => Ok(d),
        Some(status) => {
            let mut f = Failure::new(status, injected_message(status, &d, seen));
            match d.fail_reason {
                Some("context_length") => {
                    f.message = "This model's maximum context length is 8192 tokens. However, your messages \
                                 resulted in 9000 tokens. Please reduce the length of the messages."
                        .into();
                    f.kind = Some("context_length_exceeded");
                }
                Some("content_policy") => {
                    f.message = "Your request was rejected as a result of our safety system.".into();
                    f.kind = Some("content_policy_violation");
                }
                _ => {}
            }
            if status == 429 {
                f.retry_after = d.retry_after;
            }
            Err(f)
        }
    }
}

/// `reject_prefill`: a trailing assistant message is refused with a 400,
/// as a route without assistant prefill answers it.
pub(crate) fn check_prefill(d: &Directives, last_role: Option<&str>) -> Result<(), Failure> {
    if d.reject_prefill && last_role == Some("assistant") {
        return Err(Failure::new(
            400,
            "mock: this model does not support assistant message prefill; the conversation must end with a user message",
        ));
    }
    Ok(())
}

fn injected_message(status: u16, d: &Directives, seen: u64) -> String {
    match (d.fail_first, d.outage_ms, &d.scenario) {
        (Some(n), _, Some(s)) => format!("mock: injected {status} (request {seen} of scenario '{s}', fail_first={n})"),
        (None, Some(ms), Some(s)) => format!("mock: injected {status} (scenario '{s}' is out for {ms} ms)"),
        _ => format!("mock: injected {status} (fail_status={status}, fail_rate={})", d.fail_rate.unwrap_or(1.0)),
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A response with a body and content type.
pub(crate) fn respond(status: u16, content_type: &'static str, body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A JSON response serialized from `value`.
pub(crate) fn json<T: Serialize>(status: u16, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(v) => respond(status, "application/json", v),
        Err(e) => respond(500, "text/plain", format!("mock: cannot serialize response: {e}")),
    }
}

/// Adds `Retry-After` when the failure carries one.
pub(crate) fn with_retry_after(mut r: Response, f: &Failure) -> Response {
    if let Some(s) = f.retry_after {
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

/// Adds a header whose value is a static string.
pub(crate) fn with_header(mut r: Response, name: &'static str, value: &'static str) -> Response {
    r.headers_mut().insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    r
}

/// How a stream ends after its content chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The finish, then the terminal event unless `terminator=0`.
    Normal,
    /// The body closes without a finish or terminal event.
    Truncated,
    /// The provider's in-stream error event.
    Error,
    /// Nothing more is sent; the connection stays open.
    Stall,
    /// An event the protocol cannot parse, then the body closes.
    Invalid,
}

/// How many of `pieces` content chunks to send, and how the stream then
/// ends: the fault with the smallest chunk count wins.
pub(crate) fn ending(d: &Directives, pieces: usize) -> (usize, Ending) {
    let faults = [
        (d.stream_error_after, Ending::Error),
        (d.truncate_after, Ending::Truncated),
        (d.stall_after, Ending::Stall),
        (d.invalid_event_at, Ending::Invalid),
    ];
    match faults.iter().filter_map(|(n, e)| n.map(|n| (n as usize, *e))).min_by_key(|(n, _)| *n) {
        None => (pieces, Ending::Normal),
        Some((n, e)) => (n.min(pieces), e),
    }
}
