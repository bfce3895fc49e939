//! The mock's own rate limits, enforced as the real APIs enforce theirs, so
//! tests can prove that bifrost stays under a provider's limit.
//!
//! A deliberately different algorithm from bifrost's (a log of the last
//! minute's admissions, not a token bucket; `window_ms` shortens the
//! minute for tests), so the judge shares no code
//! and no reasoning with what it judges. A request costs one request and
//! `prompt + max_tokens` tokens (prompt counted as the mock counts usage,
//! in words); it is admitted when the last 60 s hold fewer than
//! `requests_per_minute` requests and at most `tokens_per_minute - cost`
//! tokens, else answered 429 with `Retry-After` (whole seconds, rounded up)
//! like the real APIs. Every response then carries the provider's headers:
//! OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` or
//! Anthropic's `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`.
//!
//! Every admission is logged with its time and cost ([`Admission`]), so a
//! test can check any interval against the limit.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use serde::{Deserialize, Serialize};

/// The default window: a minute, like the real APIs' limits.
const WINDOW: Duration = Duration::from_secs(60);

/// Limits a mock server enforces (none by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MockLimits {
    /// Requests per window (a minute unless `window_ms` says otherwise).
    pub requests_per_minute: Option<u64>,
    /// Tokens per window.
    pub tokens_per_minute: Option<u64>,
    /// The window's length in ms (default 60 000), so a test can watch
    /// several windows pass in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_ms: Option<u64>,
}

impl MockLimits {
    pub fn is_off(&self) -> bool {
        self.requests_per_minute.is_none() && self.tokens_per_minute.is_none()
    }

    fn window(&self) -> Duration {
        self.window_ms.map_or(WINDOW, |ms| Duration::from_millis(ms.max(1)))
    }
}

/// One admitted request: ns after the server started, and its token cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admission {
    pub at_ns: u64,
    pub tokens: u64,
}

/// Which provider's header names to use.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Flavor {
    OpenAi,
    Anthropic,
}

/// The state after a decision, for the response headers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Verdict {
    limits: MockLimits,
    remaining_requests: u64,
    remaining_tokens: u64,
    /// Until the window holds nothing of today's requests / tokens.
    reset_requests: Duration,
    reset_tokens: Duration,
    /// Refused: when the request would fit.
    pub retry_after: Option<Duration>,
}

pub(crate) struct Limiter {
    limits: MockLimits,
    started: Instant,
    /// Admissions of the last minute, oldest first.
    window: Mutex<VecDeque<(Instant, u64)>>,
    log: Mutex<Vec<Admission>>,
    refused: AtomicU64,
}

impl Limiter {
    pub(crate) fn new(limits: MockLimits) -> Limiter {
        Limiter {
            limits,
            started: Instant::now(),
            window: Mutex::new(VecDeque::new()),
            log: Mutex::new(Vec::new()),
            refused: AtomicU64::new(0),
        }
    }

    pub(crate) fn is_off(&self) -> bool {
        self.limits.is_off()
    }

    /// Admits a request of `tokens` now, or refuses it (`retry_after` set).
    pub(crate) fn admit(&self, tokens: u64) -> Verdict {
        let window = self.limits.window();
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        // Read under the lock, so the log is in time order.
        let now = Instant::now();
        while w.front().is_some_and(|(t, _)| now.duration_since(*t) >= window) {
            w.pop_front();
        }
        let used_requests = w.len() as u64;
        let used_tokens: u64 = w.iter().map(|(_, n)| n).sum();
        let rpm = self.limits.requests_per_minute.unwrap_or(u64::MAX);
        let tpm = self.limits.tokens_per_minute.unwrap_or(u64::MAX);
        let fits = used_requests < rpm && used_tokens.saturating_add(tokens) <= tpm;
        let mut retry_after = None;
        if fits {
            w.push_back((now, tokens));
            self.log
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Admission { at_ns: now.duration_since(self.started).as_nanos() as u64, tokens });
        } else {
            self.refused.fetch_add(1, Relaxed);
            // The earliest moment both fit: drop the oldest admissions one
            // by one until they do.
            let (mut r, mut t) = (used_requests, used_tokens);
            let mut at = now;
            for (ts, n) in w.iter() {
                if r < rpm && t.saturating_add(tokens) <= tpm {
                    break;
                }
                r -= 1;
                t -= n;
                at = *ts + window;
            }
            retry_after = Some(if r < rpm && t.saturating_add(tokens) <= tpm {
                at.saturating_duration_since(now)
            } else {
                window // larger than the whole limit: never; say a window
            });
        }
        let reset = w.back().map_or(Duration::ZERO, |(t, _)| (*t + window).saturating_duration_since(now));
        Verdict {
            limits: self.limits,
            remaining_requests: rpm.saturating_sub(w.len() as u64),
            remaining_tokens: tpm.saturating_sub(w.iter().map(|(_, n)| n).sum()),
            reset_requests: reset,
            reset_tokens: reset,
            retry_after,
        }
    }

    pub(crate) fn admissions(&self) -> Vec<Admission> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Relaxed)
    }

    pub(crate) fn reset(&self) {
        self.window.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.refused.store(0, Relaxed);
    }
}

