//! Provider pools: one bounded queue plus `concurrency` worker tasks per
//! provider, sharing nothing mutable with any other pool.
//!
//! - `queue`: the bounded MPMC queue with live-slot accounting.
//! - `job`: the job state machine, its transition tokens and the [`Job`] handle.
//! - `ledger`: the job counts, with consistent snapshots.
//! - `worker`: the worker loop (deadlines, cancellation, panics);
//!   `attempts`: retries, keys and the breaker within one job.
//! - `classify`: which failures are retried, fall back, or count against the breaker.
//! - `route`: fallback chains, each on its own task.
//!
//! This file holds the submit path (queue policies of docs/architecture.md §3) and the
//! shutdown path. A job's moves are counted in the pool's [`ledger`]: its
//! entry by the queue's push, its start by the worker, and its end in
//! [`PoolShared::finish`], which every path that ends an accepted job goes
//! through after winning the job's transition to `DONE`.

pub(crate) mod attempts;
pub(crate) mod breaker;
pub(crate) mod classify;
pub(crate) mod job;
pub(crate) mod keys;
pub(crate) mod ledger;
pub(crate) mod probe;
pub(crate) mod queue;
pub(crate) mod reaper;
pub(crate) mod route;
pub(crate) mod scaler;
pub(crate) mod watchdog;
pub(crate) mod worker;

use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::clock::{self, Nanos};
use crate::config::{NetworkConfig, ProviderConfig, ProviderKind, QueuePolicy};
use crate::error::{DropReason, Error, Result, TimeoutPhase};
use crate::providers::ProviderImpl;
use crate::stats::{
    CircuitStats, JobStats, LatencyStats, Outcome, PoolCounters, ProviderStats, QueueStats, WorkerStats,
};

pub use job::{Canceller, Job, JobOutput};
pub(crate) use job::{Ending, JobInner, Output, Work};
use queue::{JobQueue, Push};

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A one-way signal: once tripped it stays tripped, and wakes every waiter.
#[derive(Default)]
pub(crate) struct Latch {
    tripped: std::sync::atomic::AtomicBool,
    notify: Notify,
}

impl Latch {
    pub fn trip(&self) {
        self.tripped.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_tripped(&self) -> bool {
        self.tripped.load(Ordering::Acquire)
    }

    /// Resolves once the latch is tripped.
    pub async fn tripped(&self) {
        loop {
            let mut n = pin!(self.notify.notified());
            n.as_mut().enable();
            if self.is_tripped() {
                return;
            }
            n.await;
        }
    }
}

/// Counts a pool task as alive until it ends, however it ends.
pub(crate) struct TaskAlive {
    pub pool: Arc<PoolShared>,
    pub is_worker: bool,
}

impl Drop for TaskAlive {
    fn drop(&mut self) {
        if self.is_worker {
            self.pool.workers_alive.fetch_sub(1, Ordering::AcqRel);
        }
        if self.pool.tasks_alive.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.pool.workers_gone.notify_waiters();
        }
    }
}

/// Counts a `block` submitter as waiting for space while it lives.
struct SpaceWaiter<'a>(&'a AtomicUsize);

impl Drop for SpaceWaiter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

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
    pub name: String,
    pub policy: QueuePolicy,
    pub wait_timeout: Duration,
    /// Worker bounds (both `concurrency` without a `scaling` section).
    pub min_workers: usize,
    pub max_workers: usize,
    pub scaling: Option<crate::config::ScalingConfig>,
    pub queue: JobQueue,
    pub counters: PoolCounters,
    /// Where each job's moves are counted (consistent snapshots).
    pub ledger: ledger::Ledger,
    pub provider: ProviderImpl,
    pub keys: keys::KeyRing,
    pub breaker: breaker::Breaker,
    /// The startup probe's result.
    pub probe: parking_lot::Mutex<probe::ProbeState>,
    /// Workers' current jobs, for the stall detector.
    pub worker_slots: parking_lot::Mutex<Vec<std::sync::Weak<watchdog::WorkerSlot>>>,
    /// When the pool started (time base of the worker slots).
    pub epoch: Instant,
    /// `epoch` on the pools' clock.
    pub epoch_ns: Nanos,
    /// Ms after `epoch` of the last completed job (0: none).
    last_success_ms: AtomicU64,
    /// Ms after `epoch` and message of the last failed job.
    last_error: parking_lot::Mutex<(u64, Option<String>)>,
    pub network: NetworkConfig,
    /// Cancelled at a shutdown's deadline: running jobs end SHUTDOWN.
    pub abort: Latch,
    /// Tripped when the pool stops accepting jobs (graceful or not).
    pub closing: Latch,
    /// Live worker tasks (what stats report).
    pub workers_alive: AtomicUsize,
    /// Live tasks of the pool: workers plus the reaper. Shutdown waits for
    /// all of them, so every outcome is counted before it returns.
    pub tasks_alive: AtomicUsize,
    /// Signalled when the last task exits.
    pub workers_gone: Notify,
    /// What job handles hold, by thread stripe ([`PoolLink`]).
    links: [Arc<PoolLink>; crate::stats::STRIPES],
}

