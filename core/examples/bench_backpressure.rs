//! Backpressure and memory scenarios of issue 8's benchmark (not a test).
//!
//! ```text
//! cargo run --release -p bifrost-core --example bench_backpressure -- [--mock-url http://127.0.0.1:PORT] [--quick]
//! ```
//!
//! 1. **Backpressure**: for each queue policy (`block`, `error`, `drop`,
//!    `drop_oldest`), a burst of 10 × buffer_size submissions at once into
//!    a provider with `concurrency` workers and a `LATENCY_MS` mock; per
//!    policy: accepted (completed), dropped, rejected, timed out, other,
//!    p50/p99 of the accepted jobs' submit → response time, peak RSS during
//!    the burst, and whether the stats invariant held.
//! 2. **Memory**: RSS with 10k jobs queued behind one slow worker; RSS
//!    after 100k and after 1M requests through a zero-latency upstream
//!    (bifrost-mock over HTTP when `--mock-url` is given, else the embedded
//!    mock provider) — growth between the two should be ~0.
//!
//! Prints a progress line per scenario on stderr and one JSON document on
//! stdout.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bifrost_core::{ErrorKind, Gateway, Request};
use serde_json::{json, Value};

const BUFFER: usize = 1_000;
const WORKERS: usize = 100;
const LATENCY_MS: u64 = 20;
const WAIT_TIMEOUT_MS: u64 = 100;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Samples RSS every millisecond until stopped; returns the peak (KiB).
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_kib()));
        let (s, p) = (stop.clone(), peak.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        RssSampler { stop, peak, handle: Some(handle) }
    }
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.peak.load(Ordering::Relaxed).max(rss_kib())
    }
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

fn burst(rt: &tokio::runtime::Handle, policy: &str) -> Value {
    let gw = Arc::new(
        Gateway::from_value(json!({"providers": {"mock": {
            "kind": "mock",
            "mock": {"latency_ms": LATENCY_MS},
            "concurrency_and_buffer_size": {"concurrency": WORKERS, "buffer_size": BUFFER},
            "queue": {"policy": policy, "wait_timeout_ms": WAIT_TIMEOUT_MS}
        }}}))
        .expect("config"),
    );
    let n = 10 * BUFFER;
    let rss_before = rss_kib();
    let sampler = RssSampler::start();
    let t0 = Instant::now();
    let outcomes: Vec<(Option<ErrorKind>, u64)> = rt.block_on(async {
        // Every submission starts at once (one task each), as a burst of
        // independent callers would; each records its own outcome.
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let gw = gw.clone();
                tokio::spawn(async move {
                    let s = Instant::now();
                    let r = gw.chat(Request::new("mock/m", if i % 2 == 0 { "a" } else { "b" })).await;
                    (r.err().map(|e| e.kind()), s.elapsed().as_micros() as u64)
                })
            })
            .collect();
        let mut out = Vec::with_capacity(n);
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out
    });
    let elapsed = t0.elapsed();
    let peak = sampler.finish();
    let mut accepted_lat: Vec<u64> = outcomes.iter().filter(|(e, _)| e.is_none()).map(|(_, l)| *l).collect();
    accepted_lat.sort_unstable();
    let count = |k: ErrorKind| outcomes.iter().filter(|(e, _)| *e == Some(k)).count();
    let timed_out = count(ErrorKind::QueueTimeout) + count(ErrorKind::Timeout);
    let (dropped, rejected) = (count(ErrorKind::Dropped), count(ErrorKind::QueueFull));
    let other = n - accepted_lat.len() - timed_out - dropped - rejected;
    let stats = gw.stats();
    let js = &stats.providers["mock"].jobs;
    let invariant = js.invariant_holds() && js.submitted as usize + rejected >= n;
    rt.block_on(gw.shutdown(Duration::from_secs(5)));
    json!({
        "policy": policy, "burst": n, "buffer_size": BUFFER, "workers": WORKERS,
        "mock_latency_ms": LATENCY_MS, "wait_timeout_ms": WAIT_TIMEOUT_MS,
        "accepted": accepted_lat.len(), "dropped": dropped, "rejected": rejected,
        "timed_out": timed_out, "other": other,
        "accepted_p50_us": pct(&accepted_lat, 0.5), "accepted_p99_us": pct(&accepted_lat, 0.99),
        "accepted_max_us": pct(&accepted_lat, 1.0),
        "burst_ms": elapsed.as_millis() as u64,
        "rss_before_kib": rss_before, "rss_peak_kib": peak,
        "stats_jobs": serde_json::to_value(js).unwrap_or(Value::Null),
        "invariant_holds": invariant,
    })
}

fn queued_10k(rt: &tokio::runtime::Handle) -> Value {
    const QUEUED: usize = 10_000;
    let gw = Gateway::from_value(json!({"providers": {"slow": {
        "kind": "mock", "mock": {"latency_ms": 600_000},
        "concurrency_and_buffer_size": {"concurrency": 1, "buffer_size": QUEUED + 10}
    }}}))
    .expect("config");
    let before = rss_kib();
    let sampler = RssSampler::start();
    let jobs: Vec<_> = (0..QUEUED + 1)
        .map(|_| gw.try_submit(Request::new("slow/m", "a queued request of ordinary size")).expect("queue has room"))
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let queued = gw.stats().providers["slow"].jobs.queued;
    let with_jobs = rss_kib();
    let peak = sampler.finish();
    drop(jobs); // cancels every job
    rt.block_on(gw.shutdown(Duration::from_secs(2)));
    json!({
        "queued": queued, "rss_before_kib": before, "rss_with_queue_kib": with_jobs, "rss_peak_kib": peak,
        "bytes_per_queued_job": (with_jobs.saturating_sub(before) * 1024) as f64 / queued.max(1) as f64,
    })
}

