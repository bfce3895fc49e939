//! Property-based fuzzing of the parsers of untrusted config and request
//! input, through the public API (docs/architecture.md §13): `Config` / `Gateway`
//! `from_json` / `from_value`, `Request` / `EmbedRequest` `from_json` /
//! `from_value`, `bounds::parse_strict`, and `bounds::seconds` / `millis`.
//!
//! Every property runs a fixed number of cases from a fixed seed (set
//! `PROPTEST_RNG_SEED` for another seed, `PROPTEST_CASES` for a longer
//! run). Failures are not persisted; a minimized failure is checked in as
//! a plain `#[test]` at the end.
//!
//! The properties:
//! - Config: schema-shaped random JSON (the real key names plus random
//!   ones; values of random types, huge and negative numbers, strings that
//!   look like secrets `sk-…`) never panics; every error is CONFIG; no
//!   secret-looking value appears in an error's message or `Debug`, nor a
//!   credential in a parsed config's `Debug`; the gateway built from a
//!   valid config starts and stops, and one built from an invalid config
//!   fails with the same error; text with trailing characters or a
//!   duplicate key (at any depth) is refused.
//! - Requests: the same never-panic / INVALID_REQUEST-only properties;
//!   nesting past `MAX_NESTING` is refused; `parse_strict` accepts exactly
//!   what `serde_json::from_str` accepts when the text has no duplicate
//!   key and is not too deep, with the same result.
//! - Durations: `seconds` / `millis` over every f64.

use std::time::Duration;

use bifrost_core::bounds::{self, MAX_NESTING, MAX_WAIT};
use bifrost_core::config::HealthCheck;
use bifrost_core::{Config, EmbedRequest, Error, ErrorKind, Gateway, Request};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{RngSeed, TestCaseError};
use serde_json::{json, Map, Value};

fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::with_cases(cases);
    if let Some(n) = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()) {
        c.cases = n;
    }
    c.failure_persistence = None;
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        c.rng_seed = RngSeed::Fixed(0x00bf_c0f1_6000);
    }
    c
}

// ------------------------------------------------------------ generators

/// A string value standing for a number JSON text can hold but a `Value`
/// cannot (`1e400`, 30 digits); [`to_text`] writes it out raw.
const RAW_NUMBER: &str = "\u{1}raw:";

/// A value of any type: the "wrong type" in a typed position.
fn junk() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        secret(),
        "[a-z0-9 ./:_-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{1,10}", inner), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .boxed()
}

/// Numbers at and past every edge.
fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(json!(0)),
        Just(json!(1)),
        Just(json!(-1)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(u64::from(u32::MAX) + 1)),
        Just(json!(1u64 << 53)),
        Just(json!(1e300)),
        Just(json!(-1e300)),
        Just(json!(0.5)),
        Just(json!(-0.0)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)), // NaN / inf become null
        prop::sample::select(vec!["1e400", "-1e400", "123456789012345678901234567890", "1e-400", "-0"])
            .prop_map(|s| Value::String(format!("{RAW_NUMBER}{s}"))),
    ]
    .boxed()
}

/// A credential-looking string: must never be quoted back.
fn secret() -> BoxedStrategy<Value> {
    "sk-[A-Za-z0-9]{20}".prop_map(Value::String).boxed()
}