/// What [`PoolShared::admit`] did with a job.
pub(crate) enum Admission<T: JobOutput> {
    /// Queued, refused or dropped: the submit is over.
    Done(Result<Job<T>>),
    /// Policy `block`, queue full: wait with [`PoolShared::wait_for_space`].
    Full(Arc<JobInner>),
}

impl PoolShared {
    /// Builds the pool and spawns its workers on the shared runtime.
    pub fn start(
        name: &str,
        kind: ProviderKind,
        cfg: &ProviderConfig,
        buffers: Arc<crate::objpool::BufferPool>,
    ) -> Result<Arc<PoolShared>> {
        let provider = ProviderImpl::new(name, kind, cfg, buffers)?;
        let probe_model = cfg.probe_model(name, kind)?;
        let handle = crate::runtime::handle()?;
        let (min_workers, max_workers) = match &cfg.scaling {
            Some(sc) => (sc.min_workers, sc.max_workers),
            None => (cfg.concurrency_and_buffer_size.concurrency, cfg.concurrency_and_buffer_size.concurrency),
        };
        let concurrency = cfg.concurrency_and_buffer_size.concurrency.clamp(min_workers, max_workers);
        let scaling = cfg.scaling.clone().filter(|sc| sc.min_workers < sc.max_workers);
        let epoch = Instant::now();
        let pool = Arc::new_cyclic(|me| PoolShared {
            name: name.to_string(),
            policy: cfg.queue.policy,
            wait_timeout: Duration::from_millis(cfg.queue.wait_timeout_ms),
            min_workers,
            max_workers,
            scaling: scaling.clone(),
            queue: JobQueue::new(
                cfg.concurrency_and_buffer_size.buffer_size,
                Duration::from_millis(cfg.queue.wait_timeout_ms),
            ),
            counters: PoolCounters::new(),
            ledger: ledger::Ledger::default(),
            provider,
            keys: keys::KeyRing::new(name, &cfg.keys),
            breaker: breaker::Breaker::new(cfg.circuit_breaker.clone()),
            probe: parking_lot::Mutex::new(if probe_model.is_some() {
                probe::ProbeState::Pending
            } else {
                probe::ProbeState::Off
            }),
            worker_slots: parking_lot::Mutex::new(Vec::new()),
            epoch,
            epoch_ns: clock::nanos(epoch),
            last_success_ms: AtomicU64::new(0),
            last_error: parking_lot::Mutex::new((0, None)),
            network: cfg.network_config.clone(),
            abort: Latch::default(),
            closing: Latch::default(),
            workers_alive: AtomicUsize::new(concurrency),
            // Workers, the reaper, the watchdog and the scaler if any.
            tasks_alive: AtomicUsize::new(concurrency + 2 + usize::from(scaling.is_some())),
            workers_gone: Notify::new(),
            links: std::array::from_fn(|_| Arc::new(PoolLink { pool: me.clone() })),
        });
        for _ in 0..concurrency {
            handle.spawn(worker::run(pool.clone()));
        }
        handle.spawn(reaper::run(pool.clone()));
        handle.spawn(watchdog::run(pool.clone()));
        if let Some(model) = probe_model {
            handle.spawn(probe::run(pool.clone(), model));
        }
        if let Some(sc) = scaling {
            handle.spawn(scaler::run(pool.clone(), sc));
        }
        Ok(pool)
    }

