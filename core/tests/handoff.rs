//! Adversarial tests of the hand-off between submitters and parked workers.
//!
//! An idle worker parks, and a submit must wake one. Whatever protocol does
//! that (a lock, or a Dekker-style "register idle, fence, re-check the queue"
//! against "push, fence, re-check the idle lists"), its classic bug is a
//! LOST WAKE-UP: a job sits in the queue while every worker is parked, or a
//! job is handed to a worker that is retiring or exiting, and its handle
//! never resolves. Under steady traffic the next push usually rescues such a
//! job, so these tests make quiet moments on purpose — every submitter
//! waits for all of its jobs at the end of each round, and rounds are
//! separated by barriers and gaps — and also flag any zero-latency job whose
//! queue wait shows it was stranded for seconds before a later push freed it.
//!
//! Submitters are tasks on a test runtime, tasks on bifrost's own runtime
//! (where they share threads with the workers) and plain OS threads that use
//! `Job::wait_blocking`; they fire bursts and one-at-a-time ping-pongs with
//! random tiny pauses (spins, yields, sub-ms sleeps), so workers constantly
//! flip between busy and parked. Covered: fixed pools of 1, 2 and 4 workers;
//! adaptive pools whose workers retire after a 10 ms idle timeout while jobs
//! are handed to them; bursts separated by gaps around that timeout; a
//! shutdown landing in the middle of bursts from OS threads; jobs
//! submitted from outside the runtime to a fully idle pool; and chains of
//! jobs from a single OS thread, each submitted a random few microseconds
//! after the previous one finished, so the push lands in the very window
//! where the worker goes from "nothing queued" to "parked" (with a single
//! submitter, nothing can rescue a job stranded there: it hangs).
//!
//! Every wait is bounded ([`HANG`]): a lost wake-up fails the test with a
//! message saying which job hung, never hangs the suite. No assertion is
//! about speed; the stranded-job bound is a liveness bound, seconds long.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bifrost_core::{Error, ErrorKind, Gateway, Job, JobStats, MockConfig, Request, Response};
use serde_json::json;
use tokio::sync::Barrier;

/// The longest any single wait may take before it counts as a hang.
const HANG: Duration = Duration::from_secs(30);

/// A barrier waits longer than [`HANG`], so the submitter whose job hung
/// reports that first, rather than its peers reporting the barrier.
const BARRIER_HANG: Duration = Duration::from_secs(45);

/// A zero-latency job that waited this long in the queue was stranded there
/// with its pool idle until some later push rescued it: a lost wake-up
/// masked by traffic. (A liveness bound, far above any scheduling delay.)
const STRANDED_US: u64 = 5_000_000;

/// One zero-latency mock provider `p` under policy `block`. The queue wait
/// limit is far above [`HANG`], so a job stranded in the queue shows up as a
/// hung handle rather than as a QUEUE_TIMEOUT that the reaper made up for it.
fn gateway(concurrency: usize, buffer: usize, scaling: Option<serde_json::Value>) -> Arc<Gateway> {
    let mut p = json!({
        "kind": "mock",
        "mock": {"latency_ms": 0},
        "concurrency_and_buffer_size": {"concurrency": concurrency, "buffer_size": buffer},
        "queue": {"policy": "block", "wait_timeout_ms": 600_000}
    });
    if let Some(s) = scaling {
        p["scaling"] = s;
    }
    Arc::new(Gateway::from_value(json!({ "providers": { "p": p } })).expect("valid config"))
}

/// Adaptive scaling between `min` and `max` workers that retire after the
/// smallest idle timeout allowed (10 ms). With a 64-slot queue, 4 queued
/// jobs scale up (at most every 10 ms) and a worker retires only while at
/// most one is queued, so bursts and gaps make both happen over and over.
fn scaling(min: usize, max: usize) -> serde_json::Value {
    json!({"min_workers": min, "max_workers": max, "scale_up_threshold": 0.05, "scale_down_threshold": 0.02,
           "min_scale_interval_ms": 10, "idle_timeout_ms": IDLE_TIMEOUT_MS, "scale_up_factor": 2.0})
}

const IDLE_TIMEOUT_MS: u64 = 10;

fn jobs(gw: &Gateway) -> JobStats {
    gw.stats().providers["p"].jobs
}