/// Mostly `valid`, sometimes a wrong number, sometimes anything: a config
/// has a dozen fields, and one bad field hides what the others would do.
fn mostly(valid: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Value> {
    prop_oneof![40 => valid, 1 => number(), 1 => junk()].boxed()
}

/// An in-range integer, or not.
fn uint(lo: u64, hi: u64) -> BoxedStrategy<Value> {
    mostly(prop_oneof![(lo..=hi).prop_map(|n| json!(n)), Just(json!(lo)), Just(json!(hi))])
}

fn rate() -> BoxedStrategy<Value> {
    mostly(prop_oneof![(0.0..=1.0f64).prop_map(|f| json!(f)), Just(json!(0)), Just(json!(1))])
}

fn boolean() -> BoxedStrategy<Value> {
    mostly(any::<bool>().prop_map(Value::Bool))
}

/// One of `values`, or any string (a secret too), or anything.
fn one_of(values: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop_oneof![
        40 => prop::sample::select(values).prop_map(|s| json!(s)),
        1 => "[a-z_]{0,8}".prop_map(Value::String),
        1 => secret(),
        1 => junk(),
    ]
    .boxed()
}

/// A `Secret` position: a literal, `env.NAME`, the object form, or anything.
fn secret_value() -> BoxedStrategy<Value> {
    prop_oneof![
        30 => secret(),
        1 => "env\\.BIFROST_FUZZ_[A-Z]{1,4}".prop_map(Value::String), // never set
        2 => (secret(), prop::bool::weighted(0.2), prop::option::of("(env\\.)?BIFROST_FUZZ_[A-Z]{1,4}"))
            .prop_map(|(v, from_env, env_var)| {
                let mut m = Map::new();
                m.insert("value".into(), v);
                m.insert("from_env".into(), json!(from_env));
                if let Some(e) = env_var {
                    m.insert("env_var".into(), json!(e));
                }
                Value::Object(m)
            }),
        1 => junk(),
    ]
    .boxed()
}

/// An object with each of `fields` present at random (a key written
/// `!key` is nearly always there, `?key` rarely), sometimes an unknown
/// key, sometimes something else entirely.
fn obj(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let entries: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
        .into_iter()
        .map(|(k, v)| {
            let (k, p) = match k.as_bytes()[0] {
                b'!' => (&k[1..], 0.97),
                b'?' => (&k[1..], 0.05),
                _ => (k, 0.3),
            };
            prop::option::weighted(p, v.prop_map(move |v| (k.to_string(), v))).boxed()
        })
        .collect();
    let extra = prop::option::weighted(0.02, ("[a-z_]{1,12}", junk()));
    let object = (entries, extra).prop_map(|(kv, extra)| {
        let mut m: Map<String, Value> = kv.into_iter().flatten().collect();
        if let Some((k, v)) = extra {
            m.entry(k).or_insert(v);
        }
        Value::Object(m)
    });
    prop_oneof![40 => object, 1 => junk()].boxed()
}

fn list(item: BoxedStrategy<Value>, max: usize) -> BoxedStrategy<Value> {
    prop_oneof![
        30 => prop::collection::vec(item.clone(), 1..=max).prop_map(Value::Array),
        5 => Just(json!([])),
        1 => junk(),
    ]
    .boxed()
}

fn map_of(keys: &'static str, item: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![
        40 => prop::collection::vec((keys, item), 0..3).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        1 => junk(),
    ]
    .boxed()
}

fn duration() -> BoxedStrategy<Value> {
    let text = prop_oneof![
        6 => prop::sample::select(vec!["500ms", "5s", "1m", "1m30s", "1.5h", "100us", "0", "250ms"]).prop_map(|s| json!(s)),
        1 => prop::sample::select(vec!["", "ms", "1x", "-5s", "1e3s", "5 s", "1..5s", "99999999999999999999h"])
            .prop_map(|s| json!(s)),
        1 => "[0-9.]{1,4}(ns|us|µs|ms|s|m|h|d)?".prop_map(Value::String),
    ];
    let text = prop_oneof![8 => text, 1 => secret()];
    prop_oneof![3 => uint(0, 5_000), 1 => text].boxed()
}

fn network_config() -> BoxedStrategy<Value> {
    let url = prop_oneof![
        8 => Just(json!("http://127.0.0.1:9")),
        8 => Just(json!("https://127.0.0.1:9/v1/")),
        1 => Just(json!("ftp://x")),
        1 => "[a-z:/.0-9]{0,16}".prop_map(Value::String),
        1 => secret(),
        1 => junk(),
    ];
    obj(vec![
        ("base_url", url.boxed()),
        ("extra_headers", map_of("[A-Za-z-]{1,8}|[a-z ]{1,4}|", secret_value())),
        ("default_request_timeout_in_seconds", uint(1, 3_600)),
        ("max_retries", uint(0, 10)),
        ("retry_backoff_initial_ms", duration()),
        ("?retry_backoff_initial", duration()),
        ("retry_backoff_max_ms", duration()),
        ("?retry_backoff_max", duration()),
        ("stream_idle_timeout_in_seconds", uint(1, 3_600)),
        ("max_conns_per_host", uint(1, 10_000)),
        ("insecure_skip_verify", boolean()),
        ("ca_cert_pem", secret_value()),
        ("enforce_http2", boolean()),
        ("follow_redirects", boolean()),
        ("max_response_bytes", uint(1024, 1 << 30)),
        ("max_event_bytes", uint(1024, 256 << 20)),
    ])
}

fn mock_config() -> BoxedStrategy<Value> {
    obj(vec![
        ("latency_ms", uint(0, 5)),
        ("jitter_ms", uint(0, 5)),
        ("failure_rate", rate()),
        ("failure_status", uint(100, 599)),
        ("panic_rate", rate()),
        ("stream_chunks", uint(1, 10_000)),
        ("stall_ms", uint(0, 5)),
        ("seed", uint(0, u64::MAX)),
    ])
}

