//! `SharedJob`, the handle every binding wraps: many waiters (async tasks
//! and parked threads) on one job, cancels from anywhere, and the job
//! counted exactly once however its holders go away. No test here depends
//! on timing: jobs that must still be running sit behind a mock latency of
//! ten minutes, and jobs that must finish have none.

use std::sync::Arc;
use std::time::Duration;

use bifrost_core::{ErrorKind, Gateway, Request, Response, SharedJob};
use serde_json::json;

fn gateway(latency_ms: u64, concurrency: usize) -> Arc<Gateway> {
    Arc::new(
        Gateway::from_value(json!({"providers": {
            "p": {"kind": "mock", "mock": {"latency_ms": latency_ms},
                  "concurrency_and_buffer_size": {"concurrency": concurrency, "buffer_size": 10000}},
            "bad": {"kind": "mock", "mock": {"failure_rate": 1.0, "failure_status": 503}}
        }}))
        .unwrap(),
    )
}

fn shared(gw: &Gateway, model: &str) -> SharedJob<Response> {
    SharedJob::new(gw.try_submit(Request::new(model, "hi")).unwrap())
}

/// Several async waiters and several parked threads on one job all get the
/// same outcome, and the outcome stays for later waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_waiter_of_one_job_gets_the_same_outcome() {
    let gw = gateway(0, 1);
    let job = shared(&gw, "p/m");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        tasks.push(tokio::spawn(job.wait()));
    }
    let mut threads = Vec::new();
    for _ in 0..4 {
        let job = job.clone();
        threads.push(std::thread::spawn(move || job.wait_blocking(None).unwrap().unwrap()));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().unwrap().id);
    }
    for t in threads {
        ids.push(t.join().unwrap().unwrap().id);
    }
    ids.push(job.outcome().unwrap().unwrap().id);
    ids.dedup();
    assert_eq!(ids.len(), 1, "one response for every waiter: {ids:?}");
    assert!(job.is_done());
    assert!(!job.cancel(), "a finished job cannot be cancelled");
    let j = gw.stats().providers["p"].jobs;
    assert_eq!((j.submitted, j.completed), (1, 1), "{j:?}");
}

/// A cancel from one thread ends the wait of another at once, with
/// CANCELLED; only the first cancel answers true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_ends_a_blocked_waiter() {
    let gw = gateway(600_000, 1);
    let job = shared(&gw, "p/m");
    let waiter = {
        let job = job.clone();
        std::thread::spawn(move || job.wait_blocking(None).unwrap().unwrap().unwrap_err().kind())
    };
    assert_eq!(job.wait_blocking(Some(Duration::ZERO)).unwrap().map(|r| r.is_ok()), None, "still running");
    assert!(job.cancel());
    assert_eq!(waiter.join().unwrap(), ErrorKind::Cancelled);
    assert!(!job.cancel(), "already over");
    assert_eq!(job.outcome().unwrap().unwrap_err().kind(), ErrorKind::Cancelled);
    let j = gw.stats().providers["p"].jobs;
    assert_eq!((j.submitted, j.cancelled), (1, 1), "{j:?}");
}

/// Dropping every clone of an unfinished job cancels it (nobody can learn
/// its outcome); dropping some clones does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_holder_going_away_cancels_the_job() {
    let gw = gateway(600_000, 2);
    let job = shared(&gw, "p/m");
    let other = job.clone();
    drop(job);
    assert!(!other.is_done());
    assert_eq!(gw.stats().providers["p"].jobs.cancelled, 0);
    drop(other);
    let j = gw.stats().providers["p"].jobs;
    // Running jobs end at their worker's next poll: wait for the count.
    let j = wait_for(&gw, |j| j.cancelled == 1).unwrap_or(j);
    assert_eq!((j.submitted, j.cancelled), (1, 1), "{j:?}");
}

/// Dropping a `wait_or_cancel` future before the outcome cancels the job
/// even while other clones exist; dropping a plain `wait` does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_wait_or_cancel_cancels_the_job() {
    let gw = gateway(600_000, 2);
    let job = shared(&gw, "p/m");
    let plain = tokio::spawn(job.wait());
    plain.abort();
    let _ = plain.await;
    assert!(!job.is_done(), "a dropped plain wait leaves the job running");
    let waiting = tokio::spawn(job.wait_or_cancel());
    waiting.abort();
    let _ = waiting.await;
    let outcome = job.wait().await;
    assert_eq!(outcome.unwrap_err().kind(), ErrorKind::Cancelled);
}

