//! A fixed amount of submit → await work through a zero-latency mock
//! provider, for profilers (`perf record`, `valgrind --tool=callgrind`):
//! unlike the criterion bench it runs a known number of jobs once.
//!
//! `cargo run --release -p bifrost-core --example pool_profile -- [jobs] [submitters]`
//!
//! `BIFROST_PROFILE_PROVIDER='{"circuit_breaker": {}}'` merges extra keys
//! into the mock provider's config, to profile a feature's per-job cost.

use std::sync::Arc;
use std::time::Instant;

use bifrost_core::Gateway;
use serde_json::json;

#[path = "../benches/support/submit_loop.rs"]
mod submit_loop;

fn main() {
    let mut args = std::env::args().skip(1);
    let jobs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let submitters: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let mut provider = json!({
        "kind": "mock",
        "concurrency_and_buffer_size": {"concurrency": 64, "buffer_size": 4096}
    });
    if let Ok(extra) = std::env::var("BIFROST_PROFILE_PROVIDER") {
        let extra: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&extra).expect("BIFROST_PROFILE_PROVIDER must be a JSON object");
        provider.as_object_mut().expect("object").extend(extra);
    }
    let gw = Arc::new(Gateway::from_value(json!({"providers": {"mock": provider}})).expect("config"));
    let run = |n: u64| submit_loop::submit_await(&gw, submitters, n / submitters);
    run(jobs / 10); // warm-up: workers spawned, buffers pooled
    let start = Instant::now();
    run(jobs);
    let secs = start.elapsed().as_secs_f64();
    println!("{jobs} jobs, {submitters} submitters: {:.0} jobs/s", jobs as f64 / secs);
}
