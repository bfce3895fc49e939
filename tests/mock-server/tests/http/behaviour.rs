//! Directives, stats, aborts and hangs.

use std::time::{Duration, Instant};

use bifrost_mock::{Directives, MockConfig, MockServer};
use serde_json::{json, Value};

use crate::common::*;

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello there"}]})
}

#[tokio::test]
async fn fail_first_counts_per_scenario() {
    let s = server().await;
    let model = "gpt~fail_first=2&scenario=s1&fail_status=503";
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(post_json(s.addr(), "/v1/chat/completions", &[OPENAI_AUTH], &chat(model, false)).await.status);
    }
    assert_eq!(statuses, [503, 503, 200, 200]);
    // Another scenario has its own count; default status 500.
    let r = post_json(
        s.addr(),
        "/v1/chat/completions",
        &[OPENAI_AUTH, ("x-mock", "fail_first=1&scenario=s2")],
        &chat("gpt", false),
    )
    .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"]["type"], "server_error");
    let st = s.stats();
    assert_eq!(st.by_scenario.get("s1"), Some(&4));
    assert_eq!(st.by_scenario.get("s2"), Some(&1));
    assert_eq!(st.requests, 5);
    // Reset zeroes the scenario counts, so the scenario fails again.
    s.reset();
    assert_eq!(s.stats(), bifrost_mock::MockStats::default());
    let r = post_json(s.addr(), "/v1/chat/completions", &[OPENAI_AUTH], &chat(model, false)).await;
    assert_eq!(r.status, 503);
}

#[tokio::test]
async fn retry_after_on_429() {
    let s = server().await;
    let r = post_json(
        s.addr(),
        "/v1/chat/completions",
        &[OPENAI_AUTH, ("x-mock", "fail_status=429&retry_after=3")],
        &chat("gpt", false),
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("3"));
    assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
    let r = post_json(
        s.addr(),
        "/v1/messages",
        &[("x-api-key", "mock-key"), ("anthropic-version", "2023-06-01"), ("x-mock", "fail_status=429&retry_after=2")],
        &json!({"model": "c", "max_tokens": 5, "messages": []}),
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("2"));
    // Not on other statuses.
    let r = post_json(
        s.addr(),
        "/v1/chat/completions",
        &[OPENAI_AUTH, ("x-mock", "fail_status=503&retry_after=3")],
        &chat("gpt", false),
    )
    .await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), None);
}

#[tokio::test]
async fn fail_rate_zero_never_fails_and_header_overrides_model() {
    let s = server().await;
    let r =
        post_json(s.addr(), "/v1/chat/completions", &[OPENAI_AUTH], &chat("gpt~fail_status=500&fail_rate=0", false))
            .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["model"], "gpt", "the part before ~ is echoed");
    let r = post_json(
        s.addr(),
        "/v1/chat/completions",
        &[OPENAI_AUTH, ("x-mock", "fail_rate=0")],
        &chat("gpt~fail_status=500", false),
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn truncate_after_drops_the_terminal_event() {
    let s = server().await;
    let r =
        post_json(s.addr(), "/v1/chat/completions", &[OPENAI_AUTH], &chat("gpt~chunks=4&truncate_after=2", true)).await;
    assert_eq!(r.status, 200);
    let events = parse_sse(&r.body);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events.iter().all(|e| e.data != "[DONE]" && !e.data.contains("\"finish_reason\":\"stop\"")));

    let r = post_json(s.addr(), "/v1/messages", &anthropic_headers(),
        &json!({"model": "c~chunks=4&truncate_after=1", "max_tokens": 50, "stream": true, "messages": [{"role": "user", "content": "x y"}]})).await;
    let names: Vec<String> = parse_sse(&r.body).into_iter().map(|e| e.event.unwrap()).collect();
    assert_eq!(names, ["message_start", "content_block_start", "ping", "content_block_delta"]);
    let st = s.stats();
    assert_eq!((st.streams_started, st.streams_completed, st.streams_aborted_by_client), (2, 2, 0));
}

#[tokio::test]
async fn openai_mid_stream_error() {
    let s = server().await;
    let r =
        post_json(s.addr(), "/v1/chat/completions", &[OPENAI_AUTH], &chat("gpt~chunks=4&stream_error_after=1", true))
            .await;
    let events = parse_sse(&r.body);
    assert_eq!(events.len(), 2);
    let err: Value = serde_json::from_str(&events[1].data).unwrap();
    assert_eq!(err["error"]["type"], "server_error");
    assert!(events.iter().all(|e| e.data != "[DONE]"));
}

