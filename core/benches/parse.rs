//! What strict JSON text costs per request (docs/architecture.md §13): `Request::from_json`
//! (duplicate-key and nesting pass, then the typed parse) against the plain
//! typed parse `serde_json::from_str::<Request>` it replaced, on a typical
//! chat request; and what reading a provider's answer costs: a
//! `chat.completion` (OpenAI's reference example with `logprobs`, usage
//! details and `system_fingerprint`), a stream chunk, and a 1536-dimension
//! embeddings list, each parsed into bifrost's types and written back out
//! (the round trip every OpenAI-compatible answer makes). Run with
//! `cargo bench -p bifrost-core --bench parse`.

use bifrost_core::{Chunk, EmbedResponse, Request, Response};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

const TYPICAL: &str = r#"{"model": "openai/gpt-4o-mini", "messages": [
  {"role": "system", "content": "You are a terse assistant."},
  {"role": "user", "content": "What is the capital of France? Answer in one word."}],
  "params": {"temperature": 0.2, "max_tokens": 64, "top_p": 1, "stream_options": {"include_usage": true}},
  "fallbacks": ["anthropic/claude-3-5-haiku-latest"], "timeout_ms": 20000}"#;

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("request_from_json");
    g.bench_function("strict (Request::from_json)", |b| {
        b.iter(|| Request::from_json(black_box(TYPICAL)).expect("valid"))
    });
    g.bench_function("typed only (serde_json::from_str)", |b| {
        b.iter(|| serde_json::from_str::<Request>(black_box(TYPICAL)).expect("valid"))
    });
    g.finish();
}

const COMPLETION: &str = r#"{"id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion",
  "created": 1741569952, "model": "gpt-4.1-2025-04-14", "choices": [{"index": 0, "message": {"role": "assistant",
  "content": "Hello! How can I assist you today?", "refusal": null, "annotations": []}, "logprobs": null,
  "finish_reason": "stop"}], "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
  "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0}, "completion_tokens_details":
  {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
  "service_tier": "default", "system_fingerprint": "fp_44709d6fcb"}"#;

const CHUNK: &str = r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null}"#;

fn embeddings() -> String {
    let floats: Vec<String> = (0..1536).map(|i| format!("{:.9}", ((i * 7919) % 2000) as f64 / 1000.0 - 1.0)).collect();
    format!(
        r#"{{"object": "list", "data": [{{"object": "embedding", "index": 0, "embedding": [{}]}}], "model": "text-embedding-3-small", "usage": {{"prompt_tokens": 8, "total_tokens": 8}}}}"#,
        floats.join(", ")
    )
}

fn provider_json(c: &mut Criterion) {
    let mut g = c.benchmark_group("provider_json_round_trip");
    g.bench_function("chat.completion", |b| {
        b.iter(|| {
            let r: Response = serde_json::from_str(black_box(COMPLETION)).expect("valid");
            serde_json::to_vec(&r).expect("serializes")
        })
    });
    g.bench_function("chat.completion.chunk", |b| {
        b.iter(|| {
            let r: Chunk = serde_json::from_str(black_box(CHUNK)).expect("valid");
            serde_json::to_vec(&r).expect("serializes")
        })
    });
    let list = embeddings();
    g.bench_function("embeddings (1536 floats)", |b| {
        b.iter(|| {
            let r: EmbedResponse = serde_json::from_str(black_box(&list)).expect("valid");
            serde_json::to_vec(&r).expect("serializes")
        })
    });
    g.finish();
}

criterion_group!(benches, parse, provider_json);
criterion_main!(benches);
