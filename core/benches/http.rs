//! bifrost over HTTP versus plain `reqwest`, same requests, same
//! concurrency, same run, against the in-process `bifrost-mock` server
//! (0 ms latency, OpenAI route). Reports requests/s, p50/p99 latency and
//! bifrost's added p50 in µs. Rounds alternate between the two clients so
//! drift on a noisy machine hits both.
//!
//! `cargo bench -p bifrost-core --bench http`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bifrost_core::{Gateway, Request};
use bifrost_mock::{MockConfig, MockServer};
use serde_json::json;

const ROUND: Duration = Duration::from_secs(2);
const ROUNDS: usize = 3;

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Runs `concurrency` loops of `call` for `ROUND`; returns per-request µs.
async fn drive<F, Fut>(concurrency: usize, call: F) -> Vec<u64>
where
    F: Fn() -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let stop = Instant::now() + ROUND;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < stop {
                    let t = Instant::now();
                    call().await;
                    lat.push(t.elapsed().as_micros() as u64);
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("driver"));
    }
    all
}

fn main() {
    let server_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let server = server_rt.block_on(MockServer::start(MockConfig::default())).expect("mock server");
    let base = format!("{}/v1", server.url());
    let rt = bifrost_core::runtime::handle().expect("runtime");

    let gw = Arc::new(
        Gateway::from_value(json!({"providers": {"openai": {
            "keys": [{"value": "mock-key", "models": ["*"]}],
            "network_config": {"base_url": base},
            "concurrency_and_buffer_size": {"concurrency": 256, "buffer_size": 1024}}}}))
        .expect("gateway"),
    );
    let plain = reqwest::Client::builder().pool_max_idle_per_host(256).tcp_nodelay(true).build().expect("reqwest");
    let url = format!("{base}/chat/completions");

    println!("bifrost over HTTP vs plain reqwest → bifrost-mock (0 ms), {ROUNDS}×{ROUND:?} per client and concurrency");
    println!(
        "{:>5} {:>10} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9} {:>12}",
        "conc", "reqwest/s", "p50 µs", "p99 µs", "", "bifrost/s", "p50 µs", "p99 µs", "added p50"
    );
    for concurrency in [1usize, 64, 256] {
        let (mut plain_lat, mut gw_lat) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let (client, url) = (plain.clone(), url.clone());
            plain_lat.extend(rt.block_on(drive(concurrency, move || {
                let (client, url) = (client.clone(), url.clone());
                async move {
                    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
                    let resp = client
                        .post(&url)
                        .bearer_auth("mock-key")
                        .header("content-type", "application/json")
                        .body(serde_json::to_vec(&body).unwrap())
                        .send()
                        .await
                        .expect("send");
                    let bytes = resp.bytes().await.expect("body");
                    let parsed: bifrost_core::Response = serde_json::from_slice(&bytes).expect("json");
                    assert!(!parsed.choices.is_empty());
                }
            })));
            let g = gw.clone();
            gw_lat.extend(rt.block_on(drive(concurrency, move || {
                let g = g.clone();
                async move {
                    g.chat(Request::new("openai/gpt-4o-mini", "hi")).await.expect("chat");
                }
            })));
        }
        plain_lat.sort_unstable();
        gw_lat.sort_unstable();
        let secs = (ROUNDS as f64) * ROUND.as_secs_f64();
        let (pp50, gp50) = (percentile(&plain_lat, 0.5), percentile(&gw_lat, 0.5));
        println!(
            "{:>5} {:>10.0} {:>9} {:>9} {:>9} {:>10.0} {:>9} {:>9} {:>+9} µs  (ratio {:.2})",
            concurrency,
            plain_lat.len() as f64 / secs,
            pp50,
            percentile(&plain_lat, 0.99),
            "",
            gw_lat.len() as f64 / secs,
            gp50,
            percentile(&gw_lat, 0.99),
            gp50 as i64 - pp50 as i64,
            gp50 as f64 / pp50.max(1) as f64
        );
    }
    drop(server);
}
