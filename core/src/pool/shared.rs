//! [`SharedJob`]: one job handle that many waiters hold at once, the handle
//! every binding wraps (a Python `Job`, a C `bifrost_job`, a Node call).
//!
//! A [`Job`] is a future with one owner and one waker. A binding's handle is
//! shared: a Python `Job` can be awaited by several tasks and waited on by
//! `result()` in a thread while another thread cancels it; a C handle can be
//! waited on from several threads. `SharedJob` gives all of them one answer:
//!
//! - The core job sits behind a mutex that is held only to poll or cancel
//!   it, never while anyone sleeps, so a cancel is never stuck behind a wait.
//! - The job is always polled with one fan-out waker; every waiter (an async
//!   task or a parked thread) registers its own waker in the fan-out first
//!   and then polls. The job's completion wakes the fan-out, which wakes
//!   every waiter, so concurrent waiters never steal each other's wake-up.
//! - Once finished, the outcome stays: every later wait, poll or `outcome`
//!   sees the same one (cloned, or borrowed with [`SharedJob::with_outcome`]).
//! - Nothing needs to poll a `SharedJob` for its job to progress: the job
//!   runs on its pool's workers and its fallbacks on their own task.
//! - When the last clone is dropped before the job finished, the job is
//!   cancelled (as dropping a [`Job`] does): nobody can learn its outcome.
//!
//! So the three bindings agree on cancel results (`cancel` is `Job::cancel`:
//! true only if the job had not finished), on fallback timing and on how
//! every job is counted.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::Result;

use super::job::{Job, JobOutput};

/// A cloneable, cancellable handle on one job (see the module docs).
pub struct SharedJob<T: JobOutput> {
    inner: Arc<Inner<T>>,
}

impl<T: JobOutput> Clone for SharedJob<T> {
    fn clone(&self) -> Self {
        SharedJob { inner: self.inner.clone() }
    }
}

impl<T: JobOutput> std::fmt::Debug for SharedJob<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedJob").field("id", &self.inner.id).finish()
    }
}

struct Inner<T: JobOutput> {
    id: u64,
    state: Mutex<State<T>>,
    fan: Arc<FanOut>,
    fan_waker: Waker,
}

enum State<T: JobOutput> {
    Pending(Job<T>),
    Done(Result<T>),
}

/// Wakes every registered waiter when the job makes progress.
#[derive(Default)]
struct FanOut {
    wakers: Mutex<Waiters>,
}

/// The registered wakers: almost always one party waits, so the first has
/// its own slot and costs no allocation.
#[derive(Default)]
struct Waiters {
    first: Option<Waker>,
    more: Vec<Waker>,
}

impl FanOut {
    fn register(&self, w: &Waker) {
        let mut ws = self.wakers.lock();
        match &ws.first {
            None => ws.first = Some(w.clone()),
            Some(f) if f.will_wake(w) => {}
            Some(_) => {
                if !ws.more.iter().any(|x| x.will_wake(w)) {
                    ws.more.push(w.clone());
                }
            }
        }
    }
}

impl Wake for FanOut {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let (first, more) = {
            let mut ws = self.wakers.lock();
            (ws.first.take(), std::mem::take(&mut ws.more))
        };
        for w in first.into_iter().chain(more) {
            w.wake();
        }
    }
}

impl<T: JobOutput> SharedJob<T> {
    /// Shares `job`.
    pub fn new(job: Job<T>) -> Self {
        let fan = Arc::new(FanOut::default());
        SharedJob {
            inner: Arc::new(Inner {
                id: job.id(),
                state: Mutex::new(State::Pending(job)),
                fan_waker: Waker::from(fan.clone()),
                fan,
            }),
        }
    }

    /// The job's id, unique within its gateway.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Polls the job once (with the fan-out waker); true once finished.
    fn poll_job(&self) -> bool {
        let mut st = self.inner.state.lock();
        let State::Pending(job) = &mut *st else { return true };
        match Pin::new(job).poll(&mut Context::from_waker(&self.inner.fan_waker)) {
            Poll::Ready(outcome) => {
                // The finished core handle is dropped here; it holds no lock.
                *st = State::Done(outcome);
                true
            }
            Poll::Pending => false,
        }
    }

