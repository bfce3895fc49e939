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
    let gw = openai(&srv, json!([{"value": "mock-key"}]), json!({}));
    let resp = gw.chat(req("fail_status=429&fail_first=2&scenario=a")).await.unwrap();
    assert_eq!(resp.extra_fields.attempts, 3);
    assert_eq!(calls(&srv, "a"), 3);
    let j = gw.stats().providers["openai"].jobs;
    assert_eq!((j.retries, j.completed, j.failed), (2, 1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_429_with_two_retries_is_three_calls_and_the_last_error() {
    let srv = server(&["mock-key"]).await;
    let gw = openai(&srv, json!([{"value": "mock-key"}]), json!({"network_config": {"max_retries": 2}}));
    let err = gw.chat(req("fail_status=429&scenario=b")).await.unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert_eq!(calls(&srv, "b"), 3);
    assert_eq!(gw.stats().providers["openai"].jobs.retries, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_retry_on_400_but_retry_on_503() {
    let srv = server(&["mock-key"]).await;
    let gw = openai(&srv, json!([{"value": "mock-key"}]), json!({}));
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
        "keys": [{"value": "k"}],
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
    let gw = openai(&srv, json!([{"value": "mock-key"}]), json!({}));
    let started = Instant::now();
    gw.chat(req("fail_status=429&fail_first=1&retry_after=1&scenario=e")).await.unwrap();
    let gap = started.elapsed();
    assert!(gap >= Duration::from_millis(1000), "waited {gap:?}, Retry-After said 1 s");
    assert!(gap < Duration::from_millis(3000), "{gap:?}");
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
    let gw = openai(&srv, json!([{"value": "k-one"}, {"value": "k-two"}]), json!({}));
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
    let gw =
        openai(&srv, json!([{"value": "bad-key", "weight": 10.0}, {"value": "good-key", "weight": 1.0}]), json!({}));
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
    let gw = openai(&srv, json!([{"value": "bad-1"}, {"value": "bad-2"}]), json!({}));
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
        json!([{"value": "mock-key"}]),
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
