//! Rust stream cells of issue 20's benchmark (not a test): N concurrent
//! streams of 200 chunks each, back to back for `--seconds`, against a
//! running `bifrost-mock`, for
//! - `bifrost`: `gw.stream` (the openai provider, stream recovery on by
//!   default), every chunk read with `next_chunk`;
//! - `reqwest`: plain reqwest reading the body chunk by chunk, splitting
//!   SSE lines itself and parsing each `data:` payload into the same
//!   `Chunk` type — the floor a hand-written client reaches.
//!
//! ```text
//! cargo run --release -p bifrost-core --example bench_stream -- \
//!     --base http://127.0.0.1:PORT --client bifrost|reqwest \
//!     [--streams 256,1024] [--chunk-delay-ms 0,10] [--seconds 3] [--chunks 200]
//! ```
//!
//! Both run on bifrost's shared runtime. CPU is the whole process's user +
//! system time over the measured part (`/proc/self/stat`), per content
//! chunk. One JSON object per cell on stdout, a line per cell on stderr.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bifrost_core::{Chunk, Gateway, Request};
use serde_json::{json, Value};

#[derive(Clone)]
enum Client {
    Bifrost(Arc<Gateway>),
    Reqwest { http: reqwest::Client, url: String },
}

fn prompt(chunks: usize) -> String {
    (0..chunks).map(|i| format!("w{i:03}")).collect::<Vec<_>>().join(" ")
}

fn model(chunks: usize, delay_ms: u64) -> String {
    format!("gpt~chunks={chunks}&chunk_delay_ms={delay_ms}")
}

fn has_content(c: &Chunk) -> bool {
    c.choices.first().is_some_and(|ch| ch.delta.content.as_deref().is_some_and(|t| !t.is_empty()))
}

impl Client {
    fn new(kind: &str, base: &str) -> Client {
        match kind {
            "bifrost" => Client::Bifrost(Arc::new(
                Gateway::from_value(json!({"providers": {"openai": {
                    "kind": "openai",
                    "keys": [{"value": "mock-key", "models": ["*"]}],
                    "network_config": {"base_url": format!("{base}/v1"), "max_retries": 0, "max_conns_per_host": 4096},
                    "concurrency_and_buffer_size": {"concurrency": 4096, "buffer_size": 65536}}}}))
                .expect("gateway config"),
            )),
            "reqwest" => Client::Reqwest {
                http: reqwest::Client::builder()
                    .pool_max_idle_per_host(4096)
                    .tcp_nodelay(true)
                    .build()
                    .expect("reqwest"),
                url: format!("{base}/v1/chat/completions"),
            },
            other => panic!("--client must be bifrost or reqwest, not {other:?}"),
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Client::Bifrost(_) => "rust: bifrost gw.stream",
            Client::Reqwest { .. } => "rust: reqwest + SSE parsing",
        }
    }

    /// One stream; the instant of every content chunk goes to `marks`.
    async fn one(&self, chunks: usize, delay_ms: u64, marks: &mut Vec<Instant>) -> Result<(), String> {
        match self {
            Client::Bifrost(gw) => {
                let req = Request::new(format!("openai/{}", model(chunks, delay_ms)), prompt(chunks));
                let mut s = gw.stream(req).await.map_err(|e| e.to_string())?;
                while let Some(c) = s.next_chunk().await {
                    if has_content(&c.map_err(|e| e.to_string())?) {
                        marks.push(Instant::now());
                    }
                }
                Ok(())
            }
            Client::Reqwest { http, url } => {
                let body = json!({"model": model(chunks, delay_ms), "stream": true,
                                  "messages": [{"role": "user", "content": prompt(chunks)}]});
                let mut resp = http
                    .post(url)
                    .bearer_auth("mock-key")
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(&body).map_err(|e| e.to_string())?)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if !resp.status().is_success() {
                    return Err(format!("HTTP {}", resp.status()));
                }
                let mut buf: Vec<u8> = Vec::with_capacity(8192);
                while let Some(bytes) = resp.chunk().await.map_err(|e| e.to_string())? {
                    buf.extend_from_slice(&bytes);
                    let mut start = 0;
                    while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
                        let line = &buf[start..start + nl];
                        start += nl + 1;
                        let Some(data) = line.strip_prefix(b"data: ") else { continue };
                        let data = data.strip_suffix(b"\r").unwrap_or(data);
                        if data == b"[DONE]" {
                            continue;
                        }
                        let c: Chunk = serde_json::from_slice(data).map_err(|e| e.to_string())?;
                        if has_content(&c) {
                            marks.push(Instant::now());
                        }
                    }
                    buf.drain(..start);
                }
                Ok(())
            }
        }
    }
}

/// User + system CPU seconds of this process (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