fn key_config() -> BoxedStrategy<Value> {
    let region = prop_oneof![
        20 => Just(json!("us-east-1")),
        20 => Just(json!("eu-west-3")),
        1 => Just(json!("US EAST")),
        1 => Just(json!("")),
        1 => Just(json!("env.BIFROST_FUZZ_REGION")),
        1 => secret_value(),
    ];
    let bedrock = obj(vec![
        ("access_key", secret_value()),
        ("secret_key", secret_value()),
        ("session_token", secret_value()),
        ("!region", region.boxed()),
        ("arn", secret_value()),
        ("deployments", map_of("[a-z.-]{1,8}", mostly("[a-z.:-]{1,12}".prop_map(Value::String)))),
    ]);
    obj(vec![
        ("!value", secret_value()),
        ("weight", mostly((0.0..10.0f64).prop_map(|f| json!(f)))),
        ("models", list(mostly("[a-z0-9*-]{1,8}".prop_map(Value::String)), 3)),
        ("id", mostly("[a-z0-9]{0,6}".prop_map(Value::String))),
        ("name", mostly("[a-z0-9]{0,6}".prop_map(Value::String))),
        ("enabled", boolean()),
        ("cooldown_ms", uint(0, 86_400_000)),
        ("description", mostly("[a-z ]{0,8}".prop_map(Value::String))),
        ("use_for_batch_api", boolean()),
        ("bedrock_key_config", bedrock),
    ])
}

const KINDS: &[&str] = &["openai", "anthropic", "bedrock", "mock"];
const POLICIES: &[&str] = &["block", "error", "drop", "drop_oldest"];

fn provider_config() -> BoxedStrategy<Value> {
    obj(vec![
        ("!kind", one_of(KINDS)),
        ("!keys", list(key_config(), 3)),
        ("network_config", network_config()),
        ("concurrency_and_buffer_size", obj(vec![("concurrency", uint(1, 4)), ("buffer_size", uint(1, 16))])),
        ("queue", obj(vec![("policy", one_of(POLICIES)), ("wait_timeout_ms", uint(0, 3_600_000))])),
        ("?mock", mock_config()),
        (
            "circuit_breaker",
            obj(vec![
                ("failure_threshold", uint(1, 10_000)),
                ("error_rate", rate()),
                ("window_ms", uint(1, 3_600_000)),
                ("min_requests", uint(1, 100_000)),
                ("open_ms", uint(1, 3_600_000)),
                ("half_open_probes", uint(1, 1_000)),
            ]),
        ),
        (
            "scaling",
            obj(vec![
                ("!min_workers", uint(1, 4)),
                ("!max_workers", uint(4, 8)),
                ("scale_up_threshold", rate()),
                ("scale_down_threshold", rate()),
                ("max_latency_ms", uint(1, 3_600_000)),
                ("min_scale_interval_ms", uint(10, 600_000)),
                ("idle_timeout_ms", uint(10, 86_400_000)),
                ("scale_up_factor", mostly((1.0..=10.0f64).prop_map(|f| json!(f)))),
            ]),
        ),
        (
            "?health_check",
            mostly(prop_oneof![
                any::<bool>().prop_map(Value::Bool),
                obj(vec![("!model", mostly("[a-z]{1,6}".prop_map(Value::String)))]),
            ]),
        ),
        (
            "proxy_config",
            obj(vec![
                ("!type", one_of(&["none", "http", "socks5", "environment"])),
                ("url", secret_value()),
                ("username", secret_value()),
                ("password", secret_value()),
                ("ca_cert_pem", secret_value()),
            ]),
        ),
        ("send_back_raw_response", boolean()),
        ("send_back_raw_request", boolean()),
        ("store_raw_request_response", boolean()),
        ("openai_config", junk()),
    ])
}

fn provider_name() -> BoxedStrategy<String> {
    prop_oneof![
        20 => prop::sample::select(vec!["openai", "anthropic", "bedrock", "mock", "local", "groq"]).prop_map(str::to_string),
        1 => prop::sample::select(vec!["", "a/b", "with space", "ü"]).prop_map(str::to_string),
        2 => "[a-z_]{1,8}",
    ]
    .boxed()
}

