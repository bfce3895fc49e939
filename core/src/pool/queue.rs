//! The bounded job queue of one provider pool.
//!
//! A `VecDeque` behind one short-held mutex, plus two notifiers: `work` wakes
//! workers when a job arrives, `space` wakes `block`-policy submitters when a
//! slot frees. Capacity counts *live* jobs (`live`), not deque entries: a
//! job cancelled or expired while queued leaves a tombstone (its state is
//! `DONE`) that workers skip, so cancelling frees the slot at once without an
//! O(n) removal. Tombstones are compacted away when they outnumber the
//! capacity, so the deque's memory stays bounded.
//!
//! Invariant (under the lock): `live` = number of entries whose state is
//! `QUEUED`, and `live <= capacity`.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::job::{JobInner, DONE, QUEUED, RUNNING};

pub(crate) struct QueueState {
    deque: VecDeque<Arc<JobInner>>,
    pub live: usize,
    /// No more pushes: the pool is shutting down.
    pub closed: bool,
}

pub(crate) struct JobQueue {
    pub state: Mutex<QueueState>,
    pub capacity: usize,
    /// Signalled when a job is pushed or the queue closes.
    pub work: Notify,
    /// Signalled when a slot frees or the queue closes.
    pub space: Notify,
}

/// What a push under a full queue found.
pub(crate) enum Push {
    Queued,
    Full,
    Closed,
    /// `drop_oldest`: queued, and this job was evicted to make room.
    Evicted(Arc<JobInner>),
}

impl JobQueue {
    pub fn new(capacity: usize) -> Self {
        JobQueue {
            state: Mutex::new(QueueState {
                deque: VecDeque::with_capacity(capacity.min(4096)),
                live: 0,
                closed: false,
            }),
            capacity,
            work: Notify::new(),
            space: Notify::new(),
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
        st.deque.push_back(job.clone());
        st.live += 1;
        drop(st);
        self.work.notify_one();
        match evicted {
            Some(old) => Push::Evicted(old),
            None => Push::Queued,
        }
    }

    /// Takes the oldest live job and marks it `RUNNING`, or returns `None`
    /// when the queue is empty. Expired jobs are handed back separately
    /// through `expired` (already marked `DONE`) for the caller to finish.
    pub fn pop(&self, is_expired: impl Fn(&JobInner) -> bool, expired: &mut Vec<Arc<JobInner>>) -> Popped {
        let mut st = self.state.lock();
        while let Some(job) = st.deque.pop_front() {
            if job.state() != QUEUED {
                continue; // tombstone of a cancelled/expired job
            }
            if is_expired(&job) {
                if job.transition(QUEUED, DONE) {
                    st.live -= 1;
                    expired.push(job);
                }
                continue;
            }
            if job.transition(QUEUED, RUNNING) {
                st.live -= 1;
                drop(st);
                self.space.notify_one();
                return Popped::Job(job);
            }
        }
        if st.closed {
            Popped::Closed
        } else {
            Popped::Empty
        }
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
        drop(st);
        self.space.notify_one();
        true
    }

    /// Stops accepting pushes and wakes every waiter so it re-checks.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.work.notify_waiters();
        self.space.notify_waiters();
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

pub(crate) enum Popped {
    Job(Arc<JobInner>),
    Empty,
    Closed,
}
