//! The bounded job queue of one provider pool.
//!
//! A `VecDeque` behind one short-held mutex. Idle workers wait in stacks
//! kept under the same lock ([`Parking`]): a push hands its job's wake-up to
//! exactly one parked worker, chosen while the lock is held, so no wake-up
//! is lost or wasted on a worker that is already busy. There is one stack
//! per thread stripe, and a push prefers a worker that parked on its own
//! thread: the woken worker then runs on that thread, next to the job it
//! was handed and the submitter that awaits it, instead of dragging both
//! across cores. Since a worker parks only on an empty queue, a push that
//! finds a parked worker hands it the job directly (already `RUNNING`): the
//! job never enters the deque and the worker takes no lock to get it.
//!
//! Two notifiers: `space` wakes `block`-policy submitters when a slot frees;
//! `reaper` wakes the pool's expiry task when a job with an earlier expiry
//! than it is sleeping for arrives.
//!
//! Capacity counts *live* jobs (`live`), not deque entries: a job cancelled
//! or expired while queued leaves a tombstone (its state is `DONE`) that
//! workers skip, so cancelling frees the slot at once without an O(n)
//! removal. Tombstones are compacted away when they outnumber the capacity,
//! so memory stays bounded.
//!
//! Jobs are stamped `enqueued_at` just before the lock is taken (the clock
//! read stays out of the critical section), so the deque is ordered by it
//! up to that gap of nanoseconds, and the job at the front is the next to
//! exceed the queue wait limit up to the same gap. Jobs with a request
//! deadline are also kept in a min-heap by deadline. Together they let the
//! reaper find the next expiry in O(log n).
//!
//! Invariants (under the lock): `live` = number of deque entries whose
//! state is `QUEUED`, and `live <= capacity`; a worker is in the idle
//! stacks at most once, and never while it holds a job; while any worker is
//! parked there, no live job is in the deque.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::job::{JobInner, DONE, QUEUED, RUNNING};
use crate::stats::{thread_stripe, STRIPES};

/// A queued job keyed by its request deadline (min-heap via `Reverse`).
struct ByDeadline(Instant, Arc<JobInner>);

impl PartialEq for ByDeadline {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for ByDeadline {}
impl PartialOrd for ByDeadline {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ByDeadline {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

/// One worker's wake-up cell: it parks on it when the queue is empty, and a
/// push (or the queue closing) unparks it.
#[derive(Default)]
pub(crate) struct Parking {
    unparked: AtomicBool,
    /// In the queue's idle stacks (changed only under the queue lock).
    listed: AtomicBool,
    /// Which stack (changed only under the queue lock).
    stack: AtomicUsize,
    /// A job a push handed over directly (already `RUNNING`); the worker
    /// takes it before anything else when it wakes.
    handed: Mutex<Option<Arc<JobInner>>>,
    waker: AtomicWaker,
}

impl Parking {
    /// The job a push handed to this worker, if any.
    pub fn take_handed(&self) -> Option<Arc<JobInner>> {
        self.handed.lock().take()
    }

    fn unpark(&self) {
        self.unparked.store(true, Release);
        self.waker.wake();
    }

