//! `bifrost.Job`: a submitted job, awaitable or waited on with `result()`.
//!
//! The core job handle is awaited by a small task on the core runtime that
//! stores the outcome in a completion cell; `result()` waits on the cell
//! with the GIL released, `await job` waits on it from asyncio. Cancelling
//! the asyncio task that awaits a job cancels the job, and so does letting
//! an unfinished Job be garbage-collected (as dropping a core handle does).
//!
//! The Python `Job` and every `await job` in flight share one [`Shared`];
//! the job is cancelled when the last of them goes away unfinished, so
//! `await (await gw.asubmit(r))` (whose Job is garbage the moment its
//! awaiting starts) runs to its outcome.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};
use pyo3::exceptions::PyTimeoutError;
use pyo3::prelude::*;
use tokio::sync::Notify;

use bifrost_core::{bounds, Canceller, Error, Response};

use crate::convert::to_py;
use crate::errors::{to_py as err, to_py_async as err_async};

type Outcome = Result<Response, Error>;

/// Where the outcome lands, once.
#[derive(Default)]
struct Completion {
    value: Mutex<Option<Outcome>>,
    ready: Condvar,
    notify: Notify,
}

impl Completion {
    fn set(&self, outcome: Outcome) {
        *self.value.lock() = Some(outcome);
        self.ready.notify_all();
        self.notify.notify_waiters();
    }

    fn get(&self) -> Option<Outcome> {
        self.value.lock().clone()
    }
}

/// The outcome cell and the canceller, shared by a `Job` and its awaiters.
struct Shared {
    done: Arc<Completion>,
    canceller: Canceller,
}

impl Drop for Shared {
    /// The last holder is gone and nobody can learn the outcome any more.
    fn drop(&mut self) {
        if self.done.value.lock().is_none() {
            self.canceller.cancel();
        }
    }
}

/// Cancels the job if the awaiting future is dropped before the outcome
/// (the asyncio task awaiting it was cancelled), whoever else holds it.
struct CancelOnDrop(Arc<Shared>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.0.done.value.lock().is_none() {
            self.0.canceller.cancel();
        }
    }
}

/// A submitted job.
#[pyclass(frozen, module = "bifrost")]
pub struct Job {
    id: u64,
    done: Arc<Completion>,
    shared: Arc<Shared>,
}

impl Job {
    /// Wraps a core job and starts awaiting it on the core runtime.
    pub fn start(py: Python<'_>, job: bifrost_core::Job<Response>) -> PyResult<Job> {
        let handle = bifrost_core::runtime::handle().map_err(|e| err(py, e))?;
        let done = Arc::new(Completion::default());
        let canceller = job.canceller();
        let id = job.id();
        let cell = done.clone();
        handle.spawn(async move { cell.set(job.await) });
        let shared = Arc::new(Shared { done: done.clone(), canceller });
        Ok(Job { id, done, shared })
    }
}

#[pymethods]
impl Job {
    /// The job's id, unique within its gateway.
    #[getter]
    fn id(&self) -> u64 {
        self.id
    }

    /// True once the job has an outcome.
    fn done(&self) -> bool {
        self.done.value.lock().is_some()
    }

    /// Asks the job to stop; False if it had already finished.
    fn cancel(&self) -> bool {
        !self.done() && self.shared.canceller.cancel()
    }

    /// Waits (GIL released) up to `timeout` seconds (None: no limit) and
    /// returns the response, or raises the job's error
    /// (`bifrost.CancelledError` if cancelled); `TimeoutError` if the job
    /// is still running when the time is up.
    #[pyo3(signature = (timeout = None))]
    fn result(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        // Any finite number >= 0 (past a year it is a year); NaN, inf and
        // negatives are InvalidRequestError (a ValueError).
        let limit = match timeout {
            Some(t) => Some(Instant::now() + bounds::seconds(t, "timeout").map_err(|e| err(py, e))?),
            None => None,
        };
        let done = self.done.clone();
        let outcome = py.detach(move || {
            let mut value = done.value.lock();
            loop {
                if let Some(v) = value.as_ref() {
                    return Some(v.clone());
                }
                match limit {
                    None => done.ready.wait(&mut value),
                    Some(l) => {
                        if done.ready.wait_until(&mut value, l).timed_out() && value.is_none() {
                            return None;
                        }
                    }
                }
            }
        });
        match outcome {
            Some(Ok(resp)) => to_py(py, &resp),
            Some(Err(e)) => Err(err(py, e)),
            None => Err(PyTimeoutError::new_err(format!(
                "job {} did not finish within {} s",
                self.id,
                timeout.unwrap_or_default()
            ))),
        }
    }

    /// `await job`: the response, or the job's error (`asyncio.CancelledError`
    /// if cancelled). Cancelling the awaiting task cancels the job.
    fn __await__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let done = self.done.clone();
        let guard = CancelOnDrop(self.shared.clone());
        let wait = async move {
            let _guard = guard;
            loop {
                let notified = done.notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(v) = done.get() {
                    break v;
                }
                notified.await;
            }
        };
        let fut = crate::bridge::spawn(py, wait, |py, outcome| match outcome {
            Ok(resp) => to_py(py, &resp),
            Err(e) => Err(err_async(py, e)),
        })?;
        fut.call_method0("__await__")
    }

    fn __repr__(&self) -> String {
        format!("<bifrost.Job id={} done={}>", self.id, self.done())
    }
}
