//! The HTTP providers (OpenAI, Anthropic, Bedrock) against the project's
//! mock provider server over real loopback HTTP: unary, streams, embeddings,
//! error mapping, auth, timeouts, truncated and cancelled streams, and a
//! soak with the accounting invariant.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bifrost_core::{ErrorKind, Gateway, Request};
use bifrost_mock::{MockConfig, MockServer};
use futures_util::StreamExt;
use serde_json::json;

const PROVIDERS: [&str; 3] = ["openai", "anthropic", "bedrock"];

/// A gateway with all three HTTP providers pointed at `server`.
fn gateway_for(server: &MockServer, key: &str, extra: serde_json::Value) -> Gateway {
    let url = server.url();
    let mut providers = json!({
        "openai": {"keys": [{"value": key, "models": ["*"]}], "network_config": {"base_url": format!("{url}/v1")}},
        "anthropic": {"keys": [{"value": key, "models": ["*"]}], "network_config": {"base_url": url}},
        "bedrock": {"keys": [{"models": ["*"], "bedrock_key_config": {"access_key": key, "secret_key": "mock-secret", "region": "us-east-1"}}],
                    "network_config": {"base_url": url}},
    });
    for p in PROVIDERS {
        for (k, v) in extra.as_object().unwrap() {
            if k == "network_config" {
                for (nk, nv) in v.as_object().unwrap() {
                    providers[p]["network_config"][nk] = nv.clone();
                }
            } else {
                providers[p][k] = v.clone();
            }
        }
    }
    Gateway::from_value(json!({"providers": providers})).expect("gateway")
}

async fn server() -> MockServer {
    MockServer::start(MockConfig::default()).await.expect("mock server")
}

fn model(p: &str) -> &'static str {
    match p {
        "openai" => "gpt-4o-mini",
        "anthropic" => "claude-3-5-haiku-latest",
        _ => "anthropic.claude-3-haiku-20240307-v1:0",
    }
}