fn gateway_config() -> BoxedStrategy<Value> {
    let providers = prop::collection::vec((provider_name(), provider_config()), 1..4)
        .prop_map(|kv| Value::Object(kv.into_iter().collect()));
    let top = (
        prop::option::weighted(0.3, uint(0, 16)),
        prop::option::weighted(0.95, mostly(providers)),
        prop::option::weighted(0.02, ("[a-z_]{1,12}", junk())),
    )
        .prop_map(|(size, providers, extra)| {
            let mut m = Map::new();
            if let Some(s) = size {
                m.insert("initial_pool_size".into(), s);
            }
            if let Some(p) = providers {
                m.insert("providers".into(), p);
            }
            if let Some((k, v)) = extra {
                m.entry(k).or_insert(v);
            }
            Value::Object(m)
        });
    prop_oneof![40 => top, 1 => junk()].boxed()
}

/// A chat request, mostly well-formed.
fn request_value() -> BoxedStrategy<Value> {
    let part = prop_oneof![
        "[a-z ]{0,8}".prop_map(|t| json!({"type": "text", "text": t})),
        Just(json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}})),
        junk(),
    ];
    let content = prop_oneof![
        "[^\u{0}]{0,12}".prop_map(Value::String),
        prop::collection::vec(part, 0..3).prop_map(Value::Array),
        Just(Value::Null),
        junk(),
    ];
    let message = obj(vec![
        ("!role", one_of(&["system", "developer", "user", "assistant", "tool"])),
        ("!content", content.boxed()),
        ("name", prop_oneof!["[a-z]{0,6}".prop_map(Value::String), junk()].boxed()),
        ("tool_calls", junk()),
        ("tool_call_id", prop_oneof!["[a-z0-9]{0,6}".prop_map(Value::String), junk()].boxed()),
    ]);
    obj(vec![
        (
            "!model",
            prop_oneof![3 => Just(json!("mock/m")), 1 => "[a-z/]{0,8}".prop_map(Value::String), 1 => junk()].boxed(),
        ),
        ("!messages", list(message, 3)),
        ("params", map_of("[a-z_]{1,10}", junk())),
        ("fallbacks", list(prop_oneof!["[a-z/]{0,8}".prop_map(Value::String), junk()].boxed(), 2)),
        ("timeout_ms", uint(1, 3_600_000)),
        ("mock", mock_config()),
    ])
}

fn embed_request_value() -> BoxedStrategy<Value> {
    let input = prop_oneof![
        "[a-z ]{0,8}".prop_map(Value::String),
        prop::collection::vec("[a-z ]{0,8}".prop_map(Value::String), 0..3).prop_map(Value::Array),
        junk(),
    ];
    obj(vec![
        ("!model", prop_oneof![3 => Just(json!("mock/e")), 1 => junk()].boxed()),
        ("!input", input.boxed()),
        ("params", map_of("[a-z_]{1,10}", junk())),
        ("timeout_ms", uint(1, 3_600_000)),
        ("mock", mock_config()),
    ])
}

// --------------------------------------------------------------- helpers

/// JSON text of `v`; raw-number stand-ins are written out raw; with
/// `dup = Some(i)` the i-th non-empty object (pre-order, modulo their
/// count) repeats its first key (with `null`).
fn to_text(v: &Value, dup: Option<Index>) -> String {
    fn count(v: &Value) -> usize {
        match v {
            Value::Array(a) => a.iter().map(count).sum(),
            Value::Object(m) => usize::from(!m.is_empty()) + m.values().map(count).sum::<usize>(),
            _ => 0,
        }
    }
    fn write(v: &Value, dup: Option<usize>, seen: &mut usize, out: &mut String) {
        match v {
            Value::String(s) if s.starts_with(RAW_NUMBER) => out.push_str(&s[RAW_NUMBER.len()..]),
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, dup, seen, out);
                }
                out.push(']');
            }
            Value::Object(m) => {
                let me = *seen;
                if !m.is_empty() {
                    *seen += 1;
                }
                out.push('{');
                for (i, (k, x)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k).unwrap());
                    out.push(':');
                    write(x, dup, seen, out);
                }
                if dup == Some(me) && !m.is_empty() {
                    let first = m.keys().next().unwrap();
                    out.push_str(&format!(",{}:null", serde_json::to_string(first).unwrap()));
                }
                out.push('}');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let n = count(v);
    let dup = dup.filter(|_| n > 0).map(|i| i.index(n));
    let mut out = String::new();
    write(v, dup, &mut 0, &mut out);
    out
}

fn has_object(v: &Value) -> bool {
    match v {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => a.iter().any(has_object),
        _ => false,
    }
}