/// On a runtime thread a blocking wait with a timeout is refused with
/// INTERNAL (it would starve the workers); a zero timeout works there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_waits_are_refused_on_runtime_threads() {
    let gw = gateway(600_000, 1);
    let job = shared(&gw, "p/m");
    let handle = bifrost_core::runtime::handle().unwrap();
    let j = job.clone();
    let (refused, zero) = handle
        .spawn(async move {
            (
                j.wait_done_blocking(Some(Duration::from_secs(5))).unwrap_err().kind(),
                j.wait_done_blocking(Some(Duration::ZERO)).unwrap(),
            )
        })
        .await
        .unwrap();
    assert_eq!((refused, zero), (ErrorKind::Internal, false));
    assert!(job.cancel());
}

/// A fallback chain advances while nobody waits on the shared handle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallbacks_advance_without_any_waiter() {
    let gw = gateway(0, 1);
    let mut r = Request::new("bad/m", "hi");
    r.fallbacks = vec!["p/m".into()];
    let job = SharedJob::new(gw.try_submit(r).unwrap());
    wait_for(&gw, |_| gw.stats().providers["p"].jobs.fallbacks_served == 1).expect("the fallback was served");
    let resp = job.outcome().expect("done without a waiter").unwrap();
    assert_eq!(resp.extra_fields.provider, "p", "{resp:?}");
}

/// Two thousand shared jobs, each with an async waiter, a parked thread
/// for some, random cancels and a shutdown midway: every waiter of a job
/// sees one and the same outcome and the invariant holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_shared_jobs_through_cancels_and_a_shutdown() {
    let gw = Arc::new(
        Gateway::from_value(json!({"providers": {
            "p": {"kind": "mock", "mock": {"latency_ms": 1, "jitter_ms": 2, "failure_rate": 0.1, "panic_rate": 0.01},
                  "concurrency_and_buffer_size": {"concurrency": 16, "buffer_size": 4000}}
        }}))
        .unwrap(),
    );
    let mut jobs = Vec::new();
    for i in 0..2000u32 {
        let job = shared(&gw, "p/m");
        if i % 7 == 0 {
            job.cancel();
        }
        jobs.push(job);
    }
    let waits: Vec<_> = jobs.iter().map(|j| tokio::spawn(j.wait())).collect();
    let threads: Vec<_> = jobs
        .iter()
        .step_by(50)
        .map(|j| {
            let j = j.clone();
            std::thread::spawn(move || j.wait_blocking(None).unwrap().unwrap().map(|r| r.id).map_err(|e| e.kind()))
        })
        .collect();
    let report = gw.shutdown(Duration::ZERO).await;
    let mut outcomes = Vec::new();
    for w in waits {
        outcomes.push(w.await.unwrap().map(|r| r.id).map_err(|e| e.kind()));
    }
    for (t, i) in threads.into_iter().zip((0..2000).step_by(50)) {
        assert_eq!(t.join().unwrap(), outcomes[i], "job {i}: the thread saw another outcome");
    }
    for (job, seen) in jobs.iter().zip(&outcomes) {
        let again = job.outcome().expect("done").map(|r| r.id).map_err(|e| e.kind());
        assert_eq!(&again, seen);
    }
    let j = gw.stats().providers["p"].jobs;
    assert!(j.invariant_holds(), "{j:?}");
    assert_eq!(j.submitted, 2000, "{j:?}");
    assert_eq!(j.queued + j.running, 0, "{j:?} {report:?}");
}

/// Polls the stats until `done` holds (a generous bound, for busy machines).
fn wait_for(gw: &Gateway, done: impl Fn(&bifrost_core::JobStats) -> bool) -> Option<bifrost_core::JobStats> {
    for _ in 0..6000 {
        let j = gw.stats().providers["p"].jobs;
        if done(&j) {
            return Some(j);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}
