//! Adaptive scaling under the `max_latency_ms` trigger: the first slow call
//! counts, slow calls with workers free add none, and a ramp settles on a
//! size it keeps under steady load (no flapping). Every job takes hundreds
//! of milliseconds on the mock provider, so the controller's ticks (10–20 ms)
//! land many times inside each window a test looks at, even on a busy
//! machine; every wait is bounded.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bifrost_core::{Gateway, Request, WorkerStats};
use serde_json::json;

fn gateway(latency_ms: u64, concurrency: usize, scaling: serde_json::Value) -> Arc<Gateway> {
    Arc::new(
        Gateway::from_value(json!({"providers": {"p": {
            "kind": "mock", "mock": {"latency_ms": latency_ms},
            "concurrency_and_buffer_size": {"concurrency": concurrency, "buffer_size": 100},
            "scaling": scaling
        }}}))
        .expect("config"),
    )
}

fn workers(gw: &Gateway) -> WorkerStats {
    gw.stats().providers["p"].workers.clone()
}

/// Polls `f` every 5 ms until it holds; fails after `limit`.
async fn until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_slow_call_is_enough_to_scale_up() {
    // One worker, three 1.5 s calls, limit 100 ms; the queue trigger is off
    // (2 queued of 100 never reach a threshold of 1.0). An average that
    // started at 0 would read 1500/16 ≈ 94 ms after the first call and wait
    // for the second; seeded, it reads 1500 ms and scales at the next tick.
    let gw = gateway(
        1500,
        1,
        json!({"min_workers": 1, "max_workers": 4, "scale_up_threshold": 1.0, "scale_down_threshold": 0.0,
               "max_latency_ms": 100, "min_scale_interval_ms": 10, "idle_timeout_ms": 600000}),
    );
    let jobs: Vec<_> = (0..3).map(|i| gw.submit(Request::new("p/m", format!("{i}")))).collect();
    let jobs: Vec<_> = futures_util::future::join_all(jobs).await.into_iter().map(|j| j.expect("queued")).collect();
    assert_eq!(workers(&gw).scale_ups, 0, "no call has finished: nothing says calls are slow yet");
    until(Duration::from_secs(30), "the first call finishes", || gw.stats().providers["p"].jobs.completed >= 1).await;
    until(Duration::from_secs(30), "a scale-up or the second call", || {
        let p = &gw.stats().providers["p"];
        p.workers.scale_ups >= 1 || p.jobs.completed >= 2
    })
    .await;
    let p = gw.stats().providers["p"].clone();
    assert_eq!(p.jobs.completed, 1, "scaled up before the second call finished: {:?}", p.workers);
    assert!(p.workers.scale_ups >= 1 && p.workers.added >= 1 && p.workers.total >= 2, "{:?}", p.workers);
    for j in jobs {
        j.await.expect("completed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_calls_with_workers_free_add_no_workers() {
    // 8 workers, 4 clients calling back to back, every call 5× the limit:
    // no job ever waits for a worker, so adding workers would serve nobody.
    let gw = gateway(
        100,
        8,
        json!({"min_workers": 2, "max_workers": 32, "max_latency_ms": 20, "min_scale_interval_ms": 10,
               "idle_timeout_ms": 600000}),
    );
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let gw = gw.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    gw.chat(Request::new("p/m", format!("{c}-{i}"))).await.expect("completed");
                }
            })
        })
        .collect();
    for c in clients {
        c.await.expect("client");
    }
    let w = workers(&gw);
    assert_eq!((w.total, w.scale_ups, w.added, w.retired), (8, 0, 0, 0), "{w:?}");
}

/// Starts a client that calls back to back until `stop`, counting calls.
fn client(gw: &Arc<Gateway>, stop: &Arc<AtomicBool>, done: &Arc<AtomicUsize>) -> tokio::task::JoinHandle<()> {
    let (gw, stop, done) = (gw.clone(), stop.clone(), done.clone());
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            gw.chat(Request::new("p/m", "x")).await.expect("completed");
            done.fetch_add(1, Ordering::Relaxed);
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ramp_settles_and_a_steady_load_keeps_its_size() {
    // 200 ms calls, limit 50 ms, the queue trigger off: the latency trigger
    // alone sizes the pool. Clients ramp 1 → 3 → 6, then stay at 6.
    let gw = gateway(
        200,
        1,
        json!({"min_workers": 1, "max_workers": 64, "scale_up_threshold": 1.0, "scale_down_threshold": 0.5,
               "max_latency_ms": 50, "min_scale_interval_ms": 20, "idle_timeout_ms": 400, "scale_up_factor": 2.0}),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let mut clients = vec![client(&gw, &stop, &done)];
    until(Duration::from_secs(30), "the first calls finish", || done.load(Ordering::Relaxed) >= 3).await;
    assert!(workers(&gw).total <= 2, "one client needs one worker: {:?}", workers(&gw));
    for target in [3usize, 6] {
        while clients.len() < target {
            clients.push(client(&gw, &stop, &done));
        }
        until(Duration::from_secs(30), "workers for every client", || workers(&gw).total >= target as u64).await;
    }
    // Settled: no scale event for 1.5 s (bounded), then a 3 s steady window.
    let settled = Instant::now();
    let mut last = (workers(&gw).scale_ups, workers(&gw).retired, Instant::now());
    while last.2.elapsed() < Duration::from_millis(1500) {
        assert!(settled.elapsed() < Duration::from_secs(60), "never settled: {:?}", workers(&gw));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let w = workers(&gw);
        if (w.scale_ups, w.retired) != (last.0, last.1) {
            last = (w.scale_ups, w.retired, Instant::now());
        }
    }
    let before = workers(&gw);
    let (mut low, mut high) = (before.total, before.total);
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(3) {
        let t = workers(&gw).total;
        (low, high) = (low.min(t), high.max(t));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = workers(&gw);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    // Six clients need six workers, and the spare rule keeps one more; a
    // pool that flapped would scale up and retire again every few ticks.
    assert!((6..=16).contains(&before.total), "settled size {before:?}");
    assert!(after.scale_ups - before.scale_ups <= 1, "scale-ups under steady load: {before:?} → {after:?}");
    assert!(after.retired - before.retired <= 2, "retirements under steady load: {before:?} → {after:?}");
    assert!(high - low <= before.total, "size moved {low}..={high} under steady load");
    let j = gw.stats().providers["p"].jobs;
    assert!(j.invariant_holds() && j.failed == 0, "{j:?}");
}
