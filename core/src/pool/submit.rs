//! The submit path: how a job enters its pool's queue, and what each
//! queue policy (docs/architecture.md §3) does when the queue is full.
//!
//! Every submit, from the gateway or from a fallback chain, is one call to
//! [`PoolShared::admit`], which never waits; only a `block`-policy submit
//! that found the queue full comes back [`Admission::Full`], and
//! [`Admission::resolve`] waits for space in a boxed slow path, so the
//! common path carries no waiting state. A job is counted `accepted` by
//! the queue's push (before any worker can see it) or `refused` here, in
//! [`PoolShared::refuse`]: never both, never neither.

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::clock::{self, Nanos};
use crate::config::QueuePolicy;
use crate::error::{DropReason, Error, Result, TimeoutPhase};
use crate::stats::Outcome;

use super::job::{Job, JobInner, JobOutput, Timing, Work};
use super::queue::Push;
use super::PoolShared;
use crate::limits::gate::JobClaims as Claims;

/// What [`PoolShared::admit`] did with a job.
pub(crate) enum Admission<T: JobOutput> {
    /// Queued, refused or dropped: the submit is over.
    Done(Result<Job<T>>),
    /// Policy `block`, queue full: the job waits for space in its pool.
    Full(Arc<PoolShared>, Arc<JobInner>),
}

impl<T: JobOutput> Admission<T> {
    /// The submit's result, waiting for queue space if the queue was full
    /// under `block` (that slow path is boxed, so its state stays out of
    /// every submit's future).
    pub async fn resolve(self) -> Result<Job<T>> {
        match self {
            Admission::Done(done) => done,
            Admission::Full(pool, inner) => Box::pin(async move { pool.wait_for_space(inner).await }).await,
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

impl PoolShared {
    /// Submits `work` under id `id` (stamped and bounded by `timing`):
    /// builds the job and pushes it once.
    /// `wait` allows the `block` policy to wait (see [`Admission::resolve`]);
    /// without it a full queue is QUEUE_FULL whatever the policy says (for
    /// `try_submit`). Synchronous, so the common path costs no future state.
    pub fn admit<T: JobOutput>(self: &Arc<Self>, id: u64, work: Work, timing: Timing, wait: bool) -> Admission<T> {
        let claims = self.gate.as_ref().map(|g| g.claims(&work));
        if !(wait && self.policy == QueuePolicy::Block) {
            return Admission::Done(self.push_once(id, work, timing, claims));
        }
        match self.enqueue_owned(JobInner::new(id, work, timing, claims), timing.submitted) {
            Ok(done) => Admission::Done(done),
            Err(inner) => Admission::Full(self.clone(), inner),
        }
    }

    /// Counts a job that never entered the queue.
    fn refuse(&self, bucket: Outcome) {
        self.ledger.refuse(bucket);
    }

    /// Policy `block` on a full queue: waits for a slot until the queue wait
    /// limit or the request deadline, whichever is first (QUEUE_TIMEOUT or
    /// TIMEOUT after it).
    async fn wait_for_space<T: JobOutput>(self: &Arc<Self>, inner: Arc<JobInner>) -> Result<Job<T>> {
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
                self.refuse(Outcome::TimedOut);
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
        timing: Timing,
        claims: Option<Claims>,
    ) -> Result<Job<T>> {
        let inner = JobInner::new(id, work, timing, claims);
        let evict = self.policy == QueuePolicy::DropOldest;
        match self.queue.push(&inner, evict, timing.submitted, &self.ledger) {
            Push::Queued => Ok(Job::pending(inner, self.link())),
            Push::Evicted(old) => {
                let err = Error::Dropped { provider: self.name.clone(), reason: DropReason::Evicted };
                self.finish(old, Err(err), Outcome::Dropped);
                Ok(Job::pending(inner, self.link()))
            }
            Push::Closed => Err(Error::Shutdown { provider: Some(self.name.clone()) }),
            Push::Full => {
                if self.policy == QueuePolicy::Drop {
                    self.refuse(Outcome::Dropped);
                    let err = Error::Dropped { provider: self.name.clone(), reason: DropReason::QueueFull };
                    Ok(Job::finished(id, Err(err)))
                } else {
                    self.refuse(Outcome::Rejected);
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
    pub fn expiry_error(&self, job: &JobInner, at: Nanos) -> Error {
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
}
