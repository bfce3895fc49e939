use bifrost_core::{Config, Request};
#[test]
fn probe() {
    for j in [
        r#"{"providers": {"local": {"kind": "mock"}}, "bogus": 1}"#,
        r#"{"providers": {"local": {"kind": "mock", "bogus": 1}}}"#,
        r#"{"providers": {"openai": {"keys":[{"value":"x"}], "network_config": {"bogus": 1}}}}"#,
        r#"{"providers": {"local": {"kind": "mock", "queue": {"bogus": 1}}}}"#,
        r#"{"providers": {"local": {"kind": "mock", "mock": {"bogus": 1}}}}"#,
        r#"{"providers": {"local": {"kind": "mock", "concurrency_and_buffer_size": {"concurrency": 0}}}}"#,
        r#"{"providers": {"openai": {"keys":[{"value":"x"}], "network_config": {"retry_backoff_max": "fast"}}}}"#,
        r#"{"providers": {"openai": {"keys":[{"value":"x"}], "network_config": {"retry_backoff_max_ms": "fast"}}}}"#,
        r#"{"providers": {"openai": {"keys":[{"value":"x"}], "network_config": {"retry_backoff_max_ms": -1}}}}"#,
        r#"{"providers": {"local": {"kind": "mock", "queue": {"policy": "nope"}}}}"#,
        r#"{"providers": {"local": {"kind": "nope"}}}"#,
        r#"{"providers": {}}"#,
        r#"{}"#,
        r#"{"providers": {"local": {"kind": "mock"}}} x"#,
        r#"not json"#,
    ] {
        println!(
            "{j}\n  => {:?}\n  => {}",
            Config::from_json(j).err(),
            Config::from_json(j).err().map(|e| e.to_string()).unwrap_or_default()
        );
    }
    for j in [
        r#"{"model": "a/b", "messages": [], "temperature": 1}"#,
        r#"{"model": "a/b", "messages": [{"role": "user", "content": "x", "bogus": 1}]}"#,
        r#"{"model": "a/b", "messages": [], "mock": {"bogus": 1}}"#,
        r#"{"messages": []}"#,
    ] {
        println!("{j}\n  => {:?}", Request::from_json(j).err().map(|e| e.to_string()));
    }
}
