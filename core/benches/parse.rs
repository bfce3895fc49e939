//! What strict JSON text costs per request (docs/architecture.md §13): `Request::from_json`
//! (duplicate-key and nesting pass, then the typed parse) against the plain
//! typed parse `serde_json::from_str::<Request>` it replaced, on a typical
//! chat request. Run with `cargo bench -p bifrost-core --bench parse`.

use bifrost_core::Request;
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

criterion_group!(benches, parse);
criterion_main!(benches);
