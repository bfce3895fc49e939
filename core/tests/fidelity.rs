//! Fidelity (docs/architecture.md §12): what bifrost hands back for a
//! provider's recorded bytes. bifrost-mock replays each file of
//! `tests/fixtures/` over real loopback HTTP (`fixture=<name>`), and the
//! test compares bifrost's answer with the file itself.
//!
//! OpenAI-compatible answers must come back whole: every field, unknown
//! ones included, every number with its value, explicit `null`s kept, and
//! nothing added but `extra_fields`.

use bifrost_core::{EmbedRequest, Gateway, Request};
use bifrost_mock::{MockConfig, MockServer};
use futures_util::StreamExt;
use serde_json::{json, Value};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures");

fn fixture(path: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The `data:` payloads of an SSE fixture, `[DONE]` left out.
fn sse_payloads(path: &str) -> Vec<Value> {
    fixture(path)
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("fixture event is JSON"))
        .collect()
}

async fn openai_gateway() -> (MockServer, Gateway) {
    let srv = MockServer::start(MockConfig::default()).await.expect("mock server");
    let gw = Gateway::from_value(json!({"providers": {"openai": {
        "keys": [{"value": "mock-key", "models": ["*"]}],
        "network_config": {"base_url": format!("{}/v1", srv.url())}}}}))
    .expect("gateway");
    (srv, gw)
}

