//! The bounded job queue of one provider pool, and where its idle workers
//! park.
//!
//! Jobs wait in a `VecDeque` behind one short-held mutex. Idle workers wait
//! in per-thread-stripe stacks ([`IdleStripe`]), each behind its own small
//! lock on its own cache line, so the common hand-off touches no line that
//! the other cores write:
//! - a push first takes a parked worker (one that parked on the pusher's own
//!   thread if any, the most recent first: its cache is warm) and hands it
//!   the job directly, already `RUNNING`. The job never enters the deque and
//!   neither side takes the queue lock. Only with no worker parked does the
//!   push queue the job under the lock;
//! - a worker that finished a job takes the next one from the deque if the
//!   lock-free `backlog` says there is one, else lists itself in its
//!   thread's stripe and parks.
//!
//! No wake-up is lost: a worker lists itself (a SeqCst store of its stripe's
//! `count`) and then re-reads `backlog`; a push that queues a job raises
//! `backlog` (SeqCst) and then re-reads every stripe's `count`. In the single
//! order of SeqCst operations one of the two comes second and sees the
//! other: the worker unlists itself and pops, or the pusher takes the
//! worker from its stripe and wakes it. Exactly one of them can take the
//! worker off the stack (the stripe lock decides), so a worker is woken at
//! most once per listing. A worker whose listing was taken by someone else
//! (a push or `close`) waits for the wake-up that is then on its way, and
//! only then looks for work, so it can never be listed while a job is
//! being handed to it.
//!
//! With `limits` (docs/architecture.md §10) a push never hands a job
//! straight to a worker: every job is queued, and `pop` asks the pool's
//! gate before it starts the job at the front. A job that must wait for
//! capacity stays at the front (still `QUEUED`, still counted in `live`),
//! and the worker gets `Popped::Throttled(until)`: it sleeps until then
//! without listing itself, so no wake-up protocol is involved. A job whose
//! wait would outlast its expiry is ended there, RATE_LIMITED.
//!
//! With the Redis limits store, the gate is asked outside the lock: `pop`
//! marks the queue `admitting` and hands the front jobs (still queued,
//! still in the deque; as many as there are workers waiting to start them,
//! plus one, up to `Gate::MAX_BATCH`) to one worker as `Popped::Admit`;
//! the pool's other workers get `Popped::AdmissionBusy` and wait on
//! `admission`. The store takes the jobs in order while they fit, in one
//! call. The answers come back through [`JobQueue::admitted`], under the
//! lock: the first admitted job starts for the asking worker (its entry
//! becomes a tombstone), the other admitted ones stay queued as `claimed`
//! for the waiting workers to start at once; the first job not admitted
//! is held until its wait (`hold`), or ends RATE_LIMITED.
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
//! Invariants: under the queue lock, `live` = number of deque entries whose
//! state is `QUEUED`, `live <= capacity`, and `backlog == live`; under a
//! stripe's lock, `count` = the stack's length and each listed worker has
//! `listed` set; a worker is listed at most once, and never while it holds
//! a job or a hand-off to it is in flight.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::future::Future;
use std::sync::atomic::{
    AtomicBool, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release, Ordering::SeqCst,
};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::clock::Nanos;
use crate::stats::{thread_stripe, STRIPES};

use super::job::{Ending, JobInner, Running, QUEUED};
use super::ledger::Ledger;
use super::slot::Mailbox;
use crate::limits::gate::{Admit, Gate};

/// A queued job keyed by its request deadline (min-heap via `Reverse`).
struct ByDeadline(Nanos, Arc<JobInner>);

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

/// One worker's wake-up cell: it parks on it when there is nothing to run,
/// and whoever takes it off its idle stack (a push, or the queue closing)
/// unparks it.
#[derive(Default)]
pub(crate) struct Parking {
    unparked: AtomicBool,
    /// On an idle stack (changed only under that stripe's lock).
    listed: AtomicBool,
    /// Which stripe's stack (written only by the worker itself, under the
    /// stripe's lock, while it lists itself).
    stripe: AtomicUsize,
    /// A job a push handed over directly (already `RUNNING`); the worker
    /// takes it before anything else when it wakes.
    handed: Mailbox<JobInner>,
    waker: AtomicWaker,
}

impl Parking {
    /// The job a push handed to this worker, if any.
    fn take_handed(&self) -> Option<Running> {
        self.handed.take()
    }

