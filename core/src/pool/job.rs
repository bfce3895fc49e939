//! A job: one request, its completion slot, and the handle a caller awaits.
//!
//! Every job moves through `QUEUED → RUNNING → DONE` or `QUEUED → DONE`,
//! by compare-and-swap on one atomic state. Each move that can be won
//! yields a token, and the job's slot is reachable only through a token, so
//! "only the winner touches the slot" is checked by the types:
//! - [`JobInner::try_start`] (`QUEUED → RUNNING`) yields [`Running`]: the
//!   one owner of a running job, which alone takes its work and alone ends
//!   it ([`Running::end`], which cannot fail);
//! - [`JobInner::try_end_queued`] (`QUEUED → DONE`) and [`Running::end`]
//!   yield [`Ending`]: the one party that records the outcome in the pool's
//!   counters and sends it to the handle ([`Ending::deliver`]), so each job
//!   ends exactly once.
//!
//! While `QUEUED`, moves happen under the queue lock (cancel, drop_oldest
//! eviction, queue-timeout expiry, worker pick-up, shutdown). While
//! `RUNNING`, a cancel or a hard shutdown merely signals the owner.
//!
//! Counters are updated *before* the outcome is sent, so a caller that has
//! seen every outcome also sees stats that already include them.

use std::cell::UnsafeCell;
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

use super::ledger::Phase;
use super::PoolLink;

pub(crate) const QUEUED: u8 = 0;
pub(crate) const RUNNING: u8 = 1;
pub(crate) const DONE: u8 = 2;

/// What a worker is asked to do.
#[doc(hidden)]
pub enum Work {
    // Boxed for the same reason as `Output`: the job's slot moves it.
    Chat(Box<Request>),
    Stream(Box<Request>),
    Embed(Box<EmbedRequest>),
}

