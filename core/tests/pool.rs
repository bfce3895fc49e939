//! Pool behaviour under the queue policies, deadlines, cancellation, panics,
//! isolation and shutdown — asserted on outcomes and on the stats counters.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bifrost_core::{Error, ErrorKind, Gateway, Job, JobStats, MockConfig, Request, Response, TimeoutPhase};
use serde_json::json;

fn gateway(providers: serde_json::Value) -> Gateway {
    Gateway::from_value(json!({ "providers": providers })).expect("valid config")
}

/// One mock provider with `concurrency` workers and a queue of `buffer`.
fn single(policy: &str, concurrency: usize, buffer: usize, wait_ms: u64, latency_ms: u64) -> Gateway {
    gateway(json!({"p": {
        "kind": "mock",
        "mock": {"latency_ms": latency_ms},
        "concurrency_and_buffer_size": {"concurrency": concurrency, "buffer_size": buffer},
        "queue": {"policy": policy, "wait_timeout_ms": wait_ms}
    }}))
}

fn req(text: &str) -> Request {
    Request::new("p/m", text)
}

fn with_mock(mut r: Request, m: MockConfig) -> Request {
    r.mock = Some(m);
    r
}

fn jobs(gw: &Gateway, p: &str) -> bifrost_core::JobStats {
    gw.stats().providers[p].jobs
}

