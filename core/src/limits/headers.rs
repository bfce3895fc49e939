//! What a provider's response headers say about its rate limits, so the
//! buckets can be lowered before the provider starts answering 429
//! (docs/architecture.md §10, `learn_from_headers`).
//!
//! - OpenAI: `x-ratelimit-remaining-{requests,tokens}` and
//!   `x-ratelimit-reset-{requests,tokens}`, the reset as a Go-style
//!   duration (`"1s"`, `"6m0s"`, `"20ms"`, `"1h2m3.5s"`).
//! - Anthropic: `anthropic-ratelimit-{requests,tokens,input-tokens,
//!   output-tokens}-{remaining,reset}`, the reset as an RFC 3339 time.
//! - Any provider: a 429's `Retry-After` (seconds or an HTTP date).
//!
//! Headers are untrusted input (§13): a value longer than
//! [`MAX_VALUE_LEN`] or that does not parse is ignored, never an error, and
//! a reset is capped at [`MAX_RESET_MS`] (a provider cannot freeze a bucket
//! for longer than a day). Names compare ignoring ASCII case.

use crate::config::parse_duration_ms;
use crate::providers::http::{days_from_civil, parse_retry_after};

/// Longest header value read.
pub(crate) const MAX_VALUE_LEN: usize = 64;
/// Longest reset taken from a provider: one day.
pub(crate) const MAX_RESET_MS: u64 = 86_400_000;

/// One limit window as the provider sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Window {
    /// Units left in the window (`None`: not said).
    pub remaining: Option<u64>,
    /// Ms until the window is full again (`None`: not said).
    pub reset_ms: Option<u64>,
}

impl Window {
    fn is_empty(&self) -> bool {
        self.remaining.is_none() && self.reset_ms.is_none()
    }
}

/// Everything the headers of one response said about limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Observed {
    pub requests: Option<Window>,
    pub tokens: Option<Window>,
    pub input_tokens: Option<Window>,
    pub output_tokens: Option<Window>,
    /// A 429's `Retry-After`, ms.
    pub retry_after_ms: Option<u64>,
}

/// Which window a header is about, and which half of it.
enum Field {
    Remaining,
    Reset,
}

/// Reads the limit headers among `headers` (name, value); `now_unix_ms` is
/// the wall time that RFC 3339 resets are measured from.
pub(crate) fn observe<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>, now_unix_ms: u64) -> Observed {
    let mut windows = [Window::default(); 4];
    let mut retry_after_ms = None;
    for (name, value) in headers {
        if value.len() > MAX_VALUE_LEN || name.len() > 64 {
            continue;
        }
        let name = name.to_ascii_lowercase();
        let value = value.trim();
        if name == "retry-after" {
            retry_after_ms = parse_retry_after(value).map(|ms| ms.min(MAX_RESET_MS));
            continue;
        }
        let Some((slot, field, anthropic)) = classify(&name) else { continue };
        let w = &mut windows[slot];
        match field {
            Field::Remaining => {
                if let Ok(n) = value.parse::<u64>() {
                    w.remaining = Some(n);
                }
            }
            Field::Reset => {
                let ms = if anthropic {
                    rfc3339_unix_ms(value).map(|at| at.saturating_sub(now_unix_ms))
                } else {
                    parse_duration_ms(value)
                };
                if let Some(ms) = ms {
                    w.reset_ms = Some(ms.min(MAX_RESET_MS));
                }
            }
        }
    }
    let some = |w: Window| (!w.is_empty()).then_some(w);
    Observed {
        requests: some(windows[0]),
        tokens: some(windows[1]),
        input_tokens: some(windows[2]),
        output_tokens: some(windows[3]),
        retry_after_ms,
    }
}

/// `(window, field, is_anthropic)` of a lower-cased header name.
fn classify(name: &str) -> Option<(usize, Field, bool)> {
    if let Some(rest) = name.strip_prefix("x-ratelimit-") {
        let (field, what) = if let Some(w) = rest.strip_prefix("remaining-") {
            (Field::Remaining, w)
        } else if let Some(w) = rest.strip_prefix("reset-") {
            (Field::Reset, w)
        } else {
            return None;
        };
        let slot = match what {
            "requests" => 0,
            "tokens" => 1,
            _ => return None,
        };
        return Some((slot, field, false));
    }
    let rest = name.strip_prefix("anthropic-ratelimit-")?;
    let (what, field) = if let Some(w) = rest.strip_suffix("-remaining") {
        (w, Field::Remaining)
    } else if let Some(w) = rest.strip_suffix("-reset") {
        (w, Field::Reset)
    } else {
        return None;
    };
    let slot = match what {
        "requests" => 0,
        "tokens" => 1,
        "input-tokens" => 2,
        "output-tokens" => 3,
        _ => return None,
    };
    Some((slot, field, true))
}

