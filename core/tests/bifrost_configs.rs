//! Real Bifrost `config.json` files and `providers` sections (copied from
//! maximhq/bifrost; sources in tests/fixtures/bifrost/SOURCES.md): every one
//! either loads with Bifrost's meaning or is refused naming a field that is
//! "not supported yet" (or a key's `models` that Bifrost's versions read
//! oppositely) — never an unknown-field error, never a silent difference in
//! routing.

use std::path::PathBuf;

use bifrost_core::Config;

fn fixtures() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/bifrost");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    out.sort();
    out
}

/// Sets every `env.NAME` a fixture references (regions to a real region).
fn set_env(text: &str) {
    for part in text.split("env.").skip(1) {
        let name: String = part.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            let value = if name.contains("REGION") { "us-east-1" } else { "test-value" };
            // SAFETY: tests in this file set only these variables, to fixed values.
            unsafe { std::env::set_var(&name, value) };
        }
    }
}

fn load(text: &str) -> Result<Config, String> {
    set_env(text);
    Config::from_json(text).map_err(|e| e.to_string())
}

fn ambiguous_models(e: &str) -> bool {
    e.contains(".models: missing: Bifrost >= 1.5 reads a key without \"models\" as serving no model")
}

#[test]
fn every_real_file_loads_or_is_refused_by_name() {
    let (mut loaded, mut refused, mut wrong) = (Vec::new(), Vec::new(), Vec::new());
    for (name, text) in fixtures() {
        match load(&text) {
            Ok(_) => loaded.push(name),
            Err(e) if e.contains("not supported") => refused.push(format!("{name}: {e}")),
            // A key without `models` in a file without `version`: Bifrost
            // 1.4 and 1.5 read it oppositely, so it is refused, by name.
            Err(e) if ambiguous_models(&e) => refused.push(format!("{name}: {e}")),
            // A docs snippet with a custom provider name and no
            // custom_provider_config: Bifrost refuses it too; we ask for `kind`.
            Err(e) if name.starts_with("14-") && e.contains("ollama-local.kind: missing") => refused.push(name),
            Err(e) => wrong.push(format!("{name}: {e}")),
        }
    }
    eprintln!("loaded {}:\n  {}", loaded.len(), loaded.join("\n  "));
    eprintln!("refused {}:\n  {}", refused.len(), refused.join("\n  "));
    assert!(wrong.is_empty(), "refused without naming an unsupported feature:\n  {}", wrong.join("\n  "));
    assert!(loaded.len() >= 20, "loaded only {}", loaded.len());
}

#[test]
fn the_providers_section_of_every_whole_file_loads_or_is_refused_by_name() {
    for (name, text) in fixtures().into_iter().filter(|(n, _)| n.starts_with('m')) {
        let whole: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut section = serde_json::json!({"providers": whole["providers"].clone()});
        if let Some(v) = whole.get("version") {
            section["version"] = v.clone();
        }
        match load(&section.to_string()) {
            Ok(_) => {}
            Err(e) => assert!(e.contains("not supported") || ambiguous_models(&e), "{name}: {e}"),
        }
    }
}

fn key(config: serde_json::Value) -> bifrost_core::config::KeyConfig {
    let c = Config::from_value(config).expect("loads");
    c.providers["openai"].keys[0].clone()
}

#[test]
fn models_mean_what_they_mean_in_bifrost() {
    let with = |models: serde_json::Value, version: Option<u64>| {
        let mut k = serde_json::json!({"value": "k"});
        if !models.is_null() {
            k["models"] = models;
        }
        let mut c = serde_json::json!({"providers": {"openai": {"keys": [k]}}});
        if let Some(v) = version {
            c["version"] = v.into();
        }
        key(c)
    };
    // `[]`: no model (Bifrost >= 1.5), unless version 1 (Bifrost 1.4).
    assert!(!with(serde_json::json!([]), None).allows("gpt-4o"));
    assert!(!with(serde_json::json!([]), Some(2)).allows("gpt-4o"));
    assert!(with(serde_json::json!([]), Some(1)).allows("gpt-4o"));
    // No `models`: every model with version 1, none with version 2, and
    // refused without a version (the two versions read it oppositely).
    assert!(with(serde_json::Value::Null, Some(1)).allows("gpt-4o"));
    assert!(!with(serde_json::Value::Null, Some(2)).allows("gpt-4o"));
    let e = Config::from_value(serde_json::json!({"providers": {"openai": {"keys": [{"value": "k"}]}}})).unwrap_err();
    assert_eq!(e.kind(), bifrost_core::ErrorKind::Config);
    let text = e.to_string();
    assert!(text.contains("providers.openai.keys[0].models: missing") && text.contains("[\"*\"]"), "{text}");
    // `["*"]` every model; a list those models, ignoring case.
    assert!(with(serde_json::json!(["*"]), Some(2)).allows("anything"));
    let listed = with(serde_json::json!(["GPT-4o"]), None);
    assert!(listed.allows("gpt-4o") && !listed.allows("gpt-4o-mini"));
    let bad = Config::from_value(
        serde_json::json!({"providers": {"openai": {"keys": [{"value": "k", "models": ["*", "x"]}]}}}),
    );
    assert!(bad.unwrap_err().to_string().contains("models"));
    assert!(Config::from_value(
        serde_json::json!({"version": 3, "providers": {"openai": {"keys": [{"value": "k", "models": ["*"]}]}}})
    )
    .unwrap_err()
    .to_string()
    .contains("version"));
}