/// Waits (bounded) until `cond` holds on the pool's stats.
async fn until(gw: &Gateway, p: &str, cond: impl Fn(&bifrost_core::JobStats) -> bool) {
    let start = Instant::now();
    while !cond(&jobs(gw, p)) {
        assert!(start.elapsed() < Duration::from_secs(10), "condition not reached: {:?}", jobs(gw, p));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Fills a 1-worker, 2-slot pool: one running job and two queued ones.
async fn fill(gw: &Gateway) -> Vec<Job<Response>> {
    let first = gw.submit(req("first")).await.unwrap();
    until(gw, "p", |j| j.running == 1).await;
    let a = gw.submit(req("a")).await.unwrap();
    let b = gw.submit(req("b")).await.unwrap();
    vec![first, a, b]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_error_rejects_when_full() {
    let gw = single("error", 1, 2, 5_000, 150);
    let held = fill(&gw).await;
    let err = gw.submit(req("overflow")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::QueueFull);
    assert!(err.to_string().contains("buffer_size=2, policy=error"), "{err}");
    for j in held {
        j.await.unwrap();
    }
    let s = jobs(&gw, "p");
    assert_eq!((s.submitted, s.completed, s.rejected), (4, 3, 1));
    assert!(s.invariant_holds(), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_drop_returns_finished_job() {
    let gw = single("drop", 1, 2, 5_000, 150);
    let held = fill(&gw).await;
    let dropped = gw.submit(req("overflow")).await.unwrap();
    assert!(dropped.is_done());
    let err = dropped.await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Dropped);
    for j in held {
        j.await.unwrap();
    }
    let s = jobs(&gw, "p");
    assert_eq!((s.submitted, s.completed, s.dropped), (4, 3, 1));
    assert!(s.invariant_holds(), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_drop_oldest_evicts_oldest_queued() {
    let gw = single("drop_oldest", 1, 2, 5_000, 150);
    let mut held = fill(&gw).await;
    let newest = gw.submit(req("newest")).await.unwrap();
    let b = held.pop().unwrap();
    let a = held.pop().unwrap();
    let err = a.await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Dropped, "the oldest queued job is evicted");
    assert!(err.to_string().contains("drop_oldest"), "{err}");
    assert_eq!(b.await.unwrap().text(), Some("echo: b"));
    assert_eq!(newest.await.unwrap().text(), Some("echo: newest"));
    held.pop().unwrap().await.unwrap();
    let s = jobs(&gw, "p");
    assert_eq!((s.submitted, s.completed, s.dropped), (4, 3, 1));
    assert!(s.invariant_holds(), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_block_waits_then_times_out() {
    // One worker busy for 400 ms, two queued jobs, a 100 ms wait limit.
    let gw = single("block", 1, 2, 100, 400);
    let held = fill(&gw).await;
    // try_submit never waits: a full queue is QUEUE_FULL even under `block`.
    let err = gw.try_submit(req("no-wait")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::QueueFull);
    assert!(err.to_string().contains("policy=block"), "{err}");
    // Four blocked submitters, 30 ms after the queue filled: the two queued
    // jobs expire at 100 ms and free two slots; the other two submitters give
    // up at their own 100 ms limit, 30 ms later. (Without the gap both expiries
    // can land on the same timer tick, and a submitter that runs before the
    // reaper's sweep gives up although a slot is about to free.)
    tokio::time::sleep(Duration::from_millis(30)).await;
    let started = Instant::now();
    let overflow: Vec<_> = (0..4).map(|i| gw.submit(req(&format!("over{i}")))).collect();
    let results = futures_util::future::join_all(overflow).await;
    let mut admitted = Vec::new();
    let mut refused = 0;
    for r in results {
        match r {
            Ok(job) => admitted.push(job),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::QueueTimeout, "{e}");
                assert!(started.elapsed() >= Duration::from_millis(95), "block waited before giving up");
                refused += 1;
            }
        }
    }
    assert_eq!((admitted.len(), refused), (2, 2));
    let mut outcomes = Vec::new();
    for j in held.into_iter().chain(admitted) {
        outcomes.push(j.await.map(|_| ()).map_err(|e| e.kind()));
    }
    // `first` completes; every queued job outlived the wait limit behind it.
    assert_eq!(outcomes[0], Ok(()));
    assert!(outcomes[1..].iter().all(|o| *o == Err(ErrorKind::QueueTimeout)), "{outcomes:?}");
    let s = jobs(&gw, "p");
    assert_eq!((s.submitted, s.completed, s.rejected, s.timed_out), (8, 1, 1, 6), "{s:?}");
    assert!(s.invariant_holds(), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_block_succeeds_when_space_frees() {
    let gw = single("block", 1, 1, 2_000, 50);
    let a = gw.submit(req("a")).await.unwrap();
    until(&gw, "p", |j| j.running == 1).await;
    let b = gw.submit(req("b")).await.unwrap();
    let c = gw.submit(req("c")).await.unwrap(); // waits for `b` to start
    for j in [a, b, c] {
        j.await.unwrap();
    }
    let s = jobs(&gw, "p");
    assert_eq!((s.submitted, s.completed, s.timed_out), (3, 3, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_wait_limit_expires_queued_jobs() {
    let gw = single("block", 1, 10, 60, 300);
    let first = gw.submit(req("first")).await.unwrap();
    until(&gw, "p", |j| j.running == 1).await;
    let waiting = gw.submit(req("waiting")).await.unwrap();
    let started = Instant::now();
    let err = waiting.await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::QueueTimeout);
    assert!(started.elapsed() < Duration::from_millis(250), "expired at the limit, not when a worker freed");
    // A detached job that outlives its wait is expired by the worker instead.
    gw.submit(req("detached")).await.unwrap().detach();
    first.await.unwrap();
    until(&gw, "p", |j| j.timed_out == 2).await;
    let s = jobs(&gw, "p");
    assert_eq!((s.submitted, s.completed, s.timed_out), (3, 1, 2));
    assert!(s.invariant_holds(), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_deadline_distinguishes_queue_and_processing() {
    let gw = single("block", 1, 10, 10_000, 0);
    let slow = MockConfig { latency_ms: Some(400), ..Default::default() };
    let mut r = with_mock(req("slow"), slow.clone());
    r.timeout_ms = Some(100);
    let running = gw.submit(r).await.unwrap();
    until(&gw, "p", |j| j.running == 1).await;
    let mut q = req("queued");
    q.timeout_ms = Some(50);
    let queued = gw.submit(q).await.unwrap();

    match queued.await.unwrap_err() {
        Error::Timeout { phase: TimeoutPhase::Queued, timeout_ms: 50, .. } => {}
        other => panic!("expected a queue-phase timeout, got {other:?}"),
    }
    let err = running.await.unwrap_err();
    assert!(matches!(err, Error::Timeout { phase: TimeoutPhase::Processing, timeout_ms: 100, .. }), "{err:?}");
    assert!(err.to_string().contains("processing"), "{err}");
    let s = jobs(&gw, "p");
    assert_eq!((s.timed_out, s.failed), (1, 1), "queued expiry is timed_out, running expiry is failed");
    assert!(s.invariant_holds(), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_queued_frees_slot_without_a_worker() {
    let gw = single("error", 1, 1, 5_000, 200);
    let first = gw.submit(req("first")).await.unwrap();
    until(&gw, "p", |j| j.running == 1).await;
    let queued = gw.submit(req("queued")).await.unwrap();
    assert!(gw.try_submit(req("full")).is_err(), "queue is full");
    assert!(queued.cancel());
    assert!(!queued.cancel(), "second cancel finds it finished");
    let err = queued.await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(jobs(&gw, "p").queued, 0, "slot freed at once");
    let next = gw.try_submit(req("next")).expect("freed slot accepts a job");
    assert_eq!(jobs(&gw, "p").running, 1, "the cancelled job never took a worker");
    first.await.unwrap();
    next.await.unwrap();
    let s = jobs(&gw, "p");
    assert_eq!((s.submitted, s.completed, s.cancelled, s.rejected), (4, 2, 1, 1));
    assert!(s.invariant_holds(), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_running_drops_provider_call() {
    let gw = single("error", 1, 1, 5_000, 30_000);
    let job = gw.submit(req("long")).await.unwrap();
    until(&gw, "p", |j| j.running == 1).await;
    let started = Instant::now();
    assert!(job.cancel());
    assert_eq!(job.await.unwrap_err().kind(), ErrorKind::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(5));
    let s = jobs(&gw, "p");
    assert_eq!((s.running, s.cancelled), (0, 1));
    // Dropping a handle cancels too, and is counted.
    let dropped = gw.submit(req("dropped")).await.unwrap();
    until(&gw, "p", |j| j.running == 1).await;
    drop(dropped);
    until(&gw, "p", |j| j.cancelled == 2 && j.running == 0).await;
    assert!(jobs(&gw, "p").invariant_holds());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_are_isolated_and_workers_survive() {
    let gw = single("block", 3, 100, 5_000, 0);
    let boom = MockConfig { panic_rate: Some(1.0), ..Default::default() };
    for _ in 0..10 {
        let err = gw.chat(with_mock(req("boom"), boom.clone())).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert!(err.to_string().contains("injected a panic"), "{err}");
    }
    assert_eq!(gw.chat(req("after")).await.unwrap().text(), Some("echo: after"));
    let st = gw.stats();
    let p = &st.providers["p"];
    assert_eq!(p.jobs.panics, 10);
    assert_eq!(p.jobs.failed, 10);
    assert_eq!(p.workers.total, 3, "no worker was lost to a panic");
    assert!(p.jobs.invariant_holds());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_counted_and_bounded() {
    let gw = gateway(json!({"p": {
        "kind": "mock",
        "mock": {"failure_rate": 1.0, "failure_status": 503},
        "network_config": {"max_retries": 2, "retry_backoff_initial_ms": 1, "retry_backoff_max_ms": 2}
    }}));
    let err = gw.chat(req("x")).await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    let s = jobs(&gw, "p");
    assert_eq!((s.retries, s.failed), (2, 1));
    // 400 is not retryable.
    let r = with_mock(req("y"), MockConfig { failure_status: Some(400), ..Default::default() });
    assert_eq!(gw.chat(r).await.unwrap_err().status(), Some(400));
    assert_eq!(jobs(&gw, "p").retries, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_slow_provider_does_not_delay_another() {
    let gw = gateway(json!({
        "slow": {"kind": "mock", "mock": {"latency_ms": 5000},
                 "concurrency_and_buffer_size": {"concurrency": 1, "buffer_size": 2},
                 "queue": {"policy": "error"}},
        "fast": {"kind": "mock", "concurrency_and_buffer_size": {"concurrency": 4, "buffer_size": 100}}
    }));
    let mut slow = vec![gw.submit(Request::new("slow/m", "s0")).await.unwrap()];
    until(&gw, "slow", |j| j.running == 1).await;
    for i in 1..3 {
        slow.push(gw.submit(Request::new("slow/m", format!("s{i}"))).await.unwrap());
    }
    assert_eq!(gw.submit(Request::new("slow/m", "over")).await.unwrap_err().kind(), ErrorKind::QueueFull);
    let fast: Vec<_> = (0..200).map(|i| gw.chat(Request::new("fast/m", format!("f{i}")))).collect();
    for r in futures_util::future::join_all(fast).await {
        r.unwrap();
    }
    // Every fast job finished while the slow provider still holds all of its jobs.
    let st = gw.stats();
    assert_eq!(st.providers["fast"].jobs.completed, 200);
    let s = st.providers["slow"].jobs;
    assert_eq!((s.completed, s.running, s.queued), (0, 1, 2));
    drop(slow);
    let report = gw.shutdown(Duration::from_secs(2)).await;
    assert_eq!(report.completed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_and_embed_through_the_pool() {
    use futures_util::StreamExt;
    let gw = gateway(json!({"p": {"kind": "mock", "mock": {"stream_chunks": 3}}}));
    let mut s = gw.stream(req("one two three four")).await.unwrap();
    let mut text = String::new();
    let mut last = None;
    while let Some(chunk) = s.next().await {
        let chunk = chunk.unwrap();
        assert_eq!(chunk.object, "chat.completion.chunk");
        if let Some(c) = &chunk.choices[0].delta.content {
            text.push_str(c);
        }
        last = Some(chunk);
    }
    assert_eq!(text, "echo: one two three four");
    let last = last.unwrap();
    assert_eq!(last.choices[0].finish_reason.as_deref(), Some("stop"));
    assert_eq!(last.usage.unwrap().completion_tokens, 5);

    let e: bifrost_core::EmbedRequest =
        serde_json::from_value(json!({"model": "p/emb", "input": ["a", "b"], "params": {"dimensions": 8}})).unwrap();
    let out = gw.embed(e.clone()).await.unwrap();
    assert_eq!(out.data.len(), 2);
    assert_eq!(out.data[0].embedding.as_floats().map(<[f64]>::len), Some(8));
    let again = gw.embed(e).await.unwrap();
    assert_eq!(out.data[1].embedding, again.data[1].embedding, "deterministic per input");
    assert_eq!(jobs(&gw, "p").completed, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_mock_is_reproducible() {
    let cfg = json!({"p": {"kind": "mock", "mock": {"failure_rate": 0.5, "seed": 7},
                           "concurrency_and_buffer_size": {"concurrency": 1, "buffer_size": 100}}});
    let mut runs = Vec::new();
    for _ in 0..2 {
        let gw = gateway(cfg.clone());
        let mut outcomes = Vec::new();
        for i in 0..40 {
            outcomes.push(gw.chat(req(&format!("{i}"))).await.is_ok());
        }
        runs.push(outcomes);
    }
    assert_eq!(runs[0], runs[1]);
    let ok = runs[0].iter().filter(|o| **o).count();
    assert!((8..=32).contains(&ok), "about half fail: {ok}/40");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_matches_stats() {
    let gw = single("error", 2, 10, 5_000, 0);
    for i in 0..5 {
        gw.chat(req(&format!("{i}"))).await.unwrap();
    }
    let text = gw.prometheus();
    for line in [
        "bifrost_jobs_submitted_total{provider=\"p\"} 5",
        "bifrost_jobs_total{provider=\"p\",outcome=\"completed\"} 5",
        "bifrost_queue_depth{provider=\"p\"} 0",
        "bifrost_workers{provider=\"p\",state=\"idle\"} 2",
        "bifrost_processing_seconds_count{provider=\"p\"} 5",
        "bifrost_queue_wait_seconds_bucket{provider=\"p\",le=\"+Inf\"} 5",
        "# TYPE bifrost_jobs_total counter",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let stats = serde_json::to_value(gw.stats()).unwrap();
    assert_eq!(stats["providers"]["p"]["queue"]["policy"], "error");
    assert_eq!(stats["providers"]["p"]["jobs"]["completed"], 5);
    assert!(stats["runtime"]["worker_threads"].as_u64().unwrap() >= 1);
    assert!(stats["object_pools"]["request_buffer"]["idle"].as_u64().unwrap() > 0, "prewarmed");
}

/// A thread that takes `stats()` snapshots in a loop while jobs move and
/// checks each one: the accounting invariant holds in every snapshot, the
/// totals never shrink from one snapshot to the next, and the gauges stay
/// within what the pool can hold (a snapshot mixing moments could show a
/// job's start without its entry: a gauge below zero, which wraps).
struct SnapshotWatcher {
    stop: Arc<std::sync::atomic::AtomicBool>,
    taken: Arc<std::sync::atomic::AtomicU64>,
    thread: std::thread::JoinHandle<u64>,
}

impl SnapshotWatcher {
    fn start(gw: Arc<Gateway>, providers: &[&'static str]) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
        let stop = Arc::new(AtomicBool::new(false));
        let taken = Arc::new(AtomicU64::new(0));
        let providers = providers.to_vec();
        let (stop2, taken2) = (stop.clone(), taken.clone());
        let thread = std::thread::spawn(move || {
            let mut last: HashMap<&str, JobStats> = HashMap::new();
            while !stop2.load(Relaxed) {
                let st = gw.stats();
                for p in &providers {
                    let s = &st.providers[*p];
                    let j = s.jobs;
                    assert!(j.invariant_holds(), "{p}: a snapshot breaks the invariant: {j:?}");
                    let room = s.queue.capacity + s.workers.max;
                    assert!(j.queued + j.running <= room, "{p}: gauges beyond the pool's room {room}: {j:?}");
                    if let Some(l) = last.get(p) {
                        let grew = [
                            (l.submitted, j.submitted),
                            (l.completed, j.completed),
                            (l.failed, j.failed),
                            (l.dropped, j.dropped),
                            (l.rejected, j.rejected),
                            (l.timed_out, j.timed_out),
                            (l.cancelled, j.cancelled),
                        ];
                        assert!(grew.iter().all(|(a, b)| a <= b), "{p}: a total shrank: {l:?} then {j:?}");
                    }
                    last.insert(p, j);
                }
                taken2.fetch_add(1, Relaxed);
            }
            taken2.load(Relaxed)
        });
        SnapshotWatcher { stop, taken, thread }
    }

    /// Waits (bounded) until the watcher has checked `n` snapshots.
    async fn wait_for(&self, n: u64) {
        let started = Instant::now();
        while self.taken.load(std::sync::atomic::Ordering::Relaxed) < n {
            assert!(!self.thread.is_finished(), "the snapshot watcher failed");
            assert!(started.elapsed() < Duration::from_secs(60), "the snapshot watcher is stuck");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Stops the watcher; returns how many snapshots it checked (or fails
    /// with its assertion).
    fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        match self.thread.join() {
            Ok(n) => n,
            Err(e) => std::panic::resume_unwind(e),
        }
    }
}

const PER_SUBMITTER: u64 = 3000;
const BURST: u64 = 2000;

/// The storm: three providers with random latency, failures and panics,
/// submitters still running, cancels and drops, and a shutdown in the middle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_storm_every_handle_resolves_once() {
    let gw = Arc::new(gateway(json!({
        "a": {"kind": "mock", "mock": {"latency_ms": 5, "jitter_ms": 10, "failure_rate": 0.2, "panic_rate": 0.02},
              "concurrency_and_buffer_size": {"concurrency": 16, "buffer_size": 4000}, "queue": {"policy": "block", "wait_timeout_ms": 1000}},
        "b": {"kind": "mock", "mock": {"latency_ms": 5, "jitter_ms": 15, "failure_rate": 0.1},
              "concurrency_and_buffer_size": {"concurrency": 8, "buffer_size": 4000}, "queue": {"policy": "drop_oldest"}},
        "c": {"kind": "mock", "mock": {"latency_ms": 2, "jitter_ms": 5, "panic_rate": 0.05},
              "concurrency_and_buffer_size": {"concurrency": 4, "buffer_size": 4000}, "queue": {"policy": "error"}}
    })));
    let providers = ["a", "b", "c"];
    let mut tasks = Vec::new();
    for t in 0..6 {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(t);
            let mut counts: HashMap<String, u64> = HashMap::new();
            let mut handles = Vec::new();
            for i in 0..PER_SUBMITTER {
                let p = providers[rng.usize(0..3)];
                let mut r = Request::new(format!("{p}/m"), format!("{t}-{i}"));
                if rng.u8(0..10) == 0 {
                    r.timeout_ms = Some(rng.u64(1..30));
                }
                match gw.submit(r).await {
                    Ok(job) => match rng.u8(0..20) {
                        0 => {
                            job.cancel();
                            handles.push(job);
                        }
                        1 => {
                            drop(job);
                            *counts.entry("dropped_handle".into()).or_default() += 1;
                        }
                        _ => handles.push(job),
                    },
                    Err(e) => *counts.entry(format!("submit:{}", e.kind())).or_default() += 1,
                }
                // A fast burst builds the backlog; then a paced tail keeps the
                // submitters running while the shutdown lands.
                if i >= BURST && i % 8 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            for job in handles {
                let out = tokio::time::timeout(Duration::from_secs(30), job).await.expect("a handle hung");
                let key = match out {
                    Ok(_) => "ok".to_string(),
                    Err(e) => e.kind().to_string(),
                };
                *counts.entry(key).or_default() += 1;
            }
            counts
        }));
    }
    let watcher = SnapshotWatcher::start(gw.clone(), &providers);
    // Shut down once more than 10k jobs wait in the queues, and the watcher
    // has checked snapshots of the storm.
    watcher.wait_for(100).await;
    let started = Instant::now();
    let queued = loop {
        let q: u64 = gw.stats().providers.values().map(|p| p.jobs.queued).sum();
        if q >= 10_000 || started.elapsed() > Duration::from_secs(5) {
            break q;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    assert!(queued >= 10_000, "backlog at shutdown: {queued}");
    let report = gw.shutdown(Duration::from_millis(100)).await;
    let mut total: HashMap<String, u64> = HashMap::new();
    for t in tasks {
        for (k, v) in t.await.unwrap() {
            *total.entry(k).or_default() += v;
        }
    }
    let checked = watcher.stop();
    eprintln!(
        "storm outcomes: {total:?}\nshutdown report: {report:?}, queued at shutdown: {queued}, \
         snapshots checked: {checked}"
    );
    let outcomes: u64 = total.values().sum::<u64>();
    assert_eq!(outcomes, 6 * PER_SUBMITTER, "every submit accounted for exactly once: {total:?}");
    let st = gw.stats();
    let (mut submitted, mut completed, mut cancelled) = (0, 0, 0);
    for p in providers {
        let j = st.providers[p].jobs;
        assert!(j.invariant_holds(), "{p}: {j:?}");
        assert_eq!((j.queued, j.running), (0, 0), "{p} idle after shutdown");
        submitted += j.submitted;
        completed += j.completed;
        cancelled += j.cancelled;
    }
    let get = |k: &str| total.get(k).copied().unwrap_or(0);
    // Every submit either entered a pool (counted) or was refused at shutdown.
    assert_eq!(submitted + get("submit:SHUTDOWN"), 6 * PER_SUBMITTER, "{total:?}");
    assert_eq!(get("ok"), completed, "every completed job was observed by its handle");
    assert!(get("CANCELLED") <= cancelled);
    assert!(get("SHUTDOWN") <= report.aborted, "{report:?} {total:?}");
    assert!(report.completed + report.failed + report.cancelled > 0, "{report:?}");
    assert!(get("submit:SHUTDOWN") > 0, "the shutdown landed while submitters were still running: {total:?}");
}

/// Regression: a worker that expires a queued job on its way to the next one
/// must free the slot for a `block` submitter at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_expiry_wakes_blocked_submitter() {
    let gw = single("block", 1, 1, 2_000, 0);
    for _ in 0..20 {
        // Long enough that a loaded machine still sees it running.
        let slow = with_mock(req("slow"), MockConfig { latency_ms: Some(150), ..Default::default() });
        let running = gw.submit(slow).await.unwrap();
        until(&gw, "p", |j| j.running == 1).await;
        let mut short = req("short");
        short.timeout_ms = Some(5);
        gw.submit(short).await.unwrap().detach();
        let started = Instant::now();
        // The queue is full until the short job expires (at 5 ms, or when the
        // worker finds it expired at 150 ms): never the 2 s wait limit.
        let next = gw.submit(req("next")).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(1000), "blocked {:?}", started.elapsed());
        running.await.unwrap();
        next.await.unwrap();
    }
    assert!(jobs(&gw, "p").invariant_holds());
}

/// Parked workers are woken one per job, never lost and never handed to a
/// busy worker: after thousands of park/unpark cycles on both runtime
/// threads (which leave stale wake-ups behind), a short job submitted while
/// one worker is stuck on a long job is run by another worker at once — it
/// finishes while the long job is still running, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_workers_wake_for_every_job_and_never_queue_behind_a_busy_one() {
    let gw = Arc::new(single("block", 4, 64, 10_000, 0));
    for round in 0..8 {
        // Churn: 8 submitters × 100 zero-latency jobs park and unpark workers.
        let churn: Vec<_> = (0..8)
            .map(|_| {
                let gw = gw.clone();
                tokio::spawn(async move {
                    for _ in 0..100 {
                        gw.chat(req("x")).await.expect("churn job");
                    }
                })
            })
            .collect();
        for c in churn {
            c.await.expect("churn task");
        }
        let long = gw.submit(with_mock(req("long"), MockConfig { latency_ms: Some(250), ..Default::default() }));
        let long = long.await.expect("long submitted");
        until(&gw, "p", |j| j.running == 1).await;
        for i in 0..3 {
            let r = gw.chat(req("short")).await.expect("short job");
            assert_eq!(r.text(), Some("echo: short"));
            assert!(!long.is_done(), "round {round}, short job {i} waited for the busy worker");
        }
        long.await.expect("long job");
    }
    let j = jobs(&gw, "p");
    assert_eq!(j.completed, 8 * (800 + 1 + 3));
    assert_eq!(j.submitted, j.completed);
}
