//! A pool worker: takes jobs from its pool's queue and runs them, one at a
//! time, until the queue closes and drains (or the pool is aborted).
//!
//! Running a job means: pick a key, call the provider, retry retryable
//! failures with backoff, and race all of it against the job's cancel
//! signal, its end-to-end deadline and the pool's abort token. The provider
//! future runs inside `catch_unwind`, so a panic ends only that job (as
//! INTERNAL, counted in `panics`) and the worker carries on: the pool keeps
//! its full worker count. An idle worker is parked on the queue's notifier
//! and costs no CPU.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use crate::error::{Error, Result, TimeoutPhase};
use crate::providers::CallCtx;
use crate::stats::Outcome;
use crate::types::ExtraFields;

use super::job::{JobInner, Output, Work};
use super::queue::Popped;
use super::PoolShared;

/// The worker task.
pub(crate) async fn run(pool: Arc<PoolShared>) {
    let _alive = super::TaskAlive { pool: pool.clone(), is_worker: true };
    let mut expired = Vec::new();
    loop {
        // Fast path: take a job without touching the notifier.
        let (popped, now) = match pop(&pool, &mut expired) {
            (Popped::Empty, _) => {
                // Register for a wake-up, then look again: a push between
                // the first look and the registration is not missed.
                let mut work = std::pin::pin!(pool.queue.work.notified());
                work.as_mut().enable();
                match pop(&pool, &mut expired) {
                    (Popped::Empty, _) => {
                        if pool.abort.is_tripped() {
                            return;
                        }
                        tokio::select! {
                            _ = work => {}
                            _ = pool.abort.tripped() => return,
                        }
                        continue;
                    }
                    other => other,
                }
            }
            other => other,
        };
        match popped {
            Popped::Job(job) => run_job(&pool, job, now).await,
            Popped::Closed => return,
            Popped::Empty => {}
        }
    }
}

/// Pops the next job, finishing any expired ones found on the way.
fn pop(pool: &PoolShared, expired: &mut Vec<Arc<JobInner>>) -> (Popped, Instant) {
    let now = Instant::now();
    let popped = pool.queue.pop(now, expired);
    for job in expired.drain(..) {
        let err = pool.expiry_error(&job, now);
        pool.finish(&job, Err(err), Outcome::TimedOut);
    }
    (popped, now)
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// Runs one job the worker has marked RUNNING, and finishes it.
async fn run_job(pool: &PoolShared, job: Arc<JobInner>, started: Instant) {
    let c = &pool.counters;
    c.running.fetch_add(1, Ordering::Relaxed);
    c.queue_wait.record(started.saturating_duration_since(job.enqueued_at()));
    let work = job.work.lock().take();
    let outcome: (Result<Output>, Outcome) = match work {
        None => (Err(Error::Internal { message: "job had no work to run".into() }), Outcome::Failed),
        Some(_) if job.cancel_requested() => {
            (Err(Error::Cancelled { provider: pool.name.clone() }), Outcome::Cancelled)
        }
        Some(work) => {
            let call = AssertUnwindSafe(execute(pool, &job, work, started)).catch_unwind();
            let deadline = job.deadline;
            let until_deadline = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                r = call => match r {
                    Ok(Ok(out)) => (Ok(out), Outcome::Completed),
                    Ok(Err(e @ Error::Cancelled { .. })) => (Err(e), Outcome::Cancelled),
                    Ok(Err(e)) => (Err(e), Outcome::Failed),
                    Err(payload) => {
                        c.panics.fetch_add(1, Ordering::Relaxed);
                        let message = format!("provider '{}' panicked: {}", pool.name, panic_text(&*payload));
                        (Err(Error::Internal { message }), Outcome::Failed)
                    }
                },
                _ = job.cancel_signal.notified() => {
                    (Err(Error::Cancelled { provider: pool.name.clone() }), Outcome::Cancelled)
                }
                _ = pool.abort.tripped() => {
                    (Err(Error::Shutdown { provider: Some(pool.name.clone()) }), Outcome::Failed)
                }
                _ = until_deadline => {
                    let timeout_ms = job.timeout_ms.unwrap_or_default();
                    let e = Error::Timeout { provider: pool.name.clone(), phase: TimeoutPhase::Processing, timeout_ms };
                    (Err(e), Outcome::Failed)
                }
            }
        }
    };
    let finished = Instant::now();
    c.processing.record(finished.saturating_duration_since(started));
    let mut outcome = outcome;
    let latency_ms = finished.saturating_duration_since(job.submitted_at).as_millis() as u64;
    match &mut outcome.0 {
        Ok(Output::Chat(r)) => r.extra_fields.latency_ms = latency_ms,
        Ok(Output::Embed(r)) => r.extra_fields.latency_ms = latency_ms,
        _ => {}
    }
    if matches!(outcome.1, Outcome::Completed | Outcome::Failed) {
        c.throughput.record(finished);
    }
    c.running.fetch_sub(1, Ordering::Relaxed);
    // The worker owns a RUNNING job: this transition cannot fail.
    job.transition(super::job::RUNNING, super::job::DONE);
    pool.finish(&job, outcome.0, outcome.1);
}

