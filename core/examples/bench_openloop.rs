//! Rust cells of issue 8's benchmark (not a test): bifrost over HTTP and a
//! plain `reqwest` client (the floor) against a running `bifrost-mock`.
//!
//! ```text
//! cargo run --release -p bifrost-core --example bench_openloop -- \
//!     --base http://127.0.0.1:PORT --client bifrost|reqwest --latency-ms 50 \
//!     [--rates 1000,3000] [--closed 64,256,1024] [--seconds 5] [--warmup 1] [--mock-pid PID]
//! ```
//!
//! - **Open loop** (`--rates`): requests are started on a fixed schedule,
//!   `t0 + i / rate`, by a sender thread that sleeps until each send time,
//!   whatever the completions do. Latency is measured from the *scheduled*
//!   send time (no coordinated omission: a sender or client that falls
//!   behind shows up in the latency), and the mock's configured latency
//!   (`--latency-ms`, the one the mock was started with) is subtracted:
//!   `added = completion − scheduled − latency_ms`. `lag` is how late each
//!   request's task actually started (scheduled → first poll). Requests
//!   scheduled during the warm-up are sent but not counted; after the last
//!   send the driver waits up to 2 s + 2 × latency for stragglers and
//!   reports the rest as `unfinished`.
//! - **Closed loop** (`--closed`): N tasks send back to back for the
//!   measured seconds (after the warm-up); requests/s, latency, CPU.
//!
//! Both clients run on bifrost's shared runtime (as `core/benches/http.rs`
//! does), send the same JSON and parse the reply into a `Response`. CPU is
//! the whole process's user + system time over the measured part
//! (`/proc/self/stat`), per completed request; with `--mock-pid`, the
//! mock's CPU over the same time too. One JSON object per cell is printed
//! on stdout, a progress line on stderr.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bifrost_core::{Gateway, Request};
use serde_json::{json, Value};

const NOT_YET: u64 = u64::MAX;

#[derive(Clone)]
enum Client {
    Bifrost(Arc<Gateway>),
    Reqwest { http: reqwest::Client, url: String },
}

impl Client {
    fn new(kind: &str, base: &str, concurrency: usize) -> Client {
        match kind {
            "bifrost" => Client::Bifrost(Arc::new(
                Gateway::from_value(json!({"providers": {"openai": {
                    "kind": "openai",
                    "keys": [{"value": "mock-key", "models": ["*"]}],
                    "network_config": {"base_url": format!("{base}/v1"), "max_retries": 0},
                    "concurrency_and_buffer_size": {"concurrency": concurrency, "buffer_size": (concurrency * 16).max(16_384)}}}}))
                .expect("gateway config"),
            )),
            "reqwest" => Client::Reqwest {
                http: reqwest::Client::builder()
                    .pool_max_idle_per_host(concurrency)
                    .tcp_nodelay(true)
                    .build()
                    .expect("reqwest client"),
                url: format!("{base}/v1/chat/completions"),
            },
            other => panic!("--client must be bifrost or reqwest, not {other:?}"),
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Client::Bifrost(_) => "rust: bifrost gw.chat",
            Client::Reqwest { .. } => "rust: plain reqwest",
        }
    }

    /// One chat request; `Err` carries the message.
    async fn call(&self) -> Result<(), String> {
        match self {
            Client::Bifrost(gw) => {
                let r = gw.chat(Request::new("openai/gpt-4o-mini", "hello")).await.map_err(|e| e.to_string())?;
                if r.choices.is_empty() {
                    return Err("empty response".into());
                }
                Ok(())
            }
            Client::Reqwest { http, url } => {
                let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]});
                let resp = http
                    .post(url)
                    .bearer_auth("mock-key")
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(&body).map_err(|e| e.to_string())?)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = resp.status();
                let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
                if !status.is_success() {
                    return Err(format!("HTTP {status}"));
                }
                let parsed: bifrost_core::Response = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
                if parsed.choices.is_empty() {
                    return Err("empty response".into());
                }
                Ok(())
            }
        }
    }
}

/// User + system CPU seconds of this process (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    proc_cpu_seconds("self")
}

/// User + system CPU seconds of process `pid` ("self" for this one), from /proc (Linux; 0 elsewhere).
fn proc_cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // After the command name: state is field 0, utime 11, stime 12 (clock ticks, 100 Hz on Linux).
    (ticks(11) + ticks(12)) / 100.0
}

/// The mock's pid (`--mock-pid`), to report its CPU per request too.
static MOCK_PID: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn mock_cpu_seconds() -> Option<f64> {
    MOCK_PID.get().map(|pid| proc_cpu_seconds(pid))
}

