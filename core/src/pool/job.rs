//! A job: one request, its completion slot, and the handle a caller awaits.
//!
//! The slot and its state machine live in `slot.rs` (the one file with the
//! slot's `unsafe` code; model-checked with loom): every job moves through
//! `QUEUED → RUNNING → DONE` or `QUEUED → DONE`, each move that can be won
//! yields a token ([`Running`], [`Ending`]), and the slot is reachable only
//! through a token. This file is what a job is around its slot: its
//! request timing, its cancel signal, the waker of its handle, and the
//! handle itself ([`Job`]).
//!
//! While `QUEUED`, moves happen under the queue lock (cancel, drop_oldest
//! eviction, queue-timeout expiry, worker pick-up, shutdown). While
//! `RUNNING`, a cancel or a hard shutdown merely signals the owner.
//!
//! Counters are updated *before* the outcome is sent, so a caller that has
//! seen every outcome also sees stats that already include them.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

use crate::clock::{self, Nanos};
use crate::error::{Error, Result};
use crate::providers::ChunkStream;
use crate::types::{EmbedRequest, EmbedResponse, Request, Response};

use super::slot::{self, JobSlot, Slotted};
use super::PoolLink;
use crate::limits::gate::JobClaims as Claims;

pub(crate) use super::slot::{DONE, QUEUED};

/// The one owner of a running job (see `slot.rs`).
pub(crate) type Running = slot::Running<JobInner>;
/// The one party that ends a job (see `slot.rs`).
pub(crate) type Ending = slot::Ending<JobInner>;

/// What a worker is asked to do.
#[doc(hidden)]
pub enum Work {
    // Boxed for the same reason as `Output`: the job's slot moves it.
    Chat(Box<Request>),
    Stream(Box<Request>),
    Embed(Box<EmbedRequest>),
}

impl Work {
    /// The request's own `failover` section (chat requests only).
    pub(crate) fn failover(&self) -> Option<&crate::failover::FailoverConfig> {
        match self {
            Work::Chat(r) | Work::Stream(r) => r.failover.as_ref(),
            Work::Embed(_) => None,
        }
    }

    /// Whether a fallback route follows this one (the request's
    /// `fallbacks`: a fallback job carries the targets after it).
    pub(crate) fn has_fallback(&self) -> bool {
        match self {
            Work::Chat(r) | Work::Stream(r) => !r.fallbacks.is_empty(),
            Work::Embed(_) => false,
        }
    }

    /// The model name without the provider prefix (the request was
    /// validated and routed by it, so it has one).
    pub(crate) fn model(&self) -> &str {
        let full = match self {
            Work::Chat(r) | Work::Stream(r) => &r.model,
            Work::Embed(r) => &r.model,
        };
        full.split_once('/').map_or(full.as_str(), |(_, m)| m)
    }
}

/// What a worker produced.
#[doc(hidden)]
pub enum Output {
    // Boxed: an outcome moves through several hands (worker, slot, handle)
    // and a response is a few hundred bytes to copy at each.
    Chat(Box<Response>),
    Stream(ChunkStream),
    Embed(Box<EmbedResponse>),
}

/// The shared state of one job, owned jointly by its handle, the queue and
/// the worker running it.
pub(crate) struct JobInner {
    pub id: u64,
    /// The work until a worker takes it, then the outcome until the handle
    /// takes it, with the state that owns them (`slot.rs`). Not locked:
    /// measured against a `parking_lot::Mutex` (pool_profile, 300 k jobs,
    /// medians of 24 alternating runs): equal at 1 and 64 submitters, 8 %
    /// more jobs/s at 1024, and 97 fewer instructions per job (callgrind),
    /// so the unlocked slot stays.
    slot: JobSlot<Work, Result<Output>>,
    /// Set by `cancel()` on a running job; the worker reads it after waking.
    cancel_requested: AtomicBool,
    /// Wakes the worker running this job when it is cancelled.
    pub cancel_signal: Notify,
    /// When the job was submitted.
    pub submitted: Nanos,
    /// When the job entered the queue (set just before the push takes the
    /// queue lock, so the queue is ordered by it to within nanoseconds).
    enqueued: AtomicU64,
    /// End-to-end deadline from the request's `timeout_ms`.
    pub deadline: Option<Nanos>,
    pub timeout_ms: Option<u64>,
    /// What the job claims from its pool's `limits` (none without limits).
    claims: Option<Claims>,
    /// The claims were taken at submit (the queue was empty and they fit),
    /// so the queue's gate lets the job through and an end before it ran
    /// gives them back.
    claimed: AtomicBool,
    /// A provider call was started: the request may have reached the
    /// provider, so its reservation is settled, not given back.
    sent: AtomicBool,
    /// Whose buckets the claims were taken from (the key's, with `limits`
    /// `scope: "key"`; else 0). Set with the claims, before the job can
    /// start or be claimed.
    limit_key: AtomicU8,
    waker: AtomicWaker,
}

