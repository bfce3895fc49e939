//! Providers that misbehave on purpose, over real loopback HTTP (docs/architecture.md §13):
//! redirects to another host, error bodies that echo the key, absurd
//! `Retry-After` values, bodies and events past their bounds, streams that
//! end without `[DONE]`, 200s that are not completions, attempt timeouts.
//!
//! The upstream is a tiny raw-HTTP server written here (`Upstream`), so a
//! test controls every byte and sees every request and every closed
//! connection. Nothing depends on timing except upper bounds on waits that
//! the old code exceeded by days, and one lower bound on a sleep.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bifrost_core::{ErrorKind, Gateway, Request};
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request the upstream received.
#[derive(Clone, Debug)]
struct Seen {
    head: String,
    body: String,
    at: Instant,
}

/// What the upstream does with request number `n` (0-based).
type Respond = Arc<dyn Fn(usize, &Seen, &mut Vec<Vec<u8>>) + Send + Sync>;

#[derive(Default)]
struct Log {
    requests: Vec<Seen>,
    /// When a connection was closed by the client.
    closed: Vec<Instant>,
    /// Bytes written before the client went away, per connection.
    written: Vec<usize>,
}

struct Upstream {
    port: u16,
    log: Arc<Mutex<Log>>,
}

impl Upstream {
    /// Starts a server whose responses are `respond`'s byte pieces
    /// (written one by one; an empty piece means "stop writing and hold the
    /// connection open until the client closes it").
    async fn start(respond: impl Fn(usize, &Seen, &mut Vec<Vec<u8>>) + Send + Sync + 'static) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let log: Arc<Mutex<Log>> = Arc::default();
        let respond: Respond = Arc::new(respond);
        let l = log.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve(sock, l.clone(), respond.clone()));
            }
        });
        Upstream { port, log }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> Vec<Seen> {
        self.log.lock().requests.clone()
    }
}

async fn serve(mut sock: TcpStream, log: Arc<Mutex<Log>>, respond: Respond) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        // One request: head, then Content-Length bytes of body.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            match sock.read(&mut tmp).await {
                Ok(0) | Err(_) => {
                    log.lock().closed.push(Instant::now());
                    return;
                }
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let len = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        while buf.len() < head_end + 4 + len {
            match sock.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buf[head_end + 4..head_end + 4 + len]).into_owned();
        buf.drain(..head_end + 4 + len);
        let seen = Seen { head, body, at: Instant::now() };
        let n = {
            let mut l = log.lock();
            l.requests.push(seen.clone());
            l.requests.len() - 1
        };
        let mut pieces = Vec::new();
        respond(n, &seen, &mut pieces);
        let mut written = 0usize;
        for p in pieces {
            if p.is_empty() {
                // Hold the connection until the client closes it.
                loop {
                    match sock.read(&mut tmp).await {
                        Ok(0) | Err(_) => {
                            let mut l = log.lock();
                            l.closed.push(Instant::now());
                            l.written.push(written);
                            return;
                        }
                        Ok(_) => {}
                    }
                }
            }
            if sock.write_all(&p).await.is_err() {
                let mut l = log.lock();
                l.closed.push(Instant::now());
                l.written.push(written);
                return;
            }
            written += p.len();
        }
        log.lock().written.push(written);
    }
}

fn http(status: &str, headers: &[(&str, String)], body: &str) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out.into_bytes()
}

