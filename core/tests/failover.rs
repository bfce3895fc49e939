//! Failure classes decide retries and fallbacks (docs/failover.md), against
//! bifrost-mock over real loopback HTTP: the mock's per-scenario request
//! counts are the judge of how many attempts each provider got.

use bifrost_core::{ErrorKind, Gateway, Request};
use bifrost_mock::{MockConfig, MockServer};
use serde_json::json;

fn gateway(srv: &MockServer) -> Gateway {
    let url = srv.url();
    Gateway::from_value(json!({"providers": {
        "openai": {"keys": [{"value": "mock-key", "models": ["*"]}],
                   "network_config": {"base_url": format!("{url}/v1"), "max_retries": 2,
                                      "retry_backoff_initial_ms": 1, "retry_backoff_max_ms": 2}},
        "anthropic": {"keys": [{"value": "mock-key", "models": ["*"]}],
                      "network_config": {"base_url": url, "max_retries": 2,
                                         "retry_backoff_initial_ms": 1, "retry_backoff_max_ms": 2}},
    }}))
    .expect("gateway")
}

fn seen(srv: &MockServer, scenario: &str) -> u64 {
    srv.stats().by_scenario.get(scenario).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_too_long_goes_to_the_fallback_once_and_is_never_resent_to_its_model() {
    let srv = MockServer::start(MockConfig::default()).await.expect("mock");
    let gw = gateway(&srv);
    let mut r = Request::new("openai/small~fail_status=400&fail_reason=context_length&scenario=long", "hi");
    r.fallbacks = vec!["anthropic/claude-long~scenario=long-fallback".into()];
    let resp = gw.chat(r).await.expect("the fallback answers");
    assert_eq!(resp.extra_fields.fallback_index, 1);
    assert_eq!((seen(&srv, "long"), seen(&srv, "long-fallback")), (1, 1), "one attempt each, no retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_policy_refusal_comes_back_as_it_is() {
    let srv = MockServer::start(MockConfig::default()).await.expect("mock");
    let gw = gateway(&srv);
    let mut r = Request::new("openai/m~fail_status=400&fail_reason=content_policy&scenario=refused", "hi");
    r.fallbacks = vec!["anthropic/claude~scenario=refused-fallback".into()];
    let e = gw.chat(r).await.expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::Provider);
    assert_eq!(e.status(), Some(400));
    assert!(e.to_string().contains("safety system"), "{e}");
    assert_eq!((seen(&srv, "refused"), seen(&srv, "refused-fallback")), (1, 0), "no retry, no fallback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_anthropic_is_retried_and_a_plain_bad_request_is_not() {
    let srv = MockServer::start(MockConfig::default()).await.expect("mock");
    let gw = gateway(&srv);
    let resp = gw
        .chat(Request::new("anthropic/claude~fail_status=529&fail_first=1&scenario=overloaded", "hi"))
        .await
        .expect("the retry answers");
    assert_eq!(resp.extra_fields.attempts, 2);
    assert_eq!(seen(&srv, "overloaded"), 2);
    let mut r = Request::new("openai/m~fail_status=400&scenario=bad", "hi");
    r.fallbacks = vec!["anthropic/claude~scenario=bad-fallback".into()];
    assert!(gw.chat(r).await.is_err());
    assert_eq!((seen(&srv, "bad"), seen(&srv, "bad-fallback")), (1, 0), "bad here is bad everywhere");
}
