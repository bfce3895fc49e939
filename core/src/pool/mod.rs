//! Provider pools: one bounded queue plus `concurrency` worker tasks per
//! provider, sharing nothing mutable with any other pool.
//!
//! - `submit`: how a job enters the queue under each queue policy.
//! - `lifecycle`: starting, closing, draining and aborting a pool.
//! - `snapshot`: what a pool reports (stats, health, histograms).
//! - `queue`: the bounded MPMC queue with live-slot accounting.
//! - `slot`: a job's slot and the state machine whose tokens own it (the
//!   slot's only `unsafe` code, model-checked by `tests/loom`); `sync`: the
//!   primitives it is written against.
//! - `job`: a job around its slot, and the [`Job`] handle.
//! - `ledger`: the job counts, with consistent snapshots.
//! - `worker`: the worker loop (deadlines, cancellation, panics);
//!   `attempts`: retries, keys and the breaker within one job.
//! - `classify`: which failures are retried, fall back, or count against the breaker.
//! - `route`: fallback chains, each on its own task.
//! - `shared`: [`SharedJob`], the many-waiter handle every binding wraps.
//!
//! [`PoolShared`]'s fields are private to this module tree: the gateway
//! talks to a pool only through its methods. A job's moves are counted in
//! the pool's [`ledger`]: its entry by the queue's push (or its refusal in
//! `submit`), its start by the worker, and its end in [`PoolShared::finish`].
//! Every path that ends an accepted job (a worker's outcome, the reaper's
//! expiry, an eviction, a cancel of a queued job, an abort) goes through
//! `finish`, and can only call it with the [`Ending`] token it got by
//! winning the job's move to `DONE`; so each job is counted and delivered
//! exactly once.

pub(crate) mod attempts;
pub(crate) mod breaker;
pub(crate) mod classify;
pub(crate) mod job;
pub(crate) mod keys;
pub(crate) mod ledger;
mod lifecycle;
pub(crate) mod outage;
pub(crate) mod probe;
pub(crate) mod queue;
pub(crate) mod reaper;
pub(crate) mod recover;
pub(crate) mod route;
pub(crate) mod scaler;
mod shared;
mod slot;
mod snapshot;
mod submit;
mod sync;
pub(crate) mod watchdog;
pub(crate) mod worker;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::config::{NetworkConfig, QueuePolicy};
use crate::error::{Error, Result};
use crate::providers::ProviderImpl;
use crate::stats::{Outcome, PoolCounters};

pub use job::{Canceller, Job, JobOutput};
pub(crate) use job::{Ending, JobInner, Output, Timing, Work};
pub(crate) use lifecycle::{Latch, TaskAlive};
use queue::JobQueue;
pub use shared::SharedJob;
pub(crate) use submit::Admission;

/// What a job handle holds of its pool: a weak link behind a reference
/// count of its own, one per thread stripe, so handles made and dropped on
/// different cores do not bounce the pool's own count between them. A job
/// that is not `DONE` can always reach its pool through it: the pool's
/// workers hold the pool until its queue is closed and drained and the job
/// they run is over.
#[repr(align(128))]
pub(crate) struct PoolLink {
    pool: std::sync::Weak<PoolShared>,
}

impl PoolLink {
    /// The pool, unless it is gone (then every job of it is over).
    pub fn pool(&self) -> Option<Arc<PoolShared>> {
        self.pool.upgrade()
    }
}

