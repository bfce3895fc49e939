//! Retries, Retry-After, key rotation and circuit breakers, against the
//! mock provider server, each scenario with its expected number of calls.

use std::time::{Duration, Instant};

use bifrost_core::{ErrorKind, Gateway, Request};
use bifrost_mock::{MockConfig, MockServer};
use serde_json::{json, Value};

async fn server(keys: &[&str]) -> MockServer {
    MockServer::start(MockConfig { api_keys: keys.iter().map(|k| k.to_string()).collect(), ..Default::default() })
        .await
        .expect("mock server")
}

/// One OpenAI provider at `srv` with `extra` merged into its config.
fn openai(srv: &MockServer, keys: Value, extra: Value) -> Gateway {
    let mut p = json!({
        "keys": keys,
        "network_config": {"base_url": format!("{}/v1", srv.url()), "max_retries": 3,
                           "retry_backoff_initial_ms": 1, "retry_backoff_max_ms": 5}
    });
    for (k, v) in extra.as_object().unwrap() {
        if k == "network_config" {
            for (nk, nv) in v.as_object().unwrap() {
                p["network_config"][nk] = nv.clone();
            }
        } else {
            p[k] = v.clone();
        }
    }
    Gateway::from_value(json!({"providers": {"openai": p}})).expect("gateway")
}

fn req(directives: &str) -> Request {
    Request::new(format!("openai/gpt-4o~{directives}"), "hello")
}