/// An RFC 3339 time (`2026-12-07T02:15:10Z`, `…T02:15:10.25+01:00`) as
/// Unix ms; `None` unless every field is in range. Years 1970..=9999.
pub(crate) fn rfc3339_unix_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => return None,
    };
    if !(1970..=9999).contains(&year) || !(1..=days_in_month).contains(&day) || hour > 23 || minute > 59 || second > 60
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        let d = &frac[..digits];
        millis = d[..digits.min(3)].parse::<i64>().ok()? * 10i64.pow(3 - digits.min(3) as u32);
        rest = &frac[digits..];
    }
    let offset_s = match rest {
        "Z" | "z" => 0,
        _ => {
            let ob = rest.as_bytes();
            if ob.len() != 6 || !matches!(ob[0], b'+' | b'-') || ob[3] != b':' {
                return None;
            }
            let oh: i64 = rest[1..3].parse().ok().filter(|h| (0..24).contains(h))?;
            let om: i64 = rest[4..6].parse().ok().filter(|m| (0..60).contains(m))?;
            if !rest[1..3].bytes().chain(rest[4..6].bytes()).all(|c| c.is_ascii_digit()) {
                return None;
            }
            let sign = if ob[0] == b'-' { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second - offset_s;
    u64::try_from(secs * 1000 + millis).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_765_000_000_000; // 2025-12-06T05:46:40Z

    #[test]
    fn openai_headers() {
        let o = observe(
            [
                ("x-ratelimit-limit-requests", "500"),
                ("X-RateLimit-Remaining-Requests", "499"),
                ("x-ratelimit-reset-requests", "120ms"),
                ("x-ratelimit-remaining-tokens", "149984"),
                ("x-ratelimit-reset-tokens", "6m0s"),
            ],
            NOW,
        );
        assert_eq!(o.requests, Some(Window { remaining: Some(499), reset_ms: Some(120) }));
        assert_eq!(o.tokens, Some(Window { remaining: Some(149_984), reset_ms: Some(360_000) }));
        assert_eq!(o.input_tokens, None);
        assert_eq!(o.retry_after_ms, None);
    }

    #[test]
    fn anthropic_headers_and_retry_after() {
        let o = observe(
            [
                ("anthropic-ratelimit-requests-remaining", "0"),
                ("anthropic-ratelimit-requests-reset", "2025-12-06T05:46:52Z"),
                ("anthropic-ratelimit-input-tokens-remaining", "1000"),
                ("anthropic-ratelimit-input-tokens-reset", "2025-12-06T06:46:40.5+01:00"),
                ("retry-after", "7"),
            ],
            NOW,
        );
        assert_eq!(o.requests, Some(Window { remaining: Some(0), reset_ms: Some(12_000) }));
        assert_eq!(o.input_tokens, Some(Window { remaining: Some(1000), reset_ms: Some(500) }));
        assert_eq!(o.retry_after_ms, Some(7000));
    }

    #[test]
    fn hostile_values_are_ignored_or_capped() {
        let long = "9".repeat(65);
        let o = observe(
            [
                ("x-ratelimit-remaining-requests", long.as_str()),
                ("x-ratelimit-reset-requests", "9999999h"),
                ("x-ratelimit-remaining-tokens", "-5"),
                ("x-ratelimit-reset-tokens", "soon"),
                ("anthropic-ratelimit-tokens-reset", "2025-02-30T00:00:00Z"),
                ("retry-after", "1e300"),
            ],
            NOW,
        );
        assert_eq!(o.requests, Some(Window { remaining: None, reset_ms: Some(MAX_RESET_MS) }));
        assert_eq!(o.tokens, None);
        assert_eq!(o.retry_after_ms, Some(MAX_RESET_MS));
        assert_eq!(rfc3339_unix_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_unix_ms("1969-12-31T23:59:59Z"), None);
        assert_eq!(rfc3339_unix_ms("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
        assert_eq!(rfc3339_unix_ms("2023-02-29T00:00:00Z"), None);
    }

    /// One raw HTTP/1.1 POST to the mock: the status and the headers.
    async fn post(addr: std::net::SocketAddr, path: &str, extra: &str, body: &str) -> (u16, Vec<(String, String)>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect to the mock");
        let req = format!(
            "POST {path} HTTP/1.1\r\nhost: mock\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.expect("send");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.expect("read");
        let text = String::from_utf8_lossy(&raw);
        let head = text.split("\r\n\r\n").next().unwrap_or_default();
        let mut lines = head.lines();
        let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
        let headers =
            lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.to_string(), v.trim().to_string())).collect();
        (status, headers)
    }

    fn observed(headers: &[(String, String)]) -> Observed {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        observe(headers.iter().map(|(n, v)| (n.as_str(), v.as_str())), now)
    }

    /// bifrost-mock's limit headers (written by its own code, after the
    /// providers' documented formats) read back to what it enforces.
    #[test]
    fn the_mocks_limit_headers_read_back() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let limits = bifrost_mock::MockLimits {
                requests_per_minute: Some(3),
                tokens_per_minute: Some(1000),
                window_ms: None,
            };
            let srv = bifrost_mock::MockServer::start(bifrost_mock::MockConfig { limits, ..Default::default() })
                .await
                .expect("mock");
            // Two words of prompt plus max_tokens 10: 12 tokens a request.
            let body = r#"{"model":"m","messages":[{"role":"user","content":"hello there"}],"max_tokens":10}"#;
            let auth = "authorization: Bearer mock-key\r\n";
            let mut seen = Vec::new();
            for _ in 0..2 {
                let (status, h) = post(srv.addr(), "/v1/chat/completions", auth, body).await;
                assert_eq!(status, 200, "{h:?}");
                seen.push(observed(&h));
            }
            assert_eq!(seen[1].requests.and_then(|w| w.remaining), Some(1));
            assert_eq!(seen[1].tokens.and_then(|w| w.remaining), Some(1000 - 24));
            assert!(
                seen[1].tokens.and_then(|w| w.reset_ms).is_some_and(|r| r > 50_000 && r <= 60_000),
                "{:?}",
                seen[1]
            );
            let anthropic = "x-api-key: mock-key\r\nanthropic-version: 2023-06-01\r\n";
            let (status, h) = post(srv.addr(), "/v1/messages", anthropic, body).await;
            assert_eq!(status, 200, "{h:?}");
            let o = observed(&h);
            assert_eq!(o.requests.and_then(|w| w.remaining), Some(0));
            assert!(o.requests.and_then(|w| w.reset_ms).is_some_and(|r| r > 50_000 && r <= 61_000), "{o:?}");
            let (status, h) = post(srv.addr(), "/v1/chat/completions", auth, body).await;
            assert_eq!(status, 429, "{h:?}");
            let o = observed(&h);
            assert!(o.retry_after_ms.is_some_and(|r| r > 50_000 && r <= 61_000), "{o:?}");
            assert_eq!(o.requests.and_then(|w| w.remaining), Some(0));
            assert_eq!(srv.admissions().len(), 3);
            assert_eq!(srv.rate_limited(), 1);
        });
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, rng_seed: proptest::test_runner::RngSeed::Fixed(0x11d7), ..ProptestConfig::default() })]

        /// Arbitrary names and values never panic and never yield a reset
        /// beyond the cap.
        #[test]
        fn arbitrary_headers_never_panic(pairs in proptest::collection::vec((".{0,40}", ".{0,70}"), 0..12), now in any::<u64>()) {
            let o = observe(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())), now);
            for w in [o.requests, o.tokens, o.input_tokens, o.output_tokens].into_iter().flatten() {
                prop_assert!(w.reset_ms.is_none_or(|r| r <= MAX_RESET_MS));
            }
            prop_assert!(o.retry_after_ms.is_none_or(|r| r <= MAX_RESET_MS));
        }

        /// Known-good header shapes with arbitrary field values parse to
        /// what they say.
        #[test]
        fn well_formed_values_mean_what_they_say(
            remaining in any::<u64>(), m in 0u64..60, s in 0u64..60, ms in 0u64..1000,
            (y, mo, d) in (1970i64..2100, 1i64..=12, 1i64..=28), (h, mi, sec) in (0i64..24, 0i64..60, 0i64..60),
        ) {
            let reset = format!("{m}m{s}.{ms:03}s");
            let rem = remaining.to_string();
            let o = observe([("x-ratelimit-remaining-tokens", rem.as_str()), ("x-ratelimit-reset-tokens", reset.as_str())], 0);
            prop_assert_eq!(o.tokens, Some(Window { remaining: Some(remaining), reset_ms: Some(m * 60_000 + s * 1000 + ms) }));
            let at = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}Z");
            let expect = (days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec) as u64 * 1000;
            prop_assert_eq!(rfc3339_unix_ms(&at), Some(expect));
            let o = observe([("anthropic-ratelimit-output-tokens-reset", at.as_str())], expect.saturating_sub(5000));
            prop_assert_eq!(o.output_tokens.and_then(|w| w.reset_ms), Some(5000.min(expect)));
        }
    }
}