/// Everything one provider pool's workers, submitters and handles share.
pub(crate) struct PoolShared {
    pub(crate) name: String,
    policy: QueuePolicy,
    wait_timeout: Duration,
    /// Worker bounds (both `concurrency` without a `scaling` section).
    min_workers: usize,
    max_workers: usize,
    scaling: Option<crate::config::ScalingConfig>,
    queue: JobQueue,
    counters: PoolCounters,
    /// Where each job's moves are counted (consistent snapshots).
    ledger: ledger::Ledger,
    provider: ProviderImpl,
    pub(crate) keys: Arc<keys::KeyRing>,
    pub(crate) breaker: breaker::Breaker,
    /// The startup probe's result.
    probe: parking_lot::Mutex<probe::ProbeState>,
    /// Workers' current jobs, for the stall detector.
    worker_slots: parking_lot::Mutex<Vec<std::sync::Weak<watchdog::WorkerSlot>>>,
    /// When the last job completed and failed (for `health()`).
    last: snapshot::LastOutcomes,
    network: NetworkConfig,
    /// The provider's `failover` section (docs/failover.md).
    pub(crate) failover: Option<crate::failover::FailoverConfig>,
    /// Failed attempts in a row: retries stop while the provider is down.
    pub(crate) retry_gate: outage::RetryGate,
    /// Cancelled at a shutdown's deadline: running jobs end SHUTDOWN.
    abort: Latch,
    /// Tripped when the pool stops accepting jobs (graceful or not).
    closing: Latch,
    /// Live worker tasks (what stats report).
    workers_alive: AtomicUsize,
    /// Live tasks of the pool: workers plus the reaper. Shutdown waits for
    /// all of them, so every outcome is counted before it returns.
    tasks_alive: AtomicUsize,
    /// Signalled when the last task exits.
    workers_gone: Notify,
    /// What job handles hold, by thread stripe ([`PoolLink`]).
    links: [Arc<PoolLink>; crate::stats::STRIPES],
    /// The provider's `limits` (docs/architecture.md §10), if any.
    gate: Option<Arc<crate::limits::gate::Gate>>,
    /// With a Redis limits store: key cooldowns and breaker changes shared
    /// with the fleet.
    fleet_health: Option<Arc<crate::limits::health::FleetHealth>>,
}

impl PoolShared {
    /// This thread's link to the pool, for a job handle.
    fn link(&self) -> Arc<PoolLink> {
        self.links[crate::stats::thread_stripe()].clone()
    }

    /// Tells the fleet what an outcome did to the breaker (with a Redis
    /// limits store; see `limits/health.rs`).
    pub(crate) fn publish(&self, change: breaker::Change) {
        let Some(h) = &self.fleet_health else { return };
        match change {
            breaker::Change::None => {}
            breaker::Change::Opened(ms) => h.opened(&self.name, ms),
            breaker::Change::Closed => h.closed(&self.name),
        }
    }

    /// Counts `outcome` and hands it to the job's handle; `ending` is the
    /// proof that the caller won the job's move to `DONE`.
    pub fn finish(&self, ending: Ending, mut outcome: Result<Output>, bucket: Outcome) {
        if matches!(outcome, Err(Error::Shutdown { .. })) {
            self.counters.aborted.fetch_add(1, Ordering::Relaxed);
        }
        // The job's reservation on the limits, if it holds one: settled by
        // the reported usage once a request went out, given back if none did.
        if let (Some(gate), Some(claims)) = (&self.gate, ending.job().claims()) {
            let job = ending.job();
            let key = job.limit_key();
            match ending.phase() {
                ledger::Phase::Running if job.sent() => {
                    gate.settle(claims, key, &outcome);
                    match &mut outcome {
                        // A stream settles when its usage goes by, and
                        // holds its in-flight slot until it ends.
                        Ok(Output::Stream(stream)) => stream.watch(gate.stream_watcher(*claims, key)),
                        _ => gate.release(key),
                    }
                }
                ledger::Phase::Running => gate.refund(claims, key),
                ledger::Phase::Queued if job.claimed() => gate.refund(claims, key),
                ledger::Phase::Queued => {}
            }
        }
        self.ledger.end(ending.phase(), bucket);
        ending.deliver(outcome);
    }

    /// Submits `work` and waits for its admission (only a full `block`
    /// queue waits); for fallback chains, which run on their own task.
    pub async fn submit<T: JobOutput>(
        self: &Arc<Self>,
        id: u64,
        work: Work,
        timing: Timing,
        wait: bool,
    ) -> Result<Job<T>> {
        self.admit(id, work, timing, wait).resolve().await
    }

    /// Cancels a queued job (freeing its slot); false if it was not queued.
    pub fn cancel_queued(&self, job: &Arc<JobInner>) -> bool {
        let Some(ending) = self.queue.remove(job) else { return false };
        self.finish(ending, Err(Error::Cancelled { provider: self.name.clone() }), Outcome::Cancelled);
        true
    }
}
