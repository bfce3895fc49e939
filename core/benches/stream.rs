//! What a stream costs per chunk in bifrost itself: the in-process mock
//! provider (no network), 256 chunks per stream, 64 streams at once, for
//! each `failover.stream_recovery` mode. Reports streams/s and ns per
//! chunk; rounds alternate between the modes so drift on a noisy machine
//! hits all of them.
//!
//! `cargo bench -p bifrost-core --bench stream`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bifrost_core::{Gateway, Request};
use serde_json::json;

const ROUND: Duration = Duration::from_secs(2);
const ROUNDS: usize = 3;
const CHUNKS: u32 = 256;
const CONCURRENCY: usize = 64;

async fn one(gw: &Gateway, mode: &str) -> u64 {
    let mut r = Request::new("mock/m", "a b c d e f g h i j k l m n o p q r s t u v w x y z ".repeat(20));
    if !mode.is_empty() {
        r.failover = Some(serde_json::from_value(json!({"stream_recovery": mode})).expect("failover"));
    }
    let mut s = gw.stream(r).await.expect("stream");
    let mut n = 0;
    while let Some(c) = s.next_chunk().await {
        c.expect("chunk");
        n += 1;
    }
    n
}

fn main() {
    let rt = bifrost_core::runtime::handle().expect("runtime");
    let gw = Arc::new(
        Gateway::from_value(json!({"providers": {"mock": {"kind": "mock", "mock": {"stream_chunks": CHUNKS},
            "concurrency_and_buffer_size": {"concurrency": 64, "buffer_size": 4096}}}}))
        .expect("gateway"),
    );
    let modes = ["off", "restart", "buffer", "continue"];
    let mut results: Vec<(u64, u64, Duration)> = vec![(0, 0, Duration::ZERO); modes.len()];
    for _ in 0..ROUNDS {
        for (i, mode) in modes.iter().enumerate() {
            let started = Instant::now();
            let stop = started + ROUND;
            let tasks: Vec<_> = (0..CONCURRENCY)
                .map(|_| {
                    let gw = gw.clone();
                    let mode = mode.to_string();
                    rt.spawn(async move {
                        let (mut streams, mut chunks) = (0u64, 0u64);
                        while Instant::now() < stop {
                            chunks += one(&gw, &mode).await;
                            streams += 1;
                        }
                        (streams, chunks)
                    })
                })
                .collect();
            for t in tasks {
                let (s, c) = rt.block_on(t).expect("driver");
                results[i].0 += s;
                results[i].1 += c;
            }
            results[i].2 += started.elapsed();
        }
    }
    println!("mode        streams/s   ns/chunk (wall, {CONCURRENCY} streams at once, {CHUNKS} chunks each)");
    for (mode, (streams, chunks, took)) in modes.iter().zip(&results) {
        let secs = took.as_secs_f64();
        println!("{mode:<10} {:>10.0} {:>10.1}", *streams as f64 / secs, took.as_nanos() as f64 / *chunks as f64);
    }
}