    fn unpark(&self) {
        self.unparked.store(true, Release);
        self.waker.wake();
    }

    /// Resolves once the worker was unparked (since it last listed itself).
    /// A worker whose listing was taken must await this before looking for
    /// work again: the hand-off is on its way.
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

/// The workers that parked on one thread stripe, most recent last (woken
/// first). Alone on its cache line(s): pushes and parks on one thread stay
/// off the other cores' lines.
#[repr(align(128))]
#[derive(Default)]
struct IdleStripe {
    workers: Mutex<Vec<Arc<Parking>>>,
    /// `workers.len()`, readable without the lock (SeqCst: see the module
    /// doc on lost wake-ups).
    count: AtomicUsize,
}

pub(crate) struct QueueState {
    deque: VecDeque<Arc<JobInner>>,
    deadlines: BinaryHeap<Reverse<ByDeadline>>,
    pub live: usize,
    /// No more pushes: the pool is shutting down.
    pub closed: bool,
    /// When the reaper will next wake by itself (`None`: it waits for a push).
    reaper_at: Option<Nanos>,
    /// With the Redis store: a worker is asking it about the front job.
    admitting: bool,
    /// With the Redis store: the front job (by id) waits until then.
    hold: Option<(u64, Nanos)>,
}

pub(crate) struct JobQueue {
    state: Mutex<QueueState>,
    /// Parked workers, by the thread stripe they parked on.
    idle: [IdleStripe; STRIPES],
    /// `live`, readable without the lock (SeqCst: see the module doc).
    backlog: AtomicUsize,
    /// `closed`, readable without the lock.
    closed: AtomicBool,
    pub capacity: usize,
    wait_timeout: Nanos,
    /// Signalled when a slot frees or the queue closes (only if someone waits).
    pub space: Notify,
    /// Submitters currently waiting for space.
    pub space_waiters: AtomicUsize,
    /// Signalled when the reaper must recompute its next wake-up.
    pub reaper: Notify,
    /// The pool's `limits`, asked before a job at the front starts (with
    /// limits, pushes never hand a job straight to a worker).
    gate: Option<Arc<Gate>>,
    /// `admitting`, readable without the lock, and its end's signal.
    admitting: AtomicBool,
    pub admission: Notify,
    /// Workers waiting on `admission` (how many jobs one ask may admit).
    pub admission_waiters: AtomicUsize,
}

/// What a push found.
pub(crate) enum Push {
    Queued,
    Full,
    Closed,
    /// `drop_oldest`: queued, and this job was evicted to make room.
    Evicted(Ending),
}

/// What a worker's look for its next job found.
pub(crate) enum Popped {
    Job(Running),
    /// Nothing to run: the worker is parked (await [`Parking::parked`]).
    Empty,
    Closed,
    /// The job at the front waits for capacity until this moment; the
    /// worker is not parked (it sleeps until then and looks again).
    Throttled(Nanos),
    /// With the Redis store: ask it about these jobs (the front ones, in
    /// order, still queued) with [`Gate::admit_fleet_batch`], then hand
    /// the answers to [`JobQueue::admitted`].
    Admit(Vec<Arc<JobInner>>),
    /// With the Redis store: another worker is asking about the front job;
    /// wait for [`JobQueue::admission`] (see [`JobQueue::admission_pending`];
    /// each answer wakes one waiter, `close` all).
    AdmissionBusy,
    /// Look again at once.
    Again,
}

/// What [`JobQueue::pop`] found.
enum Pop {
    Job(Running),
    Throttled(Nanos),
    Admit(Vec<Arc<JobInner>>),
    Busy,
    Drained,
    Nothing,
}

/// A queued job the worker's look ended: expired, or refused by the limits.
pub(crate) enum Ended {
    Expired(Ending),
    Limited(Ending, crate::error::Error),
}

/// What a reaper sweep found.
pub(crate) struct Sweep {
    /// When the next queued job expires, if any is queued.
    pub next: Option<Nanos>,
    /// The queue is closed and empty: the reaper's work is over.
    pub finished: bool,
}

impl JobQueue {
    pub fn new(capacity: usize, wait_timeout: Duration, gate: Option<Arc<Gate>>) -> Self {
        JobQueue {
            state: Mutex::new(QueueState {
                deque: VecDeque::with_capacity(capacity.min(4096)),
                deadlines: BinaryHeap::new(),
                live: 0,
                closed: false,
                reaper_at: None,
                admitting: false,
                hold: None,
            }),
            idle: Default::default(),
            backlog: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            capacity,
            wait_timeout: crate::clock::nanos_of(wait_timeout),
            space: Notify::new(),
            space_waiters: AtomicUsize::new(0),
            reaper: Notify::new(),
            gate,
            admitting: AtomicBool::new(false),
            admission: Notify::new(),
            admission_waiters: AtomicUsize::new(0),
        }
    }