fn run_requests(rt: &tokio::runtime::Handle, gw: &Arc<Gateway>, model: &str, total: u64, submitters: u64) {
    let per = total / submitters;
    rt.block_on(async {
        let tasks: Vec<_> = (0..submitters)
            .map(|_| {
                let gw = gw.clone();
                let model = model.to_string();
                tokio::spawn(async move {
                    let req = Request::new(&model, "hi");
                    for _ in 0..per {
                        gw.chat(req.clone()).await.expect("chat");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("submitter");
        }
    });
}

fn growth(rt: &tokio::runtime::Handle, mock_url: Option<&str>, small: u64, large: u64) -> Value {
    // Both counts are multiples of the 64 submitters.
    let (small, large) = (small / 64 * 64, large / 64 * 64);
    let (cfg, model, upstream) = match mock_url {
        Some(url) => (
            json!({"providers": {"openai": {
                "keys": [{"value": "mock-key", "models": ["*"]}],
                "network_config": {"base_url": format!("{}/v1", url.trim_end_matches('/'))},
                "concurrency_and_buffer_size": {"concurrency": 64, "buffer_size": 256}}}}),
            "openai/gpt-4o",
            format!("bifrost-mock over HTTP at {url}, 0 ms"),
        ),
        None => (
            json!({"providers": {"mock": {"kind": "mock",
                "concurrency_and_buffer_size": {"concurrency": 64, "buffer_size": 256}}}}),
            "mock/m",
            "embedded mock provider, 0 ms".to_string(),
        ),
    };
    let gw = Arc::new(Gateway::from_value(cfg).expect("config"));
    let start = rss_kib();
    let t0 = Instant::now();
    run_requests(rt, &gw, model, small, 64);
    let after_small = rss_kib();
    eprintln!("#   memory: {small} requests done in {:.1}s, RSS {after_small} KiB", t0.elapsed().as_secs_f64());
    run_requests(rt, &gw, model, large - small, 64);
    let after_large = rss_kib();
    let secs = t0.elapsed().as_secs_f64();
    eprintln!("#   memory: {large} requests done in {secs:.1}s, RSS {after_large} KiB");
    let stats = gw.stats();
    let pools = serde_json::to_value(&stats.object_pools).unwrap_or(Value::Null);
    let js = serde_json::to_value(stats.providers.values().next().map(|p| p.jobs)).unwrap_or(Value::Null);
    rt.block_on(gw.shutdown(Duration::from_secs(5)));
    json!({
        "upstream": upstream, "requests_small": small, "requests_large": large,
        "rss_start_kib": start, "rss_after_small_kib": after_small, "rss_after_large_kib": after_large,
        "growth_kib": after_large as i64 - after_small as i64,
        "growth_bytes_per_request": (after_large as f64 - after_small as f64) * 1024.0 / (large - small) as f64,
        "seconds": secs, "req_s": large as f64 / secs,
        "object_pools": pools, "jobs": js,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mock_url = args.iter().position(|a| a == "--mock-url").and_then(|i| args.get(i + 1)).cloned();
    let quick = args.iter().any(|a| a == "--quick");
    let (small, large) = if quick { (10_048, 100_032) } else { (100_032, 1_000_000) };
    let rt = bifrost_core::runtime::handle().expect("runtime");
    let t0 = Instant::now();

    let mut bursts = Vec::new();
    for policy in ["block", "error", "drop", "drop_oldest"] {
        let r = burst(rt, policy);
        eprintln!(
            "# backpressure {policy:>11}: accepted {} dropped {} rejected {} timed_out {} other {} | p99 accepted {} µs | RSS peak {} KiB",
            r["accepted"], r["dropped"], r["rejected"], r["timed_out"], r["other"], r["accepted_p99_us"], r["rss_peak_kib"]
        );
        bursts.push(r);
    }
    let q = queued_10k(rt);
    eprintln!(
        "# memory: {} queued jobs: RSS {} KiB (before {} KiB, ~{:.0} B/job)",
        q["queued"],
        q["rss_with_queue_kib"],
        q["rss_before_kib"],
        q["bytes_per_queued_job"].as_f64().unwrap_or(0.0)
    );
    let g = growth(rt, mock_url.as_deref(), small, large);
    eprintln!(
        "# memory: RSS after {small} = {} KiB, after {large} = {} KiB, growth {} KiB",
        g["rss_after_small_kib"], g["rss_after_large_kib"], g["growth_kib"]
    );
    let out = json!({
        "scenario": "backpressure+memory",
        "command": args.join(" "),
        "backpressure": bursts,
        "memory": {"queued_10k": q, "growth": g},
        "seconds": t0.elapsed().as_secs_f64(),
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