    /// This thread's link to the pool, for a job handle.
    fn link(&self) -> Arc<PoolLink> {
        self.links[crate::stats::thread_stripe()].clone()
    }

    /// Counts `outcome` and hands it to the job's handle; `ending` is the
    /// proof that the caller won the job's move to `DONE`.
    pub fn finish(&self, ending: Ending, outcome: Result<Output>, bucket: Outcome) {
        if matches!(outcome, Err(Error::Shutdown { .. })) {
            self.counters.aborted.fetch_add(1, Ordering::Relaxed);
        }
        self.ledger.end(ending.phase(), bucket);
        ending.deliver(outcome);
    }

    /// Submits `work`, applying the queue policy when the queue is full.
    /// `wait` allows the `block` policy to wait; without it a full queue
    /// is QUEUE_FULL whatever the policy says (for `try_submit`).
    pub async fn submit<T: JobOutput>(
        self: &Arc<Self>,
        id: u64,
        work: Work,
        timeout_ms: Option<u64>,
        wait: bool,
    ) -> Result<Job<T>> {
        match self.admit(id, work, timeout_ms, wait) {
            Admission::Done(done) => done,
            Admission::Full(inner) => self.wait_for_space(inner).await,
        }
    }

    /// The part of a submit that never waits: builds the job and pushes it
    /// once. Only a `block`-policy submit that may wait and found the queue
    /// full comes back with the job, for [`PoolShared::wait_for_space`].
    /// Kept synchronous so the common path costs no future state.
    pub fn admit<T: JobOutput>(
        self: &Arc<Self>,
        id: u64,
        work: Work,
        timeout_ms: Option<u64>,
        wait: bool,
    ) -> Admission<T> {
        let submitted = clock::now();
        if !(wait && self.policy == QueuePolicy::Block) {
            return Admission::Done(self.push_once(id, work, submitted, timeout_ms));
        }
        match self.enqueue_owned(JobInner::new(id, work, submitted, timeout_ms), submitted) {
            Ok(done) => Admission::Done(done),
            Err(inner) => Admission::Full(inner),
        }
    }

    /// Policy `block` on a full queue: waits for a slot until the queue wait
    /// limit or the request deadline, whichever is first (QUEUE_TIMEOUT or
    /// TIMEOUT after it).
    pub async fn wait_for_space<T: JobOutput>(self: &Arc<Self>, inner: Arc<JobInner>) -> Result<Job<T>> {
        let wait_limit = inner.submitted.saturating_add(clock::nanos_of(self.wait_timeout));
        let limit = match inner.deadline {
            Some(d) if d < wait_limit => d,
            _ => wait_limit,
        };
        let mut sleep = None;
        loop {
            if let Some(done) = self.enqueue_blocking(&inner, clock::now()) {
                return done;
            }
            if clock::now() >= limit {
                self.ledger.refuse(Outcome::TimedOut);
                return Err(self.expiry_error(&inner, limit));
            }
            let sleep = match &mut sleep {
                Some(s) => s,
                None => {
                    let handle = crate::runtime::handle()?;
                    let _g = handle.enter();
                    sleep.insert(Box::pin(tokio::time::sleep_until(clock::instant(limit).into())))
                }
            };
            // Register for a freed slot, then re-check before sleeping so a
            // slot freed in between is not missed.
            let mut space = pin!(self.queue.space.notified());
            space.as_mut().enable();
            self.queue.space_waiters.fetch_add(1, Ordering::SeqCst);
            let _waiting = SpaceWaiter(&self.queue.space_waiters);
            if let Some(done) = self.enqueue_blocking(&inner, clock::now()) {
                return done;
            }
            tokio::select! {
                _ = space => {}
                _ = sleep.as_mut() => {}
            }
        }
    }

    /// One push under policy `block`: `None` while the queue is full.
    fn enqueue_blocking<T: JobOutput>(self: &Arc<Self>, inner: &Arc<JobInner>, at: Nanos) -> Option<Result<Job<T>>> {
        self.enqueue_owned(inner.clone(), at).ok()
    }