/// µs of CPU per request from two readings (None without `--mock-pid`).
fn per_request_us(before: Option<f64>, after: Option<f64>, n: u64) -> Option<f64> {
    match (before, after) {
        (Some(b), Some(a)) if n > 0 => Some((a - b) * 1e6 / n as f64),
        _ => None,
    }
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn open_loop(
    rt: &'static tokio::runtime::Handle,
    client: &Client,
    rate: f64,
    latency_ms: u64,
    seconds: f64,
    warmup: f64,
) -> Value {
    let total = ((warmup + seconds) * rate).round() as usize;
    let first_measured = (warmup * rate).round() as usize;
    let interval_ns = 1e9 / rate;
    let start_ns: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(NOT_YET)).collect());
    let done_ns: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(NOT_YET)).collect());
    let failed: Arc<Vec<AtomicBool>> = Arc::new((0..total).map(|_| AtomicBool::new(false)).collect());
    let first_error = Arc::new(parking_lot::Mutex::new(None::<String>));
    // Start a little in the future so the first sends are not already late.
    let t0 = Instant::now() + Duration::from_millis(20);
    let (mut cpu_at_measure, mut mock_at_measure) = (None, None);
    for i in 0..total {
        let sched = t0 + Duration::from_nanos((i as f64 * interval_ns) as u64);
        let now = Instant::now();
        if sched > now {
            std::thread::sleep(sched - now);
        }
        if i == first_measured {
            cpu_at_measure = Some(cpu_seconds());
            mock_at_measure = mock_cpu_seconds();
        }
        let (client, start_ns, done_ns, failed, first_error) =
            (client.clone(), start_ns.clone(), done_ns.clone(), failed.clone(), first_error.clone());
        rt.spawn(async move {
            start_ns[i].store(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
            if let Err(e) = client.call().await {
                failed[i].store(true, Ordering::Relaxed);
                first_error.lock().get_or_insert(e);
            }
            done_ns[i].store(t0.elapsed().as_nanos() as u64, Ordering::Release);
        });
    }
    let grace = Duration::from_secs(2) + Duration::from_millis(2 * latency_ms);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && done_ns[first_measured..].iter().any(|d| d.load(Ordering::Acquire) == NOT_YET) {
        std::thread::sleep(Duration::from_millis(2));
    }
    let cpu = cpu_seconds() - cpu_at_measure.unwrap_or_else(cpu_seconds);
    let mock_after = mock_cpu_seconds();

    let (mut added, mut lag) = (Vec::new(), Vec::new());
    let win_lo = (first_measured as f64 * interval_ns) as u64;
    let mut last_done = win_lo;
    let (mut errors, mut unfinished) = (0u64, 0u64);
    for i in first_measured..total {
        let sched = (i as f64 * interval_ns) as u64;
        let done = done_ns[i].load(Ordering::Acquire);
        if done == NOT_YET {
            unfinished += 1;
            continue;
        }
        if failed[i].load(Ordering::Relaxed) {
            errors += 1;
            continue;
        }
        last_done = last_done.max(done);
        let us = (done - sched) / 1000;
        added.push(us.saturating_sub(latency_ms * 1000));
        lag.push(start_ns[i].load(Ordering::Relaxed).saturating_sub(sched) / 1000);
    }
    added.sort_unstable();
    lag.sort_unstable();
    let scheduled = (total - first_measured) as u64;
    let completed = added.len() as u64;
    // Rate achieved: measured requests completed, over the time from the window's start to the last
    // completion less the mock's latency (at least the window's length: a client that keeps up
    // shows the target rate).
    let span = ((last_done - win_lo) as f64 / 1e9 - latency_ms as f64 / 1e3).max(seconds);
    let achieved = completed as f64 / span;
    json!({
        "mode": "open", "client": client.label(), "lang": "Rust", "rate": rate, "latency_ms": latency_ms,
        "seconds": seconds, "warmup_s": warmup, "scheduled": scheduled, "completed": completed,
        "errors": errors, "unfinished": unfinished, "achieved_rps": achieved,
        "kept_up": unfinished == 0 && errors == 0 && achieved >= 0.95 * rate,
        "added_p50_us": pct(&added, 0.5), "added_p99_us": pct(&added, 0.99), "added_max_us": pct(&added, 1.0),
        "lag_p50_us": pct(&lag, 0.5), "lag_p99_us": pct(&lag, 0.99), "lag_max_us": pct(&lag, 1.0),
        "cpu_us_per_req": if completed > 0 { cpu * 1e6 / completed as f64 } else { 0.0 },
        "mock_cpu_us_per_req": per_request_us(mock_at_measure, mock_after, completed),
        "first_error": first_error.lock().clone(),
    })
}