    /// Gives back the claims a push took for a job that then did not enter
    /// the queue (closed or full meanwhile).
    fn unclaim(&self, job: &JobInner) {
        if let (Some(gate), Some(claims), true) = (&self.gate, job.claims(), job.claimed()) {
            gate.refund(claims, job.limit_key());
        }
    }

    fn free_slot(&self) {
        if self.space_waiters.load(Relaxed) > 0 {
            self.space.notify_one();
        }
    }

    /// Takes a parked worker off its stack: one that parked on this thread
    /// if any, else any. The caller must unpark it.
    fn take_idle(&self) -> Option<Arc<Parking>> {
        let here = thread_stripe();
        for i in 0..STRIPES {
            let stripe = &self.idle[(here + i) % STRIPES];
            if stripe.count.load(SeqCst) == 0 {
                continue;
            }
            let mut workers = stripe.workers.lock();
            if let Some(w) = workers.pop() {
                stripe.count.store(workers.len(), Release);
                w.listed.store(false, Relaxed);
                return Some(w);
            }
        }
        None
    }

    /// Puts `worker` on this thread's idle stack.
    fn list(&self, worker: &Arc<Parking>) {
        let here = thread_stripe();
        let stripe = &self.idle[here];
        let mut workers = stripe.workers.lock();
        worker.listed.store(true, Relaxed);
        worker.stripe.store(here, Relaxed);
        workers.push(worker.clone());
        stripe.count.store(workers.len(), SeqCst);
    }

    /// Takes `worker` off its idle stack (to look for work itself, or to
    /// retire); false if a push or `close` took it first, in which case its
    /// wake-up is on the way and it must await [`Parking::parked`].
    pub fn unlist(&self, worker: &Arc<Parking>) -> bool {
        let stripe = &self.idle[worker.stripe.load(Relaxed)];
        let mut workers = stripe.workers.lock();
        if !worker.listed.load(Relaxed) {
            return false;
        }
        worker.listed.store(false, Relaxed);
        if let Some(i) = workers.iter().rposition(|w| Arc::ptr_eq(w, worker)) {
            workers.remove(i);
        }
        stripe.count.store(workers.len(), Release);
        true
    }

    /// Queues `job`, stamped as enqueued `at` (now), if there is room (or,
    /// with `evict_oldest`, makes room by evicting the oldest live job,
    /// which the caller must then finish). With a worker parked, the job is
    /// handed to it instead and never queued.
    /// The job is counted as accepted in `ledger` just before a worker can
    /// see it (so its start is always counted after its entry).
    pub fn push(&self, job: &Arc<JobInner>, evict_oldest: bool, at: Nanos, ledger: &Ledger) -> Push {
        job.set_enqueued(at);
        if self.closed.load(Acquire) {
            return Push::Closed;
        }
        // A push that races `close` may still hand its job to a worker that
        // `close` has not unparked yet: that worker runs it before it exits.
        // With limits, a job is handed straight to a worker only if the
        // queue is empty and its claims fit now (taken here, so the gate
        // lets it through later too); otherwise it queues and waits its turn.
        let through = match (&self.gate, job.claims()) {
            (Some(gate), Some(claims)) => {
                let taken = if self.backlog.load(SeqCst) == 0 { gate.try_take(claims, at) } else { None };
                if let Some(key) = taken {
                    job.set_limit_key(key);
                    job.set_claimed();
                }
                taken.is_some()
            }
            _ => true,
        };
        if through {
            if let Some(worker) = self.take_idle() {
                // The job is not visible to anyone else yet: this cannot fail.
                if let Some(running) = job.try_start() {
                    ledger.accept();
                    worker.handed.put(running);
                }
                worker.unpark();
                return Push::Queued;
            }
        }
        let mut st = self.state.lock();
        if st.closed {
            drop(st);
            self.unclaim(job);
            return Push::Closed;
        }
        let mut evicted = None;
        if st.live >= self.capacity {
            if !evict_oldest {
                drop(st);
                self.unclaim(job);
                return Push::Full;
            }
            while let Some(old) = st.deque.pop_front() {
                if let Some(ending) = old.try_end_queued() {
                    st.live -= 1;
                    evicted = Some(ending);
                    break;
                }
            }
            if evicted.is_none() {
                // Unreachable while `live` is accurate; refuse rather than overfill.
                drop(st);
                self.unclaim(job);
                return Push::Full;
            }
        }
        ledger.accept();
        st.deque.push_back(job.clone());
        st.live += 1;
        self.backlog.store(st.live, SeqCst);
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
        // A worker may have parked since `take_idle` looked; it has either
        // seen the raised backlog or is seen here (module doc).
        if let Some(worker) = self.take_idle() {
            worker.unpark();
        }
        if wake_reaper {
            self.reaper.notify_one();
        }
        match evicted {
            Some(old) => Push::Evicted(old),
            None => Push::Queued,
        }
    }