    /// Like [`PoolShared::enqueue_blocking`], handing the job to its handle
    /// without another reference count; a full queue gives it back.
    fn enqueue_owned<T: JobOutput>(
        self: &Arc<Self>,
        inner: Arc<JobInner>,
        at: Nanos,
    ) -> std::result::Result<Result<Job<T>>, Arc<JobInner>> {
        match self.queue.push(&inner, false, at, &self.ledger) {
            Push::Queued | Push::Evicted(_) => Ok(Ok(Job::pending(inner, self.link()))),
            Push::Closed => Ok(Err(Error::Shutdown { provider: Some(self.name.clone()) })),
            Push::Full => Err(inner),
        }
    }

    /// One push attempt; a full queue is resolved by the policy at once.
    fn push_once<T: JobOutput>(
        self: &Arc<Self>,
        id: u64,
        work: Work,
        submitted: Nanos,
        timeout_ms: Option<u64>,
    ) -> Result<Job<T>> {
        let inner = JobInner::new(id, work, submitted, timeout_ms);
        let evict = self.policy == QueuePolicy::DropOldest;
        match self.queue.push(&inner, evict, submitted, &self.ledger) {
            Push::Queued => Ok(Job::pending(inner, self.link())),
            Push::Evicted(old) => {
                let err = Error::Dropped { provider: self.name.clone(), reason: DropReason::Evicted };
                self.finish(old, Err(err), Outcome::Dropped);
                Ok(Job::pending(inner, self.link()))
            }
            Push::Closed => Err(Error::Shutdown { provider: Some(self.name.clone()) }),
            Push::Full => {
                if self.policy == QueuePolicy::Drop {
                    self.ledger.refuse(Outcome::Dropped);
                    let err = Error::Dropped { provider: self.name.clone(), reason: DropReason::QueueFull };
                    Ok(Job::finished(id, Err(err)))
                } else {
                    self.ledger.refuse(Outcome::Rejected);
                    Err(Error::QueueFull {
                        provider: self.name.clone(),
                        buffer_size: self.queue.capacity,
                        policy: self.policy.as_str(),
                    })
                }
            }
        }
    }

    /// The error for a job that stopped waiting at `at`: TIMEOUT if the
    /// request deadline ran out, else QUEUE_TIMEOUT.
    pub(crate) fn expiry_error(&self, job: &JobInner, at: Nanos) -> Error {
        match (job.deadline, job.timeout_ms) {
            (Some(d), Some(t)) if d <= at => {
                Error::Timeout { provider: self.name.clone(), phase: TimeoutPhase::Queued, timeout_ms: t }
            }
            _ => Error::QueueTimeout {
                provider: self.name.clone(),
                waited_ms: at.saturating_sub(job.enqueued()) / clock::MS,
                wait_timeout_ms: self.wait_timeout.as_millis() as u64,
            },
        }
    }

    /// Cancels a queued job (freeing its slot); false if it was not queued.
    pub fn cancel_queued(&self, job: &Arc<JobInner>) -> bool {
        let Some(ending) = self.queue.remove(job) else { return false };
        self.finish(ending, Err(Error::Cancelled { provider: self.name.clone() }), Outcome::Cancelled);
        true
    }

    /// Stops accepting jobs; workers drain what is queued, then exit.
    pub fn close(&self) {
        self.queue.close();
        self.closing.trip();
    }

    /// Waits until every worker and the reaper exited, or `deadline` passed;
    /// true if they did.
    pub async fn wait_workers(&self, deadline: Instant) -> bool {
        let Ok(handle) = crate::runtime::handle() else { return false };
        let mut sleep = {
            let _g = handle.enter();
            Box::pin(tokio::time::sleep_until(deadline.into()))
        };
        loop {
            let mut gone = pin!(self.workers_gone.notified());
            gone.as_mut().enable();
            if self.tasks_alive.load(Ordering::Acquire) == 0 {
                return true;
            }
            tokio::select! {
                _ = gone => {}
                _ = sleep.as_mut() => return self.tasks_alive.load(Ordering::Acquire) == 0,
            }
        }
    }

    /// Hard stop: running jobs end SHUTDOWN, queued ones too.
    pub fn abort_now(&self) {
        self.queue.close();
        self.closing.trip();
        self.abort.trip();
        for ending in self.queue.drain_all() {
            let err = Error::Shutdown { provider: Some(self.name.clone()) };
            self.finish(ending, Err(err), Outcome::Failed);
        }
    }