/// Checks one outcome: Ok, for this very request, and not stranded.
fn check(out: Result<Response, Error>, text: &str, what: &str) {
    let r = out.unwrap_or_else(|e| panic!("{what}: job {text:?} failed: {e} ({:?})", e.kind()));
    let want = format!("echo: {text}");
    assert_eq!(r.text(), Some(want.as_str()), "{what}: an outcome was delivered to the wrong handle");
    assert!(
        r.extra_fields.queue_wait_us < STRANDED_US,
        "{what}: job {text:?} sat {} µs in the queue of a zero-latency pool: stranded while workers were \
         parked until a later push woke one (lost wake-up)",
        r.extra_fields.queue_wait_us
    );
}

/// Awaits a handle, bounded by [`HANG`].
async fn settle(gw: &Gateway, job: Job<Response>, text: &str, what: &str) {
    match tokio::time::timeout(HANG, job).await {
        Ok(out) => check(out, text, what),
        Err(_) => panic!("{what}: job {text:?} never resolved in {HANG:?} (lost wake-up?); stats: {:?}", jobs(gw)),
    }
}

/// Waits for a handle from an OS thread, bounded by [`HANG`].
fn settle_blocking(gw: &Gateway, mut job: Job<Response>, text: &str, what: &str) {
    match job.wait_blocking(Some(HANG)) {
        Some(out) => check(out, text, what),
        None => panic!("{what}: job {text:?} never resolved in {HANG:?} (lost wake-up?); stats: {:?}", jobs(gw)),
    }
}

/// Runs `fut` to completion on an OS thread, bounded by `limit` (the timer
/// lives on bifrost's runtime, as `wait_blocking`'s does).
fn block_bounded<F: Future>(what: &str, limit: Duration, fut: F) -> F::Output {
    let _rt = bifrost_core::runtime::handle().expect("bifrost runtime").enter();
    let bounded = tokio::time::timeout(limit, fut);
    futures_executor::block_on(bounded).unwrap_or_else(|_| panic!("{what}: still waiting after {limit:?}"))
}

const BARRIER_STUCK: &str = "the other submitters never reached the barrier (one of them hung or panicked)";

async fn task_barrier(b: &Barrier, what: &str) {
    if tokio::time::timeout(BARRIER_HANG, b.wait()).await.is_err() {
        panic!("{what}: {BARRIER_STUCK}");
    }
}

fn thread_barrier(b: &Barrier, what: &str) {
    block_bounded(&format!("{what}: {BARRIER_STUCK}"), BARRIER_HANG, b.wait());
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p.downcast_ref::<&str>().map_or_else(|| "non-string panic".to_string(), |s| s.to_string()),
    }
}

/// A random tiny pause on an OS thread: nothing, a spin, a yield or a
/// sub-millisecond sleep.
fn pause_thread(rng: &mut fastrand::Rng) {
    match rng.u8(0..10) {
        0..=3 => {}
        4 | 5 => (0..rng.u32(1..3000)).for_each(|_| std::hint::spin_loop()),
        6 | 7 => std::thread::yield_now(),
        _ => std::thread::sleep(Duration::from_micros(rng.u64(1..400))),
    }
}

/// A random tiny pause in a task. A task on bifrost's runtime never sleeps
/// its thread (that would hold up the workers it shares it with).
async fn pause_task(rng: &mut fastrand::Rng, on_bifrost: bool) {
    match rng.u8(0..10) {
        0..=3 => {}
        4 | 5 => (0..rng.u32(1..3000)).for_each(|_| std::hint::spin_loop()),
        6..=8 => tokio::task::yield_now().await,
        _ if on_bifrost => tokio::task::yield_now().await,
        _ => std::thread::sleep(Duration::from_micros(rng.u64(1..400))),
    }
}

/// A request echoing `text`; one in 32 takes 1-4 ms, so a worker is
/// sometimes busy while the others park and unpark around it, and a queue
/// builds up behind it (which makes an adaptive pool scale up).
fn request(text: &str, rng: &mut fastrand::Rng) -> Request {
    let mut r = Request::new("p/m", text);
    if rng.u8(0..32) == 0 {
        r.mock = Some(MockConfig { latency_ms: Some(rng.u64(1..5)), ..Default::default() });
    }
    r
}

