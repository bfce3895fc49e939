//! Until a stream's first content reaches the caller, its failures are
//! the policy's to handle, invisibly (docs/failover.md): a slow first
//! token ends the attempt at `first_token_timeout_ms` when that leads
//! somewhere, an error before the first content is retried or sent to the
//! fallback, and a unary call can bound its wait for the response head.
//! Judged by bifrost-mock's per-scenario request counts, over loopback HTTP.

use std::time::{Duration, Instant};

use bifrost_core::{ChunkStream, Error, ErrorKind, Gateway, Request, TimeoutPhase};
use bifrost_mock::{MockConfig, MockServer};
use serde_json::{json, Value};

fn gateway(srv: &MockServer, failover: Value) -> Gateway {
    let url = srv.url();
    let net = json!({"base_url": format!("{url}/v1"), "max_retries": 2,
                     "retry_backoff_initial_ms": 1, "retry_backoff_max_ms": 2});
    Gateway::from_value(json!({"providers": {
        "openai": {"keys": [{"value": "mock-key", "models": ["*"]}], "network_config": net, "failover": failover},
        "anthropic": {"keys": [{"value": "mock-key", "models": ["*"]}],
                      "network_config": {"base_url": url, "max_retries": 2,
                                         "retry_backoff_initial_ms": 1, "retry_backoff_max_ms": 2}},
    }}))
    .expect("gateway")
}

fn seen(srv: &MockServer, scenario: &str) -> u64 {
    srv.stats().by_scenario.get(scenario).copied().unwrap_or(0)
}