impl Work {
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

/// A job's slot: its work, then its outcome (each taken once).
enum Slot {
    Work(Work),
    Outcome(Result<Output>),
    Empty,
}

/// The shared state of one job, owned jointly by its handle, the queue and
/// the worker running it.
pub(crate) struct JobInner {
    pub id: u64,
    state: AtomicU8,
    /// Set by `cancel()` on a running job; the worker reads it after waking.
    cancel_requested: AtomicBool,
    /// Wakes the worker running this job when it is cancelled.
    pub cancel_signal: Notify,
    /// The work until a worker takes it, then the outcome until the handle
    /// takes it (one slot for both keeps the job a few cache lines smaller).
    /// Not locked: the state machine gives it to one party at a time (see
    /// the `Sync` impl below). Measured against a `parking_lot::Mutex`
    /// (pool_profile, 300 k jobs, medians of 24 alternating runs): equal at
    /// 1 and 64 submitters, 8 % more jobs/s at 1024, and 97 fewer
    /// instructions per job (callgrind), so the unsafe slot stays.
    slot: UnsafeCell<Slot>,
    /// When the job was submitted.
    pub submitted: Nanos,
    /// When the job entered the queue (set just before the push takes the
    /// queue lock, so the queue is ordered by it to within nanoseconds).
    enqueued: AtomicU64,
    /// End-to-end deadline from the request's `timeout_ms`.
    pub deadline: Option<Nanos>,
    pub timeout_ms: Option<u64>,
    delivered: AtomicBool,
    waker: AtomicWaker,
}

// SAFETY: every field but `slot` is `Sync`. `slot` is never shared: the job's
// state machine hands it from one party to the next, each hand-over an
// atomic Release/Acquire pair, and each party reaches it only through its
// token (this file is the only one that touches `slot`):
// - the submitter writes the work before the job is published (queue lock
//   or hand-off swap);
// - the holder of the one `Running` token (won by CAS) takes the work;
// - the holder of the one `Ending` token (won by CAS, or given up by the
//   `Running` holder) writes the outcome and publishes it with `delivered`;
// - the handle reads it after seeing `delivered`.
// What the slot holds is `Send`, so moving it between threads this way is
// sound.
unsafe impl Sync for JobInner {}
const _: () = {
    const fn send<T: Send>() {}
    send::<Slot>();
};

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
    pub(crate) fn new(id: u64, work: Work, timing: Timing) -> Arc<JobInner> {
        let Timing { submitted, deadline, timeout_ms } = timing;
        Arc::new(JobInner {
            id,
            state: AtomicU8::new(QUEUED),
            cancel_requested: AtomicBool::new(false),
            cancel_signal: Notify::new(),
            slot: UnsafeCell::new(Slot::Work(work)),
            submitted,
            enqueued: AtomicU64::new(submitted),
            deadline,
            timeout_ms,
            delivered: AtomicBool::new(false),
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
        self.state.load(Ordering::Acquire)
    }

    /// Moves `from → to`; true if this caller won the transition.
    fn transition(&self, from: u8, to: u8) -> bool {
        self.state.compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// `QUEUED → RUNNING`: the caller becomes the job's one owner.
    pub(crate) fn try_start(self: &Arc<Self>) -> Option<Running> {
        self.transition(QUEUED, RUNNING).then(|| Running(self.clone()))
    }

    /// `QUEUED → DONE` (cancel, eviction, expiry, shutdown): the caller
    /// alone ends the job.
    pub(crate) fn try_end_queued(self: &Arc<Self>) -> Option<Ending> {
        self.transition(QUEUED, DONE).then(|| Ending { job: self.clone(), phase: Phase::Queued })
    }

    pub(crate) fn cancel_requested(&self) -> bool {
        self.cancel_requested.load(Ordering::Acquire)
    }

    /// Takes the work to run (once; `None` if already taken).
    ///
    /// # Safety
    /// Only through [`Running`]: its holder owns the slot until it ends
    /// the job.
    unsafe fn take_work(&self) -> Option<Work> {
        // SAFETY: the caller holds the job's one `Running` token (it won
        // QUEUED → RUNNING, or was handed the token by the push that won
        // it), so nobody else touches the slot until it delivers.
        let slot = unsafe { &mut *self.slot.get() };
        match std::mem::replace(slot, Slot::Empty) {
            Slot::Work(w) => Some(w),
            other => {
                *slot = other;
                None
            }
        }
    }

    /// Takes the delivered outcome (once). Only the job's handle calls
    /// this, after it saw `delivered`.
    fn take_outcome(&self) -> Option<Result<Output>> {
        if !self.delivered.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: `delivered` (Acquire) follows the one write of the
        // outcome (Release, in `deliver`), after which only the handle,
        // through `&mut Job`, touches the slot.
        let slot = unsafe { &mut *self.slot.get() };
        match std::mem::replace(slot, Slot::Empty) {
            Slot::Outcome(o) => Some(o),
            other => {
                *slot = other;
                None
            }
        }
    }

    /// Hands the outcome to the handle.
    ///
    /// # Safety
    /// Only through [`Ending`], exactly once per job.
    unsafe fn deliver(&self, outcome: Result<Output>) {
        // SAFETY: the caller holds the job's one `Ending` token: it won the
        // move to DONE, so it is the only party that may touch the slot now
        // (a `Running` holder gave up its token to get this one, and the
        // handle reads only after `delivered`, set below).
        unsafe { *self.slot.get() = Slot::Outcome(outcome) };
        self.delivered.store(true, Ordering::Release);
        self.waker.wake();
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

/// The one owner of a running job (it won `QUEUED → RUNNING`, or a push
/// that won it handed this over). Not `Clone`: it is the proof.
pub(crate) struct Running(Arc<JobInner>);

impl Running {
    /// The job (read-only fields: id, deadline, timestamps, cancel signal).
    pub fn job(&self) -> &Arc<JobInner> {
        &self.0
    }

    /// Takes the work to run (once; `None` if already taken).
    pub fn take_work(&mut self) -> Option<Work> {
        // SAFETY: `self` is the job's one `Running` token.
        unsafe { self.0.take_work() }
    }

    /// `RUNNING → DONE`. Cannot fail: only this token's holder moves a
    /// running job.
    pub fn end(self) -> Ending {
        let won = self.0.transition(RUNNING, DONE);
        debug_assert!(won, "a running job was ended by someone other than its owner");
        Ending { job: self.0, phase: Phase::Running }
    }

    /// Moves the token into a raw pointer (for the hand-off mailbox).
    pub fn into_raw(self) -> *const JobInner {
        Arc::into_raw(self.0)
    }

    /// Rebuilds a token from [`Running::into_raw`].
    ///
    /// # Safety
    /// `ptr` came from `into_raw` and is rebuilt exactly once.
    pub unsafe fn from_raw(ptr: *const JobInner) -> Running {
        // SAFETY: per the contract, a pointer from `Arc::into_raw`, once.
        Running(unsafe { Arc::from_raw(ptr) })
    }
}

/// The one party that ends a job: it won the move to `DONE`. Consumed by
/// [`Ending::deliver`].
#[must_use = "an Ending must deliver the job's outcome, or its handle never resolves"]
pub(crate) struct Ending {
    job: Arc<JobInner>,
    phase: Phase,
}

impl Ending {
    pub fn job(&self) -> &Arc<JobInner> {
        &self.job
    }

    /// Where the job was when it ended (for the ledger).
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Sends the outcome to the handle (after the caller counted it).
    pub fn deliver(self, outcome: Result<Output>) {
        // SAFETY: `self` is the job's one `Ending` token, consumed here.
        unsafe { self.job.deliver(outcome) }
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
        /// Confirms a successful output before fallbacks are given up: a
        /// stream must deliver its first content (or end cleanly) first.
        fn confirm(self) -> super::BoxResult<Self>;
    }
}

/// A boxed future of a result (fallback chains and stream confirmation).
pub type BoxResult<T> = Pin<Box<dyn Future<Output = Result<T>> + Send>>;
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
    fn confirm(self) -> BoxResult<Self> {
        Box::pin(std::future::ready(Ok(self)))
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
    fn confirm(mut self) -> BoxResult<Self> {
        Box::pin(async move {
            self.peek_first_content().await?;
            Ok(self)
        })
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
    fn confirm(self) -> BoxResult<Self> {
        Box::pin(std::future::ready(Ok(self)))
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
    if !inner.delivered.load(Ordering::Acquire) {
        inner.waker.register(cx.waker());
        if !inner.delivered.load(Ordering::Acquire) {
            return Poll::Pending;
        }
    }
    Poll::Ready(match inner.take_outcome() {
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