fn calls(srv: &MockServer, scenario: &str) -> u64 {
    srv.stats().by_scenario.get(scenario).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_429s_then_success_is_three_calls() {
    let srv = server(&["mock-key"]).await;
    let gw = openai(&srv, json!([{"value": "mock-key", "models": ["*"]}]), json!({}));
    let resp = gw.chat(req("fail_status=429&fail_first=2&scenario=a")).await.unwrap();
    assert_eq!(resp.extra_fields.attempts, 3);
    assert_eq!(calls(&srv, "a"), 3);
    let j = gw.stats().providers["openai"].jobs;
    assert_eq!((j.retries, j.completed, j.failed), (2, 1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_429_with_two_retries_is_three_calls_and_the_last_error() {
    let srv = server(&["mock-key"]).await;
    let gw =
        openai(&srv, json!([{"value": "mock-key", "models": ["*"]}]), json!({"network_config": {"max_retries": 2}}));
    let err = gw.chat(req("fail_status=429&scenario=b")).await.unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert_eq!(calls(&srv, "b"), 3);
    assert_eq!(gw.stats().providers["openai"].jobs.retries, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_retry_on_400_but_retry_on_503() {
    let srv = server(&["mock-key"]).await;
    let gw = openai(&srv, json!([{"value": "mock-key", "models": ["*"]}]), json!({}));
    let err = gw.chat(req("fail_status=400&scenario=c")).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(calls(&srv, "c"), 1, "a 400 is never retried");
    let resp = gw.chat(req("fail_status=503&fail_first=1&scenario=d")).await.unwrap();
    assert_eq!((resp.extra_fields.attempts, calls(&srv, "d")), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_on_connection_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let gw = Gateway::from_value(json!({"providers": {"openai": {
        "keys": [{"value": "k", "models": ["*"]}],
        "network_config": {"base_url": format!("http://127.0.0.1:{port}/v1"), "max_retries": 2,
                           "retry_backoff_initial_ms": 1, "retry_backoff_max_ms": 2}}}}))
    .unwrap();
    let err = gw.chat(Request::new("openai/gpt-4o", "x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Network, "{err}");
    assert!(err.to_string().to_lowercase().contains("connect"), "{err}");
    let st = gw.stats();
    assert_eq!(st.providers["openai"].jobs.retries, 2);
    assert_eq!(st.providers["openai"].keys[0].requests, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_within_the_deadline() {
    let srv = server(&["mock-key"]).await;
    // Without a deadline a Retry-After pause is capped at 10 × retry_backoff_max_ms
    // (docs/architecture.md §13): 200 ms allows the 1 s asked for.
    let gw = openai(
        &srv,
        json!([{"value": "mock-key", "models": ["*"]}]),
        json!({"network_config": {"retry_backoff_max_ms": 200}}),
    );
    let started = Instant::now();
    gw.chat(req("fail_status=429&fail_first=1&retry_after=1&scenario=e")).await.unwrap();
    let gap = started.elapsed();
    assert!(gap >= Duration::from_millis(1000), "waited {gap:?}, Retry-After said 1 s");
    assert!(gap < Duration::from_secs(20), "{gap:?}");
    // A Retry-After past the request deadline ends the job at once.
    let mut r = req("fail_status=429&fail_first=1&retry_after=5&scenario=f");
    r.timeout_ms = Some(800);
    let started = Instant::now();
    let err = gw.chat(r).await.unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert!(started.elapsed() < Duration::from_millis(700), "{:?}", started.elapsed());
    assert_eq!(calls(&srv, "f"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_rotates_to_another_key() {
    let srv = server(&["k-one", "k-two"]).await;
    let gw = openai(&srv, json!([{"value": "k-one", "models": ["*"]}, {"value": "k-two", "models": ["*"]}]), json!({}));
    for i in 0..10 {
        let scenario = format!("rot{i}");
        let resp = gw.chat(req(&format!("fail_status=429&fail_first=1&scenario={scenario}"))).await.unwrap();
        assert_eq!(resp.extra_fields.attempts, 2);
        assert_eq!(calls(&srv, &scenario), 2);
    }
    // Each rotation moved the retry to the key that had not failed.
    let keys = &gw.stats().providers["openai"].keys;
    assert_eq!(keys[0].requests + keys[1].requests, 20);
    assert_eq!(keys[0].errors + keys[1].errors, 10);
    assert_eq!(keys[0].requests - keys[0].errors + keys[1].requests - keys[1].errors, 10);
    assert!(keys.iter().all(|k| k.state == "alive"), "429 does not cool a key down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_cools_the_key_down_and_rotates() {
    let srv = server(&["good-key"]).await;
    let gw = openai(
        &srv,
        json!([{"value": "bad-key", "weight": 10.0, "models": ["*"]}, {"value": "good-key", "weight": 1.0, "models": ["*"]}]),
        json!({}),
    );
    for _ in 0..20 {
        let resp = gw.chat(req("scenario=g")).await.unwrap();
        assert_eq!(resp.extra_fields.key_id.as_deref(), Some("openai#1"));
    }
    let keys = &gw.stats().providers["openai"].keys;
    assert_eq!(keys[0].state, "cooldown");
    assert!(keys[0].cooldown_remaining_ms > 50_000);
    assert_eq!((keys[0].requests, keys[0].errors), (1, 1), "the rejected key is tried once, then skipped");
    assert_eq!(keys[1].requests, 20);
    assert!(gw.prometheus().contains("bifrost_key_cooldown{provider=\"openai\",key=\"openai#0\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_rejected_is_credentials_exhausted() {
    let srv = server(&["good-key"]).await;
    let gw = openai(&srv, json!([{"value": "bad-1", "models": ["*"]}, {"value": "bad-2", "models": ["*"]}]), json!({}));
    let err = gw.chat(req("scenario=h")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Provider);
    assert_eq!(err.status(), Some(401));
    assert!(err.to_string().contains("credentials exhausted"), "{err}");
    assert_eq!(calls(&srv, "h"), 0, "auth failures are not counted per scenario by the mock");
    let keys = &gw.stats().providers["openai"].keys;
    assert!(keys.iter().all(|k| k.state == "cooldown" && k.requests == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_fails_fast_half_opens_and_closes() {
    let srv = server(&["mock-key"]).await;
    let gw = openai(
        &srv,
        json!([{"value": "mock-key", "models": ["*"]}]),
        json!({"network_config": {"max_retries": 0},
               "circuit_breaker": {"failure_threshold": 3, "open_ms": 300, "half_open_probes": 1}}),
    );
    assert_eq!(gw.stats().providers["openai"].circuit.state, "closed");
    for _ in 0..3 {
        assert_eq!(gw.chat(req("fail_status=500&scenario=i")).await.unwrap_err().status(), Some(500));
    }
    let st = gw.stats();
    assert_eq!(
        (st.providers["openai"].circuit.state.as_str(), st.providers["openai"].circuit.opened_total),
        ("open", 1)
    );
    // Open: fails fast, no call reaches the provider.
    let before = srv.stats().requests;
    let err = gw.chat(req("scenario=j")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CircuitOpen, "{err}");
    assert_eq!(srv.stats().requests, before);
    assert_eq!(gw.health().providers["openai"].circuit, "open");
    // After open_ms one probe goes through; its success closes the circuit.
    tokio::time::sleep(Duration::from_millis(350)).await;
    gw.chat(req("scenario=k")).await.unwrap();
    assert_eq!(gw.stats().providers["openai"].circuit.state, "closed");
    // A 4xx is a healthy provider: it never opens the circuit.
    for _ in 0..5 {
        gw.chat(req("fail_status=400&scenario=l")).await.unwrap_err();
    }
    assert_eq!(gw.stats().providers["openai"].circuit.state, "closed");
    let text = gw.prometheus();
    assert!(text.contains("bifrost_circuit_opened_total{provider=\"openai\"} 1"), "{text}");
    assert!(text.contains("bifrost_circuit_state{provider=\"openai\",state=\"closed\"} 1"));
}

/// Three HTTP providers on `srv` plus two in-process mocks.
fn mixed(srv: &MockServer) -> Gateway {
    let url = srv.url();
    Gateway::from_value(json!({"providers": {
        "openai": {"keys": [{"value": "mock-key", "models": ["*"]}], "network_config": {"base_url": format!("{url}/v1")}},
        "anthropic": {"keys": [{"value": "mock-key", "models": ["*"]}], "network_config": {"base_url": url}},
        "bedrock": {"keys": [{"models": ["*"], "bedrock_key_config": {"access_key": "mock-key", "secret_key": "s", "region": "us-east-1"}}],
                    "network_config": {"base_url": url}},
        "tight": {"kind": "mock", "mock": {"latency_ms": 300},
                  "concurrency_and_buffer_size": {"concurrency": 1, "buffer_size": 1}, "queue": {"policy": "error"}},
        "local": {"kind": "mock"}
    }}))
    .unwrap()
}

fn with_fallbacks(model: &str, fallbacks: &[&str]) -> Request {
    let mut r = Request::new(model, "hello");
    r.fallbacks = fallbacks.iter().map(|s| s.to_string()).collect();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallbacks_are_tried_in_order_and_the_first_success_wins() {
    let srv = server(&["mock-key"]).await;
    let gw = mixed(&srv);
    let r = with_fallbacks(
        "openai/gpt~fail_status=500&scenario=p",
        &["anthropic/claude~fail_status=503&scenario=q", "bedrock/titan~scenario=r", "local/never"],
    );
    let resp = gw.chat(r).await.unwrap();
    assert_eq!(resp.extra_fields.provider, "bedrock");
    assert_eq!(resp.extra_fields.fallback_index, 2);
    assert_eq!(resp.text(), Some("echo: hello"));
    assert_eq!((calls(&srv, "p"), calls(&srv, "q"), calls(&srv, "r")), (1, 1, 1));
    let st = gw.stats();
    assert_eq!(st.providers["openai"].jobs.failed, 1, "the primary counts its job as failed");
    assert_eq!(st.providers["anthropic"].jobs.failed, 1);
    assert_eq!(st.providers["bedrock"].jobs.completed, 1);
    assert_eq!(st.providers["bedrock"].jobs.fallbacks_served, 1);
    assert_eq!(st.providers["local"].jobs.submitted, 0, "later fallbacks are not tried");
    assert!(gw.prometheus().contains("bifrost_fallbacks_served_total{provider=\"bedrock\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_all_fail_the_primary_error_is_returned_with_the_others_attached() {
    let srv = server(&["mock-key"]).await;
    let gw = mixed(&srv);
    let r = with_fallbacks("openai/gpt~fail_status=502", &["anthropic/claude~fail_status=503", "local/m"]);
    let mut r = r;
    r.mock =
        Some(bifrost_core::MockConfig { failure_rate: Some(1.0), failure_status: Some(500), ..Default::default() });
    let err = gw.chat(r).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Provider);
    assert_eq!(err.status(), Some(502), "the primary's status");
    assert_eq!(err.primary().provider(), Some("openai"));
    let f = err.fallback_errors();
    assert_eq!(f.len(), 2);
    assert_eq!((f[0].0.as_str(), f[0].1.status()), ("anthropic/claude~fail_status=503", Some(503)));
    assert_eq!((f[1].0.as_str(), f[1].1.status()), ("local/m", Some(500)));
    assert!(err.to_string().contains("fallbacks failed too"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_after_queue_full_but_not_after_a_client_error() {
    let srv = server(&["mock-key"]).await;
    let gw = mixed(&srv);
    let busy = gw.submit(Request::new("tight/m", "busy")).await.unwrap();
    let started = Instant::now();
    while gw.stats().providers["tight"].jobs.running == 0 {
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let queued = gw.submit(Request::new("tight/m", "queued")).await.unwrap();
    // The tight queue is full: QUEUE_FULL at submit still falls back.
    let resp = gw.chat(with_fallbacks("tight/m", &["local/m"])).await.unwrap();
    assert_eq!((resp.extra_fields.provider.as_str(), resp.extra_fields.fallback_index), ("local", 1));
    assert_eq!(gw.stats().providers["tight"].jobs.rejected, 1);
    // A 400 is the request's fault: no fallback.
    let err = gw.chat(with_fallbacks("openai/gpt~fail_status=400", &["local/m"])).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(err.fallback_errors().is_empty());
    assert_eq!(gw.stats().providers["local"].jobs.submitted, 1);
    // Unknown fallback providers are refused up front.
    let err = gw.chat(with_fallbacks("local/m", &["nope/m"])).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert!(err.to_string().contains("fallbacks[0]"), "{err}");
    busy.await.unwrap();
    queued.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_falls_back_only_before_its_first_content() {
    use futures_util::StreamExt;
    let srv = server(&["mock-key"]).await;
    let gw = mixed(&srv);
    let mut s = gw
        .stream(with_fallbacks("openai/gpt~stream_error_after=0&fail_status=503&fail_rate=0", &["anthropic/claude"]))
        .await
        .unwrap();
    assert_eq!(s.fallback_index(), 1);
    let mut text = String::new();
    while let Some(c) = s.next().await {
        text.extend(c.unwrap().choices.iter().filter_map(|ch| ch.delta.content.clone()));
    }
    assert_eq!(text, "echo: hello");
    // After content has flowed, with `stream_recovery: off`, an error is
    // the caller's to see (the recovery modes: tests/stream_recovery.rs).
    let mut r = with_fallbacks("openai/gpt~chunks=4&stream_error_after=2", &["anthropic/claude"]);
    r.failover = Some(serde_json::from_value(json!({"stream_recovery": "off"})).unwrap());
    let mut s = gw.stream(r).await.unwrap();
    assert_eq!(s.fallback_index(), 0);
    let mut saw_error = false;
    while let Some(c) = s.next().await {
        if c.is_err() {
            saw_error = true;
        }
    }
    assert!(saw_error);
    assert_eq!(srv.stats().by_route.anthropic_messages, 1, "the second stream did not fall back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_during_fallbacks_cancels_the_fallback_job() {
    let gw = Gateway::from_value(json!({"providers": {
        "bad": {"kind": "mock", "mock": {"failure_rate": 1.0}},
        "slow": {"kind": "mock", "mock": {"latency_ms": 30000}}
    }}))
    .unwrap();
    let job = gw.submit(with_fallbacks("bad/m", &["slow/m"])).await.unwrap();
    let job = tokio::spawn(job);
    let started = Instant::now();
    while gw.stats().providers["slow"].jobs.running == 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "fallback never started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    job.abort(); // drops the awaiting task, and with it the handle
    while gw.stats().providers["slow"].jobs.cancelled == 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "fallback job not cancelled");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let st = gw.stats();
    assert!(st.providers["slow"].jobs.invariant_holds() && st.providers["bad"].jobs.invariant_holds());
    assert_eq!(st.providers["slow"].jobs.running, 0);
}

/// A request's fallbacks run on the runtime: the chain reaches the fallback
/// provider and completes there while nobody polls the handle (a C caller
/// busy elsewhere), and the handle then resolves at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallbacks_advance_while_nobody_polls_the_handle() {
    let gw = Gateway::from_value(json!({"providers": {
        "bad": {"kind": "mock", "mock": {"failure_rate": 1.0}},
        "good": {"kind": "mock"}
    }}))
    .unwrap();
    let mut job = gw.submit(with_fallbacks("bad/m", &["good/m"])).await.unwrap();
    let started = Instant::now();
    // `is_done` reads the handle without polling it. (The stats count the
    // fallback's completion a moment before the chain hands the outcome
    // on, so they are no gate for the poll below.)
    while !job.is_done() {
        assert!(started.elapsed() < Duration::from_secs(30), "the fallback never ran without a poll");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(gw.stats().providers["good"].jobs.fallbacks_served, 1);
    // The outcome is already there: one poll, without waiting, yields it.
    let out = futures_util::FutureExt::now_or_never(&mut job).expect("resolved without waiting");
    assert_eq!(out.unwrap().extra_fields.fallback_index, 1);
    // A detached job falls back too (its outcome is counted, then dropped).
    gw.submit(with_fallbacks("bad/m", &["good/m"])).await.unwrap().detach();
    while gw.stats().providers["good"].jobs.completed < 2 {
        assert!(started.elapsed() < Duration::from_secs(30), "a detached job did not fall back");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Cancelling a routed job whose primary is still queued frees the
/// primary's slot at once (counted before `cancel` returns) and runs no
/// fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_routed_job_cancels_its_queued_primary_at_once() {
    let gw = Gateway::from_value(json!({"providers": {
        "busy": {"kind": "mock", "mock": {"latency_ms": 600000},
                 "concurrency_and_buffer_size": {"concurrency": 1, "buffer_size": 4}},
        "good": {"kind": "mock"}
    }}))
    .unwrap();
    let blocker = gw.submit(Request::new("busy/m", "holds the only worker")).await.unwrap();
    let job = gw.submit(with_fallbacks("busy/m", &["good/m"])).await.unwrap();
    assert!(job.cancel());
    // (The blocker may still count as queued: its worker may not have begun it.)
    let j = gw.stats().providers["busy"].jobs;
    assert_eq!((j.submitted, j.cancelled), (2, 1), "{j:?}");
    let e = job.await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
    assert_eq!(gw.stats().providers["good"].jobs.submitted, 0, "no fallback after a cancel");
    assert!(blocker.cancel());
}

/// 5k jobs, 30% injected faults, fallbacks everywhere: every handle resolves
/// exactly once and every pool's invariant holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_jobs_with_faults_and_fallbacks() {
    let gw = std::sync::Arc::new(
        Gateway::from_value(json!({"providers": {
            "a": {"kind": "mock", "mock": {"latency_ms": 1, "jitter_ms": 3, "failure_rate": 0.3, "failure_status": 503},
                  "concurrency_and_buffer_size": {"concurrency": 8, "buffer_size": 200}, "queue": {"policy": "error"}},
            "b": {"kind": "mock", "mock": {"latency_ms": 1, "failure_rate": 0.3, "panic_rate": 0.02},
                  "concurrency_and_buffer_size": {"concurrency": 8, "buffer_size": 200}, "queue": {"policy": "drop_oldest"}},
            "c": {"kind": "mock", "mock": {"failure_rate": 0.3, "failure_status": 500},
                  "concurrency_and_buffer_size": {"concurrency": 4, "buffer_size": 5000}}
        }}))
        .unwrap(),
    );
    let mut tasks = Vec::new();
    for i in 0..5000 {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            let order = [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]][i % 3];
            let mut r =
                with_fallbacks(&format!("{}/m", order[0]), &[&format!("{}/m", order[1]), &format!("{}/m", order[2])]);
            r.messages[0] = bifrost_core::Message::new("user", format!("job {i}"));
            gw.chat(r).await.map(|resp| resp.extra_fields.fallback_index)
        }));
    }
    let (mut ok, mut failed, mut by_index) = (0, 0, [0u32; 3]);
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(60), t).await.expect("a handle hung").unwrap() {
            Ok(i) => {
                ok += 1;
                by_index[i as usize] += 1;
            }
            Err(_) => failed += 1,
        }
    }
    assert_eq!(ok + failed, 5000);
    assert!(by_index[1] > 0 && by_index[2] > 0, "fallbacks served: {by_index:?}");
    let st = gw.stats();
    let mut completed = 0;
    for p in ["a", "b", "c"] {
        let j = st.providers[p].jobs;
        assert!(j.invariant_holds(), "{p}: {j:?}");
        assert_eq!((j.queued, j.running), (0, 0));
        completed += j.completed;
    }
    assert_eq!(completed, ok, "each success is exactly one completed job somewhere");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_up_under_a_burst_and_down_when_idle_loses_no_job() {
    let gw = std::sync::Arc::new(
        Gateway::from_value(json!({"providers": {"p": {
            "kind": "mock", "mock": {"latency_ms": 20},
            "concurrency_and_buffer_size": {"concurrency": 2, "buffer_size": 400},
            "scaling": {"min_workers": 2, "max_workers": 32, "scale_up_threshold": 0.2, "scale_down_threshold": 0.05,
                        "min_scale_interval_ms": 20, "idle_timeout_ms": 100, "scale_up_factor": 2.0}
        }}}))
        .unwrap(),
    );
    assert_eq!(gw.stats().providers["p"].workers.total, 2);
    let jobs: Vec<_> = futures_util::future::join_all((0..400).map(|i| gw.submit(Request::new("p/m", format!("{i}")))))
        .await
        .into_iter()
        .map(|j| j.expect("queued"))
        .collect();
    let started = Instant::now();
    let mut peak = 0;
    while peak < 32 && started.elapsed() < Duration::from_secs(5) {
        peak = peak.max(gw.stats().providers["p"].workers.total);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(peak, 32, "scaled up to max_workers under the burst");
    for j in jobs {
        j.await.expect("no job lost while scaling");
    }
    // Idle: workers retire back to min_workers.
    let started = Instant::now();
    while gw.stats().providers["p"].workers.total > 2 {
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", gw.stats().providers["p"].workers);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let w = gw.stats().providers["p"].workers.clone();
    assert_eq!((w.total, w.min, w.max), (2, 2, 32));
    assert!(w.scale_ups >= 4 && w.added == 30 && w.retired == 30, "{w:?}");
    let j = gw.stats().providers["p"].jobs;
    assert_eq!((j.completed, j.failed), (400, 0));
    assert!(j.invariant_holds());
    let text = gw.prometheus();
    assert!(text.contains("bifrost_workers_added_total{provider=\"p\"} 30"), "{text}");
    assert!(text.contains("bifrost_workers_retired_total{provider=\"p\"} 30"), "{text}");
    assert!(text.contains(&format!("bifrost_worker_scale_ups_total{{provider=\"p\"}} {}", w.scale_ups)), "{text}");
}

/// Workers retiring after an idle timeout race with pushes that hand jobs
/// to parked workers: bursts separated by gaps around the idle timeout, from
/// several tasks on both threads. No job may be lost or left hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retiring_workers_never_strand_a_handed_job() {
    let gw = std::sync::Arc::new(
        Gateway::from_value(json!({"providers": {"p": {
            "kind": "mock",
            "concurrency_and_buffer_size": {"concurrency": 4, "buffer_size": 1000},
            "scaling": {"min_workers": 1, "max_workers": 16, "scale_up_threshold": 0.02, "scale_down_threshold": 0.01,
                        "min_scale_interval_ms": 10, "idle_timeout_ms": 10, "scale_up_factor": 2.0}
        }}}))
        .unwrap(),
    );
    // All tasks burst together, then pause together: every fourth pause
    // (25 ms) outlasts the idle timeout, so workers retire, and the next
    // burst's hand-offs race the retirements still in progress.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let (gw, barrier) = (gw.clone(), barrier.clone());
            tokio::spawn(async move {
                let mut done = 0u64;
                for round in 0..40u64 {
                    barrier.wait().await;
                    let burst: Vec<_> =
                        (0..20).map(|i| gw.chat(Request::new("p/m", format!("{t}-{round}-{i}")))).collect();
                    for r in futures_util::future::join_all(burst).await {
                        r.expect("no job lost while workers retire");
                        done += 1;
                    }
                    let pause = if round % 4 == 3 { 25 } else { (t * 7 + round * 3) % 12 };
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                done
            })
        })
        .collect();
    let all = tokio::time::timeout(Duration::from_secs(60), futures_util::future::join_all(tasks))
        .await
        .expect("every job resolved (none stranded with a retired worker)");
    let done: u64 = all.into_iter().map(|d| d.expect("submitter")).sum();
    assert_eq!(done, 8 * 40 * 20);
    let p = &gw.stats().providers["p"];
    assert_eq!((p.jobs.completed, p.jobs.submitted), (done, done));
    assert!(p.jobs.invariant_holds());
    assert!(p.workers.retired > 0, "workers retired during the gaps: {:?}", p.workers);
}

#[test]
fn optimal_concurrency_follows_littles_law() {
    let s = bifrost_core::optimal_concurrency(100.0, 0.5, 0.2).unwrap();
    assert_eq!((s.concurrency, s.buffer_size, s.timeout_ms), (60, 180, 1000));
    assert_eq!(bifrost_core::optimal_concurrency(-1.0, 0.5, 0.2).unwrap_err().kind(), ErrorKind::InvalidRequest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_probe_reports_in_health() {
    let srv = server(&["mock-key"]).await;
    let url = format!("{}/v1", srv.url());
    let gw = Gateway::from_value(json!({"providers": {
        "good": {"kind": "openai", "keys": [{"value": "mock-key", "models": ["gpt-4o"]}],
                 "network_config": {"base_url": url.clone()}, "health_check": true},
        "bad": {"kind": "openai", "keys": [{"value": "wrong", "models": ["*"]}], "network_config": {"base_url": url},
                "health_check": {"model": "gpt-4o"}},
        "quiet": {"kind": "mock"}
    }}))
    .unwrap();
    let started = Instant::now();
    loop {
        let h = gw.health();
        if h.providers["good"].startup_probe != "pending" && h.providers["bad"].startup_probe != "pending" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "probes never finished");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let h = gw.health();
    assert_eq!((h.providers["good"].startup_probe.as_str(), h.providers["good"].status.as_str()), ("ok", "ok"));
    assert_eq!(h.providers["bad"].startup_probe, "failed");
    assert!(h.providers["bad"].startup_probe_error.as_deref().unwrap().contains("401"), "{:?}", h.providers["bad"]);
    assert_eq!(h.providers["bad"].status, "degraded");
    assert_eq!(h.providers["quiet"].startup_probe, "off");
    assert_eq!(h.status, "degraded");
    assert_eq!(gw.stats().providers["good"].jobs.submitted, 0, "the probe is not a job");
    // `true` without a model to probe is a config error that says what to set.
    let err = Gateway::from_value(
        json!({"providers": {"openai": {"keys": [{"value": "k", "models": ["*"]}], "health_check": true}}}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("providers.openai.health_check"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_blocked_past_its_deadline_is_reported_as_stalled() {
    let gw = Gateway::from_value(json!({"providers": {"p": {"kind": "mock",
        "concurrency_and_buffer_size": {"concurrency": 1, "buffer_size": 10}}}}))
    .unwrap();
    let mut r = Request::new("p/m", "x");
    r.timeout_ms = Some(50);
    // The watchdog sees the stall within about 2 s (deadline + 1 s grace,
    // one tick a second); the stall lasts 12 s, so a busy machine that
    // delays the watchdog by seconds still finds the worker blocked.
    r.mock = Some(bifrost_core::MockConfig { stall_ms: Some(12_000), ..Default::default() });
    let job = gw.submit(r).await.unwrap();
    let started = Instant::now();
    while gw.stats().providers["p"].jobs.stalled == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "stall not detected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let j = gw.stats().providers["p"].jobs;
    assert_eq!((j.stalled, j.stalls_total), (1, 1));
    assert_eq!(gw.health().providers["p"].stalled_workers, 1);
    assert!(gw.prometheus().contains("bifrost_stalled_workers{provider=\"p\"} 1"));
    // Once the call returns, the worker resolves the job (its deadline passed).
    assert_eq!(job.await.unwrap_err().kind(), ErrorKind::Timeout);
}