async fn text_of(mut s: ChunkStream) -> Result<String, Error> {
    let mut text = String::new();
    while let Some(c) = s.next_chunk().await {
        for choice in c?.choices {
            text.push_str(choice.delta.content.as_deref().unwrap_or(""));
        }
    }
    Ok(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_first_token_goes_to_the_fallback_at_its_bound() {
    let srv = MockServer::start(MockConfig::default()).await.expect("mock");
    let gw = gateway(&srv, json!({"first_token_timeout_ms": 200}));
    let started = Instant::now();
    // The primary's first token would come after 10 minutes.
    let mut r = Request::new("openai/m~first_chunk_delay_ms=600000&scenario=slow", "one two three");
    r.fallbacks = vec!["anthropic/claude~scenario=slow-fallback".into()];
    let s = gw.stream(r).await.expect("the fallback streams");
    assert_eq!(s.fallback_index(), 1);
    assert_eq!(text_of(s).await.expect("complete"), "echo: one two three");
    assert!(started.elapsed() < Duration::from_secs(60), "ended near its bound: {:?}", started.elapsed());
    assert_eq!((seen(&srv, "slow"), seen(&srv, "slow-fallback")), (1, 1), "no retry of a slow route by default");
    // The slow attempt's connection was closed, not left open.
    let deadline = Instant::now() + Duration::from_secs(30);
    while srv.stats().open_requests > 0 || srv.stats().active_streams > 0 {
        assert!(Instant::now() < deadline, "the timed-out attempt's stream is still open: {:?}", srv.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(srv.stats().streams_aborted_by_client, 1);
    // The gateway serves the next call.
    let s = gw.stream(Request::new("openai/m", "next")).await.expect("next");
    assert_eq!(text_of(s).await.unwrap(), "echo: next");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nowhere_to_go_a_slow_first_token_is_waited_for() {
    let srv = MockServer::start(MockConfig::default()).await.expect("mock");
    // first_token_timeout 50 ms, action fallback, but no fallback: not armed.
    let gw = gateway(&srv, json!({"first_token_timeout_ms": 50}));
    let s = gw.stream(Request::new("openai/m~first_chunk_delay_ms=300&scenario=patient", "a b")).await.expect("waited");
    assert_eq!(text_of(s).await.unwrap(), "echo: a b");
    assert_eq!(seen(&srv, "patient"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_first_token_timeout_retry_tries_the_same_provider_again() {
    let srv = MockServer::start(MockConfig::default()).await.expect("mock");
    let gw = gateway(&srv, json!({"first_token_timeout_ms": 200, "on_first_token_timeout": "retry"}));
    let r = Request::new("openai/m~first_chunk_delay_ms=600000&fail_first=1&scenario=again", "x y");
    let s = gw.stream(r).await.expect("the retry streams");
    assert_eq!(text_of(s).await.unwrap(), "echo: x y");
    assert_eq!(seen(&srv, "again"), 2);
    assert_eq!(gw.stats().providers["openai"].jobs.retries, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_before_the_first_content_is_retried_invisibly() {
    let srv = MockServer::start(MockConfig::default()).await.expect("mock");
    let gw = gateway(&srv, json!({}));
    // An in-stream 500 before any content, once: a server error, retried.
    let r = Request::new("openai/m~stream_error_after=0&fail_first=1&scenario=early", "p q");
    assert_eq!(text_of(gw.stream(r).await.expect("retried")).await.unwrap(), "echo: p q");
    assert_eq!(seen(&srv, "early"), 2);
    // Cut before any content (a protocol failure): the fallback, at once.
    let mut r = Request::new("openai/m~truncate_after=0&scenario=cut0", "p q");
    r.fallbacks = vec!["anthropic/claude~scenario=cut0-fallback".into()];
    let s = gw.stream(r).await.expect("the fallback streams");
    assert_eq!((s.fallback_index(), text_of(s).await.unwrap().as_str()), (1, "echo: p q"));
    assert_eq!((seen(&srv, "cut0"), seen(&srv, "cut0-fallback")), (1, 1));
    // Without a fallback that failure is the call's error, never a silent end.
    let e = gw.stream(Request::new("openai/m~truncate_after=0", "p q")).await.expect_err("cut");
    assert_eq!(e.kind(), ErrorKind::Protocol);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unary_call_bounds_its_wait_for_the_response_head() {
    let srv = MockServer::start(MockConfig::default()).await.expect("mock");
    let gw = gateway(&srv, json!({"headers_timeout_ms": 200}));
    let mut r = Request::new("openai/m~latency_ms=600000&scenario=head", "h");
    r.fallbacks = vec!["anthropic/claude~scenario=head-fallback".into()];
    let resp = gw.chat(r).await.expect("the fallback answers");
    assert_eq!(resp.extra_fields.fallback_index, 1);
    assert_eq!((seen(&srv, "head"), seen(&srv, "head-fallback")), (1, 1));
    // The timed-out attempt's request was closed, not left waiting.
    let deadline = Instant::now() + Duration::from_secs(30);
    while srv.stats().open_requests > 0 {
        assert!(Instant::now() < deadline, "the timed-out request is still open: {:?}", srv.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The request's own failover wins: on_first_token_timeout return.
    let mut r = Request::new("openai/m~latency_ms=600000&scenario=head2", "h");
    r.fallbacks = vec!["anthropic/claude~scenario=head2-fallback".into()];
    r.failover = Some(serde_json::from_value(json!({"on_first_token_timeout": "return"})).unwrap());
    let e = gw.chat(r).await.expect_err("returned");
    assert!(matches!(e.primary(), Error::Timeout { phase: TimeoutPhase::FirstToken, timeout_ms: 200, .. }), "{e:?}");
    assert!(e.to_string().contains("first token within 200 ms"), "{e}");
    assert_eq!((seen(&srv, "head2"), seen(&srv, "head2-fallback")), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_its_terminator_is_complete_after_its_finish() {
    let srv = MockServer::start(MockConfig::default()).await.expect("mock");
    let gw = gateway(&srv, json!({}));
    for model in ["openai/m~terminator=0", "anthropic/claude~terminator=0"] {
        let s = gw.stream(Request::new(model, "end")).await.expect(model);
        assert_eq!(text_of(s).await.expect(model), "echo: end", "{model}");
    }
}

#[test]
fn first_token_bounds_are_bounded() {
    for bad in [
        json!({"first_token_timeout_ms": 3_600_001}),
        json!({"commit_after_chars": 0}),
        json!({"headers_timeout_ms": u64::MAX}),
    ] {
        let cfg = json!({"providers": {"openai": {"keys": [{"value": "k", "models": ["*"]}], "failover": bad}}});
        let e = Gateway::from_value(cfg).expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    }
}