/// How submitters run: `rounds` rounds, each starting at a barrier shared by
/// all of them, then a gap drawn from `gaps_ms` (the same for every
/// submitter in a round, so the pool is quiet for it; 0 is no gap), then up
/// to `max_burst` jobs, fired as a burst or one at a time (ping-pong).
#[derive(Clone, Copy)]
struct Plan {
    rounds: u64,
    max_burst: usize,
    gaps_ms: &'static [u64],
    seed: u64,
}

impl Plan {
    fn gap(&self, round: u64) -> Duration {
        let mut rng = fastrand::Rng::with_seed(self.seed ^ round.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        Duration::from_millis(self.gaps_ms[rng.usize(0..self.gaps_ms.len())])
    }
}

/// A submitter task; returns how many jobs completed.
async fn task_submitter(gw: Arc<Gateway>, plan: Plan, barrier: Arc<Barrier>, id: u64, on_bifrost: bool) -> u64 {
    let mut rng = fastrand::Rng::with_seed(plan.seed.wrapping_add(id * 1_000_003));
    let what = format!("task submitter {id} (bifrost runtime: {on_bifrost})");
    let mut done = 0;
    for round in 0..plan.rounds {
        task_barrier(&barrier, &what).await;
        let gap = plan.gap(round);
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
        let n = rng.usize(1..=plan.max_burst);
        let ping_pong = rng.u8(0..3) == 0;
        let mut held = Vec::with_capacity(n);
        for i in 0..n {
            let text = format!("t{id}-{round}-{i}");
            let job = match tokio::time::timeout(HANG, gw.submit(request(&text, &mut rng))).await {
                Ok(j) => j.unwrap_or_else(|e| panic!("{what}: submit {text:?} refused: {e}")),
                Err(_) => panic!("{what}: submit {text:?} blocked for {HANG:?}; stats: {:?}", jobs(&gw)),
            };
            if ping_pong {
                settle(&gw, job, &text, &what).await;
                done += 1;
            } else {
                held.push((job, text));
            }
            pause_task(&mut rng, on_bifrost).await;
        }
        if rng.bool() {
            held.reverse();
        }
        for (job, text) in held {
            settle(&gw, job, &text, &what).await;
            done += 1;
        }
    }
    done
}

/// A submitter on a plain OS thread (`try_submit` + `wait_blocking`; a
/// full queue is counted and the job resubmitted with a blocking submit);
/// returns how many jobs completed and how many submits were rejected.
fn thread_submitter(gw: Arc<Gateway>, plan: Plan, barrier: Arc<Barrier>, id: u64) -> (u64, u64) {
    let mut rng = fastrand::Rng::with_seed(plan.seed.wrapping_add(id * 1_000_003));
    let what = format!("thread submitter {id}");
    let (mut done, mut rejected) = (0, 0);
    for round in 0..plan.rounds {
        thread_barrier(&barrier, &what);
        let gap = plan.gap(round);
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
        let n = rng.usize(1..=plan.max_burst);
        let ping_pong = rng.u8(0..3) == 0;
        let mut held = Vec::with_capacity(n);
        for i in 0..n {
            let text = format!("o{id}-{round}-{i}");
            let r = request(&text, &mut rng);
            let job = match gw.try_submit(r.clone()) {
                Ok(job) => job,
                Err(e) if e.kind() == ErrorKind::QueueFull => {
                    rejected += 1;
                    block_bounded(&what, HANG, gw.submit(r))
                        .unwrap_or_else(|e| panic!("{what}: blocking submit {text:?} refused: {e}"))
                }
                Err(e) => panic!("{what}: submit {text:?} refused: {e}"),
            };
            if ping_pong {
                settle_blocking(&gw, job, &text, &what);
                done += 1;
            } else {
                held.push((job, text));
            }
            pause_thread(&mut rng);
        }
        if rng.bool() {
            held.reverse();
        }
        for (job, text) in held {
            settle_blocking(&gw, job, &text, &what);
            done += 1;
        }
    }
    (done, rejected)
}

/// Runs 3 submitter tasks on the test runtime, 2 on bifrost's runtime and
/// 3 OS threads against `gw` under `plan`; checks every job completed once
/// and the pool is idle with its books balanced. Returns the job count.
async fn storm(gw: &Arc<Gateway>, plan: Plan, what: &str) -> u64 {
    const TASKS: u64 = 3;
    const BIFROST_TASKS: u64 = 2;
    const THREADS: u64 = 3;
    let barrier = Arc::new(Barrier::new((TASKS + BIFROST_TASKS + THREADS) as usize));
    let bifrost = bifrost_core::runtime::handle().expect("bifrost runtime");
    let mut tasks = Vec::new();
    for id in 0..TASKS {
        tasks.push(tokio::spawn(task_submitter(gw.clone(), plan, barrier.clone(), id, false)));
    }
    for id in TASKS..TASKS + BIFROST_TASKS {
        tasks.push(bifrost.spawn(task_submitter(gw.clone(), plan, barrier.clone(), id, true)));
    }
    let threads: Vec<_> = (TASKS + BIFROST_TASKS..TASKS + BIFROST_TASKS + THREADS)
        .map(|id| {
            let (gw, barrier) = (gw.clone(), barrier.clone());
            std::thread::spawn(move || thread_submitter(gw, plan, barrier, id))
        })
        .collect();
    // Every submitter bounds its own waits, so all of these end.
    let (mut done, mut rejected) = (0, 0);
    let mut failures = Vec::new();
    for t in tasks {
        match tokio::time::timeout(3 * HANG, t).await {
            Ok(Ok(d)) => done += d,
            Ok(Err(e)) => failures.push(e.try_into_panic().map_or_else(|e| e.to_string(), panic_text)),
            Err(_) => failures.push("a submitter task never finished".to_string()),
        }
    }
    for t in threads {
        match tokio::task::block_in_place(|| t.join()) {
            Ok((d, r)) => (done, rejected) = (done + d, rejected + r),
            Err(p) => failures.push(panic_text(p)),
        }
    }
    // The root cause first: peers stuck at a barrier only follow from it.
    failures.sort_by_key(|f| f.contains(BARRIER_STUCK));
    assert!(failures.is_empty(), "{what}: {} submitter(s) failed:\n{}", failures.len(), failures.join("\n"));
    assert_settled(gw, done, rejected, what);
    eprintln!(
        "{what}: {done} jobs ({rejected} first refused as QUEUE_FULL), workers {:?}",
        gw.stats().providers["p"].workers
    );
    done
}

/// Every job completed exactly once (`rejected` submits were refused with
/// QUEUE_FULL), and the idle pool balances its books.
fn assert_settled(gw: &Gateway, completed: u64, rejected: u64, what: &str) {
    let st = gw.stats();
    let p = &st.providers["p"];
    let j = p.jobs;
    assert_eq!(p.queue.depth, 0, "{what}: queue not empty once every handle resolved: {j:?}");
    assert_eq!((j.queued, j.running), (0, 0), "{what}: pool not idle once every handle resolved: {j:?}");
    assert_eq!(
        j.submitted,
        j.completed + j.failed + j.dropped + j.rejected + j.timed_out + j.cancelled,
        "{what}: accounting invariant broken: {j:?}"
    );
    assert!(j.invariant_holds(), "{what}: {j:?}");
    assert_eq!((j.completed, j.rejected), (completed, rejected), "{what}: each job counted once: {j:?}");
    assert_eq!(j.failed + j.dropped + j.timed_out + j.cancelled, 0, "{what}: {j:?}");
}

// (1) Fixed pools: workers flip between busy and parked on every pause.

const CHURN: Plan = Plan { rounds: 30, max_burst: 40, gaps_ms: &[0, 0, 0, 1], seed: 0xC0FFEE };

async fn churn(concurrency: usize) {
    let what = format!("churn, concurrency {concurrency}");
    let gw = gateway(concurrency, 4096, None);
    storm(&gw, Plan { seed: CHURN.seed + concurrency as u64, ..CHURN }, &what).await;
    let w = gw.stats().providers["p"].workers.clone();
    assert_eq!(w.total, concurrency as u64, "{what}: no worker lost: {w:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_one_worker_every_job_resolves_once() {
    churn(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_two_workers_every_job_resolves_once() {
    churn(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_four_workers_every_job_resolves_once() {
    churn(4).await;
}

// (2) Adaptive pools: the same churn while idle workers retire after 10 ms
// and the controller spawns new ones, so pushes race retirements.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_with_retiring_workers_strands_no_job() {
    let plan = Plan { rounds: 40, max_burst: 40, gaps_ms: &[0, 0, 1, 3, 9, 10, 11, 15], seed: 0x5CA1E };
    for (concurrency, min, max) in [(2, 1, 4), (4, 1, 8)] {
        let what = format!("churn with retiring workers, {min}..={max} workers");
        let gw = gateway(concurrency, 64, Some(scaling(min, max)));
        storm(&gw, Plan { seed: plan.seed + max as u64, ..plan }, &what).await;
        let w = gw.stats().providers["p"].workers.clone();
        assert!(w.retired > 0, "{what}: workers retired during the run: {w:?}");
    }
}

// (3) Bursts separated by quiet gaps just under, at and just over the idle
// timeout: the first pushes of a burst race the idle timers firing.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_after_gaps_around_the_idle_timeout() {
    let gaps: &[u64] = &[IDLE_TIMEOUT_MS - 2, IDLE_TIMEOUT_MS - 1, IDLE_TIMEOUT_MS, IDLE_TIMEOUT_MS + 1, 12, 15, 25];
    let plan = Plan { rounds: 48, max_burst: 12, gaps_ms: gaps, seed: 0x6A95 };
    let what = "bursts after gaps around the idle timeout";
    let gw = gateway(4, 64, Some(scaling(1, 4)));
    storm(&gw, plan, what).await;
    let w = gw.stats().providers["p"].workers.clone();
    assert!(w.retired > 0, "{what}: workers retired in the gaps: {w:?}");
}

// (4) A shutdown lands in the middle of bursts from OS threads.

/// What one shutdown-storm submitter saw.
#[derive(Default, Debug)]
struct Seen {
    ok: u64,
    /// Handles that resolved with SHUTDOWN.
    shutdown: u64,
    /// Submits refused with SHUTDOWN (the pool had closed).
    refused: u64,
}

fn shutdown_submitter(gw: Arc<Gateway>, seed: u64, id: u64, closing: Arc<AtomicBool>) -> Seen {
    let mut rng = fastrand::Rng::with_seed(seed);
    let what = format!("shutdown submitter {id}");
    let mut seen = Seen::default();
    let mut held: Vec<(Job<Response>, String)> = Vec::new();
    let resolve = |seen: &mut Seen, mut job: Job<Response>, text: &str| match job.wait_blocking(Some(HANG)) {
        None => panic!("{what}: job {text:?} never resolved in {HANG:?}; stats: {:?}", jobs(&gw)),
        Some(Ok(r)) => {
            assert_eq!(r.text(), Some(format!("echo: {text}").as_str()), "{what}: outcome to the wrong handle");
            seen.ok += 1;
        }
        Some(Err(e)) if e.kind() == ErrorKind::Shutdown => seen.shutdown += 1,
        Some(Err(e)) => panic!("{what}: job {text:?} ended with {e} ({:?}), neither Ok nor SHUTDOWN", e.kind()),
    };
    // Submits until the pool refuses one; a bound stops a runaway loop.
    for i in 0..20_000u64 {
        let text = format!("s{id}-{i}");
        let mut r = Request::new("p/m", text.clone());
        if rng.u8(0..25) == 0 {
            // A few slow jobs, so the shutdown finds some still running.
            r.mock = Some(MockConfig { latency_ms: Some(rng.u64(1..60)), ..Default::default() });
        }
        match gw.try_submit(r) {
            Ok(job) if rng.u8(0..6) == 0 => resolve(&mut seen, job, &text),
            Ok(job) => held.push((job, text)),
            Err(e) if e.kind() == ErrorKind::Shutdown => {
                assert!(closing.load(Ordering::SeqCst), "{what}: SHUTDOWN before the shutdown started");
                seen.refused += 1;
                break;
            }
            Err(e) => panic!("{what}: submit {text:?} refused with {e}"),
        }
        // End a burst now and then: wait for it, leaving workers parked.
        if rng.u8(0..40) == 0 {
            for (job, text) in held.drain(..) {
                resolve(&mut seen, job, &text);
            }
        }
        pause_thread(&mut rng);
    }
    for (job, text) in held {
        resolve(&mut seen, job, &text);
    }
    seen
}

#[test]
fn shutdown_mid_burst_from_os_threads_resolves_every_handle_once() {
    for iteration in 0..6u64 {
        let concurrency = [1, 2, 4][iteration as usize % 3];
        let what = format!("shutdown mid-burst #{iteration}, concurrency {concurrency}");
        let mut rng = fastrand::Rng::with_seed(0x5D0 + iteration);
        let gw = gateway(concurrency, 20_000, None);
        let closing = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..4u64)
            .map(|id| {
                let (gw, closing) = (gw.clone(), closing.clone());
                let seed = rng.u64(..);
                std::thread::spawn(move || shutdown_submitter(gw, seed, id, closing))
            })
            .collect();
        // Let the bursts build up to a random point, then shut down.
        let target = rng.u64(200..1500);
        let started = Instant::now();
        while jobs(&gw).submitted < target && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_micros(200));
        }
        closing.store(true, Ordering::SeqCst);
        let grace = Duration::from_millis(rng.u64(0..20));
        let report = block_bounded(&what, HANG, gw.shutdown(grace));
        let mut total = Seen::default();
        for t in threads {
            let s = t.join().unwrap_or_else(|_| panic!("{what}: a submitter thread failed (see its panic above)"));
            total.ok += s.ok;
            total.shutdown += s.shutdown;
            total.refused += s.refused;
        }
        let j = jobs(&gw);
        eprintln!("{what}: {total:?}, {report:?}");
        assert_eq!(total.refused, 4, "{what}: every submitter ran until the pool closed: {total:?}");
        assert_eq!((j.queued, j.running), (0, 0), "{what}: idle after shutdown: {j:?}");
        assert!(j.invariant_holds(), "{what}: {j:?}");
        assert_eq!(j.submitted, total.ok + total.shutdown, "{what}: each admitted job resolved once: {j:?} {total:?}");
        assert_eq!((j.completed, j.failed), (total.ok, total.shutdown), "{what}: {j:?} {total:?}");
        assert_eq!(j.dropped + j.rejected + j.timed_out + j.cancelled, 0, "{what}: {j:?}");
        let w = gw.stats().providers["p"].workers.clone();
        assert_eq!(w.total, 0, "{what}: every worker exited, none was left parked after the shutdown: {w:?}");
        assert_eq!(report.aborted, total.shutdown, "{what}: every SHUTDOWN outcome is in the report: {report:?}");
        let late = gw.try_submit(Request::new("p/m", "late")).expect_err("closed pool refuses");
        assert_eq!(late.kind(), ErrorKind::Shutdown, "{what}: {late}");
    }
}

// (5) The pure wake-up path: one job from outside the runtime into a pool
// whose workers are all parked (or retired down to the minimum).

#[test]
fn jobs_from_outside_the_runtime_wake_a_fully_idle_pool() {
    let pools = [
        ("1 worker", gateway(1, 64, None)),
        ("2 workers", gateway(2, 64, None)),
        ("4 workers", gateway(4, 64, None)),
        ("1..=4 retiring workers", gateway(4, 64, Some(scaling(1, 4)))),
    ];
    let mut rng = fastrand::Rng::with_seed(0x1D1E);
    let mut n = 0u64;
    for (name, gw) in &pools {
        for round in 0..24u64 {
            // Quiet: long enough that every worker parked, and past the
            // idle timeout on some rounds.
            let quiet = [0, 1, 3, 9, 11, 25][rng.usize(0..6)];
            std::thread::sleep(Duration::from_millis(quiet));
            let j = jobs(gw);
            assert_eq!((j.queued, j.running), (0, 0), "{name}: idle before round {round}: {j:?}");
            if round % 3 == 2 {
                // Several OS threads at once, released together.
                let k = rng.usize(2..7) as u64;
                let go = Arc::new(AtomicBool::new(false));
                let ready = Arc::new(AtomicU64::new(0));
                let threads: Vec<_> = (0..k)
                    .map(|t| {
                        let (gw, go, ready) = (gw.clone(), go.clone(), ready.clone());
                        let name = name.to_string();
                        std::thread::spawn(move || {
                            ready.fetch_add(1, Ordering::SeqCst);
                            let start = Instant::now();
                            while !go.load(Ordering::Acquire) {
                                assert!(start.elapsed() < HANG, "{name}: never released");
                                std::hint::spin_loop();
                            }
                            let text = format!("{round}-{t}");
                            let job = gw.try_submit(Request::new("p/m", text.clone())).expect("admitted");
                            settle_blocking(&gw, job, &text, &format!("{name}, simultaneous wake-up"));
                        })
                    })
                    .collect();
                let start = Instant::now();
                while ready.load(Ordering::SeqCst) < k {
                    assert!(start.elapsed() < HANG, "{name}: submitter threads never started");
                    std::thread::yield_now();
                }
                go.store(true, Ordering::Release);
                for t in threads {
                    t.join().unwrap_or_else(|_| panic!("{name}: a submitter thread failed (see its panic above)"));
                }
                n += k;
            } else {
                let text = format!("{round}");
                let job = gw.try_submit(Request::new("p/m", text.clone())).expect("admitted");
                settle_blocking(gw, job, &text, &format!("{name}, single wake-up after {quiet} ms"));
                n += 1;
            }
        }
    }
    let mut total = 0;
    for (name, gw) in &pools {
        let j = jobs(gw);
        assert_settled(gw, j.completed, 0, name);
        total += j.completed;
    }
    assert_eq!(total, n, "every job completed exactly once");
}

// (6) Chained submits timed to land just as the worker goes idle: each job
// is submitted a random few microseconds after the previous one finished
// (a spinning OS thread sees that at once), so the push races the worker
// between "nothing queued" and "parked". With a single submitter per pool
// no later push can rescue a job stranded by that race: it hangs.

/// Spins until `job` is done, bounded by [`HANG`].
fn spin_until_done(gw: &Gateway, job: &Job<Response>, text: &str, what: &str) {
    let start = Instant::now();
    let mut spins = 0u64;
    while !job.is_done() {
        std::hint::spin_loop();
        spins += 1;
        if spins & 0x3ff == 0 {
            assert!(
                start.elapsed() < HANG,
                "{what}: job {text:?} never resolved in {HANG:?}: it was submitted as the worker went idle \
                 and no wake-up reached a worker (lost wake-up); stats: {:?}",
                jobs(gw)
            );
            if spins & 0xffff == 0 {
                std::thread::yield_now(); // fair to the workers on an oversubscribed machine
            }
        }
    }
}

/// One chain of `links` jobs from an OS thread; returns how many completed.
fn chain(gw: &Gateway, links: u64, seed: u64, what: &str) -> u64 {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut prev: Option<(Job<Response>, String)> = None;
    for i in 0..links {
        // Mostly: wait for the previous job, so the worker is about to park.
        // Sometimes: push while it still runs, so it finds the next job.
        if let Some((job, text)) = &prev {
            if rng.u8(0..4) != 0 {
                spin_until_done(gw, job, text, what);
            }
        }
        // Log-uniform delay (0 to ~2^11 spins): the push lands anywhere
        // from "before the worker finished" to "long after it parked".
        let scale = rng.u32(0..11);
        (0..rng.u32(0..2 << scale)).for_each(|_| std::hint::spin_loop());
        let text = format!("c{i}");
        let job = gw.try_submit(Request::new("p/m", text.clone())).expect("admitted");
        if let Some((job, text)) = prev.replace((job, text)) {
            spin_until_done(gw, &job, &text, what);
            settle_blocking(gw, job, &text, what);
        }
    }
    if let Some((job, text)) = prev {
        spin_until_done(gw, &job, &text, what);
        settle_blocking(gw, job, &text, what);
    }
    links
}

#[test]
fn chained_submits_race_the_worker_going_idle() {
    const LINKS: u64 = 6000;
    let pools: Vec<_> = [(1, None), (2, None), (4, None), (4, Some(scaling(1, 4)))]
        .into_iter()
        .enumerate()
        .map(|(i, (concurrency, sc))| {
            let what =
                format!("chain into a pool of {concurrency} workers{}", if sc.is_some() { " (retiring)" } else { "" });
            let gw = gateway(concurrency, 64, sc);
            let t = {
                let (gw, what) = (gw.clone(), what.clone());
                std::thread::spawn(move || chain(&gw, LINKS, 0xC4A1 + i as u64, &what))
            };
            (what, gw, t)
        })
        .collect();
    for (what, gw, t) in pools {
        let done = t.join().unwrap_or_else(|_| panic!("{what}: the chain failed (see its panic above)"));
        assert_settled(&gw, done, 0, &what);
    }
}
