//! A job's slot and the state machine that hands it from party to party:
//! the one file with the slot's `unsafe` code, and its proof.
//!
//! A job's slot holds its work until a worker takes it, then its outcome
//! until the handle takes it. It is not locked; instead one atomic state
//! (`QUEUED → RUNNING → DONE`, or `QUEUED → DONE`) decides who may touch
//! it, and each move that can be won yields a token:
//! - [`try_start`] (`QUEUED → RUNNING`) yields [`Running`], the one owner of
//!   a running job: it alone takes the work and alone ends the job
//!   ([`Running::end`], which cannot fail);
//! - [`try_end_queued`] (`QUEUED → DONE`) and [`Running::end`] yield
//!   [`Ending`], the one party that writes the outcome and publishes it
//!   ([`Ending::deliver`]), so each job ends exactly once;
//! - the job's handle reads the outcome only after seeing it published
//!   ([`JobSlot::take_outcome`]).
//!
//! [`Mailbox`] is the one-job hand-off box between a push and the parked
//! worker it picked: a `Running` token in one atomic pointer.
//!
//! Nothing here depends on the rest of the crate but [`super::sync`], so
//! `tests/loom` compiles this very file against loom's atomics and cell and
//! checks these claims under every interleaving it can reach.

use super::sync::{Arc, AtomicBool, AtomicPtr, AtomicU8, Ordering, UnsafeCell};

pub(crate) const QUEUED: u8 = 0;
pub(crate) const RUNNING: u8 = 1;
pub(crate) const DONE: u8 = 2;

/// Where a job was when it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Queued,
    Running,
}

enum Cell<W, O> {
    Work(W),
    Outcome(O),
    Empty,
}

/// A job's work, then its outcome, and the state that owns them.
pub(crate) struct JobSlot<W, O> {
    state: AtomicU8,
    /// Set (Release) right after the one write of the outcome.
    delivered: AtomicBool,
    cell: UnsafeCell<Cell<W, O>>,
}

// SAFETY: `cell` is never shared: the state machine hands it from one party
// to the next, each hand-over an atomic Release/Acquire pair, and each party
// reaches it only through its token:
// - the creator writes the work before the job is published (the queue
//   lock, or the mailbox swap);
// - the holder of the one `Running` token (won by CAS) takes the work;
// - the holder of the one `Ending` token (won by CAS, or given up by the
//   `Running` holder, whose accesses happen-before through the AcqRel CAS)
//   writes the outcome and publishes it with `delivered` (Release);
// - the handle reads it after seeing `delivered` (Acquire).
// What the cell holds is `Send`, so moving it between threads is sound.
unsafe impl<W: Send, O: Send> Sync for JobSlot<W, O> {}

impl<W, O> JobSlot<W, O> {
    /// A queued job with its work.
    pub fn new(work: W) -> Self {
        JobSlot {
            state: AtomicU8::new(QUEUED),
            delivered: AtomicBool::new(false),
            cell: UnsafeCell::new(Cell::Work(work)),
        }
    }

    /// `QUEUED`, `RUNNING` or `DONE`.
    pub fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    /// True once the outcome is published.
    pub fn is_delivered(&self) -> bool {
        self.delivered.load(Ordering::Acquire)
    }