#[tokio::test]
async fn client_drop_counts_as_aborted() {
    let s = server().await;
    let body = chat("gpt~chunks=50&chunk_delay_ms=20", true).to_string();
    let mut st = open(s.addr(), "POST", "/v1/chat/completions", &[OPENAI_AUTH], body.as_bytes()).await;
    assert_eq!(st.status, 200);
    assert!(st.header("content-type").unwrap().starts_with("text/event-stream"));
    let first = st.next_chunk().await.expect("a first chunk");
    assert!(first.starts_with(b"data: "));
    wait_for(&s, "one active stream", |x| x.active_streams == 1).await;
    drop(st);
    wait_for(&s, "the aborted stream", |x| x.streams_aborted_by_client == 1).await;
    let x = s.stats();
    assert_eq!((x.streams_started, x.streams_completed, x.active_streams), (1, 0, 0));
}

#[tokio::test]
async fn unknown_directive_is_400_naming_it() {
    let s = server().await;
    let r = post_json(
        s.addr(),
        "/v1/chat/completions",
        &[OPENAI_AUTH, ("x-mock", "latency_ms=1&explode=1")],
        &chat("gpt", false),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("'explode'"), "{}", r.text());
    let r = post_json(
        s.addr(),
        "/v1/messages",
        &anthropic_headers(),
        &json!({"model": "c~bogus=2", "max_tokens": 5, "messages": []}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert!(r.text().contains("'bogus'"));
    let r = post_json(s.addr(), "/v1/chat/completions", &[OPENAI_AUTH], &chat("gpt~latency_ms=soon", false)).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("latency_ms"));
    let r = post_json(s.addr(), "/v1/chat/completions", &[OPENAI_AUTH], &chat("gpt~fail_first=1", false)).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("scenario"));
}

#[tokio::test]
async fn latency_and_defaults_from_config() {
    let defaults = Directives::parse("latency_ms=60").unwrap();
    let s = MockServer::start(MockConfig { api_keys: vec!["k1".into(), "k2".into()], defaults, ..Default::default() })
        .await
        .unwrap();
    let t = Instant::now();
    let r = post_json(s.addr(), "/v1/chat/completions", &[("authorization", "Bearer k2")], &chat("gpt", false)).await;
    assert_eq!(r.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(60), "{:?}", t.elapsed());
    let r = post_json(s.addr(), "/v1/chat/completions", &[OPENAI_AUTH], &chat("gpt", false)).await;
    assert_eq!(r.status, 401, "mock-key is not accepted when keys are configured");
    // A request can override the default.
    let t = Instant::now();
    let r = post_json(
        s.addr(),
        "/v1/chat/completions",
        &[("authorization", "Bearer k1"), ("x-mock", "latency_ms=0")],
        &chat("gpt", false),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(t.elapsed() < Duration::from_millis(60));
}

#[tokio::test]
async fn hang_never_answers_and_drop_stops_the_server() {
    let s = server().await;
    let addr = s.addr();
    let hung = tokio::spawn(async move {
        post_json(addr, "/v1/chat/completions", &[OPENAI_AUTH, ("x-mock", "hang=1")], &chat("gpt", false)).await.status
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!hung.is_finished(), "a hung request gets no answer");
    // Others are still served meanwhile.
    let r = post_json(addr, "/v1/chat/completions", &[OPENAI_AUTH], &chat("gpt", false)).await;
    assert_eq!(r.status, 200);
    drop(s);
    // Dropping the server closes the hung connection (the helper then fails reading the head).
    let res = tokio::time::timeout(Duration::from_secs(5), hung).await.expect("hung connection closed on drop");
    assert!(res.is_err(), "the helper panics on a closed connection");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "listener closed");
}

#[tokio::test]
async fn stats_and_reset_over_http() {
    let s = server().await;
    post_json(s.addr(), "/v1/chat/completions", &[OPENAI_AUTH, ("x-mock", "scenario=a")], &chat("gpt", true)).await;
    let v = request(s.addr(), "GET", "/_mock/stats", &[], b"").await.json();
    assert_eq!(
        v,
        json!({"requests": 1,
               "by_route": {"openai.chat": 1, "openai.embeddings": 0, "anthropic.messages": 0,
                            "bedrock.converse": 0, "bedrock.converse_stream": 0},
               "by_scenario": {"a": 1},
               "streams_started": 1, "streams_completed": 1, "streams_aborted_by_client": 0, "active_streams": 0,
               "open_requests": 0, "max_open_requests": 1})
    );
    let parsed: bifrost_mock::MockStats = serde_json::from_value(v).unwrap();
    assert_eq!(parsed, s.stats());
    let r = request(s.addr(), "POST", "/_mock/reset", &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(s.stats(), bifrost_mock::MockStats::default());
    assert_eq!(request(s.addr(), "GET", "/nope", &[], b"").await.status, 404);
}