impl Verdict {
    /// Adds the provider's limit headers (and `Retry-After` when refused).
    pub(crate) fn apply(&self, r: &mut Response, flavor: Flavor) {
        let h = r.headers_mut();
        let mut put = |name: String, value: String| {
            if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                h.insert(n, v);
            }
        };
        for (what, limit, remaining, reset) in [
            ("requests", self.limits.requests_per_minute, self.remaining_requests, self.reset_requests),
            ("tokens", self.limits.tokens_per_minute, self.remaining_tokens, self.reset_tokens),
        ] {
            let Some(limit) = limit else { continue };
            match flavor {
                Flavor::OpenAi => {
                    put(format!("x-ratelimit-limit-{what}"), limit.to_string());
                    put(format!("x-ratelimit-remaining-{what}"), remaining.to_string());
                    put(format!("x-ratelimit-reset-{what}"), go_duration(reset));
                }
                Flavor::Anthropic => {
                    put(format!("anthropic-ratelimit-{what}-limit"), limit.to_string());
                    put(format!("anthropic-ratelimit-{what}-remaining"), remaining.to_string());
                    put(format!("anthropic-ratelimit-{what}-reset"), rfc3339(SystemTime::now() + reset));
                }
            }
        }
        if let Some(after) = self.retry_after {
            put("retry-after".into(), after.as_secs_f64().ceil().max(1.0).to_string());
        }
    }
}

/// A duration as OpenAI writes it: `"20ms"`, `"1.5s"`, `"6m0.000s"`.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (m, rest) = (ms / 60_000, ms % 60_000);
    let (s, frac) = (rest / 1000, rest % 1000);
    if m > 0 {
        format!("{m}m{s}.{frac:03}s")
    } else {
        format!("{s}.{frac:03}s")
    }
}

/// A wall time as RFC 3339 in UTC, to the second (`2026-12-07T02:15:10Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", sod / 3600, sod % 3600 / 60, sod % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(go_duration(Duration::from_millis(20)), "20ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.500s");
        assert_eq!(go_duration(Duration::from_secs(360)), "6m0.000s");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(1_709_164_800)), "2024-02-29T00:00:00Z");
    }

    #[test]
    fn admits_up_to_the_limit_then_refuses_with_the_wait() {
        let l =
            Limiter::new(MockLimits { requests_per_minute: Some(3), tokens_per_minute: Some(100), window_ms: None });
        assert!(l.admit(40).retry_after.is_none());
        assert!(l.admit(40).retry_after.is_none());
        let v = l.admit(40); // 120 > 100 tokens
        assert!(v.retry_after.is_some_and(|d| d > Duration::from_secs(50) && d <= WINDOW), "{v:?}");
        assert!(l.admit(20).retry_after.is_none(), "a smaller one fits");
        assert!(l.admit(1).retry_after.is_some(), "3 requests: the request limit");
        assert_eq!(l.admissions().iter().map(|a| a.tokens).collect::<Vec<_>>(), [40, 40, 20]);
        assert_eq!(l.refused(), 2);
    }
}