/// The value with raw-number stand-ins replaced by null (for `from_value`).
fn without_raw(v: &Value) -> Value {
    match v {
        Value::String(s) if s.starts_with(RAW_NUMBER) => Value::Null,
        Value::Array(a) => Value::Array(a.iter().map(without_raw).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), without_raw(x))).collect()),
        other => other.clone(),
    }
}

fn secrets_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.starts_with("sk-") => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| secrets_in(x, out)),
        Value::Object(m) => m.values().for_each(|x| secrets_in(x, out)),
        _ => {}
    }
}

/// Nesting depth as `parse_strict` counts it (a scalar is 0).
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn check_config_error(e: &Error, secrets: &[String], what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(e.kind(), ErrorKind::Config, "{}: {} ({:?})", what, e, e);
    let (shown, debug) = (e.to_string(), format!("{e:?}"));
    for s in secrets {
        prop_assert!(!shown.contains(s.as_str()), "{what}: message quotes {s}: {shown}");
        prop_assert!(!debug.contains(s.as_str()), "{what}: Debug quotes {s}: {debug}");
    }
    Ok(())
}

/// Every string under a credential key of a parsed config (what its
/// `Debug` must not show).
fn credentials(v: &Value, under_secret: bool, out: &mut Vec<String>) {
    const SECRET_KEYS: &[&str] = &[
        "value",
        "access_key",
        "secret_key",
        "session_token",
        "arn",
        "ca_cert_pem",
        "url",
        "username",
        "password",
        "region",
    ];
    match v {
        Value::String(s) if under_secret => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| credentials(x, under_secret, out)),
        Value::Object(m) => {
            for (k, x) in m {
                if !under_secret && (k == "openai_config" || k == "description") {
                    continue; // free-form values, printed as they are
                }
                let secret = under_secret || SECRET_KEYS.contains(&k.as_str()) || k == "extra_headers";
                credentials(x, secret, out);
            }
        }
        _ => {}
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap())
}

/// A gateway for `cfg` is only started when no startup probe would run
/// (a probe may call the network or a slow mock).
fn no_probe(cfg: &Config) -> bool {
    cfg.providers.values().all(|p| matches!(p.health_check, None | Some(HealthCheck::Enabled(false))))
}

fn check_gateway(built: bifrost_core::Result<Gateway>, secrets: &[String]) -> Result<(), TestCaseError> {
    match built {
        Ok(gw) => {
            let report = runtime().block_on(gw.shutdown(Duration::from_secs(5)));
            let _ = report;
        }
        Err(e) => check_config_error(&e, secrets, "Gateway")?,
    }
    Ok(())
}

fn check_request_error(e: &Error, what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{}: {} ({:?})", what, e, e);
    Ok(())
}

/// Nests `inner` in `levels` arrays or objects (chosen by `shape` bits).
fn nest(levels: usize, shape: u64, inner: Value) -> Value {
    (0..levels).fold(inner, |v, i| if shape >> (i % 64) & 1 == 0 { json!([v]) } else { json!({ "k": v }) })
}

/// Trailing text after a JSON value: not only whitespace.
fn garbage() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["x", "}", "]", "{}", "[]", "1", ",", "null", "//", "\u{0}", "\"\"", "{", "\u{feff}"])
            .prop_map(str::to_string),
        "[^ \t\r\n][^\u{0}]{0,6}",
    ]
    .prop_map(|g| format!(" {g}"))
}