    /// Resolves once the worker was unparked (since it last parked).
    pub fn parked(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.unparked.load(Acquire) {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            if self.unparked.load(Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

pub(crate) struct QueueState {
    deque: VecDeque<Arc<JobInner>>,
    /// Parked workers by the thread stripe they parked on, most recently
    /// parked last (woken first: its cache is warm).
    idle: [Vec<Arc<Parking>>; STRIPES],
    deadlines: BinaryHeap<Reverse<ByDeadline>>,
    pub live: usize,
    /// No more pushes: the pool is shutting down.
    pub closed: bool,
    /// When the reaper will next wake by itself (`None`: it waits for a push).
    reaper_at: Option<Instant>,
}

pub(crate) struct JobQueue {
    state: Mutex<QueueState>,
    pub capacity: usize,
    wait_timeout: Duration,
    /// Signalled when a slot frees or the queue closes (only if someone waits).
    pub space: Notify,
    /// Submitters currently waiting for space.
    pub space_waiters: AtomicUsize,
    /// Signalled when the reaper must recompute its next wake-up.
    pub reaper: Notify,
}

/// What a push found.
pub(crate) enum Push {
    Queued,
    Full,
    Closed,
    /// `drop_oldest`: queued, and this job was evicted to make room.
    Evicted(Arc<JobInner>),
}

/// What a pop found.
pub(crate) enum Popped {
    Job(Arc<JobInner>),
    /// Nothing to run: the worker is now parked (wait on [`Parking::parked`]).
    Empty,
    Closed,
}

/// What a reaper sweep found.
pub(crate) struct Sweep {
    /// When the next queued job expires, if any is queued.
    pub next: Option<Instant>,
    /// The queue is closed and empty: the reaper's work is over.
    pub finished: bool,
}

impl QueueState {
    /// A parked worker to hand a job to: one that parked on this thread if
    /// any, else any. Unlisted on the way out.
    fn take_idle(&mut self) -> Option<Arc<Parking>> {
        let here = thread_stripe();
        let w = match self.idle[here].pop() {
            Some(w) => w,
            None => self.idle.iter_mut().find_map(|s| s.pop())?,
        };
        w.listed.store(false, Relaxed);
        Some(w)
    }

    /// Takes `worker` out of the idle stacks; false if it was not listed.
    fn unlist(&mut self, worker: &Arc<Parking>) -> bool {
        if !worker.listed.swap(false, Relaxed) {
            return false;
        }
        let stack = &mut self.idle[worker.stack.load(Relaxed)];
        stack.retain(|w| !Arc::ptr_eq(w, worker));
        true
    }
}

impl JobQueue {
    pub fn new(capacity: usize, wait_timeout: Duration) -> Self {
        JobQueue {
            state: Mutex::new(QueueState {
                deque: VecDeque::with_capacity(capacity.min(4096)),
                idle: Default::default(),
                deadlines: BinaryHeap::new(),
                live: 0,
                closed: false,
                reaper_at: None,
            }),
            capacity,
            wait_timeout,
            space: Notify::new(),
            space_waiters: AtomicUsize::new(0),
            reaper: Notify::new(),
        }
    }

    fn free_slot(&self) {
        if self.space_waiters.load(Relaxed) > 0 {
            self.space.notify_one();
        }
    }

    /// Queues `job`, stamped as enqueued `at` (now), if there is room (or,
    /// with `evict_oldest`, makes room by evicting the oldest live job,
    /// which the caller must then finish).
    pub fn push(&self, job: &Arc<JobInner>, evict_oldest: bool, at: Instant) -> Push {
        let mut st = self.state.lock();
        if st.closed {
            return Push::Closed;
        }
        job.set_enqueued_at(at);
        // A parked worker means nothing is queued (it parked on an empty
        // queue and every push since woke one worker): hand the job to it
        // directly, already RUNNING, so it never takes the lock to pop it.
        if let Some(worker) = st.take_idle() {
            if job.transition(QUEUED, RUNNING) {
                *worker.handed.lock() = Some(job.clone());
            }
            drop(st);
            worker.unpark();
            return Push::Queued;
        }
        let mut evicted = None;
        if st.live >= self.capacity {
            if !evict_oldest {
                return Push::Full;
            }
            while let Some(old) = st.deque.pop_front() {
                if old.transition(QUEUED, DONE) {
                    st.live -= 1;
                    evicted = Some(old);
                    break;
                }
            }
            if evicted.is_none() {
                // Unreachable while `live` is accurate; refuse rather than overfill.
                return Push::Full;
            }
        }
        st.deque.push_back(job.clone());
        st.live += 1;
        let expiry = job.queue_expiry(self.wait_timeout);
        if let Some(d) = job.deadline {
            st.deadlines.push(Reverse(ByDeadline(d, job.clone())));
            if st.deadlines.len() > 2 * self.capacity + 64 {
                st.deadlines.retain(|Reverse(e)| e.1.state() == QUEUED);
            }
        }
        let wake_reaper = st.reaper_at.is_none_or(|at| expiry < at);
        if wake_reaper {
            st.reaper_at = Some(expiry);
        }
        drop(st);
        if wake_reaper {
            self.reaper.notify_one();
        }
        match evicted {
            Some(old) => Push::Evicted(old),
            None => Push::Queued,
        }
    }

    /// Takes the oldest live job and marks it `RUNNING`; with none to take,
    /// parks `worker` (in the same critical section, so a push cannot slip
    /// between the look and the parking). Jobs found expired on the way are
    /// marked `DONE` and handed back in `expired` for the caller to finish.
    pub fn pop(&self, now: Instant, expired: &mut Vec<Arc<JobInner>>, worker: &Arc<Parking>) -> Popped {
        let mut st = self.state.lock();
        // Handed a job since the caller last looked (hand-offs happen under
        // this lock, so none can slip in after this check).
        if let Some(job) = worker.take_handed() {
            return Popped::Job(job);
        }
        let mut popped = None;
        while let Some(job) = st.deque.pop_front() {
            if job.state() != QUEUED {
                continue; // tombstone of a cancelled/expired job
            }
            if now >= job.queue_expiry(self.wait_timeout) {
                if job.transition(QUEUED, DONE) {
                    st.live -= 1;
                    expired.push(job);
                }
                continue;
            }
            if job.transition(QUEUED, RUNNING) {
                st.live -= 1;
                popped = Some(job);
                break;
            }
        }
        let drained = st.closed && st.live == 0;
        if popped.is_some() {
            // Woken by a stale unpark while still listed: a busy worker must
            // not be handed the next job's wake-up.
            st.unlist(worker);
        } else if !drained {
            worker.unparked.store(false, Relaxed);
            if !worker.listed.swap(true, Relaxed) {
                let here = thread_stripe();
                worker.stack.store(here, Relaxed);
                st.idle[here].push(worker.clone());
            }
        }
        drop(st);
        for _ in 0..expired.len() + usize::from(popped.is_some()) {
            self.free_slot();
        }
        if drained {
            // The reaper exits once a closed queue is empty.
            self.reaper.notify_one();
        }
        match popped {
            Some(job) => Popped::Job(job),
            None if drained => Popped::Closed,
            None => Popped::Empty,
        }
    }

    /// Ends every queued job whose wait or deadline ran out by `now` (marked
    /// `DONE`, handed back in `expired`), and says when the next one expires.
    pub fn sweep(&self, now: Instant, expired: &mut Vec<Arc<JobInner>>) -> Sweep {
        let mut st = self.state.lock();
        // Front of the deque: ordered by enqueued_at, so by wait expiry.
        while let Some(front) = st.deque.front() {
            if front.state() != QUEUED {
                st.deque.pop_front();
                continue;
            }
            if now < front.enqueued_at() + self.wait_timeout {
                break;
            }
            if let Some(job) = st.deque.pop_front() {
                if job.transition(QUEUED, DONE) {
                    st.live -= 1;
                    expired.push(job);
                }
            }
        }
        // Request deadlines, earliest first.
        while let Some(Reverse(top)) = st.deadlines.peek() {
            if top.1.state() != QUEUED {
                st.deadlines.pop();
                continue;
            }
            if now < top.0 {
                break;
            }
            if let Some(Reverse(ByDeadline(_, job))) = st.deadlines.pop() {
                if job.transition(QUEUED, DONE) {
                    st.live -= 1;
                    expired.push(job);
                }
            }
        }
        let by_wait = st.deque.front().map(|j| j.enqueued_at() + self.wait_timeout);
        let by_deadline = st.deadlines.peek().map(|Reverse(e)| e.0);
        let next = match (by_wait, by_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        st.reaper_at = next;
        let finished = st.closed && st.live == 0;
        drop(st);
        for _ in 0..expired.len() {
            self.free_slot();
        }
        Sweep { next, finished }
    }

    /// Moves a queued job to `DONE` and frees its slot; false if it was no
    /// longer queued.
    pub fn remove(&self, job: &JobInner) -> bool {
        let mut st = self.state.lock();
        if !job.transition(QUEUED, DONE) {
            return false;
        }
        st.live -= 1;
        if st.deque.len() > 2 * self.capacity + 64 {
            st.deque.retain(|j| j.state() == QUEUED);
        }
        let drained = st.closed && st.live == 0;
        drop(st);
        self.free_slot();
        if drained {
            self.reaper.notify_one();
        }
        true
    }

    /// Takes a parked worker out of the idle stack (to retire it); false if
    /// a push already unparked it, in which case it has a job to look for.
    pub fn unlist(&self, worker: &Arc<Parking>) -> bool {
        self.state.lock().unlist(worker)
    }

    /// Stops accepting pushes and wakes every waiter so it re-checks.
    pub fn close(&self) {
        let idle = {
            let mut st = self.state.lock();
            st.closed = true;
            let mut all = Vec::new();
            for stack in &mut st.idle {
                all.append(stack);
            }
            for w in &all {
                w.listed.store(false, Relaxed);
            }
            all
        };
        for w in idle {
            w.unpark();
        }
        self.space.notify_waiters();
        self.reaper.notify_one();
    }

    /// Takes every live job out (marking each `DONE`), for a hard shutdown.
    pub fn drain_all(&self) -> Vec<Arc<JobInner>> {
        let mut st = self.state.lock();
        let mut out = Vec::with_capacity(st.live);
        while let Some(job) = st.deque.pop_front() {
            if job.transition(QUEUED, DONE) {
                out.push(job);
            }
        }
        st.deadlines.clear();
        st.live = 0;
        drop(st);
        self.space.notify_waiters();
        out
    }

    /// Live queued jobs.
    pub fn depth(&self) -> usize {
        self.state.lock().live
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }
}
