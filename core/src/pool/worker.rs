//! A pool worker: takes jobs from its pool's queue and runs them, one at a
//! time, until the queue closes and drains (or the pool is aborted).
//!
//! Running a job means: pick a key, call the provider, retry retryable
//! failures with backoff, and race all of it against the job's cancel
//! signal, its end-to-end deadline and the pool's abort token. The provider
//! future runs inside `catch_unwind`, so a panic ends only that job (as
//! INTERNAL, counted in `panics`) and the worker carries on: the pool keeps
//! its full worker count. An idle worker is parked in the queue's idle stack
//! and costs no CPU.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::FutureExt;

use crate::clock::{self, Nanos};
use crate::error::{Error, Result, TimeoutPhase};
use crate::stats::Outcome;

use super::attempts::execute;
use super::job::{JobInner, Output, Running};
use super::queue::{Ended, Parking, Popped};
use super::PoolShared;

/// The worker task.
pub(crate) async fn run(pool: Arc<PoolShared>) {
    let mut alive = super::TaskAlive::worker(&pool);
    let slot = super::watchdog::register(&pool);
    let mut expired = Vec::new();
    let parking = Arc::new(Parking::default());
    loop {
        let (mut popped, mut now) = pop(&pool, &mut expired, &parking);
        if let Popped::Admit(jobs) = popped {
            (popped, now) = admit(&pool, &jobs, &mut expired).await;
        }
        match popped {
            Popped::Job(running) => {
                let job = running.job();
                slot.start(job.id, super::watchdog::job_bound(&pool, now, job.deadline));
                run_job(&pool, running, now).await;
                slot.finish();
            }
            Popped::Closed => return,
            // The job at the front waits for the limits' capacity: sleep
            // until the moment the bucket computed (an abort cuts it short).
            Popped::Throttled(until) => {
                // (With `max_in_flight`, a slot's give-back wakes it too.)
                let slot_freed = async {
                    match pool.gate.as_deref().and_then(|g| g.in_flight()) {
                        Some(f) => f.released().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep_until(clock::instant(until).into()) => {}
                    _ = slot_freed => {}
                    _ = pool.abort.tripped() => {}
                }
            }
            // Another worker is asking the Redis store about the front job.
            Popped::AdmissionBusy => {
                let asked = pool.queue.admission.notified();
                tokio::pin!(asked);
                asked.as_mut().enable();
                if pool.queue.admission_pending() {
                    // Counted: the next ask may admit a job for this worker.
                    pool.queue.admission_waiters.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::select! {
                        _ = asked => {}
                        _ = pool.abort.tripped() => {}
                    }
                    pool.queue.admission_waiters.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
            Popped::Admit(_) | Popped::Again => {}
            // Parked: wait for a push or the queue closing (an abort closes
            // the queue first, so it unparks every worker too). No notifier
            // shared by all workers is touched on this path.
            Popped::Empty => {
                // Leave only if still listed: otherwise a push may be handing
                // this worker a job, which it must run (or end) first.
                if pool.abort.is_tripped() && pool.queue.unlist(&parking) {
                    return;
                }
                let Some(sc) = &pool.scaling else {
                    parking.parked().await;
                    continue;
                };
                tokio::select! {
                    _ = parking.parked() => {}
                    _ = tokio::time::sleep(std::time::Duration::from_millis(sc.idle_timeout_ms)) => {
                        if !pool.queue.unlist(&parking) {
                            // Taken off the stack meanwhile: a job is on its way.
                            parking.parked().await;
                        } else if super::scaler::try_retire(&pool, sc) {
                            alive.counted_out();
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// The next job: one handed to this worker by a push, else the oldest
/// queued one (finishing any expired ones found on the way).
fn pop(pool: &PoolShared, expired: &mut Vec<Ended>, parking: &Arc<Parking>) -> (Popped, Nanos) {
    let (popped, now) = pool.queue.next_job(expired, parking);
    finish_ended(pool, expired, now);
    (popped, now)
}

/// With the Redis store: asks it about the front jobs (outside the queue
/// lock, bounded by `timeout_ms`; the jobs stay queued meanwhile) and
/// applies the answers.
async fn admit(pool: &PoolShared, jobs: &[Arc<JobInner>], expired: &mut Vec<Ended>) -> (Popped, Nanos) {
    let answers = match pool.gate.as_deref() {
        Some(gate) => {
            // (Every job of a pool with a gate has claims.)
            let asks: Vec<_> = jobs.iter().filter_map(|j| j.claims().map(|c| (c, pool.queue.expiry_of(j)))).collect();
            gate.admit_fleet_batch(&asks).await
        }
        None => jobs.iter().map(|_| crate::limits::gate::Admit::Go(0)).collect(),
    };
    let popped = pool.queue.admitted(jobs, answers, expired);
    let now = clock::now();
    finish_ended(pool, expired, now);
    (popped, now)
}

/// Finishes the queued jobs a look ended (expired, or refused by the limits).
fn finish_ended(pool: &PoolShared, expired: &mut Vec<Ended>, now: Nanos) {
    // (Checked first: even an empty drain costs a guard on this hot path.)
    if !expired.is_empty() {
        for ended in expired.drain(..) {
            match ended {
                Ended::Expired(ending) => {
                    let err = pool.expiry_error(ending.job(), now);
                    pool.finish(ending, Err(err), Outcome::TimedOut);
                }
                Ended::Limited(ending, err) => pool.finish(ending, Err(err), Outcome::RateLimited),
            }
        }
    }
}

type CallResult = std::thread::Result<Result<Output>>;

/// Races a pending provider call against the job's cancel signal, the
/// pool's abort and the request deadline; `Err` carries the outcome when
/// the call lost (and is dropped).
async fn race(
    pool: &PoolShared,
    job: &JobInner,
    call: std::pin::Pin<&mut impl std::future::Future<Output = CallResult>>,
) -> std::result::Result<CallResult, (Result<Output>, Outcome)> {
    let deadline = job.deadline_instant();
    let until_deadline = async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        r = call => Ok(r),
        _ = job.cancel_signal.notified() => {
            Err((Err(Error::Cancelled { provider: pool.name.clone() }), Outcome::Cancelled))
        }
        _ = pool.abort.tripped() => {
            Err((Err(Error::Shutdown { provider: Some(pool.name.clone()) }), Outcome::Failed))
        }
        _ = until_deadline => {
            let timeout_ms = job.timeout_ms.unwrap_or_default();
            let e = Error::Timeout { provider: pool.name.clone(), phase: TimeoutPhase::Processing, timeout_ms };
            Err((Err(e), Outcome::Failed))
        }
    }
}

/// Runs one job the worker has marked RUNNING, and finishes it.
async fn run_job(pool: &PoolShared, mut running: Running, started: Nanos) {
    let c = &pool.counters;
    pool.ledger.start();
    let work = running.take_work();
    let job: &JobInner = running.job();
    let queue_wait_ns = started.saturating_sub(job.enqueued());
    c.queue_wait.record_ns(queue_wait_ns);
    let queue_wait_us = queue_wait_ns / clock::US;
    let outcome: (Result<Output>, Outcome) = match work {
        None => (Err(Error::Internal { message: "job had no work to run".into() }), Outcome::Failed),
        Some(_) if job.cancel_requested() => {
            (Err(Error::Cancelled { provider: pool.name.clone() }), Outcome::Cancelled)
        }
        Some(work) => {
            let mut call = std::pin::pin!(AssertUnwindSafe(execute(pool, job, work, queue_wait_us)).catch_unwind());
            // Most zero-latency calls finish on their first poll: then the
            // cancel/abort/deadline race below is never set up.
            let result = match call.as_mut().now_or_never() {
                Some(r) => Ok(r),
                None => race(pool, job, call).await,
            };
            match result {
                Ok(Ok(Ok(out))) => (Ok(out), Outcome::Completed),
                Ok(Ok(Err(e @ Error::Cancelled { .. }))) => (Err(e), Outcome::Cancelled),
                Ok(Ok(Err(e))) => (Err(e), Outcome::Failed),
                Ok(Err(payload)) => {
                    c.panics.fetch_add(1, Ordering::Relaxed);
                    let message = format!("provider '{}' panicked: {}", pool.name, crate::error::panic_text(&*payload));
                    (Err(Error::Internal { message }), Outcome::Failed)
                }
                Err(stopped) => stopped,
            }
        }
    };
    let finished = clock::now();
    c.record_processing_ns(finished.saturating_sub(started));
    let mut outcome = outcome;
    // A call that blocked its thread past the deadline still misses it.
    if outcome.0.is_ok() && job.deadline.is_some_and(|d| finished > d) {
        let timeout_ms = job.timeout_ms.unwrap_or_default();
        outcome = (
            Err(Error::Timeout { provider: pool.name.clone(), phase: TimeoutPhase::Processing, timeout_ms }),
            Outcome::Failed,
        );
    }
    let latency_ms = finished.saturating_sub(job.submitted) / clock::MS;
    match &mut outcome.0 {
        Ok(Output::Chat(r)) => r.extra_fields.latency_ms = latency_ms,
        Ok(Output::Embed(r)) => r.extra_fields.latency_ms = latency_ms,
        _ => {}
    }
    if matches!(outcome.1, Outcome::Completed | Outcome::Failed) {
        c.throughput.record(finished);
    }
    pool.note_outcome(&outcome.0, outcome.1, finished);
    pool.finish(running.end(), outcome.0, outcome.1);
}
