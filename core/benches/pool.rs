//! Criterion bench of the pool machinery: submit → await through a
//! zero-latency mock provider with 1, 64 and 1024 concurrent submitters.
//! Reported as jobs/s (criterion's element throughput).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bifrost_core::Gateway;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;

#[path = "support/submit_loop.rs"]
mod submit_loop;

/// Jobs each iteration pushes through, split across the submitters.
const JOBS: u64 = 65_536;

fn bench_submit_await(c: &mut Criterion) {
    let gw = Arc::new(
        Gateway::from_value(json!({"providers": {"mock": {
            "kind": "mock",
            "concurrency_and_buffer_size": {"concurrency": 64, "buffer_size": 4096}
        }}}))
        .expect("config"),
    );
    let mut group = c.benchmark_group("submit_await");
    group.throughput(Throughput::Elements(JOBS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for submitters in [1u64, 64, 1024] {
        group.bench_function(format!("{submitters}_submitters"), |b| {
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
    group.finish();
}

criterion_group!(benches, bench_submit_await);
criterion_main!(benches);
