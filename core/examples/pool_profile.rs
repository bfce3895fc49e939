//! A fixed amount of submit → await work through a zero-latency mock
//! provider, for profilers (`perf record`, `valgrind --tool=callgrind`):
//! unlike the criterion bench it runs a known number of jobs once.
//!
//! `cargo run --release -p bifrost-core --example pool_profile -- [jobs] [submitters]`

use std::sync::Arc;
use std::time::Instant;

use bifrost_core::{Gateway, Request};
use serde_json::json;

fn main() {
    let mut args = std::env::args().skip(1);
    let jobs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let submitters: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let gw = Arc::new(
        Gateway::from_value(json!({"providers": {"mock": {
            "kind": "mock",
            "concurrency_and_buffer_size": {"concurrency": 64, "buffer_size": 4096}
        }}}))
        .expect("config"),
    );
    let rt = bifrost_core::runtime::handle().expect("runtime");
    let run = |n: u64| {
        let gw = gw.clone();
        rt.block_on(async move {
            let per = n / submitters;
            let tasks: Vec<_> = (0..submitters)
                .map(|_| {
                    let gw = gw.clone();
                    tokio::spawn(async move {
                        let req = Request::new("mock/m", "hi");
                        for _ in 0..per {
                            gw.chat(req.clone()).await.expect("mock chat");
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("submitter");
            }
        })
    };
    run(jobs / 10); // warm-up: workers spawned, buffers pooled
    let start = Instant::now();
    run(jobs);
    let secs = start.elapsed().as_secs_f64();
    println!("{jobs} jobs, {submitters} submitters: {:.0} jobs/s", jobs as f64 / secs);
}
