//! `bifrost.Job`: a submitted job, awaitable or waited on with `result()`.
//!
//! A thin wrapper over the core's shared handle ([`SharedJob`], see
//! docs/architecture.md §7): `result()` waits on it with the GIL released,
//! `await job` waits on it from asyncio (through [`crate::bridge`]).
//! Cancelling the asyncio task that awaits a job cancels the job; letting
//! an unfinished Job be garbage-collected cancels it once no `await` of it
//! is in flight (the last holder of the shared handle is gone), so
//! `await (await gw.asubmit(r))` runs to its outcome.

use std::time::Duration;

use pyo3::exceptions::PyTimeoutError;
use pyo3::prelude::*;

use bifrost_core::{bounds, Response, SharedJob};

use crate::convert::to_py;
use crate::errors::{to_py as err, to_py_async as err_async};

/// A submitted job.
#[pyclass(frozen, module = "bifrost")]
pub struct Job {
    job: SharedJob<Response>,
}

impl Job {
    /// Wraps a core job.
    pub fn new(job: bifrost_core::Job<Response>) -> Job {
        Job { job: SharedJob::new(job) }
    }
}

#[pymethods]
impl Job {
    /// The job's id, unique within its gateway.
    #[getter]
    fn id(&self) -> u64 {
        self.job.id()
    }

    /// True once the job has an outcome.
    fn done(&self) -> bool {
        self.job.is_done()
    }

    /// Asks the job to stop; False if it had already finished.
    fn cancel(&self) -> bool {
        self.job.cancel()
    }

    /// Waits (GIL released) up to `timeout` seconds (None: no limit) and
    /// returns the response, or raises the job's error
    /// (`bifrost.CancelledError` if cancelled); `TimeoutError` if the job
    /// is still running when the time is up.
    #[pyo3(signature = (timeout = None))]
    fn result(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        // Any finite number >= 0 (past a year it is a year); NaN, inf and
        // negatives are InvalidRequestError (a ValueError).
        let limit: Option<Duration> = match timeout {
            Some(t) => Some(bounds::seconds(t, "timeout").map_err(|e| err(py, e))?),
            None => None,
        };
        let job = self.job.clone();
        match py.detach(move || job.wait_blocking(limit)).map_err(|e| err(py, e))? {
            Some(Ok(resp)) => to_py(py, &resp),
            Some(Err(e)) => Err(err(py, e)),
            None => Err(PyTimeoutError::new_err(format!(
                "job {} did not finish within {} s",
                self.job.id(),
                timeout.unwrap_or_default()
            ))),
        }
    }

    /// `await job`: the response, or the job's error (`asyncio.CancelledError`
    /// if cancelled). Cancelling the awaiting task cancels the job.
    fn __await__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let fut = crate::bridge::spawn(py, self.job.wait_or_cancel(), |py, outcome| match outcome {
            Ok(resp) => to_py(py, &resp),
            Err(e) => Err(err_async(py, e)),
        })?;
        fut.call_method0("__await__")
    }

    fn __repr__(&self) -> String {
        format!("<bifrost.Job id={} done={}>", self.job.id(), self.job.is_done())
    }
}