    /// Waits, from synchronous code, up to `limit` for the pool's tasks to
    /// end (after an abort they end at their next poll), so a process that
    /// exits right after dropping a gateway leaves nothing behind. Returns
    /// at once on a runtime thread, where waiting could block them.
    pub fn wait_tasks_blocking(&self, limit: Duration) {
        if crate::runtime::on_runtime_thread() {
            return;
        }
        let until = Instant::now() + limit;
        while self.tasks_alive.load(Ordering::Acquire) > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Adds `n` workers (scale-up); none once the pool is closing.
    pub fn spawn_workers(self: &Arc<Self>, n: usize) {
        let Ok(handle) = crate::runtime::handle() else { return };
        if self.queue.is_closed() {
            return;
        }
        self.workers_alive.fetch_add(n, Ordering::AcqRel);
        self.tasks_alive.fetch_add(n, Ordering::AcqRel);
        for _ in 0..n {
            handle.spawn(worker::run(self.clone()));
        }
    }

    /// Records when a worker finished its last job (for `health()`); uses
    /// the worker's own timestamp, so no extra clock read per job.
    pub fn note_outcome(&self, outcome: &Result<Output>, bucket: Outcome, at: Nanos) {
        let ms = at.saturating_sub(self.epoch_ns) / clock::MS;
        match (outcome, bucket) {
            // Written only when the millisecond changed: a store per job
            // would bounce this line between cores.
            (Ok(_), _) if self.last_success_ms.load(Ordering::Relaxed) != ms.max(1) => {
                self.last_success_ms.store(ms.max(1), Ordering::Relaxed)
            }
            (Ok(_), _) => {}
            (Err(e), Outcome::Failed) => *self.last_error.lock() = (ms.max(1), Some(e.to_string())),
            _ => {}
        }
    }

    fn to_unix_ms(&self, pool_ms: u64) -> u64 {
        if pool_ms == 0 {
            return 0;
        }
        let age = self.epoch.elapsed().as_millis() as u64 - pool_ms.min(self.epoch.elapsed().as_millis() as u64);
        unix_ms().saturating_sub(age)
    }

    /// Unix ms of the last completed job (0: none).
    pub fn last_success_unix_ms(&self) -> u64 {
        self.to_unix_ms(self.last_success_ms.load(Ordering::Relaxed))
    }

    /// Unix ms and message of the last failed job.
    pub fn last_error(&self) -> (u64, Option<String>) {
        let (ms, e) = self.last_error.lock().clone();
        (self.to_unix_ms(ms), e)
    }

    /// A snapshot for `stats()`.
    pub fn snapshot(&self) -> ProviderStats {
        let c = &self.counters;
        let jobs = self.ledger.snapshot();
        let running = jobs.running;
        let alive = self.workers_alive.load(Ordering::Relaxed) as u64;
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let depth = self.queue.depth() as u64;
        ProviderStats {
            workers: WorkerStats {
                total: alive,
                busy: running.min(alive),
                idle: alive.saturating_sub(running),
                min: self.min_workers as u64,
                max: self.max_workers as u64,
                scale_ups: ld(&c.scale_ups),
                added: ld(&c.workers_added),
                retired: ld(&c.workers_retired),
            },
            queue: QueueStats { depth, capacity: self.queue.capacity as u64, policy: self.policy.as_str().to_string() },
            jobs: JobStats {
                retries: c.retries.load(Ordering::Relaxed),
                panics: c.panics.load(Ordering::Relaxed),
                stalled: ld(&c.stalled),
                stalls_total: ld(&c.stalls_total),
                fallbacks_served: c.fallbacks_served.load(Ordering::Relaxed),
                ..jobs
            },
            latency_us: LatencyStats { queue_wait: c.queue_wait.summary(), processing: c.processing.summary() },
            throughput_per_s: c.throughput.per_second(),
            circuit: CircuitStats {
                state: self.breaker.state().to_string(),
                opened_total: self.breaker.opened_total(),
            },
            keys: self.keys.snapshot(),
        }
    }
}
