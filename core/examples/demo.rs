//! `make demo`: ~20k requests through two mock providers with different
//! queue policies, live progress, and the stats table at the end.
//!
//! `steady` (block policy) absorbs bursts by making submitters wait;
//! `bursty` (drop_oldest) sheds its oldest queued jobs under pressure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bifrost_core::{Gateway, Request};
use serde_json::json;

const TOTAL: u64 = 20_000;
const SUBMITTERS: u64 = 64;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), bifrost_core::Error> {
    let gw = Arc::new(Gateway::from_value(json!({
        "initial_pool_size": 64,
        "providers": {
            "steady": {"kind": "mock", "mock": {"latency_ms": 2, "jitter_ms": 3, "failure_rate": 0.01},
                       "network_config": {"max_retries": 2, "retry_backoff_initial_ms": 5, "retry_backoff_max_ms": 20},
                       "concurrency_and_buffer_size": {"concurrency": 64, "buffer_size": 256},
                       "queue": {"policy": "block", "wait_timeout_ms": 2000}},
            "bursty": {"kind": "mock", "mock": {"latency_ms": 5, "jitter_ms": 10, "failure_rate": 0.02},
                       "concurrency_and_buffer_size": {"concurrency": 16, "buffer_size": 128},
                       "queue": {"policy": "drop_oldest", "wait_timeout_ms": 500}}
        }
    }))?);
    println!("bifrost demo: {TOTAL} requests, {SUBMITTERS} concurrent submitters, two mock providers\n");
    let done = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    // `steady`: closed-loop callers, each waiting for its answer.
    for s in 0..SUBMITTERS {
        let (gw, done, ok) = (gw.clone(), done.clone(), ok.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = s;
            while i < TOTAL / 2 {
                let req = Request::new("steady/demo-model", format!("request {i}"));
                if gw.chat(req).await.is_ok() {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
                i += SUBMITTERS;
            }
        }));
    }
    // `bursty`: bursts of 400 jobs every 100 ms into a 128-slot queue.
    {
        let (gw, done, ok) = (gw.clone(), done.clone(), ok.clone());
        tasks.push(tokio::spawn(async move {
            let mut pending = Vec::new();
            for burst in 0..(TOTAL / 2 / 400) {
                for i in 0..400 {
                    let req = Request::new("bursty/demo-model", format!("burst {burst} job {i}"));
                    match gw.submit(req).await {
                        Ok(job) => pending.push(job),
                        Err(_) => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                for job in pending.drain(..) {
                    if job.await.is_ok() {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let progress = {
        let (gw, done) = (gw.clone(), done.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let n = done.load(Ordering::Relaxed);
                let st = gw.stats();
                let line: Vec<String> = st
                    .providers
                    .iter()
                    .map(|(name, p)| {
                        format!("{name}: queue {:>3}/{} busy {:>2}", p.queue.depth, p.queue.capacity, p.workers.busy)
                    })
                    .collect();
                println!("  {:>5}/{TOTAL} done ({:>3}%)  {}", n, n * 100 / TOTAL, line.join("  |  "));
                if n >= TOTAL {
                    break;
                }
            }
        })
    };
    for t in tasks {
        let _ = t.await;
    }
    let _ = progress.await;
    let elapsed = started.elapsed();
    let report = gw.shutdown(Duration::from_secs(5)).await;
    let st = gw.stats();

    println!(
        "\n{} of {TOTAL} succeeded in {:.2} s ({:.0} req/s)\n",
        ok.load(Ordering::Relaxed),
        elapsed.as_secs_f64(),
        TOTAL as f64 / elapsed.as_secs_f64()
    );
    println!(
        "{:<8} {:>6} {:>9} {:>9} {:>7} {:>7} {:>8} {:>9} {:>7}  {:>14} {:>14}  invariant",
        "provider",
        "policy",
        "submitted",
        "completed",
        "failed",
        "dropped",
        "rejected",
        "timed_out",
        "retries",
        "queue p50/p99",
        "proc p50/p99"
    );
    for (name, p) in &st.providers {
        let j = &p.jobs;
        let l = &p.latency_us;
        println!(
            "{:<8} {:>6} {:>9} {:>9} {:>7} {:>7} {:>8} {:>9} {:>7}  {:>14} {:>14}  {}",
            name,
            p.queue.policy,
            j.submitted,
            j.completed,
            j.failed,
            j.dropped,
            j.rejected,
            j.timed_out,
            j.retries,
            format!("{}/{} µs", l.queue_wait.p50, l.queue_wait.p99),
            format!("{}/{} µs", l.processing.p50, l.processing.p99),
            if j.invariant_holds() { "holds" } else { "BROKEN" }
        );
    }
    println!("\nshutdown: {report:?}");
    Ok(())
}