// ------------------------------------------------------------ properties

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn config_parsing_never_panics_and_errors_are_config(v in gateway_config()) {
        let text = to_text(&v, None);
        let value = without_raw(&v);
        let mut secrets = Vec::new();
        secrets_in(&v, &mut secrets);
        let from_json = Config::from_json(&text);
        if std::env::var_os("FUZZ_STATS").is_some() {
            match &from_json { Ok(c) => eprintln!("STAT ok providers={} probe={}", c.providers.len(), !no_probe(c)), Err(e) => eprintln!("STAT err {}", e.to_string().chars().take(70).collect::<String>()) }
        }
        match &from_json {
            Ok(cfg) => {
                let mut creds = Vec::new();
                credentials(&v, false, &mut creds);
                let debug = format!("{cfg:?}");
                for c in creds.iter().filter(|c| c.starts_with("sk-")) {
                    prop_assert!(!debug.contains(c.as_str()), "Config Debug shows a credential {}: {}", c, debug);
                }
            }
            Err(e) => check_config_error(e, &secrets, "Config::from_json")?,
        }
        let from_value = Config::from_value(value.clone());
        if let Err(e) = &from_value {
            check_config_error(e, &secrets, "Config::from_value")?;
        }
        let written_by_serde = value.to_string();
        if text == written_by_serde {
            // The same input both ways: the same verdict.
            prop_assert_eq!(from_json.is_ok(), from_value.is_ok(), "{}", text);
        }
        match from_json {
            Ok(cfg) if no_probe(&cfg) => {
                check_gateway(Gateway::from_json(&text), &secrets)?;
                check_gateway(Gateway::from_value(value), &secrets)?;
            }
            Ok(_) => {}
            Err(e) => {
                // An invalid config starts no gateway and fails the same way.
                let g = Gateway::from_json(&text).map(|_| ()).unwrap_err();
                prop_assert_eq!(g, e);
            }
        }
    }

    #[test]
    fn config_text_with_trailing_characters_is_refused(v in gateway_config(), g in garbage()) {
        let text = format!("{}{g}", to_text(&v, None));
        let mut secrets = Vec::new();
        secrets_in(&v, &mut secrets);
        let e = Config::from_json(&text).map(|_| ()).unwrap_err();
        check_config_error(&e, &secrets, "trailing")?;
        let e = Gateway::from_json(&text).map(|_| ()).unwrap_err();
        check_config_error(&e, &secrets, "trailing (Gateway)")?;
    }

    #[test]
    fn config_text_with_a_duplicate_key_is_refused(v in gateway_config(), at in any::<Index>()) {
        prop_assume!(has_object(&v));
        let text = to_text(&v, Some(at));
        let mut secrets = Vec::new();
        secrets_in(&v, &mut secrets);
        let e = Config::from_json(&text).map(|_| ()).unwrap_err();
        check_config_error(&e, &secrets, "duplicate")?;
        // Pass 1 of parse_strict sees the duplicate before any typed error
        // unless the text is not JSON at all (a raw number out of range).
        if !text.contains("e400") && !text.contains("e-400") {
            prop_assert!(e.to_string().contains("duplicate key"), "{}: {}", text, e);
        }
    }

    #[test]
    fn config_from_arbitrary_text_never_panics(text in "[\\[\\]{}\":,0-9a-z_ .-]{0,64}", s in any::<String>()) {
        for t in [&text, &s] {
            if let Err(e) = Config::from_json(t) {
                check_config_error(&e, &[], "text")?;
            }
        }
    }

    #[test]
    fn requests_never_panic_and_errors_are_invalid_request(
        r in request_value(), e in embed_request_value(), dup in prop::option::weighted(0.2, any::<Index>()),
    ) {
        for (v, embed) in [(&r, false), (&e, true)] {
            let text = to_text(v, dup);
            let value = without_raw(v);
            let (from_json, from_value) = if embed {
                (EmbedRequest::from_json(&text).map(|_| ()), EmbedRequest::from_value(value).map(|_| ()))
            } else {
                (Request::from_json(&text).map(|_| ()), Request::from_value(value).map(|_| ()))
            };
            if let Err(e) = &from_json {
                check_request_error(e, "from_json")?;
            }
            if let Err(e) = &from_value {
                check_request_error(e, "from_value")?;
            }
            if dup.is_some() && has_object(v) {
                prop_assert!(from_json.is_err(), "duplicate key accepted: {}", text);
            }
            // Validation errors are INVALID_REQUEST too.
            if !embed {
                if let Ok(req) = Request::from_json(&text) {
                    if let Err(e) = req.validate() {
                        check_request_error(&e, "validate")?;
                    }
                }
            } else if let Ok(req) = EmbedRequest::from_json(&text) {
                if let Err(e) = req.validate() {
                    check_request_error(&e, "validate")?;
                }
            }
        }
    }

    #[test]
    fn request_nesting_past_max_is_refused(extra in 0usize..8, shape in any::<u64>(), under in 0u8..3) {
        // `{"params": {"p": X}}` puts X at depth 2; a content part at 3.
        let levels = MAX_NESTING - 5 + extra;
        let deep = nest(levels, shape, json!(1));
        let v = match under {
            0 => json!({"model": "mock/m", "messages": [{"role": "user", "content": "hi"}], "params": {"p": deep}}),
            1 => json!({"model": "mock/m", "messages": [{"role": "user", "content": [{"type": "text", "x": deep}]}]}),
            _ => json!({"model": "mock/m", "messages": [{"role": "user", "content": "hi", "tool_calls": deep}]}),
        };
        let text = v.to_string();
        let d = depth(&v);
        let got = Request::from_json(&text);
        if d > MAX_NESTING {
            let e = got.unwrap_err();
            check_request_error(&e, "deep")?;
            prop_assert!(e.to_string().contains("nested deeper"), "{}", e);
        } else {
            prop_assert!(got.is_ok(), "depth {} refused: {:?}", d, got);
        }
        let ev = json!({"model": "mock/e", "input": "x", "params": {"p": nest(levels, shape, json!(1))}});
        let got = EmbedRequest::from_json(&ev.to_string());
        prop_assert_eq!(got.is_ok(), depth(&ev) <= MAX_NESTING);
    }

    #[test]
    fn strict_parse_accepts_what_serde_json_accepts(r in request_value(), e in embed_request_value()) {
        // No duplicates and (with these generators) no deep nesting: the
        // verdict and the value are serde_json's.
        for v in [&r, &e] {
            let text = to_text(v, None);
            prop_assert!(depth(v) <= MAX_NESTING);
            let strict = bounds::parse_strict::<Request>(&text);
            let plain = serde_json::from_str::<Request>(&text);
            prop_assert_eq!(strict.is_ok(), plain.is_ok(), "{}: {:?} vs {:?}", text, strict, plain.as_ref().err());
            if let (Ok(a), Ok(b)) = (&strict, &plain) {
                prop_assert_eq!(a, b);
            }
            let strict = bounds::parse_strict::<EmbedRequest>(&text);
            let plain = serde_json::from_str::<EmbedRequest>(&text);
            prop_assert_eq!(strict.is_ok(), plain.is_ok(), "{}", text);
            if let (Ok(a), Ok(b)) = (&strict, &plain) {
                prop_assert_eq!(a, b);
            }
            let strict = bounds::parse_strict::<Value>(&text);
            let plain = serde_json::from_str::<Value>(&text);
            prop_assert_eq!(strict.is_ok(), plain.is_ok(), "{}", text);
            if let (Ok(a), Ok(b)) = (&strict, &plain) {
                prop_assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn strict_parse_of_valid_requests_round_trips(r in request_value()) {
        // Requests that parse, serialized back by serde_json, parse again to
        // the same request.
        if let Ok(req) = serde_json::from_value::<Request>(without_raw(&r)) {
            let text = serde_json::to_string(&req).unwrap();
            let strict: Request = bounds::parse_strict(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&strict, &serde_json::from_str::<Request>(&text).unwrap());
            prop_assert_eq!(Request::from_json(&text).unwrap(), strict);
        }
    }

    #[test]
    fn strict_parse_of_arbitrary_text(text in "[\\[\\]{}\":,0-9a-z .\\\\-]{0,48}") {
        let strict = bounds::parse_strict::<Value>(&text);
        let plain = serde_json::from_str::<Value>(&text);
        if strict.is_ok() {
            prop_assert!(plain.is_ok());
        }
        if let Ok(v) = &plain {
            // Without duplicate keys strict accepts it (the alphabet
            // cannot nest 100 deep in 48 characters).
            let dup_free = to_text(v, None);
            prop_assert!(bounds::parse_strict::<Value>(&dup_free).is_ok(), "{}", dup_free);
        }
    }

    #[test]
    fn durations_over_all_floats(a in any::<f64>(), b in any::<f64>(), special in prop::sample::select(vec![
        0.0, -0.0, f64::MIN_POSITIVE, 5e-324, 1e-9, 0.5e-9, 1.0, 1e9, 1e15, 3.1536e7, 3.1536e7 - 1e-7, 3.1536e10,
        1e20, 1e300, f64::MAX, -f64::MIN_POSITIVE, -1.0, f64::MIN, f64::NAN, -f64::NAN, f64::INFINITY,
        f64::NEG_INFINITY, 1.8446744073709552e19, 9.223372036854776e18,
    ])) {
        for x in [a, b, special, a.abs(), b.abs(), special.abs()] {
            let valid = x.is_finite() && x >= 0.0;
            for (f, name) in [(bounds::seconds as fn(f64, &str) -> _, "seconds"), (bounds::millis, "millis")] {
                match f(x, "some_timeout") {
                    Ok(d) => {
                        prop_assert!(valid, "{}({}) accepted", name, x);
                        prop_assert!(d <= MAX_WAIT, "{}({}) = {:?}", name, x, d);
                    }
                    Err(e) => {
                        prop_assert!(!valid, "{}({}) refused: {}", name, x, e);
                        prop_assert_eq!(e.kind(), ErrorKind::InvalidRequest);
                        prop_assert!(e.to_string().contains("some_timeout"), "{}", e);
                    }
                }
            }
        }
        // Monotonic, for every pair of valid values.
        let (lo, hi) = if a.abs() <= b.abs() { (a.abs(), b.abs()) } else { (b.abs(), a.abs()) };
        if hi.is_finite() {
            prop_assert!(bounds::seconds(lo, "t").unwrap() <= bounds::seconds(hi, "t").unwrap(), "{} {}", lo, hi);
            prop_assert!(bounds::millis(lo, "t").unwrap() <= bounds::millis(hi, "t").unwrap(), "{} {}", lo, hi);
        }
        // Exact where a Duration can hold the value.
        let s = special.abs();
        if s.is_finite() && s < MAX_WAIT.as_secs_f64() {
            prop_assert_eq!(bounds::seconds(s, "t").unwrap(), Duration::from_secs_f64(s));
        }
    }

    #[test]
    fn durations_monotonic_near_the_cap(x in 0.0..(2.0 * MAX_WAIT.as_secs_f64()), dx in 0.0..10.0f64) {
        prop_assert!(bounds::seconds(x, "t").unwrap() <= bounds::seconds(x + dx, "t").unwrap());
        prop_assert!(bounds::millis(x * 1000.0, "t").unwrap() <= bounds::millis((x + dx) * 1000.0, "t").unwrap());
        prop_assert!(bounds::seconds(x, "t").unwrap() <= MAX_WAIT);
    }
}

// ------------------------------------------- minimized failures (open bugs)

/// The CONFIG error of `json` (from `Gateway::from_json`, which also builds
/// the HTTP clients), as its message and `Debug`.
fn gateway_error(json: &str) -> String {
    match Gateway::from_json(json) {
        Ok(_) => panic!("expected a CONFIG error for {json}"),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Config, "{e}");
            format!("{e} / {e:?}")
        }
    }
}

