//! Rust side of the round-trip bench (built as the `rust_roundtrip`
//! example of bifrost-c): the same submit -> wait on the zero-latency mock
//! through `bifrost_core` from plain threads — `gw.submit(req)` polled
//! once (as the C API does; `block_on` only if it must wait for queue
//! space), then `Job::wait_blocking` — with no JSON on either side.
//! With a third argument `json`, each round trip also does what the C API
//! does on top: parse the request from JSON text and serialize the response
//! to a JSON string (so the ratio isolates the FFI layer itself).
//! Prints one line: "rust <threads> <round trips> <ns per round trip>".
//! Usage: rust_roundtrip THREADS ROUND_TRIPS_PER_THREAD [json]

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bifrost_core::{runtime, Gateway, Request};

const REQUEST: &str = r#"{"model": "mock/m", "messages": [{"role": "user", "content": "hi"}]}"#;

fn run(gw: &Arc<Gateway>, threads: usize, per_thread: u64, json: bool) -> f64 {
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let gw = gw.clone();
            std::thread::spawn(move || {
                let req = Request::new("mock/m", "hi");
                for _ in 0..per_thread {
                    let req = if json { Request::from_json(REQUEST).expect("request") } else { req.clone() };
                    // As the C API does: poll the submit once (it only waits on
                    // a full `block` queue), park the thread only if it must.
                    let mut submit = std::pin::pin!(gw.submit(req));
                    let submitted = match submit.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                        Poll::Ready(done) => done,
                        Poll::Pending => runtime::block_on(submit).expect("runtime"),
                    };
                    let mut job = submitted.expect("submit");
                    let resp = job.wait_blocking(None).expect("no timeout").expect("response");
                    if json {
                        let mut out = Vec::new();
                        bifrost_core::json::write_response(&mut out, &resp);
                        std::hint::black_box(out);
                    } else {
                        std::hint::black_box(resp);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    start.elapsed().as_nanos() as f64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1).clamp(1, 64);
    let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let json = args.get(3).is_some_and(|s| s == "json");
    let gw = Arc::new(
        Gateway::from_json(
            r#"{"providers": {"mock": {"kind": "mock",
                "concurrency_and_buffer_size": {"concurrency": 64, "buffer_size": 4096}}}}"#,
        )
        .expect("config"),
    );
    run(&gw, threads, n / 10 + 1, json);
    let ns = run(&gw, threads, n, json);
    println!(
        "rust{} {threads} {} {:.0}",
        if json { "+json" } else { "" },
        n * threads as u64,
        ns / (n * threads as u64) as f64
    );
    runtime::block_on(gw.shutdown(std::time::Duration::from_secs(1))).expect("runtime");
}