/// A chunked response head; pieces follow as [`chunk`]s.
fn chunked_head(status: &str, content_type: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n").into_bytes()
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

const COMPLETION: &str = r#"{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;

const SECRET: &str = "sk-live-0123456789abcdefSECRET";
const HEADER_SECRET: &str = "hdr-secret-value-987654";

fn gateway(kind: &str, base: &str, network: serde_json::Value) -> Gateway {
    let mut net = json!({"base_url": base, "extra_headers": {"x-team-token": HEADER_SECRET}});
    for (k, v) in network.as_object().expect("object") {
        net[k] = v.clone();
    }
    Gateway::from_value(json!({"providers": {"p": {"kind": kind, "keys": [{"value": SECRET, "models": ["*"]}], "network_config": net}}}))
        .expect("gateway")
}

fn request() -> Request {
    Request::new("p/m", "hello")
}

/// Fails the test instead of hanging it when a wait is unbounded.
async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(60), f).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: still waiting after 60 s (an unbounded wait)"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed_and_never_carry_credentials_to_another_origin() {
    let other = Upstream::start(|_, _, out| out.push(http("200 OK", &[], COMPLETION))).await;
    let target = format!("{}/v1/messages", other.url());
    let origin = Upstream::start(move |_, seen, out| {
        if seen.head.starts_with("POST /same") {
            out.push(http("200 OK", &[("content-type", "application/json".into())], COMPLETION));
        } else if seen.head.contains("x-same: 1") {
            out.push(http("307 Temporary Redirect", &[("location", "/same/chat/completions".into())], ""));
        } else {
            out.push(http("307 Temporary Redirect", &[("location", target.clone())], ""));
        }
    })
    .await;
    for kind in ["openai", "anthropic"] {
        for follow in [false, true] {
            let gw = gateway(kind, &origin.url(), json!({"follow_redirects": follow}));
            let e = bounded("redirect", gw.chat(request())).await.expect_err("a cross-origin 307 is an error");
            assert_eq!((e.kind(), e.status()), (ErrorKind::Provider, Some(307)), "{kind} follow={follow}: {e}");
            assert!(e.to_string().contains("not followed"), "{e}");
            assert!(!e.to_string().contains("/v1/messages"), "the path of the target is not quoted: {e}");
        }
    }
    assert!(other.requests().is_empty(), "the other origin got {:?}", other.requests());

    // Same origin, opted in: followed, with the credentials (same host).
    let gw = gateway(
        "openai",
        &origin.url(),
        json!({"follow_redirects": true, "extra_headers": {"x-team-token": HEADER_SECRET, "x-same": "1"}}),
    );
    let resp = bounded("same-origin redirect", gw.chat(request())).await.expect("same-origin redirect is followed");
    assert_eq!(resp.text(), Some("hi"));
    let followed = origin.requests().into_iter().rfind(|s| s.head.starts_with("POST /same")).expect("followed");
    assert!(followed.head.contains(HEADER_SECRET), "same origin keeps its headers");
    assert!(followed.body.contains("hello"), "and its body: {}", followed.body);
    // Not opted in: even a same-origin redirect is an error.
    let gw = gateway("openai", &origin.url(), json!({"extra_headers": {"x-same": "1"}}));
    assert_eq!(bounded("redirect", gw.chat(request())).await.expect_err("no redirects").status(), Some(307));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_text_that_echoes_a_secret_is_redacted_everywhere() {
    // The error body quotes the whole request head (both secrets in it).
    let up = Upstream::start(|_, seen, out| {
        let body = json!({"error": {"message": format!("bad credentials: {}", seen.head)}}).to_string();
        out.push(http("401 Unauthorized", &[("content-type", "application/json".into())], &body));
    })
    .await;
    for kind in ["openai", "anthropic"] {
        let gw = gateway(kind, &up.url(), json!({}));
        let e = bounded("401", gw.chat(request())).await.expect_err("401");
        let health = serde_json::to_string(&gw.health()).expect("health");
        for text in [e.to_string(), format!("{e:?}"), e.body().unwrap_or_default().to_string(), health] {
            assert!(!text.contains(SECRET) && !text.contains(HEADER_SECRET), "{kind}: a secret leaked: {text}");
            assert!(!text.contains("0123456789abcdef"), "{kind}: part of the key leaked: {text}");
        }
        assert!(e.body().unwrap_or_default().contains("***"), "{kind}: the body is kept, masked: {:?}", e.body());
    }
    assert!(up.requests()[0].head.contains(SECRET), "the test's upstream did receive the key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_bounded_without_a_deadline() {
    for retry_after in ["999999", "1e30", "184467440737095516160000", "Fri, 31 Dec 9999 23:59:59 GMT"] {
        let ra = retry_after.to_string();
        let up = Upstream::start(move |n, _, out| {
            if n == 0 {
                out.push(http("429 Too Many Requests", &[("retry-after", ra.clone())], "{}"));
            } else {
                out.push(http("200 OK", &[("content-type", "application/json".into())], COMPLETION));
            }
        })
        .await;
        // Backoff max 100 ms: a Retry-After pause is at most 1 s.
        let gw = gateway(
            "openai",
            &up.url(),
            json!({"max_retries": 1, "retry_backoff_initial_ms": 10, "retry_backoff_max_ms": 100}),
        );
        let resp = bounded(retry_after, gw.chat(request())).await.expect("the retry succeeds");
        assert_eq!(resp.extra_fields.attempts, 2, "{retry_after}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_past_the_deadline_ends_the_job_at_once_with_the_429() {
    let up =
        Upstream::start(|_, _, out| out.push(http("429 Too Many Requests", &[("retry-after", "3600".into())], "{}")))
            .await;
    let gw = gateway("openai", &up.url(), json!({"max_retries": 3}));
    let mut r = request();
    r.timeout_ms = Some(30_000);
    let e = bounded("429", gw.chat(r)).await.expect_err("429");
    assert_eq!((e.status(), e.retry_after_ms()), (Some(429), Some(3_600_000)), "{e}");
    assert_eq!(up.requests().len(), 1, "no retry can fit the deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_bodies_are_read_to_16_kib_and_the_rest_never() {
    // A 500 whose body never ends (1 MiB pieces, up to 512 MiB).
    let up = Upstream::start(|_, _, out| {
        out.push(chunked_head("500 Internal Server Error", "text/plain"));
        let piece = chunk(&vec![b'x'; 1 << 20]);
        for _ in 0..512 {
            out.push(piece.clone());
        }
        out.push(LAST_CHUNK.to_vec());
    })
    .await;
    let gw = gateway("openai", &up.url(), json!({}));
    let e = bounded("500", gw.chat(request())).await.expect_err("500");
    let body = e.body().unwrap_or_default();
    assert!(body.len() <= 16 * 1024 + 16 && body.ends_with("(truncated)"), "{} bytes", body.len());
    // The connection was dropped long before the server finished writing.
    let deadline = Instant::now() + Duration::from_secs(30);
    while up.log.lock().written.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let written = up.log.lock().written.clone();
    assert!(written.first().is_some_and(|w| *w < 64 << 20), "the client kept reading: {written:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_bodies_past_max_response_bytes_are_protocol_errors() {
    // Announced too large (Content-Length), and unannounced (chunked).
    let up = Upstream::start(|n, _, out| {
        if n % 2 == 0 {
            out.push(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", 100 << 20).into_bytes());
            out.push(Vec::new());
        } else {
            out.push(chunked_head("200 OK", "application/json"));
            let piece = chunk(&vec![b' '; 64 * 1024]);
            for _ in 0..64 {
                out.push(piece.clone());
            }
            out.push(LAST_CHUNK.to_vec());
        }
    })
    .await;
    let gw = gateway("openai", &up.url(), json!({"max_response_bytes": 1 << 20}));
    for case in ["content-length", "chunked"] {
        let e = bounded(case, gw.chat(request())).await.expect_err("too large");
        assert_eq!(e.kind(), ErrorKind::Protocol, "{case}: {e}");
        assert!(e.to_string().contains("max_response_bytes=1048576"), "{e}");
    }
}

/// One OpenAI SSE chunk event.
fn sse(content: Option<&str>, finish: Option<&str>, usage: bool) -> Vec<u8> {
    let mut c = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]});
    if let Some(t) = content {
        c["choices"][0]["delta"]["content"] = json!(t);
    }
    if usage {
        c["choices"] = json!([]);
        c["usage"] = json!({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3});
    }
    chunk(format!("data: {c}\n\n").as_bytes())
}

async fn collect(gw: &Gateway) -> Result<Vec<bifrost_core::Chunk>, bifrost_core::Error> {
    let mut s = gw.stream(request()).await?;
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        out.push(item?);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_with_finish_and_usage_is_complete_without_done() {
    // 0: finish + usage, no [DONE] → complete. 1: finish, no usage (asked
    // for by default) → PROTOCOL. 2: content only → PROTOCOL. 3: a stream
    // whose caller did not ask for usage, finish only → complete.
    let up = Upstream::start(|n, _, out| {
        out.push(chunked_head("200 OK", "text/event-stream"));
        out.push(sse(Some("Hel"), None, false));
        out.push(sse(Some("lo"), None, false));
        if n % 4 != 2 {
            out.push(sse(None, Some("stop"), false));
        }
        if n % 4 == 0 {
            out.push(sse(None, None, true));
        }
        out.push(LAST_CHUNK.to_vec());
    })
    .await;
    let gw = gateway("openai", &up.url(), json!({}));
    let chunks = bounded("stream", collect(&gw)).await.expect("finish + usage is complete");
    assert_eq!(chunks.len(), 4);
    assert_eq!(chunks.last().and_then(|c| c.usage.as_ref()).map(|u| u.total_tokens), Some(3));
    for case in ["finish without the usage asked for", "no finish"] {
        let e = bounded(case, collect(&gw)).await.expect_err(case);
        assert_eq!(e.kind(), ErrorKind::Protocol, "{case}: {e}");
    }
    let mut r = request();
    r.params.insert("stream_options".into(), json!({"include_usage": false}));
    let mut s = gw.stream(r).await.expect("open");
    let mut n = 0;
    while let Some(item) = s.next().await {
        item.expect("finish is enough when usage was not asked for");
        n += 1;
    }
    assert_eq!(n, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_events_past_max_event_bytes_are_protocol_errors_and_large_ones_parse() {
    // One 3 MiB event, sent in 16 KiB pieces, then a finish and [DONE].
    let up = Upstream::start(|_, _, out| {
        out.push(chunked_head("200 OK", "text/event-stream"));
        let big = "x".repeat(3 << 20);
        let event = sse(Some(&big), None, false);
        // Re-chunk the (already chunk-framed) event's payload in small pieces.
        let payload_start = event.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        let payload = &event[payload_start..event.len() - 2];
        for piece in payload.chunks(16 * 1024) {
            out.push(chunk(piece));
        }
        out.push(sse(None, Some("stop"), false));
        out.push(chunk(b"data: [DONE]\n\n"));
        out.push(LAST_CHUNK.to_vec());
    })
    .await;
    let gw = gateway("openai", &up.url(), json!({}));
    let chunks = bounded("3 MiB event", collect(&gw)).await.expect("a 3 MiB event is within the default 8 MiB");
    assert_eq!(chunks[0].choices[0].delta.content.as_ref().map(String::len), Some(3 << 20));
    let gw = gateway("openai", &up.url(), json!({"max_event_bytes": 1 << 20}));
    let e = bounded("bounded event", collect(&gw)).await.expect_err("past max_event_bytes");
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert!(e.to_string().contains("max_event_bytes=1048576"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_that_is_not_a_completion_is_protocol_and_not_retried() {
    let up = Upstream::start(|_, _, out| {
        out.push(http("200 OK", &[("content-type", "text/html".into())], "<html>captive portal</html>"))
    })
    .await;
    let gw = gateway("openai", &up.url(), json!({"max_retries": 3, "retry_backoff_initial_ms": 1}));
    let e = bounded("200 html", gw.chat(request())).await.expect_err("not a completion");
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert_eq!(up.requests().len(), 1, "a served 200 is not sent again");
    let st = gw.stats();
    assert_eq!(st.providers["p"].jobs.retries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_timeout_names_its_bound_and_closes_its_connection_before_the_backoff() {
    // Every request hangs; attempts are bounded at 1 s, two attempts with a
    // backoff of 3 s (±20 %) between them.
    let up = Upstream::start(|_, _, out| out.push(Vec::new())).await;
    let gw = gateway(
        "openai",
        &up.url(),
        json!({"default_request_timeout_in_seconds": 1, "max_retries": 1,
               "retry_backoff_initial_ms": 3000, "retry_backoff_max_ms": 3000}),
    );
    // A silent route is not retried by default (docs/failover.md); this
    // request asks for it.
    let mut r = request();
    r.failover = Some(serde_json::from_value(json!({"on_timeout": "retry"})).expect("failover"));
    let e = bounded("hang", gw.chat(r)).await.expect_err("timeout");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    let text = e.to_string();
    assert!(text.contains("default_request_timeout_in_seconds=1"), "{text}");
    assert!(!text.contains("timeout_ms"), "the request set no timeout_ms: {text}");
    let log = up.log.lock();
    assert_eq!(log.requests.len(), 2);
    let first_closed = log.closed.iter().min().copied().expect("the first connection was closed");
    // Closed during the backoff, not when the next attempt started.
    assert!(
        log.requests[1].at.duration_since(first_closed) >= Duration::from_secs(1),
        "closed {:?} before the retry",
        log.requests[1].at.duration_since(first_closed)
    );
}

#[test]
fn config_errors_never_quote_a_value_found_where_a_key_belongs() {
    for cfg in [
        json!({"providers": {"openai": {"keys": SECRET}}}),
        json!({"providers": {"openai": {"keys": [SECRET]}}}),
        json!({"providers": {"openai": {"keys": [{"value": SECRET, "models": ["*"]}], "network_config": {"extra_headers": SECRET}}}}),
        json!({"providers": {"openai": {"keys": [{"value": SECRET, "models": ["*"]}], "network_config": {"extra_headers": [SECRET]}}}}),
        json!({"providers": {"openai": {"keys": [{"value": {"value": SECRET, "nope": 1}}]}}}),
    ] {
        for e in [
            Gateway::from_value(cfg.clone()).map(drop).expect_err("invalid"),
            Gateway::from_json(&cfg.to_string()).map(drop).expect_err("invalid"),
        ] {
            assert_eq!(e.kind(), ErrorKind::Config, "{e}");
            assert!(!e.to_string().contains("0123456789"), "{cfg}: {e}");
            assert!(!format!("{e:?}").contains("0123456789"), "{cfg}: {e:?}");
        }
    }
}

#[test]
fn json_text_is_strict_about_trailing_characters_and_duplicate_keys() {
    let ok = r#"{"providers": {"a": {"kind": "mock"}}}"#;
    assert!(Gateway::from_json(ok).is_ok());
    let dup = r#"{"providers": {"a": {"kind": "mock"}, "a": {"kind": "mock", "mock": {"failure_rate": 1}}}}"#;
    let e = Gateway::from_json(dup).map(drop).expect_err("duplicate provider");
    assert!(e.to_string().contains("duplicate key `a`"), "{e}");
    assert!(Gateway::from_json(&format!("{ok} trailing")).is_err());
    let r = r#"{"model": "a/m", "messages": [{"role": "user", "content": "x"}]}"#;
    assert!(Request::from_json(r).is_ok());
    for bad in [
        format!("{r} x"),
        format!("{r}{{}}"),
        r#"{"model": "a/m", "model": "b/m", "messages": [{"role": "user", "content": "x"}]}"#.to_string(),
        r#"{"model": "a/m", "messages": [{"role": "user", "content": "x"}], "params": {"t": 1, "t": 2}}"#.to_string(),
        format!(r#"{{"model": "a/m", "messages": [], "params": {{"x": {}{}}}}}"#, "[".repeat(5000), "]".repeat(5000)),
    ] {
        let e = Request::from_json(&bad).err().unwrap_or_else(|| panic!("accepted: {bad:.80}"));
        assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{e}");
    }
}