/// True for failures worth another attempt.
fn retryable(e: &Error) -> bool {
    match e {
        Error::Provider { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
        Error::Network { .. } => true,
        Error::Timeout { phase: TimeoutPhase::Processing, .. } => true,
        _ => false,
    }
}

/// `min(initial·2^n, max)` ±20 %.
fn backoff(pool: &PoolShared, retry: u32) -> Duration {
    let n = &pool.network;
    let base = n.retry_backoff_initial_ms.saturating_mul(1u64 << retry.min(20)).min(n.retry_backoff_max_ms);
    let jitter = 0.8 + fastrand::f64() * 0.4;
    Duration::from_millis((base as f64 * jitter) as u64)
}

/// Picks a key by weight among those allowing `model`; `Ok(None)` for a
/// provider without keys.
fn choose_key(pool: &PoolShared, model: &str) -> Result<Option<usize>> {
    if pool.keys.is_empty() {
        return Ok(None);
    }
    let eligible: Vec<usize> = (0..pool.keys.len()).filter(|&i| pool.keys[i].allows(model)).collect();
    let total: f64 = eligible.iter().map(|&i| pool.keys[i].weight).sum();
    if eligible.is_empty() || total <= 0.0 {
        return Err(Error::invalid(format!(
            "provider '{}' has no enabled key with weight > 0 whose models allow model '{model}'",
            pool.name
        )));
    }
    let mut pick = fastrand::f64() * total;
    for &i in &eligible {
        pick -= pool.keys[i].weight;
        if pick < 0.0 {
            return Ok(Some(i));
        }
    }
    Ok(eligible.last().copied())
}

/// Runs the provider call with retries; fills `extra_fields`.
async fn execute(pool: &PoolShared, job: &JobInner, work: Work, started: Instant) -> Result<Output> {
    let attempt_limit = Duration::from_secs(pool.network.default_request_timeout_in_seconds);
    let max_attempts = pool.network.max_retries + 1;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let key = choose_key(pool, &job.model)?;
        let ctx = CallCtx {
            provider: &pool.name,
            model: &job.model,
            job_id: job.id,
            attempt,
            key: key.map(|i| &pool.keys[i]),
            key_index: key,
            deadline: job.deadline,
        };
        if let Some(i) = key {
            pool.key_counters[i].requests.fetch_add(1, Ordering::Relaxed);
        }
        let call = async {
            match &work {
                Work::Chat(r) => pool.provider.chat(r, &ctx).await.map(Output::Chat),
                Work::Stream(r) => pool.provider.stream(r, &ctx).await.map(Output::Stream),
                Work::Embed(r) => pool.provider.embed(r, &ctx).await.map(Output::Embed),
            }
        };
        let result = match tokio::time::timeout(attempt_limit, call).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                provider: pool.name.clone(),
                phase: TimeoutPhase::Processing,
                timeout_ms: attempt_limit.as_millis() as u64,
            }),
        };
        match result {
            Ok(mut out) => {
                let extra = ExtraFields {
                    provider: pool.name.clone(),
                    model: job.model.clone(),
                    latency_ms: 0, // set by run_job when the job finishes
                    queue_wait_us: started.saturating_duration_since(job.enqueued_at()).as_micros() as u64,
                    attempts: attempt,
                    fallback_index: 0,
                    key_id: key.map(|i| pool.key_counters[i].id.clone()),
                };
                match &mut out {
                    Output::Chat(r) => r.extra_fields = extra,
                    Output::Embed(r) => r.extra_fields = extra,
                    Output::Stream(_) => {}
                }
                return Ok(out);
            }
            Err(e) => {
                if let Some(i) = key {
                    pool.key_counters[i].errors.fetch_add(1, Ordering::Relaxed);
                }
                if attempt >= max_attempts || !retryable(&e) {
                    return Err(e);
                }
                let pause = backoff(pool, attempt - 1);
                if job.deadline.is_some_and(|d| Instant::now() + pause >= d) {
                    return Err(e);
                }
                pool.counters.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(pause).await;
            }
        }
    }
}