    /// The next job for `worker`, which is not listed: one handed to it,
    /// else the oldest queued one (marked `RUNNING`); with none, lists the
    /// worker as parked. Jobs found expired on the way are marked `DONE`
    /// and handed back in `expired` for the caller to finish. Also returns
    /// the time the clock was last read (when the job started, or when the
    /// expired ones were found); the clock is not read just to park.
    pub fn next_job(&self, expired: &mut Vec<Ended>, worker: &Arc<Parking>) -> (Popped, Nanos) {
        let mut now = 0;
        loop {
            if let Some(job) = worker.take_handed() {
                return (Popped::Job(job), crate::clock::now());
            }
            if self.backlog.load(SeqCst) > 0 || self.closed.load(SeqCst) {
                now = crate::clock::now();
                match self.pop(now, expired) {
                    Pop::Job(job) => return (Popped::Job(job), now),
                    Pop::Throttled(until) => return (Popped::Throttled(until), now),
                    Pop::Admit(job) => return (Popped::Admit(job), now),
                    Pop::Busy => return (Popped::AdmissionBusy, now),
                    Pop::Drained => return (Popped::Closed, now),
                    Pop::Nothing => {}
                }
            }
            worker.unparked.store(false, Relaxed);
            self.list(worker);
            // A push may have queued a job since the look above without
            // seeing this worker listed (module doc): look again.
            if self.backlog.load(SeqCst) == 0 && !self.closed.load(SeqCst) {
                return (Popped::Empty, now);
            }
            if !self.unlist(worker) {
                return (Popped::Empty, now); // taken by a push or close: wake-up on its way
            }
        }
    }