#[test]
fn blacklisted_models_win_and_aliases_rename_upstream() {
    let k = key(serde_json::json!({"providers": {"openai": {"keys": [{
        "value": "k", "models": ["*"], "blacklisted_models": ["gpt-4o"],
        "aliases": {"fast": "gpt-4o-mini-2024-07-18", "Smart": {"model_id": "o3", "model_family": "openai"}}
    }]}}}));
    assert!(!k.allows("GPT-4o"), "the blacklist wins over [\"*\"], ignoring case");
    assert!(k.allows("gpt-4o-mini"));
    assert_eq!(k.upstream_model("fast"), "gpt-4o-mini-2024-07-18");
    assert_eq!(k.upstream_model("smart"), "o3", "aliases match ignoring case after an exact miss");
    assert_eq!(k.upstream_model("other"), "other");
    let all = key(
        serde_json::json!({"providers": {"openai": {"keys": [{"value": "k", "models": ["*"], "blacklisted_models": ["*"]}]}}}),
    );
    assert!(!all.allows("gpt-4o"));
    let err = Config::from_value(serde_json::json!({"providers": {"openai": {"keys": [{
        "value": "k", "aliases": {"x": {"model_id": "y", "region": "eu-west-1"}}}]}}}))
    .unwrap_err()
    .to_string();
    assert!(err.contains("aliases") && err.contains("not supported"), "{err}");
}

#[test]
fn bifrost_spellings_ranges_and_names() {
    let net = |n: serde_json::Value| {
        Config::from_value(
            serde_json::json!({"providers": {"openai": {"keys": [{"value": "k", "models": ["*"]}], "network_config": n}}}),
        )
    };
    let c =
        net(serde_json::json!({"max_retries": 15, "retry_backoff_initial": "2m", "retry_backoff_max": "10m"})).unwrap();
    let n = &c.providers["openai"].network_config;
    assert_eq!((n.max_retries, n.retry_backoff_initial_ms, n.retry_backoff_max_ms), (15, 120_000, 600_000));
    // Bifrost: 0 or less keeps the default.
    let c = net(serde_json::json!({"retry_backoff_initial": 0, "retry_backoff_max": -5})).unwrap();
    let n = &c.providers["openai"].network_config;
    assert_eq!((n.retry_backoff_initial_ms, n.retry_backoff_max_ms), (500, 5_000));
    // An error names the key the file used.
    let e = net(serde_json::json!({"retry_backoff_initial": 3000, "retry_backoff_max": 1000})).unwrap_err().to_string();
    assert!(e.contains("network_config.retry_backoff_max:") && !e.contains("_ms"), "{e}");
    let e = net(serde_json::json!({"beta_header_overrides": {"computer-use": false}})).unwrap_err().to_string();
    assert!(e.contains("beta_header_overrides") && e.contains("not supported"), "{e}");
    assert!(net(serde_json::json!({"allow_private_network": true, "keep_alive_timeout_in_seconds": 30})).is_ok());
    // A custom provider on OpenAI's protocol is an openai provider.
    let c = Config::from_value(serde_json::json!({"providers": {"my-vllm": {
        "keys": [], "custom_provider_config": {"base_provider_type": "openai", "is_key_less": true},
        "network_config": {"base_url": "http://127.0.0.1:8000"}, "tags": ["local"], "metadata": {"team": "ml"}}}}))
    .unwrap();
    assert_eq!(c.providers["my-vllm"].resolved_kind("my-vllm"), Some(bifrost_core::ProviderKind::Openai));
    let e =
        Config::from_value(serde_json::json!({"providers": {"azure": {"keys": [{"value": "k", "models": ["*"]}]}}}))
            .unwrap_err();
    assert!(e.to_string().contains("provider kind 'azure' is not supported yet"), "{e}");
}