const SECRET: &str = "sk-live-4f9a2b7c1d8e";

#[test]
fn regression_unknown_enum_value_is_not_quoted() {
    // Found by fuzzing: bounds::scrub removed serde's `string "…"` but not
    // `unknown variant `…``; now neither quotes the value.
    let leaks = [
        format!(
            r#"{{"providers": {{"openai": {{"kind": "{SECRET}", "keys": [{{"value": "k", "models": ["*"]}}]}}}}}}"#
        ),
        format!(r#"{{"providers": {{"local": {{"kind": "mock", "queue": {{"policy": "{SECRET}"}}}}}}}}"#),
        // A provider given as a list: its first element is read as `kind`.
        format!(r#"{{"providers": {{"local": ["{SECRET}"]}}}}"#),
    ]
    .into_iter()
    .map(|json| (gateway_error(&json), json))
    .filter(|(e, _)| e.contains(SECRET))
    .map(|(e, json)| format!("{json}\n  -> {e}"))
    .collect::<Vec<_>>();
    assert!(leaks.is_empty(), "quoted:\n{}", leaks.join("\n"));
}

#[test]
fn regression_duration_string_is_not_quoted() {
    for key in ["retry_backoff_initial", "retry_backoff_max_ms"] {
        let json =
            format!(r#"{{"providers": {{"local": {{"kind": "mock", "network_config": {{"{key}": "{SECRET}"}}}}}}}}"#);
        let e = gateway_error(&json);
        assert!(!e.contains(SECRET), "{json}: {e}");
    }
}

#[test]
fn regression_base_url_is_not_quoted() {
    let json = format!(
        r#"{{"providers": {{"openai": {{"keys": [{{"value": "k", "models": ["*"]}}], "network_config": {{"base_url": "{SECRET}"}}}}}}}}"#
    );
    let e = gateway_error(&json);
    assert!(!e.contains(SECRET), "{e}");
}

#[test]
fn regression_proxy_type_is_not_quoted() {
    let json = format!(
        r#"{{"providers": {{"openai": {{"keys": [{{"value": "k", "models": ["*"]}}], "proxy_config": {{"type": "{SECRET}"}}}}}}}}"#
    );
    assert!(Config::from_json(&json).is_ok(), "the type is only checked when the HTTP client is built");
    let e = gateway_error(&json);
    assert!(!e.contains(SECRET), "{e}");
}

#[test]
fn very_deep_text_is_refused_without_overflowing_the_stack() {
    for open in ["[", "{\"a\":"] {
        let deep = format!(r#"{{"model": "mock/m", "messages": [], "params": {{"p": {}}}}}"#, open.repeat(200_000));
        let e = Request::from_json(&deep).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{e}");
        let e = Config::from_json(&format!(
            r#"{{"providers": {{"openai": {{"openai_config": {}}}}}}}"#,
            open.repeat(200_000)
        ))
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    }
}