struct Lane {
    ttfc: Vec<f64>,
    gaps: Vec<f64>,
    counts: Vec<usize>,
    error: Option<String>,
}

async fn lane(client: Client, chunks: usize, delay_ms: u64, stop: Instant) -> Lane {
    let mut out = Lane { ttfc: Vec::new(), gaps: Vec::new(), counts: Vec::new(), error: None };
    let mut marks = Vec::with_capacity(chunks + 1);
    while Instant::now() < stop {
        marks.clear();
        let started = Instant::now();
        if let Err(e) = client.one(chunks, delay_ms, &mut marks).await {
            out.error.get_or_insert(e);
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        if let Some(first) = marks.first() {
            out.ttfc.push((*first - started).as_secs_f64() * 1e3);
        }
        out.gaps.extend(marks.windows(2).map(|w| (w[1] - w[0]).as_secs_f64() * 1e3));
        out.counts.push(marks.len());
    }
    out
}

fn cell(
    rt: &tokio::runtime::Handle,
    client: &Client,
    streams: usize,
    chunks: usize,
    delay_ms: u64,
    seconds: f64,
) -> Value {
    // Warm-up, unmeasured: connections open, allocator warm.
    let warm: Vec<_> = (0..streams.min(64))
        .map(|_| {
            let c = client.clone();
            rt.spawn(async move { c.one(chunks, delay_ms, &mut Vec::new()).await })
        })
        .collect();
    for w in warm {
        let _ = rt.block_on(w);
    }
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let stop = t0 + Duration::from_secs_f64(seconds);
    let lanes: Vec<_> = (0..streams).map(|_| rt.spawn(lane(client.clone(), chunks, delay_ms, stop))).collect();
    let (mut ttfc, mut gaps, mut counts, mut error) = (Vec::new(), Vec::new(), Vec::new(), None);
    for l in lanes {
        let l = rt.block_on(l).expect("lane");
        ttfc.extend(l.ttfc);
        gaps.extend(l.gaps);
        counts.extend(l.counts);
        error = error.or(l.error);
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let n: usize = counts.iter().sum();
    ttfc.sort_by(f64::total_cmp);
    gaps.sort_by(f64::total_cmp);
    let at = |v: &[f64], p: f64| if v.is_empty() { None } else { Some(v[((v.len() - 1) as f64 * p) as usize]) };
    json!({
        "mode": "stream", "client": client.label(), "lang": "Rust", "streams": streams, "chunk_delay_ms": delay_ms,
        "chunks": n, "chunks_per_s": n as f64 / wall,
        "cpu_us_per_chunk": if n > 0 { Some(cpu * 1e6 / n as f64) } else { None },
        "ttfc_p50_ms": at(&ttfc, 0.5), "gap_p99_ms": at(&gaps, 0.99),
        "complete": counts.windows(2).all(|w| w[0] == w[1]), "first_error": error,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let list = |name: &str, default: &str| -> Vec<u64> {
        arg(name).unwrap_or_else(|| default.into()).split(',').map(|v| v.parse().expect("a number")).collect()
    };
    let base = arg("--base").expect("--base http://127.0.0.1:PORT");
    let kind = arg("--client").unwrap_or_else(|| "bifrost".into());
    let seconds: f64 = arg("--seconds").map(|s| s.parse().expect("seconds")).unwrap_or(3.0);
    let chunks: usize = arg("--chunks").map(|s| s.parse().expect("chunks")).unwrap_or(200);
    let rt = bifrost_core::runtime::handle().expect("runtime");
    // reqwest needs a process-wide rustls provider even for plain HTTP (bifrost installs the same one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::new(&kind, &base);
    for delay in list("--chunk-delay-ms", "0,10") {
        for streams in list("--streams", "256,1024") {
            let r = cell(rt, &client, streams as usize, chunks, delay, seconds);
            eprintln!(
                "# {:28} streams={streams:5} delay={delay:3}ms {:9.0} chunks/s {:6.1} µs CPU/chunk  ttfc p50 {:.1} ms  gap p99 {:.1} ms  complete={}{}",
                client.label(),
                r["chunks_per_s"].as_f64().unwrap_or(0.0),
                r["cpu_us_per_chunk"].as_f64().unwrap_or(f64::NAN),
                r["ttfc_p50_ms"].as_f64().unwrap_or(f64::NAN),
                r["gap_p99_ms"].as_f64().unwrap_or(f64::NAN),
                r["complete"],
                r["first_error"].as_str().map(|e| format!("  first error: {e}")).unwrap_or_default(),
            );
            println!("{r}");
        }
    }
    if let Client::Bifrost(gw) = client {
        rt.block_on(gw.shutdown(Duration::from_secs(5)));
    }
}