impl Slotted for JobInner {
    type Work = Work;
    type Outcome = Result<Output>;

    fn slot(&self) -> &JobSlot<Work, Result<Output>> {
        &self.slot
    }

    fn delivered(&self) {
        self.waker.wake();
    }
}

/// When a request was submitted and by when it must be done: read from the
/// clock once per request and shared by its job and its fallback chain, so
/// the request has one deadline however many pools it visits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    pub submitted: Nanos,
    /// The end-to-end deadline (`submitted + timeout_ms`), if any.
    pub deadline: Option<Nanos>,
    /// The request's `timeout_ms`, for error messages.
    pub timeout_ms: Option<u64>,
}

impl Timing {
    /// A request submitted now with `timeout_ms`.
    pub fn start(timeout_ms: Option<u64>) -> Timing {
        let submitted = clock::now();
        Timing { submitted, deadline: timeout_ms.map(|t| submitted.saturating_add(clock::from_ms(t))), timeout_ms }
    }
}

impl JobInner {
    pub(crate) fn new(id: u64, work: Work, timing: Timing, claims: Option<Claims>) -> Arc<JobInner> {
        let Timing { submitted, deadline, timeout_ms } = timing;
        Arc::new(JobInner {
            id,
            cancel_requested: AtomicBool::new(false),
            cancel_signal: Notify::new(),
            slot: JobSlot::new(work),
            submitted,
            enqueued: AtomicU64::new(submitted),
            deadline,
            timeout_ms,
            claims,
            claimed: AtomicBool::new(false),
            sent: AtomicBool::new(false),
            limit_key: AtomicU8::new(0),
            waker: AtomicWaker::new(),
        })
    }

    /// When the job entered the queue.
    pub(crate) fn enqueued(&self) -> Nanos {
        self.enqueued.load(Ordering::Relaxed)
    }

    pub(crate) fn set_enqueued(&self, at: Nanos) {
        self.enqueued.store(at, Ordering::Relaxed);
    }

    /// The end-to-end deadline as an `Instant` (for timers and providers).
    pub(crate) fn deadline_instant(&self) -> Option<Instant> {
        self.deadline.map(clock::instant)
    }

    pub(crate) fn state(&self) -> u8 {
        self.slot.state()
    }

    /// What the job claims from its pool's `limits`.
    pub(crate) fn claims(&self) -> Option<&Claims> {
        self.claims.as_ref()
    }

    /// True once the job's claims are taken (see the field).
    pub(crate) fn claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }

    pub(crate) fn set_claimed(&self) {
        self.claimed.store(true, Ordering::Release);
    }

    /// Whose buckets the job's claims came from (see the field).
    pub(crate) fn limit_key(&self) -> crate::limits::gate::LimitKey {
        self.limit_key.load(Ordering::Relaxed)
    }

    pub(crate) fn set_limit_key(&self, key: crate::limits::gate::LimitKey) {
        self.limit_key.store(key, Ordering::Relaxed);
    }

    /// True once a provider call was started (see the field).
    pub(crate) fn sent(&self) -> bool {
        self.sent.load(Ordering::Relaxed)
    }

    /// Marks the start of a provider call (by the job's one owner, who later ends it).
    pub(crate) fn set_sent(&self) {
        self.sent.store(true, Ordering::Relaxed);
    }

    /// `QUEUED → RUNNING`: the caller becomes the job's one owner.
    pub(crate) fn try_start(self: &Arc<Self>) -> Option<Running> {
        slot::try_start(self)
    }

    /// `QUEUED → DONE` (cancel, eviction, expiry, shutdown): the caller
    /// alone ends the job.
    pub(crate) fn try_end_queued(self: &Arc<Self>) -> Option<Ending> {
        slot::try_end_queued(self)
    }

    pub(crate) fn cancel_requested(&self) -> bool {
        self.cancel_requested.load(Ordering::Acquire)
    }

    /// When the job, still queued, must stop waiting: the earlier of the
    /// request deadline and the queue wait limit.
    pub(crate) fn queue_expiry(&self, wait_timeout: Nanos) -> Nanos {
        let by_wait = self.enqueued().saturating_add(wait_timeout);
        match self.deadline {
            Some(d) if d < by_wait => d,
            _ => by_wait,
        }
    }
}