fn closed_loop(
    rt: &'static tokio::runtime::Handle,
    client: &Client,
    inflight: usize,
    latency_ms: u64,
    seconds: f64,
    warmup: f64,
) -> Value {
    let t0 = Instant::now();
    let measure_from = t0 + Duration::from_secs_f64(warmup);
    let stop = measure_from + Duration::from_secs_f64(seconds);
    let cpu0 = Arc::new(parking_lot::Mutex::new(None::<(f64, Option<f64>)>));
    let rss = Arc::new(parking_lot::Mutex::new(None::<u64>));
    let (lat, errors, first_error) = rt.block_on(async {
        let tasks: Vec<_> = (0..inflight)
            .map(|lane| {
                let client = client.clone();
                // Lanes start spread over one mock latency, so completions are
                // spread evenly; started together they would all come back at
                // once every round trip and the window's count would depend on
                // where those waves fall (docs/benchmarks.md, 10,000 in flight).
                let offset = Duration::from_millis(latency_ms).mul_f64(lane as f64 / inflight as f64);
                tokio::spawn(async move {
                    let (mut lat, mut errors, mut first_error) = (Vec::new(), 0u64, None);
                    tokio::time::sleep_until((t0 + offset).into()).await;
                    loop {
                        let s = Instant::now();
                        if s >= stop {
                            break;
                        }
                        let r = client.call().await;
                        let e = Instant::now();
                        match r {
                            Err(msg) => {
                                errors += 1;
                                first_error.get_or_insert(msg);
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                            // Requests that ended inside the measured window.
                            Ok(()) if e >= measure_from && e < stop => lat.push((e - s).as_micros() as u64),
                            Ok(()) => {}
                        }
                    }
                    (lat, errors, first_error)
                })
            })
            .collect();
        let c = cpu0.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(measure_from.into()).await;
            *c.lock() = Some((cpu_seconds(), mock_cpu_seconds()));
        });
        // Resident memory near the end of the window, every request still in flight.
        let r = rss.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until((stop - Duration::from_secs_f64((seconds / 10.0).min(0.2))).into()).await;
            *r.lock() = rss_kib();
        });
        let (mut all, mut errors, mut first) = (Vec::new(), 0, None);
        for t in tasks {
            let (l, e, f) = t.await.expect("driver task");
            all.extend(l);
            errors += e;
            first = first.or(f);
        }
        (all, errors, first)
    });
    let (cpu_before, mock_before) = cpu0.lock().unwrap_or_else(|| (cpu_seconds(), mock_cpu_seconds()));
    let (cpu, mock_after) = (cpu_seconds() - cpu_before, mock_cpu_seconds());
    let mut lat = lat;
    lat.sort_unstable();
    let n = lat.len() as u64;
    json!({
        "mode": "closed", "client": client.label(), "lang": "Rust", "inflight": inflight, "latency_ms": latency_ms,
        "seconds": seconds, "requests": n, "errors": errors, "req_s": n as f64 / seconds,
        "p50_us": pct(&lat, 0.5), "p99_us": pct(&lat, 0.99), "max_us": pct(&lat, 1.0),
        // CPU from the start of the window to the end of the drain; requests that ended in the window.
        "cpu_us_per_req": if n > 0 { cpu * 1e6 / n as f64 } else { 0.0 },
        "mock_cpu_us_per_req": per_request_us(mock_before, mock_after, n),
        "rss_kib": *rss.lock(),
        "first_error": first_error,
    })
}

/// This process's resident memory, KiB (`VmRSS` in /proc/self/status; Linux).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn list<T: std::str::FromStr>(v: &str, flag: &str) -> Vec<T> {
    v.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().parse().unwrap_or_else(|_| panic!("{flag}: bad value {s:?}")))
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let base = arg("--base").expect("--base http://127.0.0.1:PORT is required");
    let base = base.trim_end_matches('/').to_string();
    let kind = arg("--client").unwrap_or_else(|| "bifrost".into());
    let latency_ms: u64 = arg("--latency-ms").map(|v| v.parse().expect("--latency-ms")).unwrap_or(0);
    let seconds: f64 = arg("--seconds").map(|v| v.parse().expect("--seconds")).unwrap_or(5.0);
    let warmup: f64 = arg("--warmup").map(|v| v.parse().expect("--warmup")).unwrap_or(1.0);
    let rates: Vec<f64> = arg("--rates").map(|v| list(&v, "--rates")).unwrap_or_default();
    let closed: Vec<usize> = arg("--closed").map(|v| list(&v, "--closed")).unwrap_or_default();
    if let Some(pid) = arg("--mock-pid") {
        let _ = MOCK_PID.set(pid);
    }
    if rates.is_empty() && closed.is_empty() {
        eprintln!("nothing to do: give --rates and/or --closed");
        std::process::exit(2);
    }
    // reqwest needs a process-wide rustls provider even for plain HTTP (bifrost installs the same one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = bifrost_core::runtime::handle().expect("runtime");
    for &rate in &rates {
        // Enough workers for every request the mock holds at this rate, and a queue that never fills.
        let client = Client::new(&kind, &base, 1024);
        let r = open_loop(rt, &client, rate, latency_ms, seconds, warmup);
        eprintln!("# {}", r);
        println!("{r}");
        if let Client::Bifrost(gw) = &client {
            rt.block_on(gw.shutdown(Duration::from_secs(5)));
        }
    }
    for &n in &closed {
        let client = Client::new(&kind, &base, n);
        let r = closed_loop(rt, &client, n, latency_ms, seconds, warmup);
        eprintln!("# {}", r);
        println!("{r}");
        if let Client::Bifrost(gw) = &client {
            rt.block_on(gw.shutdown(Duration::from_secs(5)));
        }
    }
}