    /// Takes the oldest live job and marks it `RUNNING` (if the pool's
    /// limits admit it), ending expired and rate-limited ones on the way.
    fn pop(&self, now: Nanos, expired: &mut Vec<Ended>) -> Pop {
        let mut st = self.state.lock();
        let mut popped = None;
        let mut throttled = None;
        let mut asked = None;
        let ended_before = expired.len();
        while let Some(job) = st.deque.pop_front() {
            if job.state() != QUEUED {
                continue; // tombstone of a cancelled/expired job
            }
            let expiry = job.queue_expiry(self.wait_timeout);
            if now >= expiry {
                if let Some(ending) = job.try_end_queued() {
                    st.live -= 1;
                    expired.push(Ended::Expired(ending));
                }
                continue;
            }
            if let (Some(gate), Some(claims), false) = (&self.gate, job.claims(), job.claimed()) {
                if gate.is_fleet() {
                    // The store is asked outside the lock; the job stays
                    // first in line, queued, meanwhile.
                    let held = st.hold.filter(|&(id, until)| id == job.id && now < until).map(|h| h.1);
                    st.deque.push_front(job.clone());
                    if st.admitting {
                        asked = Some(None);
                    } else if let Some(until) = held {
                        throttled = Some(until);
                    } else {
                        st.admitting = true;
                        self.admitting.store(true, SeqCst);
                        // With several workers waiting to run what the
                        // store admits, the front jobs go in one call: as
                        // many as there are workers to start them at once
                        // (an admitted job must not wait for a worker).
                        let room = if gate.batches() { 1 + self.admission_waiters.load(SeqCst) } else { 1 };
                        let mut batch = Vec::with_capacity(room.min(Gate::MAX_BATCH));
                        batch.push(job);
                        for next in st.deque.iter().skip(1) {
                            if batch.len() >= room.min(Gate::MAX_BATCH) {
                                break;
                            }
                            if next.state() == QUEUED && !next.claimed() && now < next.queue_expiry(self.wait_timeout) {
                                batch.push(next.clone());
                            }
                        }
                        asked = Some(Some(batch));
                    }
                    break;
                }
                match gate.admit(claims, now, expiry) {
                    Admit::Go(key) => job.set_limit_key(key),
                    Admit::Wait(until) => {
                        // It stays first in line; the worker comes back then.
                        st.deque.push_front(job);
                        throttled = Some(until);
                        break;
                    }
                    Admit::Refuse(err) => {
                        if let Some(ending) = job.try_end_queued() {
                            st.live -= 1;
                            expired.push(Ended::Limited(ending, err));
                        }
                        continue;
                    }
                }
            }
            match job.try_start() {
                Some(running) => {
                    st.live -= 1;
                    popped = Some(running);
                    break;
                }
                // (Under the queue lock a queued job cannot move otherwise.)
                None => {
                    // Taken just above: give them back. (Taken at submit,
                    // `claimed`: whoever ended the job gives them back in
                    // `finish`.)
                    if let (Some(gate), Some(claims), false) = (&self.gate, job.claims(), job.claimed()) {
                        gate.refund(claims, job.limit_key());
                    }
                }
            }
        }
        self.backlog.store(st.live, SeqCst);
        let drained = st.closed && st.live == 0;
        drop(st);
        for _ in 0..(expired.len() - ended_before) + usize::from(popped.is_some()) {
            self.free_slot();
        }
        if drained {
            // The reaper exits once a closed queue is empty.
            self.reaper.notify_one();
        }
        match (popped, throttled) {
            (Some(job), _) => Pop::Job(job),
            (None, Some(until)) => Pop::Throttled(until),
            (None, None) if asked.is_some() => match asked.flatten() {
                Some(jobs) => Pop::Admit(jobs),
                None => Pop::Busy,
            },
            (None, None) if drained => Pop::Drained,
            (None, None) => Pop::Nothing,
        }
    }

    /// When `job`'s wait in the queue ends (its queue wait limit or request
    /// deadline).
    pub fn expiry_of(&self, job: &JobInner) -> Nanos {
        job.queue_expiry(self.wait_timeout)
    }

    /// Whether a worker is asking the Redis store about the front job (a
    /// waiter enables [`JobQueue::admission`]'s `notified()` first, then
    /// checks this).
    pub fn admission_pending(&self) -> bool {
        self.admitting.load(SeqCst)
    }

    /// Ends the ask [`Popped::Admit`] handed out, with the store's answers
    /// (one per job asked about, in order, `Go` until the first that is
    /// not; jobs past the answers were not asked). The first admitted job
    /// still queued starts for this worker; the other admitted ones stay
    /// queued, `claimed`, for the waiting workers to start (a job ended
    /// meanwhile gives its claims back). The first job not admitted is held
    /// until its wait, or ended RATE_LIMITED (in `expired`).
    pub fn admitted(&self, jobs: &[Arc<JobInner>], answers: Vec<Admit>, expired: &mut Vec<Ended>) -> Popped {
        let mut st = self.state.lock();
        st.admitting = false;
        self.admitting.store(false, SeqCst);
        let mut freed = 0;
        let mut refunds = Vec::new();
        let mut started = None;
        let mut claimed = false;
        let mut throttled = None;
        for (job, answer) in jobs.iter().zip(answers) {
            match answer {
                Admit::Go(key) => {
                    job.set_limit_key(key);
                    if started.is_none() {
                        // (Its deque entry is a tombstone now.)
                        match job.try_start() {
                            Some(running) => {
                                st.live -= 1;
                                freed += 1;
                                started = Some(running);
                            }
                            // Cancelled, expired or evicted meanwhile.
                            None => refunds.push((job.clone(), key)),
                        }
                    } else if job.state() == QUEUED {
                        job.set_claimed();
                        claimed = true;
                    } else {
                        refunds.push((job.clone(), key));
                    }
                }
                Admit::Wait(until) => {
                    st.hold = Some((job.id, until));
                    throttled = Some(until);
                }
                Admit::Refuse(err) => {
                    if let Some(ending) = job.try_end_queued() {
                        st.live -= 1;
                        freed += 1;
                        expired.push(Ended::Limited(ending, err));
                    }
                }
            }
        }
        self.backlog.store(st.live, SeqCst);
        let drained = st.closed && st.live == 0;
        drop(st);
        for (job, key) in refunds {
            if let (Some(gate), Some(claims)) = (&self.gate, job.claims()) {
                gate.refund(claims, key);
            }
        }
        for _ in 0..freed {
            self.free_slot();
        }
        if drained {
            self.reaper.notify_one();
        }
        if claimed {
            // The jobs admitted for them.
            self.admission.notify_waiters();
        } else {
            // One waiter is the next to ask (not all of them: that would
            // wake every worker per round trip); `close` wakes the rest.
            self.admission.notify_one();
        }
        match (started, throttled) {
            (Some(running), _) => Popped::Job(running),
            (None, Some(until)) => Popped::Throttled(until),
            (None, None) => Popped::Again,
        }
    }

