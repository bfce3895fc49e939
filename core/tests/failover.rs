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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_route_is_not_retried_but_left_for_the_fallback_unless_the_policy_says_retry() {
    let srv = MockServer::start(MockConfig::default()).await.expect("mock");
    let url = srv.url();
    let net = json!({"base_url": format!("{url}/v1"), "max_retries": 2, "default_request_timeout_in_seconds": 1,
                     "retry_backoff_initial_ms": 1, "retry_backoff_max_ms": 2});
    let gw = Gateway::from_value(json!({"providers": {
        "silent": {"kind": "openai", "keys": [{"value": "mock-key", "models": ["*"]}], "network_config": net},
        "patient": {"kind": "openai", "keys": [{"value": "mock-key", "models": ["*"]}], "network_config": net,
                    "failover": {"on_timeout": "retry"}},
        "anthropic": {"keys": [{"value": "mock-key", "models": ["*"]}], "network_config": {"base_url": url}},
    }}))
    .expect("gateway");
    let mut r = Request::new("silent/m~hang=1&scenario=silent", "hi");
    r.fallbacks = vec!["anthropic/claude~scenario=silent-fallback".into()];
    let resp = gw.chat(r).await.expect("the fallback answers");
    assert_eq!(resp.extra_fields.fallback_index, 1);
    assert_eq!((seen(&srv, "silent"), seen(&srv, "silent-fallback")), (1, 1), "one attempt, then the fallback");
    // The provider's section, and then the request's own, say otherwise.
    let e = gw.chat(Request::new("patient/m~hang=1&scenario=patient", "hi")).await.expect_err("timeout");
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(seen(&srv, "patient"), 3, "1 + max_retries attempts");
    let mut r = Request::new("patient/m~hang=1&scenario=impatient", "hi");
    r.failover = Some(serde_json::from_value(json!({"on_timeout": "return"})).expect("failover"));
    r.fallbacks = vec!["anthropic/claude~scenario=impatient-fallback".into()];
    assert!(gw.chat(r).await.is_err());
    assert_eq!((seen(&srv, "impatient"), seen(&srv, "impatient-fallback")), (1, 0));
}

#[test]
fn a_policy_that_would_resend_a_too_long_prompt_or_retry_a_refusal_is_refused() {
    let cfg = |f: serde_json::Value| Gateway::from_value(json!({"providers": {"p": {"kind": "mock", "failover": f}}}));
    let e = cfg(json!({"on_context_length": "retry"})).expect_err("refused");
    assert!(e.to_string().contains("providers.p.failover.on_context_length"), "{e}");
    assert!(cfg(json!({"on_content_policy": "retry"})).is_err());
    assert!(cfg(json!({"on_timeout": "wait"})).is_err(), "unknown action");
    assert!(cfg(json!({"on_timeout": "retry", "on_context_length": "return"})).is_ok());
    let mut r = Request::new("p/m", "hi");
    r.failover = Some(serde_json::from_value(json!({"on_content_policy": "retry"})).expect("parses"));
    let e = r.validate().expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_is_down_gets_no_more_retries_and_is_used_again_once_it_answers() {
    let srv = MockServer::start(MockConfig::default()).await.expect("mock");
    let gw = gateway(&srv);
    // The first 13 requests of the scenario fail: an outage. max_retries 2,
    // suspend_retries_after 5 (the default): the first request makes 3
    // attempts, the second 2 (the 5th failure in a row), then 1 each.
    let model = "openai/m~fail_status=503&fail_first=13&scenario=down";
    for i in 0..10 {
        let mut r = Request::new(model, "hi");
        r.fallbacks = vec!["anthropic/claude~scenario=down-fallback".into()];
        let resp = gw.chat(r).await.unwrap_or_else(|e| panic!("request {i}: the fallback answers: {e}"));
        assert_eq!(resp.extra_fields.fallback_index, 1, "request {i}");
    }
    assert_eq!(seen(&srv, "down"), 3 + 2 + 8, "retries stopped while the provider was down");
    assert_eq!(seen(&srv, "down-fallback"), 10);
    // Recovered: the next request is served by it at once, and a success
    // lifts the suspension (a later failure is retried again).
    let resp = gw.chat(Request::new(model, "hi")).await.expect("the provider is back");
    assert_eq!((resp.extra_fields.fallback_index, resp.extra_fields.attempts), (0, 1));
    let resp = gw
        .chat(Request::new("openai/m~fail_status=503&fail_first=1&scenario=blip", "hi"))
        .await
        .expect("retried again");
    assert_eq!(resp.extra_fields.attempts, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_retries_after_zero_always_retries() {
    let srv = MockServer::start(MockConfig::default()).await.expect("mock");
    let gw = gateway(&srv);
    for _ in 0..4 {
        let mut r = Request::new("openai/m~fail_status=503&scenario=stubborn", "hi");
        r.failover = Some(serde_json::from_value(json!({"suspend_retries_after": 0})).unwrap());
        assert!(gw.chat(r).await.is_err());
    }
    assert_eq!(seen(&srv, "stubborn"), 4 * 3);
}