    /// True once the job has an outcome. Never blocks.
    pub fn is_done(&self) -> bool {
        self.poll_job()
    }

    /// Calls `f` with the outcome, if the job has one (without cloning it).
    pub fn with_outcome<R>(&self, f: impl FnOnce(&Result<T>) -> R) -> Option<R> {
        self.poll_job();
        match &*self.inner.state.lock() {
            State::Done(outcome) => Some(f(outcome)),
            State::Pending(_) => None,
        }
    }

    /// Asks the job to stop (see [`Job::cancel`]); false if it had already
    /// finished. Never blocks; safe while others wait.
    pub fn cancel(&self) -> bool {
        match &*self.inner.state.lock() {
            State::Pending(job) => job.cancel(),
            State::Done(_) => false,
        }
    }

    /// Resolves when the job has an outcome; `f` then reads it. Wakes only
    /// through the fan-out, so any number of these may run at once.
    fn ready<'a, R: 'a>(&'a self, f: impl Fn(&Result<T>) -> R + 'a) -> impl Future<Output = R> + 'a {
        std::future::poll_fn(move |cx| {
            self.inner.fan.register(cx.waker());
            match self.with_outcome(&f) {
                Some(r) => Poll::Ready(r),
                None => Poll::Pending,
            }
        })
    }

    /// Waits from synchronous code, parking this thread, until the job has
    /// an outcome or `timeout` passed (`None`: no limit); `Ok(true)` once it
    /// has one (read it with [`SharedJob::with_outcome`]). A zero timeout
    /// never waits and works anywhere; otherwise `Err` (INTERNAL) on a
    /// bifrost runtime thread, where waiting would starve the workers it
    /// waits on.
    pub fn wait_done_blocking(&self, timeout: Option<Duration>) -> Result<bool> {
        if self.is_done() {
            return Ok(true);
        }
        if timeout == Some(Duration::ZERO) {
            return Ok(false);
        }
        crate::runtime::block_on(async {
            let mut sleep = timeout.map(|t| Box::pin(tokio::time::sleep(t)));
            let mut ready = std::pin::pin!(self.ready(|_| ()));
            std::future::poll_fn(|cx| {
                if ready.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(true);
                }
                match sleep.as_mut().map(|s| s.as_mut().poll(cx)) {
                    Some(Poll::Ready(())) => Poll::Ready(false),
                    _ => Poll::Pending,
                }
            })
            .await
        })
    }
}

impl<T: JobOutput + Clone> SharedJob<T> {
    /// The outcome if the job has one (a clone; it stays in the handle).
    pub fn outcome(&self) -> Option<Result<T>> {
        self.with_outcome(Clone::clone)
    }

    /// Waits for the outcome. Dropping this future does not cancel the
    /// job (see [`SharedJob::wait_or_cancel`]).
    pub fn wait(&self) -> impl Future<Output = Result<T>> + Send + 'static
    where
        T: Send + 'static,
    {
        let me = self.clone();
        async move { me.ready(Clone::clone).await }
    }

    /// Waits for the outcome; dropping the future before the outcome
    /// cancels the job, whoever else holds it (an awaiting task that was
    /// cancelled takes its job with it).
    pub fn wait_or_cancel(&self) -> impl Future<Output = Result<T>> + Send + 'static
    where
        T: Send + 'static,
    {
        /// Cancels on drop; after the outcome that is a no-op (false).
        struct CancelOnDrop<T: JobOutput>(SharedJob<T>);
        impl<T: JobOutput> Drop for CancelOnDrop<T> {
            fn drop(&mut self) {
                self.0.cancel();
            }
        }
        let guard = CancelOnDrop(self.clone());
        async move {
            let guard = guard;
            guard.0.ready(Clone::clone).await
        }
    }

    /// [`SharedJob::wait_done_blocking`], then the outcome (cloned);
    /// `Ok(None)` if the time ran out first (the job keeps going).
    pub fn wait_blocking(&self, timeout: Option<Duration>) -> Result<Option<Result<T>>> {
        Ok(if self.wait_done_blocking(timeout)? { self.outcome() } else { None })
    }
}