pub(crate) mod sealed {
    /// Converts a worker's output into the type a handle promises.
    pub trait FromOutput: Sized {
        fn from_output(output: super::Output) -> crate::error::Result<Self>;
        /// The work item that produces this output from a chat request
        /// (for fallbacks; `None` where fallbacks do not apply).
        fn work_for(req: crate::types::Request) -> Option<super::Work>;
        /// Records which fallback served (0 = the primary).
        fn set_fallback_index(&mut self, index: u32);
    }
}

use sealed::FromOutput;

/// What a [`Job`] can resolve to: [`Response`], [`ChunkStream`] or
/// [`EmbedResponse`] (sealed).
pub trait JobOutput: FromOutput + Send + 'static {}
impl JobOutput for Response {}
impl JobOutput for ChunkStream {}
impl JobOutput for EmbedResponse {}

impl FromOutput for Response {
    fn from_output(output: Output) -> Result<Self> {
        match output {
            Output::Chat(r) => Ok(*r),
            _ => Err(Error::Internal { message: "job produced a different output kind than requested".into() }),
        }
    }
    fn work_for(req: Request) -> Option<Work> {
        Some(Work::Chat(Box::new(req)))
    }
    fn set_fallback_index(&mut self, index: u32) {
        self.extra_fields.fallback_index = index;
    }
}

impl FromOutput for ChunkStream {
    fn from_output(output: Output) -> Result<Self> {
        match output {
            Output::Stream(s) => Ok(s),
            _ => Err(Error::Internal { message: "job produced a different output kind than requested".into() }),
        }
    }
    fn work_for(req: Request) -> Option<Work> {
        Some(Work::Stream(Box::new(req)))
    }
    fn set_fallback_index(&mut self, index: u32) {
        self.set_fallback_index(index);
    }
}

impl FromOutput for EmbedResponse {
    fn from_output(output: Output) -> Result<Self> {
        match output {
            Output::Embed(r) => Ok(*r),
            _ => Err(Error::Internal { message: "job produced a different output kind than requested".into() }),
        }
    }
    fn work_for(_req: Request) -> Option<Work> {
        None
    }
    fn set_fallback_index(&mut self, index: u32) {
        self.extra_fields.fallback_index = index;
    }
}

/// A handle to a submitted job; await it for the outcome.
///
/// Resolves exactly once with the response or a typed [`Error`]. Dropping a
/// handle before its job finished **cancels** the job (counted as
/// `cancelled`); call [`Job::detach`] to let it run unobserved instead.
#[must_use = "a Job does nothing unless awaited; dropping it cancels the job"]
pub struct Job<T: JobOutput = Response> {
    id: u64,
    state: HandleState<T>,
}

/// What a handle waits on.
enum HandleState<T> {
    /// A job in a pool, without fallbacks: its slot.
    Pooled { inner: Arc<JobInner>, link: Arc<PoolLink> },
    /// A request with fallbacks: the route task's outcome (`route.rs`).
    Routed(Arc<RouteCell<T>>),
    /// Over at submit (policy `drop` on a full queue); boxed: rare, and it
    /// would otherwise make every handle as large as a response.
    Ready(Box<Result<T>>),
    /// The outcome was handed out, or the handle detached.
    Over,
}

impl<T: JobOutput> std::fmt::Debug for Job<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("id", &self.id).field("done", &self.is_done()).finish()
    }
}

impl<T: JobOutput> Job<T> {
    pub(crate) fn pending(inner: Arc<JobInner>, link: Arc<PoolLink>) -> Self {
        Job { id: inner.id, state: HandleState::Pooled { inner, link } }
    }

    /// A job that is already over (policy `drop` on a full queue).
    pub(crate) fn finished(id: u64, outcome: Result<T>) -> Self {
        Job { id, state: HandleState::Ready(Box::new(outcome)) }
    }

    /// A handle on a route task's outcome.
    pub(crate) fn routed(id: u64, cell: Arc<RouteCell<T>>) -> Self {
        Job { id, state: HandleState::Routed(cell) }
    }