fn req(p: &str, directives: &str, text: &str) -> Request {
    let m = if directives.is_empty() { model(p).to_string() } else { format!("{}~{directives}", model(p)) };
    let mut r = Request::new(format!("{p}/{m}"), text);
    r.params.insert("max_tokens".into(), json!(64));
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_success_for_each_provider() {
    let srv = server().await;
    let gw = gateway_for(&srv, "mock-key", json!({}));
    for p in PROVIDERS {
        let mut r = req(p, "", "hello over http");
        r.messages.insert(0, bifrost_core::Message::new("system", "be brief"));
        let resp = gw.chat(r).await.unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(resp.text(), Some("echo: hello over http"), "{p}");
        assert_eq!(resp.object, "chat.completion");
        assert_eq!(resp.choices[0].finish_reason.as_deref(), Some("stop"), "{p}");
        assert_eq!(resp.usage.completion_tokens, 4, "{p}");
        assert!(resp.usage.prompt_tokens >= 3, "{p}: {:?}", resp.usage);
        assert_eq!(resp.usage.total_tokens, resp.usage.prompt_tokens + resp.usage.completion_tokens);
        assert_eq!(resp.extra_fields.provider, p);
        assert_eq!(resp.extra_fields.key_id.as_deref(), Some(format!("{p}#0").as_str()));
        assert_eq!(resp.extra_fields.attempts, 1);
    }
    let st = srv.stats();
    assert_eq!(
        (st.by_route.openai_chat, st.by_route.anthropic_messages, st.by_route.bedrock_converse),
        (1, 1, 1),
        "{st:?}"
    );
    let gst = gw.stats();
    assert!(gst.object_pools["request_buffer"].requests >= 3, "request bodies use the buffer pool");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_success_with_order_and_usage() {
    let srv = server().await;
    let gw = gateway_for(&srv, "mock-key", json!({}));
    for p in PROVIDERS {
        let mut s = gw.stream(req(p, "chunks=5", "one two three")).await.unwrap_or_else(|e| panic!("{p}: {e}"));
        let mut chunks = Vec::new();
        while let Some(c) = s.next().await {
            chunks.push(c.unwrap_or_else(|e| panic!("{p}: {e}")));
        }
        assert!(chunks.len() >= 5, "{p}: {} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.object == "chat.completion.chunk"));
        assert_eq!(chunks[0].choices[0].delta.role.as_deref(), Some("assistant"), "{p}: role first");
        let text: String =
            chunks.iter().flat_map(|c| c.choices.iter()).filter_map(|ch| ch.delta.content.clone()).collect();
        assert_eq!(text, "echo: one two three", "{p}");
        let finish: Vec<_> = chunks.iter().flat_map(|c| &c.choices).filter_map(|c| c.finish_reason.clone()).collect();
        assert_eq!(finish, vec!["stop".to_string()], "{p}: one finish reason");
        let usage = chunks.iter().rev().find_map(|c| c.usage.clone()).unwrap_or_else(|| panic!("{p}: no usage"));
        assert_eq!(usage.completion_tokens, 4, "{p}");
        let last_with_usage = chunks.iter().rposition(|c| c.usage.is_some()).unwrap();
        assert_eq!(last_with_usage, chunks.len() - 1, "{p}: usage comes last");
    }
    let st = srv.stats();
    assert_eq!(st.streams_completed, 3, "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_openai_and_refused_elsewhere() {
    let srv = server().await;
    let gw = gateway_for(&srv, "mock-key", json!({}));
    let e: bifrost_core::EmbedRequest = serde_json::from_value(
        json!({"model": "openai/text-embedding-3-small", "input": ["alpha", "beta"], "params": {"dimensions": 8}}),
    )
    .unwrap();
    let out = gw.embed(e).await.unwrap();
    assert_eq!(out.object, "list");
    assert_eq!(out.data.len(), 2);
    assert_eq!(out.data[1].index, 1);
    assert_eq!(out.data[0].embedding.as_floats().map(<[f64]>::len), Some(8));
    assert_eq!(out.extra_fields.provider, "openai");
    assert_eq!(srv.stats().by_route.openai_embeddings, 1);
    let e: bifrost_core::EmbedRequest =
        serde_json::from_value(json!({"model": "anthropic/claude", "input": "x"})).unwrap();
    let err = gw.embed(e).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert!(err.to_string().contains("no embeddings endpoint"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_map_to_provider_status_and_body() {
    let srv = server().await;
    let gw = gateway_for(&srv, "mock-key", json!({}));
    for p in PROVIDERS {
        for status in [400u16, 404, 500, 503] {
            let err = gw.chat(req(p, &format!("fail_status={status}"), "x")).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Provider, "{p} {status}: {err}");
            assert_eq!(err.status(), Some(status), "{p}: {err}");
            assert!(!err.body().unwrap_or("").is_empty(), "{p}: body kept");
            assert!(err.to_string().contains(&format!("HTTP {status}")), "{err}");
        }
    }
    let s = gw.stats();
    for p in PROVIDERS {
        assert_eq!(s.providers[p].jobs.failed, 4);
        assert_eq!(s.providers[p].keys[0].errors, 4);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failures_are_reported_without_the_key() {
    let srv = server().await;
    let gw = gateway_for(&srv, "wrong-key-SECRET", json!({}));
    for p in PROVIDERS {
        let err = gw.chat(req(p, "", "x")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Provider, "{p}: {err}");
        let expected = if p == "bedrock" { 403 } else { 401 };
        assert_eq!(err.status(), Some(expected), "{p}: {err}");
        assert!(err.to_string().contains("credentials exhausted"), "{p}: {err}");
        assert!(!err.to_string().contains("wrong-key-SECRET"), "{p}: key leaked: {err}");
        assert!(!format!("{err:?}").contains("wrong-key-SECRET"), "{p}: key leaked in Debug");
        let keys = &gw.stats().providers[p].keys;
        assert_eq!(keys[0].state, "cooldown", "{p}");
        // While the only key cools down, jobs fail at once without a call.
        let before = srv.stats().requests;
        let err = gw.chat(req(p, "", "x")).await.unwrap_err();
        assert!(err.to_string().contains("credentials exhausted"), "{err}");
        assert_eq!(srv.stats().requests, before, "{p}: no call with every key cooling down");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_per_attempt_and_per_request() {
    let srv = server().await;
    let gw = gateway_for(&srv, "mock-key", json!({"network_config": {"default_request_timeout_in_seconds": 1}}));
    for p in PROVIDERS {
        let started = Instant::now();
        let err = gw.chat(req(p, "hang=1", "x")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout, "{p}: {err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let mut r = req(p, "latency_ms=2000", "x");
        r.timeout_ms = Some(150);
        let err = gw.chat(r).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout, "{p}: {err}");
        assert!(err.to_string().contains("processing"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_and_failing_streams_are_errors() {
    let srv = server().await;
    let gw = gateway_for(&srv, "mock-key", json!({}));
    for p in PROVIDERS {
        for directive in ["chunks=6&truncate_after=2", "chunks=6&stream_error_after=2"] {
            let mut s = gw.stream(req(p, directive, "a b c d e f")).await.unwrap();
            let mut ok = 0;
            let mut err = None;
            while let Some(item) = s.next().await {
                match item {
                    Ok(_) => ok += 1,
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
            }
            let err = err.unwrap_or_else(|| panic!("{p} {directive}: the stream ended silently after {ok} chunks"));
            let expected = if directive.contains("truncate") { ErrorKind::Protocol } else { ErrorKind::Provider };
            assert_eq!(err.kind(), expected, "{p} {directive}: {err}");
            assert!(s.next().await.is_none(), "nothing after the error");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_stream_closes_the_upstream() {
    let srv = server().await;
    let gw = gateway_for(&srv, "mock-key", json!({}));
    for (i, p) in PROVIDERS.iter().enumerate() {
        let mut s = gw.stream(req(p, "chunks=50&chunk_delay_ms=20", "a b c d e f g h")).await.unwrap();
        s.next().await.unwrap().unwrap();
        s.next().await.unwrap().unwrap();
        drop(s);
        let started = Instant::now();
        while srv.stats().streams_aborted_by_client < i as u64 + 1 {
            assert!(started.elapsed() < Duration::from_secs(5), "{p}: server never saw the abort: {:?}", srv.stats());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(srv.stats().active_streams, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_idle_timeout_is_an_error() {
    let srv = server().await;
    let gw = gateway_for(&srv, "mock-key", json!({"network_config": {"stream_idle_timeout_in_seconds": 1}}));
    // The first chunk comes, then nothing (an idle stream before the first
    // content is the policy's to retry, invisibly: tests/first_token.rs).
    let mut r = req("openai", "chunks=3&stall_after=1", "a b c");
    r.failover = Some(serde_json::from_value(json!({"stream_recovery": "off"})).unwrap());
    let mut s = gw.stream(r).await.unwrap();
    let started = Instant::now();
    let mut err = None;
    while let Some(item) = s.next().await {
        if let Err(e) = item {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("idle stream must fail");
    assert!(err.to_string().contains("idle"), "{err}");
    assert!(started.elapsed() < Duration::from_millis(2500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_selection_by_model_and_weight() {
    let srv = MockServer::start(MockConfig { api_keys: vec!["k-a".into(), "k-b".into()], ..Default::default() })
        .await
        .unwrap();
    let url = format!("{}/v1", srv.url());
    let gw = Gateway::from_value(json!({"providers": {"openai": {
        "keys": [{"value": "k-a", "models": ["gpt-a"], "weight": 1.0},
                 {"value": "k-b", "models": ["gpt-b", "gpt-c"], "weight": 1.0},
                 {"value": "k-off", "models": ["gpt-c"], "weight": 5.0, "enabled": false}],
        "network_config": {"base_url": url}}}}))
    .unwrap();
    for _ in 0..5 {
        assert_eq!(
            gw.chat(Request::new("openai/gpt-a", "x")).await.unwrap().extra_fields.key_id.as_deref(),
            Some("openai#0")
        );
        assert_eq!(
            gw.chat(Request::new("openai/gpt-c", "x")).await.unwrap().extra_fields.key_id.as_deref(),
            Some("openai#1")
        );
    }
    let err = gw.chat(Request::new("openai/gpt-z", "x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert!(err.to_string().contains("gpt-z"), "{err}");
    let keys = &gw.stats().providers["openai"].keys;
    assert_eq!((keys[0].requests, keys[1].requests, keys[2].requests), (5, 5, 0));
}

/// 20k requests over HTTP at 256 in flight across the three providers,
/// with failures injected: every handle resolves, the invariant holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_20k_requests_at_256_concurrency() {
    let srv = server().await;
    let gw = Arc::new(gateway_for(
        &srv,
        "mock-key",
        json!({"concurrency_and_buffer_size": {"concurrency": 96, "buffer_size": 512}}),
    ));
    let total = 20_000usize;
    let in_flight = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let permit = in_flight.clone().acquire_owned().await.unwrap();
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            let p = PROVIDERS[i % 3];
            let directive = if i % 10 == 0 { "fail_status=500&fail_rate=0.5" } else { "" };
            let out = gw.chat(req(p, directive, "soak")).await;
            drop(permit);
            out.map(|_| ()).map_err(|e| e.kind())
        }));
    }
    let (mut ok, mut failed) = (0u64, 0u64);
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(60), t).await.expect("a request hung").unwrap() {
            Ok(()) => ok += 1,
            Err(ErrorKind::Provider) => failed += 1,
            Err(k) => panic!("unexpected error kind {k}"),
        }
    }
    assert_eq!(ok + failed, total as u64);
    assert!(failed > 500 && failed < 1500, "about 5% fail: {failed}");
    let st = gw.stats();
    let (mut completed, mut failed_stats) = (0, 0);
    for p in PROVIDERS {
        let j = st.providers[p].jobs;
        assert!(j.invariant_holds(), "{p}: {j:?}");
        assert_eq!((j.queued, j.running), (0, 0));
        completed += j.completed;
        failed_stats += j.failed;
    }
    assert_eq!((completed, failed_stats), (ok, failed));
    assert_eq!(srv.stats().requests, total as u64);
}