/// `v` as bifrost's own JSON writer and serde both write it, without `extra_fields`.
fn without_extra(mut v: Value) -> Value {
    v.as_object_mut().expect("object").remove("extra_fields");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_chat_completions_come_back_whole() {
    let (_srv, gw) = openai_gateway().await;
    for name in
        ["chat_basic", "chat_refusal", "chat_logprobs", "chat_tool_calls", "chat_annotations", "chat_compatible_extras"]
    {
        let sent: Value = serde_json::from_str(&fixture(&format!("openai/{name}.json"))).expect("fixture");
        let resp = gw
            .chat(Request::new(format!("openai/gpt-4o~fixture={name}"), "hi"))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(without_extra(serde_json::to_value(&resp).expect("serializes")), sent, "{name} (serde)");
        // The JSON text C and Node receive is written by bifrost's own writer.
        let mut text = Vec::new();
        bifrost_core::json::write_response(&mut text, &resp);
        let written: Value = serde_json::from_slice(&text).expect("bifrost writes JSON");
        assert_eq!(without_extra(written), sent, "{name} (json::write_response)");
        assert_eq!(resp.extra_fields.provider, "openai");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_refusals_and_numbers_are_typed_where_bifrost_reads_them() {
    let (_srv, gw) = openai_gateway().await;
    let resp = gw.chat(Request::new("openai/gpt-4o~fixture=chat_refusal", "hi")).await.expect("refusal");
    let msg = &resp.choices[0].message;
    assert_eq!(msg.content, None);
    assert_eq!(msg.other["refusal"], json!("I'm sorry, I cannot assist with that request."));
    assert_eq!(resp.usage.prompt_tokens, 81);
    assert_eq!(resp.usage.other["prompt_tokens_details"]["cached_tokens"], json!(0));
    let resp = gw.chat(Request::new("openai/m~fixture=chat_compatible_extras", "hi")).await.expect("extras");
    assert_eq!(resp.choices[0].message.reasoning_content.as_deref(), Some("The user greets me; reply briefly."));
    let n = &resp.other["numbers"];
    assert_eq!(n["u64_max"].as_u64(), Some(u64::MAX));
    assert_eq!(n["i64_min"].as_i64(), Some(i64::MIN));
    assert_eq!(n["tenth"].as_f64(), Some(0.1));
    assert_eq!(n["tiny"].as_f64(), Some(1.192_092_895_507_812_5e-7));
    assert_eq!(n["big"].as_f64(), Some(f64::MAX));
    assert_eq!(n["exp"].as_f64(), Some(6.022_140_76e23));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_stream_chunks_come_back_whole() {
    let (_srv, gw) = openai_gateway().await;
    for name in ["stream_text", "stream_tool_calls", "stream_refusal", "stream_logprobs"] {
        let sent = sse_payloads(&format!("openai/{name}.sse"));
        let mut stream = gw
            .stream(Request::new(format!("openai/gpt-4o~fixture={name}"), "hi"))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut got = Vec::new();
        while let Some(c) = stream.next().await {
            got.push(serde_json::to_value(c.unwrap_or_else(|e| panic!("{name}: {e}"))).expect("serializes"));
        }
        assert_eq!(got, sent, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_embeddings_keep_every_digit_and_base64_works() {
    let (_srv, gw) = openai_gateway().await;
    for (name, format) in [("embeddings_float", "float"), ("embeddings_base64", "base64")] {
        let sent: Value = serde_json::from_str(&fixture(&format!("openai/{name}.json"))).expect("fixture");
        let req: EmbedRequest = serde_json::from_value(json!({
            "model": format!("openai/text-embedding-3-small~fixture={name}"), "input": ["a", "b"],
            "params": {"encoding_format": format}}))
        .expect("request");
        let resp = gw.embed(req).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(without_extra(serde_json::to_value(&resp).expect("serializes")), sent, "{name}");
    }
    let req: EmbedRequest = serde_json::from_value(json!({
        "model": "openai/e~fixture=embeddings_float", "input": "a"}))
    .expect("request");
    let resp = gw.embed(req).await.expect("floats");
    let v = resp.data[0].embedding.as_floats().expect("floats");
    assert_eq!(v[4], -0.006_929_283_495_992_422, "an f64 is not rounded to f32");
}

async fn anthropic_gateway() -> (MockServer, Gateway) {
    let srv = MockServer::start(MockConfig::default()).await.expect("mock server");
    let gw = Gateway::from_value(json!({"providers": {"anthropic": {
        "keys": [{"value": "mock-key", "models": ["*"]}],
        "network_config": {"base_url": srv.url()}}}}))
    .expect("gateway");
    (srv, gw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_thinking_cache_and_server_tools_map_as_documented() {
    let (_srv, gw) = anthropic_gateway().await;
    let resp = gw.chat(Request::new("anthropic/claude~fixture=message_thinking", "hi")).await.expect("thinking");
    let msg = &resp.choices[0].message;
    assert_eq!(
        msg.reasoning_content.as_deref(),
        Some("To approach this, let's think about what we know about prime numbers...")
    );
    let blocks = msg.other["thinking_blocks"].as_array().expect("thinking blocks");
    assert_eq!((blocks[0]["type"].as_str(), blocks[1]["type"].as_str()), (Some("thinking"), Some("redacted_thinking")));
    assert!(blocks[0]["signature"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(resp.usage.prompt_tokens, 2095 + 1024 + 4096);
    assert_eq!(
        resp.usage.other["prompt_tokens_details"],
        json!({"cached_tokens": 4096, "cache_creation_tokens": 1024})
    );

    let resp = gw.chat(Request::new("anthropic/claude~fixture=message_server_tools", "hi")).await.expect("tools");
    let calls = resp.choices[0].message.tool_calls.as_ref().expect("tool calls");
    assert_eq!(calls.as_array().map(Vec::len), Some(1), "server tools are not tool calls: {calls}");
    assert_eq!(calls[0]["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(resp.usage.other["server_tool_use"]["web_search_requests"], 1);

    let mut stream =
        gw.stream(Request::new("anthropic/claude~fixture=stream_thinking", "hi")).await.expect("thinking stream");
    let (mut reasoning, mut text, mut blocks, mut usage) = (String::new(), String::new(), Vec::new(), None);
    while let Some(c) = stream.next().await {
        let c = c.expect("chunk");
        for ch in &c.choices {
            reasoning.push_str(ch.delta.reasoning_content.as_deref().unwrap_or(""));
            text.push_str(ch.delta.content.as_deref().unwrap_or(""));
            if let Some(Value::Array(b)) = ch.delta.other.get("thinking_blocks") {
                blocks.extend(b.iter().cloned());
            }
        }
        usage = c.usage.or(usage);
    }
    assert!(reasoning.starts_with("I need to find the GCD") && reasoning.ends_with("= 21"), "{reasoning}");
    assert_eq!(text, "The greatest common divisor of 1071 and 462 is **21**.");
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0]["thinking"], json!(reasoning), "the signed block holds the whole thinking");
    let usage = usage.expect("usage");
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (45 + 2048, 103));
    assert_eq!(usage.other["prompt_tokens_details"]["cached_tokens"], 2048);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bedrock_tools_reasoning_and_cache_map_as_documented() {
    let srv = MockServer::start(MockConfig::default()).await.expect("mock server");
    let gw = Gateway::from_value(json!({"providers": {"bedrock": {
        "keys": [{"models": ["*"], "bedrock_key_config": {"access_key": "mock-key", "secret_key": "s", "region": "us-east-1"}}],
        "network_config": {"base_url": srv.url()}}}}))
    .expect("gateway");
    let model = "bedrock/anthropic.claude-3-7-sonnet-20250219-v1:0";
    let resp = gw.chat(Request::new(format!("{model}~fixture=converse_tool_use"), "hi")).await.expect("tool use");
    let choice = &resp.choices[0];
    assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
    let calls = choice.message.tool_calls.as_ref().expect("tool calls");
    assert_eq!(calls[0]["id"], "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
    assert_eq!(calls[0]["function"]["name"], "top_song");
    assert_eq!(
        serde_json::from_str::<Value>(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"sign": "WZPZ"})
    );

    let resp = gw.chat(Request::new(format!("{model}~fixture=converse_reasoning"), "hi")).await.expect("reasoning");
    let msg = &resp.choices[0].message;
    assert!(msg.reasoning_content.as_deref().is_some_and(|r| r.starts_with("The user asks")));
    let blocks = msg.other["thinking_blocks"].as_array().expect("blocks");
    assert_eq!(blocks[1], json!({"type": "redacted_thinking", "data": "RXJjQkNrZ0lBaEFCR0FJaVFNdXZjRDJ6"}));
    assert_eq!((resp.usage.prompt_tokens, resp.usage.total_tokens), (58 + 2048 + 1024, 3442));
    assert_eq!(
        resp.usage.other["prompt_tokens_details"],
        json!({"cached_tokens": 2048, "cache_creation_tokens": 1024})
    );

    let mut stream = gw.stream(Request::new(format!("{model}~fixture=stream_tool_use"), "hi")).await.expect("stream");
    let (mut text, mut name, mut args, mut finish) = (String::new(), None, String::new(), None);
    while let Some(c) = stream.next().await {
        let c = c.expect("chunk");
        for ch in &c.choices {
            text.push_str(ch.delta.content.as_deref().unwrap_or(""));
            if let Some(calls) = &ch.delta.tool_calls {
                assert_eq!(calls[0]["index"], 0);
                name = name.or_else(|| calls[0]["function"]["name"].as_str().map(str::to_string));
                args.push_str(calls[0]["function"]["arguments"].as_str().unwrap_or(""));
            }
            finish = ch.finish_reason.clone().or(finish);
        }
    }
    assert_eq!(text, "I'll look up the top song.");
    assert_eq!(name.as_deref(), Some("top_song"));
    assert_eq!(serde_json::from_str::<Value>(&args).expect("arguments are JSON"), json!({"sign": "WZPZ"}));
    assert_eq!(finish.as_deref(), Some("tool_calls"));
}

/// Random answers of OpenAI's shape, with random extra fields, `null`s and
/// absent optional fields: bifrost must write each back as it came.
mod lossless_property {
    use bifrost_core::{Chunk, Response};
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Fields bifrost does not name (prefixed so they never collide).
    fn extras() -> impl Strategy<Value = Map<String, Value>> {
        prop::collection::btree_map("x_[a-z_]{1,8}", value(), 0..3).prop_map(|m| m.into_iter().collect())
    }

    /// Absent, `null`, or a value from `s`.
    fn optional(s: impl Strategy<Value = Value>) -> impl Strategy<Value = Option<Value>> {
        prop_oneof![Just(None), Just(Some(Value::Null)), s.prop_map(Some)]
    }

    fn with(mut base: Map<String, Value>, fields: Vec<(&str, Option<Value>)>) -> Value {
        for (k, v) in fields {
            if let Some(v) = v {
                base.insert(k.to_string(), v);
            }
        }
        Value::Object(base)
    }

    fn text() -> impl Strategy<Value = Value> {
        ".{0,16}".prop_map(Value::String)
    }

    fn usage() -> impl Strategy<Value = Value> {
        (any::<u64>(), any::<u64>(), any::<u64>(), extras()).prop_map(|(p, c, t, x)| {
            with(
                x,
                vec![
                    ("prompt_tokens", Some(p.into())),
                    ("completion_tokens", Some(c.into())),
                    ("total_tokens", Some(t.into())),
                ],
            )
        })
    }

    fn delta() -> impl Strategy<Value = Value> {
        (optional(text()), optional(text()), optional(value()), optional(text()), extras()).prop_map(
            |(r, c, t, rc, x)| with(x, vec![("role", r), ("content", c), ("tool_calls", t), ("reasoning_content", rc)]),
        )
    }

    fn chunk() -> impl Strategy<Value = Value> {
        let choice =
            (any::<u32>(), delta(), prop_oneof![Just(Value::Null), text()], extras()).prop_map(|(i, d, f, x)| {
                with(x, vec![("index", Some(i.into())), ("delta", Some(d)), ("finish_reason", Some(f))])
            });
        (text(), text(), any::<u64>(), text(), prop::collection::vec(choice, 0..3), optional(usage()), extras())
            .prop_map(|(id, object, created, model, choices, usage, x)| {
                with(
                    x,
                    vec![
                        ("id", Some(id)),
                        ("object", Some(object)),
                        ("created", Some(created.into())),
                        ("model", Some(model)),
                        ("choices", Some(Value::Array(choices))),
                        ("usage", usage),
                    ],
                )
            })
    }

    fn completion() -> impl Strategy<Value = Value> {
        let message = (text(), prop_oneof![Just(Value::Null), text()], optional(value()), optional(text()), extras())
            .prop_map(|(role, content, calls, rc, x)| {
                with(
                    x,
                    vec![
                        ("role", Some(role)),
                        ("content", Some(content)),
                        ("tool_calls", calls),
                        ("reasoning_content", rc),
                    ],
                )
            });
        let choice =
            (any::<u32>(), message, prop_oneof![Just(Value::Null), text()], extras()).prop_map(|(i, m, f, x)| {
                with(x, vec![("index", Some(i.into())), ("message", Some(m)), ("finish_reason", Some(f))])
            });
        (text(), text(), any::<u64>(), text(), prop::collection::vec(choice, 0..3), usage(), extras()).prop_map(
            |(id, object, created, model, choices, usage, x)| {
                with(
                    x,
                    vec![
                        ("id", Some(id)),
                        ("object", Some(object)),
                        ("created", Some(created.into())),
                        ("model", Some(model)),
                        ("choices", Some(Value::Array(choices))),
                        ("usage", Some(usage)),
                    ],
                )
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn a_chunk_comes_back_as_it_came(v in chunk()) {
            let text = serde_json::to_string(&v).expect("JSON");
            let parsed: Chunk = serde_json::from_str(&text).expect("a chunk parses");
            prop_assert_eq!(serde_json::to_value(&parsed).expect("serializes"), v);
        }

        #[test]
        fn a_completion_comes_back_as_it_came(v in completion()) {
            let text = serde_json::to_string(&v).expect("JSON");
            let parsed: Response = serde_json::from_str(&text).expect("a completion parses");
            let mut out = serde_json::to_value(&parsed).expect("serializes");
            out.as_object_mut().expect("object").remove("extra_fields");
            prop_assert_eq!(&out, &v);
            // bifrost's own writer (C, Node) agrees.
            let mut written = Vec::new();
            bifrost_core::json::write_response(&mut written, &parsed);
            let mut written: Value = serde_json::from_slice(&written).expect("JSON");
            written.as_object_mut().expect("object").remove("extra_fields");
            prop_assert_eq!(written, v);
        }
    }
}