    /// The pool job behind this handle, if it waits on one (for a route,
    /// which cancels it at once when asked).
    pub(crate) fn pool_parts(&self) -> Option<(Arc<JobInner>, Arc<PoolLink>)> {
        match &self.state {
            HandleState::Pooled { inner, link } => Some((inner.clone(), link.clone())),
            _ => None,
        }
    }

    /// The job's id, unique within its gateway.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// True once the job has an outcome (awaiting it will not wait).
    pub fn is_done(&self) -> bool {
        match &self.state {
            // DONE, as `cancel` sees it: the two always agree (the outcome
            // follows DONE within a few instructions).
            HandleState::Pooled { inner, .. } => inner.state() == DONE,
            HandleState::Routed(cell) => cell.is_set(),
            HandleState::Ready(_) | HandleState::Over => true,
        }
    }

    /// Asks the job to stop. A queued job ends `CANCELLED` at once and frees
    /// its queue slot; a running job's provider call is dropped and it ends
    /// `CANCELLED` as soon as its worker notices (immediately, unless the
    /// call finishes first); a fallback chain stops. Returns false if the
    /// job had already finished.
    pub fn cancel(&self) -> bool {
        match &self.state {
            HandleState::Pooled { inner, link } => cancel_job(link, inner),
            HandleState::Routed(cell) => cell.cancel(),
            HandleState::Ready(_) | HandleState::Over => false,
        }
    }

    /// A handle that can cancel this job from elsewhere, e.g. while another
    /// task awaits the job.
    pub fn canceller(&self) -> Canceller {
        Canceller {
            target: match &self.state {
                HandleState::Pooled { inner, link } => CancelTarget::Pooled(inner.clone(), link.clone()),
                HandleState::Routed(cell) => CancelTarget::Routed(cell.clone()),
                HandleState::Ready(_) | HandleState::Over => CancelTarget::Nothing,
            },
        }
    }

    /// Lets the job run to its end without a handle; its outcome is counted
    /// in stats and then discarded.
    pub fn detach(mut self) {
        self.state = HandleState::Over;
    }

    /// Waits for the outcome from synchronous code, up to `timeout`
    /// (`None` = no limit). Returns `None` on timeout (the job keeps going;
    /// call again or cancel). Must not be called on a bifrost runtime thread.
    pub fn wait_blocking(&mut self, timeout: Option<Duration>) -> Option<Result<T>> {
        if crate::runtime::on_runtime_thread() {
            return Some(Err(Error::Internal {
                message: "Job::wait_blocking called on a bifrost runtime thread, where it would block \
                          the workers it waits for; await the job instead"
                    .into(),
            }));
        }
        let limit = timeout.map(|t| Instant::now() + t);
        futures_executor::block_on(async {
            let sleep = match (limit, crate::runtime::handle()) {
                (Some(l), Ok(h)) => {
                    let _g = h.enter();
                    Some(Box::pin(tokio::time::sleep_until(l.into())))
                }
                _ => None,
            };
            match sleep {
                None => Some((&mut *self).await),
                Some(mut sleep) => {
                    let mut me = Pin::new(&mut *self);
                    std::future::poll_fn(|cx| {
                        if let Poll::Ready(r) = me.as_mut().poll(cx) {
                            return Poll::Ready(Some(r));
                        }
                        match sleep.as_mut().poll(cx) {
                            Poll::Ready(()) => Poll::Ready(None),
                            Poll::Pending => Poll::Pending,
                        }
                    })
                    .await
                }
            }
        })
    }
}

/// Cancels a [`Job`] from anywhere (see [`Job::canceller`]).
#[derive(Clone)]
pub struct Canceller {
    target: CancelTarget,
}

#[derive(Clone)]
enum CancelTarget {
    Pooled(Arc<JobInner>, Arc<PoolLink>),
    Routed(Arc<dyn Cancel>),
    Nothing,
}

impl std::fmt::Debug for Canceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Canceller")
    }
}

impl Canceller {
    /// Like [`Job::cancel`]: false if the job had already finished.
    pub fn cancel(&self) -> bool {
        match &self.target {
            CancelTarget::Pooled(inner, link) => cancel_job(link, inner),
            CancelTarget::Routed(cell) => cell.cancel(),
            CancelTarget::Nothing => false,
        }
    }
}

/// Cancels through the pool so a queued job's slot is released under the
/// queue lock.
pub(crate) fn cancel_job(link: &PoolLink, inner: &Arc<JobInner>) -> bool {
    match inner.state() {
        DONE => false,
        QUEUED if link.pool().is_some_and(|pool| pool.cancel_queued(inner)) => true,
        _ => {
            if inner.state() == DONE {
                return false;
            }
            inner.cancel_requested.store(true, Ordering::Release);
            inner.cancel_signal.notify_one();
            true
        }
    }
}