    /// Ends every queued job whose wait or deadline ran out by `now` (marked
    /// `DONE`, handed back in `expired`), and says when the next one expires.
    pub fn sweep(&self, now: Nanos, expired: &mut Vec<Ending>) -> Sweep {
        let mut st = self.state.lock();
        // Front of the deque: ordered by enqueued_at, so by wait expiry.
        while let Some(front) = st.deque.front() {
            if front.state() != QUEUED {
                st.deque.pop_front();
                continue;
            }
            if now < front.enqueued().saturating_add(self.wait_timeout) {
                break;
            }
            if let Some(ending) = st.deque.pop_front().and_then(|job| job.try_end_queued()) {
                st.live -= 1;
                expired.push(ending);
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
            if let Some(ending) = st.deadlines.pop().and_then(|Reverse(ByDeadline(_, job))| job.try_end_queued()) {
                st.live -= 1;
                expired.push(ending);
            }
        }
        let by_wait = st.deque.front().map(|j| j.enqueued().saturating_add(self.wait_timeout));
        let by_deadline = st.deadlines.peek().map(|Reverse(e)| e.0);
        let next = match (by_wait, by_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        st.reaper_at = next;
        self.backlog.store(st.live, SeqCst);
        let finished = st.closed && st.live == 0;
        drop(st);
        for _ in 0..expired.len() {
            self.free_slot();
        }
        Sweep { next, finished }
    }

    /// Moves a queued job to `DONE` and frees its slot; `None` if it was no
    /// longer queued.
    pub fn remove(&self, job: &Arc<JobInner>) -> Option<Ending> {
        let mut st = self.state.lock();
        let ending = job.try_end_queued()?;
        st.live -= 1;
        self.backlog.store(st.live, SeqCst);
        if st.deque.len() > 2 * self.capacity + 64 {
            st.deque.retain(|j| j.state() == QUEUED);
        }
        let drained = st.closed && st.live == 0;
        drop(st);
        self.free_slot();
        if drained {
            self.reaper.notify_one();
        }
        Some(ending)
    }

    /// Stops accepting pushes and wakes every parked worker so it re-checks
    /// (and every `block` submitter and the reaper).
    pub fn close(&self) {
        {
            let mut st = self.state.lock();
            st.closed = true;
            self.closed.store(true, SeqCst);
        }
        // A worker listing itself after this sweep of its stripe sees
        // `closed` when it looks again (the stripe lock orders the two).
        for stripe in &self.idle {
            let parked = {
                let mut workers = stripe.workers.lock();
                stripe.count.store(0, Release);
                for w in workers.iter() {
                    w.listed.store(false, Relaxed);
                }
                std::mem::take(&mut *workers)
            };
            for w in parked {
                w.unpark();
            }
        }
        self.space.notify_waiters();
        self.reaper.notify_one();
        self.admission.notify_waiters();
    }

    /// Takes every live job out (marking each `DONE`), for a hard shutdown.
    pub fn drain_all(&self) -> Vec<Ending> {
        let mut st = self.state.lock();
        let mut out = Vec::with_capacity(st.live);
        while let Some(job) = st.deque.pop_front() {
            out.extend(job.try_end_queued());
        }
        st.deadlines.clear();
        st.live = 0;
        self.backlog.store(0, SeqCst);
        drop(st);
        self.space.notify_waiters();
        out
    }

    /// Live queued jobs.
    pub fn depth(&self) -> usize {
        self.backlog.load(Relaxed)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Acquire)
    }
}
