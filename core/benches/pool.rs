//! Criterion bench of the pool machinery: submit → await through a
//! zero-latency mock provider with 1, 64 and 1024 concurrent submitters,
//! and with 1 and 64 under `limits` that never bind (`*_limits`: the cost
//! of admission). Reported as jobs/s (criterion's element throughput).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bifrost_core::Gateway;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;

#[path = "support/submit_loop.rs"]
mod submit_loop;

/// Jobs each iteration pushes through, split across the submitters.
const JOBS: u64 = 65_536;

/// A gateway with one mock provider, with or without `limits`.
fn gateway(limits: bool) -> Arc<Gateway> {
    let mut provider = json!({
        "kind": "mock",
        "concurrency_and_buffer_size": {"concurrency": 64, "buffer_size": 4096}
    });
    if limits {
        // Limits that never bind: what admission costs when there is
        // capacity (every job takes and settles its request and tokens).
        provider["limits"] =
            json!({"requests_per_second": 1_000_000_000u64, "tokens_per_second": 1_000_000_000_000u64});
    }
    Arc::new(Gateway::from_value(json!({"providers": {"mock": provider}})).expect("config"))
}

fn bench_submit_await(c: &mut Criterion) {
    let mut group = c.benchmark_group("submit_await");
    group.throughput(Throughput::Elements(JOBS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for (limits, suffix) in [(false, ""), (true, "_limits")] {
        let gw = gateway(limits);
        let counts: &[u64] = if limits { &[1, 64] } else { &[1, 64, 1024] };
        for &submitters in counts {
            group.bench_function(format!("{submitters}_submitters{suffix}"), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        submit_loop::submit_await(&gw, submitters, JOBS / submitters);
                        total += start.elapsed();
                    }
                    total
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_submit_await);
criterion_main!(benches);
