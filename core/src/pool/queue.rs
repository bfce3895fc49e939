//! The bounded job queue of one provider pool.
//!
//! A `VecDeque` behind one short-held mutex, plus three notifiers: `work`
//! wakes workers when a job arrives, `space` wakes `block`-policy submitters
//! when a slot frees, `reaper` wakes the pool's expiry task when a job with
//! an earlier expiry than it is sleeping for arrives.
//!
//! Capacity counts *live* jobs (`live`), not deque entries: a job cancelled
//! or expired while queued leaves a tombstone (its state is `DONE`) that
//! workers skip, so cancelling frees the slot at once without an O(n)
//! removal. Tombstones are compacted away when they outnumber the capacity,
//! so memory stays bounded.
//!
//! Jobs get their `enqueued_at` under the lock, so the deque is ordered by
//! it and the job at the front is always the next to exceed the queue wait
//! limit. Jobs with a request deadline are also kept in a min-heap by
//! deadline. Together they let the reaper find the next expiry in O(log n).
//!
//! Invariant (under the lock): `live` = number of deque entries whose state
//! is `QUEUED`, and `live <= capacity`.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::job::{JobInner, DONE, QUEUED, RUNNING};

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

pub(crate) struct QueueState {
    deque: VecDeque<Arc<JobInner>>,
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
    /// Signalled when a job is pushed or the queue closes.
    pub work: Notify,
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

impl JobQueue {
    pub fn new(capacity: usize, wait_timeout: Duration) -> Self {
        JobQueue {
            state: Mutex::new(QueueState {
                deque: VecDeque::with_capacity(capacity.min(4096)),
                deadlines: BinaryHeap::new(),
                live: 0,
                closed: false,
                reaper_at: None,
            }),
            capacity,
            wait_timeout,
            work: Notify::new(),
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

    /// Queues `job` if there is room (or, with `evict_oldest`, makes room by
    /// evicting the oldest live job, which the caller must then finish).
    pub fn push(&self, job: &Arc<JobInner>, evict_oldest: bool) -> Push {
        let mut st = self.state.lock();
        if st.closed {
            return Push::Closed;
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
        // Stamped under the lock, so the deque is ordered by `enqueued_at`.
        job.set_enqueued_at(Instant::now());
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
        self.work.notify_one();
        if wake_reaper {
            self.reaper.notify_one();
        }
        match evicted {
            Some(old) => Push::Evicted(old),
            None => Push::Queued,
        }
    }

    /// Takes the oldest live job and marks it `RUNNING`. Jobs found expired
    /// on the way are marked `DONE` and handed back in `expired` for the
    /// caller to finish.
    pub fn pop(&self, now: Instant, expired: &mut Vec<Arc<JobInner>>) -> Popped {
        let mut st = self.state.lock();
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

    /// Stops accepting pushes and wakes every waiter so it re-checks.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.work.notify_waiters();
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