    /// Moves `from → to`; true if this caller won the transition.
    fn transition(&self, from: u8, to: u8) -> bool {
        self.state.compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Takes the published outcome (once; `None` if not yet published or
    /// already taken).
    ///
    /// # Safety
    /// Only the job's one handle calls this (it is the only reader of a
    /// published outcome).
    pub unsafe fn take_outcome(&self) -> Option<O> {
        if !self.is_delivered() {
            return None;
        }
        // SAFETY: `delivered` (Acquire) follows the one write of the outcome
        // (Release, in `deliver`), after which only the handle (the caller,
        // per the contract) touches the cell.
        self.cell.with_mut(|cell| match std::mem::replace(unsafe { &mut *cell }, Cell::Empty) {
            Cell::Outcome(o) => Some(o),
            other => {
                unsafe { *cell = other };
                None
            }
        })
    }
}

/// A job: something that holds a [`JobSlot`] and hears when its outcome is
/// published (to wake its handle).
pub(crate) trait Slotted: Send + Sync + Sized {
    type Work;
    type Outcome;
    fn slot(&self) -> &JobSlot<Self::Work, Self::Outcome>;
    /// Called right after the outcome was published.
    fn delivered(&self);
}

/// `QUEUED → RUNNING`: the caller becomes the job's one owner.
pub(crate) fn try_start<T: Slotted>(job: &Arc<T>) -> Option<Running<T>> {
    job.slot().transition(QUEUED, RUNNING).then(|| Running(job.clone()))
}

/// `QUEUED → DONE` (cancel, eviction, expiry, shutdown): the caller alone
/// ends the job.
pub(crate) fn try_end_queued<T: Slotted>(job: &Arc<T>) -> Option<Ending<T>> {
    job.slot().transition(QUEUED, DONE).then(|| Ending { job: job.clone(), phase: Phase::Queued })
}

/// The one owner of a running job (it won `QUEUED → RUNNING`, or a push
/// that won it handed this over). Not `Clone`: it is the proof.
pub(crate) struct Running<T: Slotted>(Arc<T>);

impl<T: Slotted> Running<T> {
    /// The job.
    pub fn job(&self) -> &Arc<T> {
        &self.0
    }

    /// Takes the work to run (once; `None` if already taken).
    pub fn take_work(&mut self) -> Option<T::Work> {
        // SAFETY: `self` is the job's one `Running` token: nobody else
        // touches the cell until it gives the token up for an `Ending`.
        self.0.slot().cell.with_mut(|cell| match std::mem::replace(unsafe { &mut *cell }, Cell::Empty) {
            Cell::Work(w) => Some(w),
            other => {
                unsafe { *cell = other };
                None
            }
        })
    }

    /// `RUNNING → DONE`. Cannot fail: only this token's holder moves a
    /// running job.
    pub fn end(self) -> Ending<T> {
        let won = self.0.slot().transition(RUNNING, DONE);
        debug_assert!(won, "a running job was ended by someone other than its owner");
        Ending { job: self.0, phase: Phase::Running }
    }
}

/// The one party that ends a job: it won the move to `DONE`. Consumed by
/// [`Ending::deliver`].
#[must_use = "an Ending must deliver the job's outcome, or its handle never resolves"]
pub(crate) struct Ending<T: Slotted> {
    job: Arc<T>,
    phase: Phase,
}

impl<T: Slotted> Ending<T> {
    pub fn job(&self) -> &Arc<T> {
        &self.job
    }

    /// Where the job was when it ended (for the ledger).
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Writes the outcome, publishes it and tells the job.
    pub fn deliver(self, outcome: T::Outcome) {
        let slot = self.job.slot();
        // SAFETY: `self` is the job's one `Ending` token, consumed here: it
        // won the move to DONE, so it alone may touch the cell now (a
        // `Running` holder gave up its token to get this one, and the
        // handle reads only after `delivered`, set below).
        slot.cell.with_mut(|cell| unsafe { *cell = Cell::Outcome(outcome) });
        slot.delivered.store(true, Ordering::Release);
        self.job.delivered();
    }
}

/// A one-job mailbox: an `Option<Running>` in one atomic pointer, so a
/// hand-off costs one atomic swap on each side instead of a lock and an
/// unlock. The queue guarantees one `put` per listing of the worker.
pub(crate) struct Mailbox<T: Slotted>(AtomicPtr<T>);

impl<T: Slotted> Default for Mailbox<T> {
    fn default() -> Self {
        Mailbox(AtomicPtr::new(std::ptr::null_mut()))
    }
}

impl<T: Slotted> Mailbox<T> {
    /// Puts a running job in (the box is empty: one hand-off per listing).
    pub fn put(&self, job: Running<T>) {
        let old = self.0.swap(Arc::into_raw(job.0).cast_mut(), Ordering::AcqRel);
        debug_assert!(old.is_null(), "a worker was handed two jobs");
        if !old.is_null() {
            // SAFETY: every non-null pointer stored here came from
            // `Arc::into_raw` of a `Running` token and is taken out exactly
            // once (by this swap).
            drop(Running(unsafe { Arc::from_raw(old) }));
        }
    }

    /// Takes the job out, if there is one.
    pub fn take(&self) -> Option<Running<T>> {
        if self.0.load(Ordering::Relaxed).is_null() {
            return None;
        }
        let job = self.0.swap(std::ptr::null_mut(), Ordering::Acquire);
        // SAFETY: as in `put`: from `Arc::into_raw` of a token, taken out once.
        (!job.is_null()).then(|| Running(unsafe { Arc::from_raw(job) }))
    }
}

impl<T: Slotted> Drop for Mailbox<T> {
    fn drop(&mut self) {
        drop(self.take());
    }
}
