//! Configuration errors and Bifrost compatibility (docs/architecture.md §4), plus request
//! validation errors (docs/architecture.md §5, §6): every bad input is a typed error whose
//! message names the offending key, and nothing invalid is ever counted.

use std::time::Duration;

use bifrost_core::{
    Config, Error, ErrorKind, Gateway, Message, MockConfig, ProviderKind, QueuePolicy, Request, Secret,
};

/// Parses `json` and returns the CONFIG error it must produce, as text.
fn config_err(json: &str) -> String {
    match Config::from_json(json) {
        Ok(cfg) => panic!("expected a CONFIG error for {json}, got {cfg:?}"),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Config, "wrong kind for {json}: {e}");
            let text = e.to_string();
            assert!(text.starts_with("invalid config"), "unexpected message shape: {text}");
            text
        }
    }
}

fn assert_contains(text: &str, parts: &[&str]) {
    for p in parts {
        assert!(text.contains(p), "expected {p:?} in message: {text}");
    }
}

/// A minimal valid mock provider named `local`, with `extra` spliced into its object.
fn local_mock(extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { ", " };
    format!(r#"{{"providers": {{"local": {{"kind": "mock"{sep}{extra}}}}}}}"#)
}

/// A minimal valid openai provider (literal key), with `extra` spliced into its object.
fn openai_with(extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { ", " };
    format!(r#"{{"providers": {{"openai": {{"keys": [{{"value": "sk-literal", "models": ["*"]}}]{sep}{extra}}}}}}}"#)
}

// ---------------------------------------------------------------- unknown keys

#[test]
fn valid_baselines_parse() {
    // The helpers produce valid configs, so every error below is caused by the one change it makes.
    let c = Config::from_json(&local_mock("")).unwrap();
    assert_eq!(c.providers["local"].resolved_kind("local"), Some(ProviderKind::Mock));
    let c = Config::from_json(&openai_with("")).unwrap();
    assert_eq!(c.providers["openai"].resolved_kind("openai"), Some(ProviderKind::Openai));
    assert_eq!(c.providers["openai"].keys[0].value.expose(), "sk-literal");
}

#[test]
fn unknown_top_level_key_is_named() {
    let msg = config_err(r#"{"providers": {"local": {"kind": "mock"}}, "bogus_top": 1}"#);
    assert_contains(&msg, &["invalid config: bogus_top:", "unknown field `bogus_top`", "providers", "not supported"]);
}

#[test]
fn unknown_provider_key_is_named_with_full_path() {
    let msg = config_err(&local_mock(r#""bogus": true"#));
    assert_contains(&msg, &["providers.local.bogus", "unknown field `bogus`", "network_config"]);
}

#[test]
fn unknown_network_config_key_is_named_with_full_path() {
    let msg = config_err(&openai_with(r#""network_config": {"bogus": 1}"#));
    assert_contains(&msg, &["providers.openai.network_config.bogus:", "unknown field `bogus`", "max_retries"]);
}

#[test]
fn unknown_queue_key_is_named_with_full_path() {
    let msg = config_err(&local_mock(r#""queue": {"policy": "error", "bogus": 1}"#));
    assert_contains(&msg, &["providers.local.queue.bogus:", "unknown field `bogus`", "wait_timeout_ms"]);
}

#[test]
fn unknown_mock_key_is_named_with_full_path() {
    let msg = config_err(&local_mock(r#""mock": {"latency_ms": 1, "bogus": 1}"#));
    assert_contains(&msg, &["providers.local.mock.bogus:", "unknown field `bogus`", "failure_rate"]);
}

#[test]
fn unknown_keys_in_nested_sections_are_named() {
    let msg = config_err(&local_mock(r#""concurrency_and_buffer_size": {"concurrency": 2, "workers": 3}"#));
    assert_contains(&msg, &["providers.local.concurrency_and_buffer_size.workers", "unknown field"]);
    let msg = config_err(r#"{"providers": {"openai": {"keys": [{"value": "sk-x", "secret": "y"}]}}}"#);
    assert_contains(&msg, &["providers.openai.keys[0].secret", "unknown field"]);
    let msg = config_err(&openai_with(r#""proxy_config": {"type": "http", "host": "h"}"#));
    assert_contains(&msg, &["providers.openai.proxy_config.host", "unknown field"]);
}

#[test]
fn from_value_reports_paths_too() {
    let v = serde_json::json!({"providers": {"openai": {"keys": [{"value": "k", "models": ["*"]}], "network_config": {"bogus": 1}}}});
    let e = Config::from_value(v).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert_contains(&e.to_string(), &["providers.openai.network_config.bogus", "unknown field"]);
    match e {
        Error::Config { path, .. } => assert_eq!(path, "providers.openai.network_config.bogus"),
        other => panic!("expected Error::Config, got {other:?}"),
    }
}

#[test]
fn bad_enum_values_are_named() {
    let msg = config_err(&local_mock(r#""queue": {"policy": "lifo"}"#));
    assert_contains(&msg, &["providers.local.queue.policy", "unknown variant", "drop_oldest"]);
    // The value itself is never quoted: it may be a key put in the wrong place.
    assert!(!msg.contains("lifo"), "{msg}");
    let msg = config_err(r#"{"providers": {"local": {"kind": "grpc"}}}"#);
    assert_contains(&msg, &["providers.local.kind", "openai", "mock"]);
    assert!(!msg.contains("grpc"), "{msg}");
}

#[test]
fn malformed_json_is_a_config_error() {
    config_err("not json");
    let msg = config_err(&format!("{} trailing", local_mock("")));
    assert_contains(&msg, &["trailing"]);
    let msg = config_err(&local_mock(r#""concurrency_and_buffer_size": {"concurrency": "many"}"#));
    assert_contains(&msg, &["providers.local.concurrency_and_buffer_size.concurrency"]);
}

// ------------------------------------------------------------ numeric ranges

#[test]
fn concurrency_zero_names_path_range_and_value() {
    let msg = config_err(&local_mock(r#""concurrency_and_buffer_size": {"concurrency": 0}"#));
    assert_contains(&msg, &["providers.local.concurrency_and_buffer_size.concurrency", "1..=10000", "got 0"]);
    let msg = config_err(&local_mock(r#""concurrency_and_buffer_size": {"concurrency": 10001}"#));
    assert_contains(&msg, &["1..=10000", "got 10001"]);
    // The bounds themselves are accepted.
    for n in [1, 10_000] {
        let json = local_mock(&format!(r#""concurrency_and_buffer_size": {{"concurrency": {n}}}"#));
        assert_eq!(Config::from_json(&json).unwrap().providers["local"].concurrency_and_buffer_size.concurrency, n);
    }
}

#[test]
fn buffer_size_zero_is_rejected() {
    let msg = config_err(&local_mock(r#""concurrency_and_buffer_size": {"buffer_size": 0}"#));
    assert_contains(&msg, &["providers.local.concurrency_and_buffer_size.buffer_size", "1..=1000000", "got 0"]);
}

#[test]
fn wait_timeout_too_big_is_rejected() {
    let msg = config_err(&local_mock(r#""queue": {"wait_timeout_ms": 3600001}"#));
    assert_contains(&msg, &["providers.local.queue.wait_timeout_ms", "0..=3600000", "got 3600001"]);
    let ok = Config::from_json(&local_mock(r#""queue": {"policy": "drop_oldest", "wait_timeout_ms": 3600000}"#));
    let ok = ok.unwrap();
    assert_eq!(ok.providers["local"].queue.wait_timeout_ms, 3_600_000);
    assert_eq!(ok.providers["local"].queue.policy, QueuePolicy::DropOldest);
}

#[test]
fn max_retries_eleven_is_rejected() {
    let msg = config_err(&openai_with(r#""network_config": {"max_retries": 101}"#));
    assert_contains(&msg, &["providers.openai.network_config.max_retries", "0..=100", "got 101"]);
    let ok = Config::from_json(&openai_with(r#""network_config": {"max_retries": 15}"#)).unwrap();
    assert_eq!(ok.providers["openai"].network_config.max_retries, 15);
}

#[test]
fn backoff_max_below_initial_is_rejected() {
    let msg = config_err(&openai_with(
        r#""network_config": {"retry_backoff_initial_ms": 1000, "retry_backoff_max_ms": 500}"#,
    ));
    assert_contains(
        &msg,
        &["providers.openai.network_config.retry_backoff_max_ms", "at least retry_backoff_initial_ms", "got 500"],
    );
}

#[test]
fn other_network_bounds_are_checked() {
    let msg = config_err(&openai_with(r#""network_config": {"default_request_timeout_in_seconds": 0}"#));
    assert_contains(&msg, &["default_request_timeout_in_seconds", "1..=3600", "got 0"]);
    let msg = config_err(&openai_with(r#""network_config": {"retry_backoff_initial_ms": 1000001}"#));
    assert_contains(&msg, &["retry_backoff_initial_ms", "0..=1000000", "got 1000001"]);
    let msg = config_err(&openai_with(r#""network_config": {"base_url": "ftp://example.com"}"#));
    assert_contains(&msg, &["providers.openai.network_config.base_url", "http://"]);
    // Never quoted: a value that is no URL may be a key in the wrong place.
    assert!(!msg.contains("ftp://example.com"), "{msg}");
    let msg = config_err(&openai_with(r#""network_config": {"max_conns_per_host": 0}"#));
    assert_contains(&msg, &["max_conns_per_host", "1..=10000"]);
    let msg = config_err(r#"{"providers": {"openai": {"keys": [{"value": "k", "weight": -1, "models": ["*"]}]}}}"#);
    assert_contains(&msg, &["providers.openai.keys[0].weight", ">= 0", "-1"]);
}

#[test]
fn mock_failure_rate_above_one_is_rejected() {
    let msg = config_err(&local_mock(r#""mock": {"failure_rate": 1.5}"#));
    assert_contains(&msg, &["providers.local.mock.failure_rate", "0..=1", "got 1.5"]);
    let msg = config_err(&local_mock(r#""mock": {"panic_rate": -0.1}"#));
    assert_contains(&msg, &["providers.local.mock.panic_rate", "0..=1"]);
}

#[test]
fn mock_failure_status_99_is_rejected() {
    let msg = config_err(&local_mock(r#""mock": {"failure_status": 99}"#));
    assert_contains(&msg, &["providers.local.mock.failure_status", "100..=599", "got 99"]);
}

#[test]
fn mock_stream_chunks_zero_is_rejected() {
    let msg = config_err(&local_mock(r#""mock": {"stream_chunks": 0}"#));
    assert_contains(&msg, &["providers.local.mock.stream_chunks", "1..=10000", "got 0"]);
}

#[test]
fn mock_latency_bound_is_checked() {
    let msg = config_err(&local_mock(r#""mock": {"latency_ms": 600001}"#));
    assert_contains(&msg, &["providers.local.mock.latency_ms", "0..=600000", "got 600001"]);
}

#[test]
fn initial_pool_size_too_big_is_rejected() {
    let msg = config_err(r#"{"initial_pool_size": 100001, "providers": {"local": {"kind": "mock"}}}"#);
    assert_contains(&msg, &["initial_pool_size", "0..=100000", "got 100001"]);
    let ok = Config::from_json(r#"{"initial_pool_size": 100000, "providers": {"local": {"kind": "mock"}}}"#);
    assert_eq!(ok.unwrap().initial_pool_size, 100_000);
}

#[test]
fn provider_name_with_slash_is_rejected() {
    let msg = config_err(r#"{"providers": {"my/local": {"kind": "mock"}}}"#);
    assert_contains(&msg, &["providers.my/local", "'/'"]);
    let msg = config_err(r#"{"providers": {"my local": {"kind": "mock"}}}"#);
    assert_contains(&msg, &["providers.my local", "whitespace"]);
}

#[test]
fn empty_providers_is_rejected() {
    let msg = config_err(r#"{"providers": {}}"#);
    assert_contains(&msg, &["providers", "at least one provider"]);
    let msg = config_err("{}");
    assert_contains(&msg, &["providers", "at least one provider"]);
}

#[test]
fn missing_kind_for_unknown_name_is_rejected() {
    let msg = config_err(r#"{"providers": {"foo": {"mock": {"latency_ms": 1}}}}"#);
    assert_contains(&msg, &["providers.foo.kind", "missing", "openai, anthropic, bedrock, mock"]);
    // A known name supplies the kind.
    let c = Config::from_json(r#"{"providers": {"mock": {}}}"#).unwrap();
    assert_eq!(c.providers["mock"].resolved_kind("mock"), Some(ProviderKind::Mock));
}

#[test]
fn non_mock_provider_without_keys_is_rejected() {
    let msg = config_err(r#"{"providers": {"openai": {}}}"#);
    assert_contains(&msg, &["providers.openai.keys", "kind 'openai'", "at least one key"]);
    let msg = config_err(r#"{"providers": {"claude": {"kind": "anthropic", "keys": []}}}"#);
    assert_contains(&msg, &["providers.claude.keys", "kind 'anthropic'"]);
}

#[test]
fn mock_section_on_openai_provider_is_rejected() {
    let msg = config_err(&openai_with(r#""mock": {"latency_ms": 5}"#));
    assert_contains(&msg, &["providers.openai.mock", "only providers of kind 'mock'"]);
}

// ------------------------------------------------------------- env.NAME keys

#[test]
fn missing_env_var_names_variable_and_path() {
    let var = "BIFROST_CFGTEST_MISSING_7Q2";
    std::env::remove_var(var);
    let json = format!(r#"{{"providers": {{"openai": {{"keys": [{{"value": "env.{var}", "models": ["*"]}}]}}}}}}"#);
    let e = Config::from_json(&json).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    let msg = e.to_string();
    assert_contains(&msg, &["providers.openai.keys[0].value", var, "not set"]);
    // An empty variable is treated as missing.
    let var2 = "BIFROST_CFGTEST_EMPTY_7Q2";
    std::env::set_var(var2, "");
    let json = format!(r#"{{"providers": {{"openai": {{"keys": [{{"value": "env.{var2}", "models": ["*"]}}]}}}}}}"#);
    assert_contains(&config_err(&json), &["providers.openai.keys[0].value", var2]);
}

#[test]
fn missing_env_var_in_second_key_and_proxy_names_their_paths() {
    let set = "BIFROST_CFGTEST_SET_K0_4RM";
    let missing = "BIFROST_CFGTEST_MISSING_K1_4RM";
    std::env::set_var(set, "value-0");
    std::env::remove_var(missing);
    let json = format!(
        r#"{{"providers": {{"openai": {{"keys": [{{"value": "env.{set}", "models": ["*"]}}, {{"value": "env.{missing}", "models": ["*"]}}]}}}}}}"#
    );
    assert_contains(&config_err(&json), &["providers.openai.keys[1].value", missing]);
    let json = openai_with(&format!(r#""proxy_config": {{"type": "http", "password": "env.{missing}"}}"#));
    assert_contains(&config_err(&json), &["providers.openai.proxy_config.password", missing]);
}

#[test]
fn set_env_var_resolves() {
    let var = "BIFROST_CFGTEST_SET_9XK";
    std::env::set_var(var, "resolved-value-9xk");
    let json = format!(
        r#"{{"providers": {{"openai": {{"keys": [{{"value": "env.{var}", "weight": 2.5, "models": ["*"]}}]}}}}}}"#
    );
    let cfg = Config::from_json(&json).unwrap();
    let key = &cfg.providers["openai"].keys[0];
    assert_eq!(key.value.expose(), "resolved-value-9xk");
    assert_eq!(key.weight, 2.5);
    // A literal value is kept as is.
    let cfg = Config::from_json(&openai_with("")).unwrap();
    assert_eq!(cfg.providers["openai"].keys[0].value.expose(), "sk-literal");
}

// ------------------------------------------------------------------ secrets

#[test]
fn secret_prints_stars() {
    let s = Secret::new("sk-SECRET-123");
    assert_eq!(s.expose(), "sk-SECRET-123");
    assert_eq!(format!("{s}"), "***");
    assert_eq!(format!("{s:?}"), "Secret(***)");
    assert!(!format!("{s:#?}").contains("SECRET"));
}

#[test]
fn resolved_secrets_never_appear_in_debug_stats_or_errors() {
    let var = "BIFROST_CFGTEST_SECRET_3HZ";
    let secret = "sk-SECRET-123";
    std::env::set_var(var, secret);
    let json = format!(
        r#"{{"providers": {{
            "openai": {{"keys": [{{"value": "env.{var}", "name": "k1", "models": ["*"]}}],
                        "proxy_config": {{"type": "http", "url": "http://proxy:8080", "password": "env.{var}"}}}},
            "bedrock": {{"keys": [{{"models": ["*"], "bedrock_key_config": {{"region": "us-east-1", "access_key": "AKIA-SECRET-123",
                                                          "secret_key": "env.{var}"}}}}]}},
            "local": {{"kind": "mock", "keys": [{{"value": "env.{var}", "models": ["*"]}}]}}
        }}}}"#
    );
    let cfg = Config::from_json(&json).unwrap();
    // The value was really resolved, so its absence below is meaningful.
    assert_eq!(cfg.providers["openai"].keys[0].value.expose(), secret);
    assert_eq!(cfg.providers["local"].keys[0].value.expose(), secret);
    let proxy = cfg.providers["openai"].proxy_config.as_ref().unwrap();
    assert_eq!(proxy.password.as_ref().unwrap().expose(), secret);
    let bedrock = cfg.providers["bedrock"].keys[0].bedrock_key_config.as_ref().unwrap();
    assert_eq!(bedrock.secret_key.as_ref().unwrap().expose(), secret);
    for text in [format!("{cfg:?}"), format!("{cfg:#?}")] {
        assert!(!text.contains("SECRET"), "secret leaked into Debug output: {text}");
        assert!(text.contains("***"), "Debug output should show masked secrets: {text}");
    }

    // A running mock gateway with that key: stats, Prometheus text and errors stay clean.
    let gw = Gateway::from_json(&format!(
        r#"{{"providers": {{"local": {{"kind": "mock", "keys": [{{"value": "env.{var}", "models": ["*"]}}]}}}}}}"#
    ))
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut bad = Request::new("local/m", "hi");
        bad.mock = Some(MockConfig { failure_rate: Some(1.0), ..Default::default() });
        let e = gw.chat(bad).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Provider);
        assert!(!format!("{e} {e:?}").contains(secret));
        let ok = gw.chat(Request::new("local/m", "hi")).await.unwrap();
        assert_eq!(ok.extra_fields.key_id.as_deref(), Some("local#0"));
        let stats = serde_json::to_string(&gw.stats()).unwrap();
        assert!(stats.contains("local#0"), "{stats}");
        assert!(!stats.contains(secret), "secret leaked into stats: {stats}");
        let prom = gw.prometheus();
        assert!(!prom.contains(secret), "secret leaked into Prometheus text");
        assert!(!format!("{gw:?}").contains(secret));
        gw.shutdown(Duration::from_secs(1)).await;
    });
}

// ------------------------------------------------------ Bifrost compatibility

const BIFROST_PROVIDERS: &str = r#"{
    "providers": {
        "openai": {
            "keys": [
                {
                    "name": "openai-key-1",
                    "value": "env.OPENAI_API_KEY",
                    "models": ["*"],
                    "weight": 1.0
                }
            ],
            "network_config": {
                "base_url": "https://api.openai.com/v1",
                "extra_headers": {"x-team": "research"},
                "default_request_timeout_in_seconds": 60,
                "max_retries": 3,
                "retry_backoff_initial": 500,
                "retry_backoff_max": "5s"
            },
            "concurrency_and_buffer_size": {
                "concurrency": 100,
                "buffer_size": 500
            },
            "send_back_raw_response": false
        },
        "anthropic": {
            "keys": [
                {
                    "name": "anthropic-key-1",
                    "value": "env.ANTHROPIC_API_KEY",
                    "models": ["*"],
                    "weight": 1.0
                }
            ],
            "concurrency_and_buffer_size": {
                "concurrency": 25,
                "buffer_size": 100
            },
            "proxy_config": {"type": "socks5", "url": "http://localhost:8000", "username": "user", "password": "password"}
        },
        "bedrock": {
            "keys": [
                {
                    "name": "bedrock-key-1",
                    "models": ["anthropic.claude-3-sonnet-20240229-v1:0", "anthropic.claude-v2:1"],
                    "weight": 1.0,
                    "bedrock_key_config": {
                        "access_key": "env.AWS_ACCESS_KEY_ID",
                        "secret_key": "env.AWS_SECRET_ACCESS_KEY",
                        "session_token": "env.AWS_SESSION_TOKEN",
                        "region": "us-east-1",
                        "deployments": {
                            "claude-3-sonnet": "us.anthropic.claude-3-sonnet-20240229-v1:0"
                        },
                        "arn": "arn:aws:bedrock:us-east-1:123456789012:inference-profile"
                    }
                }
            ]
        }
    }
}"#;

#[test]
fn bifrost_providers_section_loads_unchanged() {
    // Only this test uses these (Bifrost's own) variable names.
    for (var, value) in [
        ("OPENAI_API_KEY", "sk-openai-test"),
        ("ANTHROPIC_API_KEY", "sk-ant-test"),
        ("AWS_ACCESS_KEY_ID", "AKIATEST"),
        ("AWS_SECRET_ACCESS_KEY", "aws-secret-test"),
        ("AWS_SESSION_TOKEN", "aws-session-test"),
    ] {
        std::env::set_var(var, value);
    }
    let cfg = Config::from_json(BIFROST_PROVIDERS).expect("a Bifrost providers section must load unchanged");
    assert_eq!(cfg.providers.len(), 3);

    let openai = &cfg.providers["openai"];
    assert_eq!(openai.resolved_kind("openai"), Some(ProviderKind::Openai));
    assert_eq!(openai.keys.len(), 1);
    let k = &openai.keys[0];
    assert_eq!(k.name.as_deref(), Some("openai-key-1"));
    assert_eq!(k.value.expose(), "sk-openai-test");
    assert!(k.allows("gpt-4o-mini"), "models [\"*\"] must allow every model");
    assert_eq!(k.weight, 1.0);
    let n = &openai.network_config;
    assert_eq!(n.base_url.as_deref(), Some("https://api.openai.com/v1"));
    assert_eq!(n.extra_headers.get("x-team").map(bifrost_core::Secret::expose), Some("research"));
    assert_eq!(n.default_request_timeout_in_seconds, 60);
    assert_eq!(n.max_retries, 3);
    assert_eq!(n.retry_backoff_initial_ms, 500);
    assert_eq!(n.retry_backoff_max_ms, 5000);
    assert_eq!(openai.concurrency_and_buffer_size.concurrency, 100);
    assert_eq!(openai.concurrency_and_buffer_size.buffer_size, 500);
    assert_eq!(openai.send_back_raw_response, Some(false));

    let anthropic = &cfg.providers["anthropic"];
    assert_eq!(anthropic.resolved_kind("anthropic"), Some(ProviderKind::Anthropic));
    assert_eq!(anthropic.keys[0].value.expose(), "sk-ant-test");
    assert_eq!(anthropic.concurrency_and_buffer_size.concurrency, 25);
    assert_eq!(anthropic.concurrency_and_buffer_size.buffer_size, 100);
    // Defaults where the Bifrost section says nothing.
    assert_eq!(anthropic.network_config.retry_backoff_initial_ms, 500);
    assert_eq!(anthropic.network_config.retry_backoff_max_ms, 5000);
    assert_eq!(anthropic.queue.policy, QueuePolicy::Block);
    let proxy = anthropic.proxy_config.as_ref().unwrap();
    assert_eq!(proxy.kind, "socks5");
    assert_eq!(proxy.url.as_ref().unwrap().expose(), "http://localhost:8000");
    assert_eq!(proxy.username.as_ref().unwrap().expose(), "user");
    assert_eq!(proxy.password.as_ref().unwrap().expose(), "password");

    let bedrock = &cfg.providers["bedrock"];
    assert_eq!(bedrock.resolved_kind("bedrock"), Some(ProviderKind::Bedrock));
    let bk = &bedrock.keys[0];
    assert_eq!(bk.value.expose(), "", "a bedrock key without value keeps an empty value");
    assert!(bk.allows("anthropic.claude-v2:1"));
    assert!(!bk.allows("gpt-4o"));
    let b = bk.bedrock_key_config.as_ref().unwrap();
    assert_eq!(b.region.expose(), "us-east-1");
    assert_eq!(b.access_key.as_ref().unwrap().expose(), "AKIATEST");
    assert_eq!(b.secret_key.as_ref().unwrap().expose(), "aws-secret-test");
    assert_eq!(b.session_token.as_ref().unwrap().expose(), "aws-session-test");
    assert_eq!(b.arn.as_ref().unwrap().expose(), "arn:aws:bedrock:us-east-1:123456789012:inference-profile");
    assert_eq!(
        b.deployments.get("claude-3-sonnet").map(String::as_str),
        Some("us.anthropic.claude-3-sonnet-20240229-v1:0")
    );

    // The whole Bifrost section starts a gateway with one pool per provider.
    let gw = Gateway::new(cfg).unwrap();
    assert_eq!(gw.providers(), vec!["anthropic", "bedrock", "openai"]);
    let stats = serde_json::to_string(&gw.stats()).unwrap();
    assert!(!stats.contains("aws-secret-test") && !stats.contains("AKIATEST"), "{stats}");
    // A bad proxy type is caught when the client is built.
    let e = Gateway::from_json(&openai_with(r#""proxy_config": {"type": "ftp", "url": "ftp://x"}"#)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert_contains(&e.to_string(), &["providers.openai.proxy_config.type", "none, http, socks5, environment"]);
}

// ------------------------------------------------------------ duration strings

fn backoffs(initial: &str, max: &str) -> Result<(u64, u64), Error> {
    let json = openai_with(&format!(
        r#""network_config": {{"retry_backoff_initial": {initial}, "retry_backoff_max": {max}}}"#
    ));
    let cfg = Config::from_json(&json)?;
    let n = &cfg.providers["openai"].network_config;
    Ok((n.retry_backoff_initial_ms, n.retry_backoff_max_ms))
}

#[test]
fn duration_strings_parse() {
    assert_eq!(backoffs(r#""250ms""#, r#""2s""#).unwrap(), (250, 2_000));
    assert_eq!(backoffs(r#""2s""#, r#""1m""#).unwrap(), (2_000, 60_000));
    assert_eq!(backoffs("250", "2000").unwrap(), (250, 2_000));
    assert_eq!(backoffs(r#""0.5s""#, r#""1.5s""#).unwrap(), (500, 1_500));
    // The `_ms` spellings take the same forms.
    let json = openai_with(r#""network_config": {"retry_backoff_initial_ms": "250ms", "retry_backoff_max_ms": 900}"#);
    let cfg = Config::from_json(&json).unwrap();
    assert_eq!(cfg.providers["openai"].network_config.retry_backoff_initial_ms, 250);
    assert_eq!(cfg.providers["openai"].network_config.retry_backoff_max_ms, 900);
    // A parsed duration still goes through the range checks.
    // Errors name the spelling the file used.
    let e = backoffs(r#""2s""#, r#""1s""#).unwrap_err();
    assert_contains(
        &e.to_string(),
        &["network_config.retry_backoff_max:", "at least retry_backoff_initial", "got 1000"],
    );
    assert!(!e.to_string().contains("_ms"), "{e}");
    assert_eq!(backoffs(r#""2m""#, r#""3m""#).unwrap(), (120_000, 180_000), "Bifrost's ranges");
    let e = backoffs(r#""17m""#, r#""20m""#).unwrap_err();
    assert_contains(&e.to_string(), &["retry_backoff_initial:", "0..=1000000", "got 1020000"]);
}

#[test]
fn bad_duration_string_names_the_field() {
    let e = backoffs(r#""fast""#, r#""5s""#).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert_contains(&e.to_string(), &["providers.openai.network_config.retry_backoff_initial", "duration", "5s"]);
    // The text is never quoted: it may be a key in the wrong place.
    assert!(!e.to_string().contains("fast"), "{e}");
    let e = backoffs("500", r#""5 parsecs""#).unwrap_err();
    assert_contains(&e.to_string(), &["providers.openai.network_config.retry_backoff_max", "duration"]);
    assert!(!e.to_string().contains("parsecs"), "{e}");
    // Bifrost: 0 or a negative value keeps the default.
    assert_eq!(backoffs("-5", "0").unwrap(), (500, 5_000));
}

// ---------------------------------------------------------------- requests

#[test]
fn request_with_unknown_top_level_key_is_invalid() {
    let e = Request::from_json(r#"{"model": "local/m", "messages": [], "temperature": 0.2}"#).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert_contains(&e.to_string(), &["invalid request", "unknown field `temperature`", "params"]);
    let e = Request::from_json(r#"{"model": "local/m", "messages": [], "mock": {"latency": 1}}"#).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert_contains(&e.to_string(), &["mock.latency", "unknown field"]);
    let e = Request::from_json(r#"{"messages": []}"#).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert_contains(&e.to_string(), &["missing field `model`"]);
    // The same request with `temperature` under `params` is fine.
    let ok = Request::from_json(r#"{"model": "local/m", "messages": [], "params": {"temperature": 0.2}}"#).unwrap();
    assert_eq!(ok.params["temperature"], serde_json::json!(0.2));
}

fn two_mock_gateway() -> Gateway {
    Gateway::from_json(r#"{"providers": {"local": {"kind": "mock"}, "other": {"kind": "mock"}}}"#).unwrap()
}

fn assert_nothing_counted(gw: &Gateway) {
    let stats = gw.stats();
    for (name, p) in &stats.providers {
        assert_eq!(p.jobs.submitted, 0, "provider {name} counted an invalid request: {:?}", p.jobs);
        assert_eq!(p.jobs, Default::default(), "provider {name}: {:?}", p.jobs);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_are_typed_and_never_counted() {
    let gw = two_mock_gateway();

    let with = |f: &dyn Fn(&mut Request)| {
        let mut r = Request::new("local/echo", "hello");
        f(&mut r);
        r
    };
    let cases: Vec<(&str, Request, ErrorKind, Vec<&str>)> = vec![
        (
            "model without '/'",
            with(&|r| r.model = "gpt-4o".into()),
            ErrorKind::InvalidRequest,
            vec!["\"<provider>/<model>\"", "\"gpt-4o\""],
        ),
        ("model with empty name", with(&|r| r.model = "local/".into()), ErrorKind::InvalidRequest, vec!["local/"]),
        (
            "unknown provider",
            with(&|r| r.model = "nope/gpt".into()),
            ErrorKind::UnknownProvider,
            vec!["unknown provider 'nope'", "configured providers: local, other"],
        ),
        (
            "empty messages",
            with(&|r| r.messages.clear()),
            ErrorKind::InvalidRequest,
            vec!["messages must contain at least one message"],
        ),
        (
            "bad role",
            with(&|r| r.messages.push(Message::new("wizard", "abracadabra"))),
            ErrorKind::InvalidRequest,
            vec!["messages[1].role", "\"wizard\"", "system, developer, user, assistant, tool"],
        ),
        (
            "timeout_ms 0",
            with(&|r| r.timeout_ms = Some(0)),
            ErrorKind::InvalidRequest,
            vec!["timeout_ms must be 1..=3600000", "got 0"],
        ),
        (
            "mock failure_rate 2",
            with(&|r| r.mock = Some(MockConfig { failure_rate: Some(2.0), ..Default::default() })),
            ErrorKind::InvalidRequest,
            vec!["mock.failure_rate", "0..=1", "got 2"],
        ),
        (
            "fallback to an unconfigured provider",
            with(&|r| r.fallbacks = vec!["other/m".into(), "nope/m".into()]),
            ErrorKind::InvalidRequest,
            vec!["fallbacks[1]", "'nope'", "not configured"],
        ),
        (
            "malformed fallback",
            with(&|r| r.fallbacks = vec!["no-slash".into()]),
            ErrorKind::InvalidRequest,
            vec!["fallbacks[0]", "\"<provider>/<model>\""],
        ),
    ];

    for (what, req, kind, parts) in cases {
        for via in ["chat", "submit", "try_submit"] {
            let err = match via {
                "chat" => gw.chat(req.clone()).await.unwrap_err(),
                "submit" => gw.submit(req.clone()).await.unwrap_err(),
                _ => gw.try_submit(req.clone()).unwrap_err(),
            };
            assert_eq!(err.kind(), kind, "{what} via {via}: {err}");
            let msg = err.to_string();
            let prefix = if kind == ErrorKind::InvalidRequest { "invalid request: " } else { "unknown provider" };
            assert!(msg.starts_with(prefix), "{what} via {via}: {msg}");
            assert_contains(&msg, &parts);
            if kind == ErrorKind::UnknownProvider {
                assert_eq!(err.provider(), Some("nope"));
                match &err {
                    Error::UnknownProvider { known, .. } => assert_eq!(known, &["local", "other"]),
                    other => panic!("expected UnknownProvider, got {other:?}"),
                }
            }
        }
    }
    assert_nothing_counted(&gw);

    // Control: a valid request is counted, so the zero counts above are meaningful.
    let resp = gw.chat(Request::new("local/echo", "hello")).await.unwrap();
    assert_eq!(resp.text(), Some("echo: hello"));
    let stats = gw.stats();
    assert_eq!(stats.providers["local"].jobs.submitted, 1);
    assert_eq!(stats.providers["local"].jobs.completed, 1);
    assert_eq!(stats.providers["other"].jobs.submitted, 0);
    gw.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_parsed_from_json_with_bad_mock_is_rejected_at_submit() {
    let gw = two_mock_gateway();
    let req = Request::from_json(
        r#"{"model": "other/m", "messages": [{"role": "user", "content": "x"}], "mock": {"failure_status": 700}}"#,
    )
    .unwrap();
    let e = gw.chat(req).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert_contains(&e.to_string(), &["mock.failure_status", "100..=599", "got 700"]);
    let req = Request::from_json(
        r#"{"model": "other/m", "messages": [{"role": "user", "content": "x"}], "timeout_ms": 3600001}"#,
    )
    .unwrap();
    let e = gw.chat(req).await.unwrap_err();
    assert_contains(&e.to_string(), &["timeout_ms must be 1..=3600000", "got 3600001"]);
    assert_nothing_counted(&gw);
    gw.shutdown(Duration::from_secs(1)).await;
}

#[test]
fn go_durations_and_bifrost_secret_objects_load() {
    std::env::set_var("BIFROST_TEST_OBJ_KEY", "sk-OBJ-777");
    std::env::set_var("BIFROST_TEST_HEADER", "Bearer hdr-SECRET-42");
    let cfg = Config::from_json(
        r#"{"providers": {"openai": {
            "keys": [{"name": "k", "value": {"value": "", "env_var": "env.BIFROST_TEST_OBJ_KEY", "from_env": true}, "weight": 1,
                      "models": ["*"]},
                     {"name": "lit", "value": {"value": "sk-literal", "env_var": "", "from_env": false}, "weight": 1,
                      "models": ["*"]}],
            "openai_config": {"disable_store": true},
            "network_config": {"retry_backoff_initial": "1s500ms", "retry_backoff_max": "1m30s",
                               "extra_headers": {"authorization": "env.BIFROST_TEST_HEADER", "x-team": "research"}}
        }}}"#,
    )
    .unwrap();
    let p = &cfg.providers["openai"];
    assert_eq!(p.keys[0].value.expose(), "sk-OBJ-777");
    assert_eq!(p.keys[1].value.expose(), "sk-literal");
    assert_eq!(p.network_config.retry_backoff_initial_ms, 1_500);
    assert_eq!(p.network_config.retry_backoff_max_ms, 90_000);
    assert_eq!(p.network_config.extra_headers["authorization"].expose(), "Bearer hdr-SECRET-42");
    let debug = format!("{cfg:?}");
    assert!(!debug.contains("hdr-SECRET-42") && !debug.contains("sk-OBJ-777"), "{debug}");
    let us = Config::from_json(
        r#"{"providers": {"openai": {"keys": [{"value": "k", "models": ["*"]}], "network_config": {"retry_backoff_initial": "1500us"}}}}"#,
    )
    .unwrap();
    assert_eq!(us.providers["openai"].network_config.retry_backoff_initial_ms, 2, "1.5 ms rounds to 2");
}

#[test]
fn a_missing_or_malformed_bedrock_region_is_named() {
    for key in [
        serde_json::json!({"models": ["*"], "bedrock_key_config": {"access_key": "AKIAEXAMPLE", "secret_key": "s3cr3t-value"}}),
        serde_json::json!({"models": ["*"], "bedrock_key_config": {"access_key": "AKIAEXAMPLE", "secret_key": "s3cr3t-value", "region": ""}}),
        serde_json::json!({"models": ["*"], "bedrock_key_config": {"access_key": "AKIAEXAMPLE", "secret_key": "s3cr3t-value",
                                      "region": "evil.example.com/x"}}),
    ] {
        let e = Gateway::from_value(serde_json::json!({"providers": {"bedrock": {"keys": [key]}}}))
            .map(drop)
            .expect_err("invalid region");
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("providers.bedrock.keys[0].bedrock_key_config.region"), "{e}");
        assert!(e.to_string().contains("us-east-1"), "says what a region looks like: {e}");
        assert!(!e.to_string().contains("evil"), "never quotes the value: {e}");
    }
}