/// What a [`Canceller`] needs of a route, whatever its output type.
trait Cancel: Send + Sync {
    fn cancel(&self) -> bool;
}

/// The outcome of a request with fallbacks, filled once by its route task
/// (`route.rs`); the handle only waits for it.
pub(crate) struct RouteCell<T> {
    outcome: parking_lot::Mutex<Option<Result<T>>>,
    set: AtomicBool,
    waker: AtomicWaker,
    cancel_requested: AtomicBool,
    cancel_signal: Notify,
    /// The primary pool job, cancelled at once on a cancel (so a queued
    /// primary frees its slot now, not when the route task next runs).
    primary: Option<(Arc<JobInner>, Arc<PoolLink>)>,
}

impl<T: JobOutput> RouteCell<T> {
    pub fn new(primary: Option<(Arc<JobInner>, Arc<PoolLink>)>) -> Arc<Self> {
        Arc::new(RouteCell {
            outcome: parking_lot::Mutex::new(None),
            set: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            cancel_requested: AtomicBool::new(false),
            cancel_signal: Notify::new(),
            primary,
        })
    }

    /// Fills the cell (the route task, once) and wakes the handle.
    pub fn set(&self, outcome: Result<T>) {
        *self.outcome.lock() = Some(outcome);
        self.set.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// Resolves once a cancel was requested.
    pub async fn cancelled(&self) {
        loop {
            let mut n = std::pin::pin!(self.cancel_signal.notified());
            n.as_mut().enable();
            if self.cancel_requested.load(Ordering::Acquire) {
                return;
            }
            n.await;
        }
    }

    fn poll_outcome(&self, cx: &mut Context<'_>) -> Poll<Result<T>> {
        if !self.is_set() {
            self.waker.register(cx.waker());
            if !self.is_set() {
                return Poll::Pending;
            }
        }
        Poll::Ready(self.outcome.lock().take().unwrap_or_else(|| {
            Err(Error::Internal { message: "route outcome was taken twice (bifrost bug: please report)".into() })
        }))
    }
}

impl<T: JobOutput> Cancel for RouteCell<T> {
    fn cancel(&self) -> bool {
        if self.is_set() {
            return false;
        }
        if let Some((inner, link)) = &self.primary {
            cancel_job(link, inner);
        }
        self.cancel_requested.store(true, Ordering::Release);
        self.cancel_signal.notify_waiters();
        true
    }
}

// No field is ever pinned structurally: `T` is only moved out by value.
impl<T: JobOutput> Unpin for Job<T> {}

impl<T: JobOutput> Future for Job<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = &mut *self;
        let out = match &mut this.state {
            HandleState::Pooled { inner, .. } => ready!(poll_slot(inner, cx)),
            HandleState::Routed(cell) => ready!(cell.poll_outcome(cx)),
            // (The placeholder is never seen: the state becomes `Over`.)
            HandleState::Ready(r) => std::mem::replace(&mut **r, Err(Error::Internal { message: String::new() })),
            HandleState::Over => {
                return Poll::Ready(Err(Error::Internal { message: "job polled after it completed".into() }))
            }
        };
        this.state = HandleState::Over;
        Poll::Ready(out)
    }
}

/// Waits for a pool job's completion slot.
fn poll_slot<T: JobOutput>(inner: &JobInner, cx: &mut Context<'_>) -> Poll<Result<T>> {
    // Queue expiry is the pool reaper's job: the handle only waits.
    if !inner.slot.is_delivered() {
        inner.waker.register(cx.waker());
        if !inner.slot.is_delivered() {
            return Poll::Pending;
        }
    }
    // SAFETY: called only from `Job::poll`, and a job has one `Job` handle
    // (made once, at submit; `Canceller`s and route cells never read it).
    Poll::Ready(match unsafe { inner.slot.take_outcome() } {
        Some(o) => o.and_then(T::from_output),
        None => Err(Error::Internal { message: "job outcome was taken twice (bifrost bug: please report)".into() }),
    })
}

impl<T: JobOutput> Drop for Job<T> {
    fn drop(&mut self) {
        match &self.state {
            HandleState::Pooled { inner, link } if inner.state() != DONE => {
                cancel_job(link, inner);
            }
            HandleState::Routed(cell) => {
                cell.cancel();
            }
            _ => {}
        }
    }
}
