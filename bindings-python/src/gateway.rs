//! `bifrost.Gateway`: the core Gateway behind sync and asyncio methods.
//!
//! Sync methods release the GIL for every wait (`py.detach`) and block on
//! the core future; async methods hand the core future to asyncio through
//! pyo3-async-runtimes on the core's runtime, so the event loop never
//! blocks. Dropping an async call's future (a cancelled asyncio task)
//! drops the core job handle, which cancels the job.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyType};

use bifrost_core::runtime;
use bifrost_core::{EmbedRequest, Error, Request};

use crate::bridge;
use crate::convert::{from_py, json_from_py, to_py};
use crate::errors::{to_py as err, to_py_async as err_async};
use crate::job::Job;
use crate::stream::{AsyncStream, Stream};

/// Starts (or checks) the core's runtime; in a forked child this is the
/// clear error, not a hang.
fn ensure_runtime(py: Python<'_>) -> PyResult<()> {
    runtime::handle().map(|_| ()).map_err(|e| err(py, e))
}

/// A dict (or JSON text) request; any other type is a TypeError.
pub fn request_from<T: serde::de::DeserializeOwned>(py: Python<'_>, obj: &Bound<'_, PyAny>, what: &str) -> PyResult<T> {
    if !(obj.is_instance_of::<PyDict>() || obj.is_instance_of::<PyString>()) {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a dict (or JSON text), got {}",
            obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
        )));
    }
    from_py(obj, what).map_err(|e| err(py, e))
}

/// Seconds as a wait: any finite number >= 0 (clamped to
/// `bounds::MAX_WAIT`); NaN, inf and negatives are InvalidRequestError.
fn duration(py: Python<'_>, seconds: f64, name: &str) -> PyResult<Duration> {
    bifrost_core::bounds::seconds(seconds, name).map_err(|e| err(py, e))
}

/// Provider-isolated worker pools behind one routing front.
#[pyclass(frozen, subclass, module = "bifrost")]
pub struct Gateway {
    inner: Arc<bifrost_core::Gateway>,
}

impl Gateway {
    fn block<T: Send>(
        &self,
        py: Python<'_>,
        f: impl std::future::Future<Output = Result<T, Error>> + Send,
    ) -> PyResult<T> {
        py.detach(|| runtime::block_on(f).and_then(|r| r)).map_err(|e| err(py, e))
    }
}

#[pymethods]
impl Gateway {
    /// Starts a gateway from a config dict or JSON text.
    #[new]
    fn new(py: Python<'_>, config: &Bound<'_, PyAny>) -> PyResult<Self> {
        ensure_runtime(py)?;
        let gw = if let Ok(text) = config.cast::<PyString>() {
            // Text that is not Unicode (a lone surrogate) is a CONFIG error,
            // as invalid UTF-8 is in C and Node.
            match text.to_cow() {
                Ok(text) => bifrost_core::Gateway::from_json(&text),
                Err(e) => {
                    Err(Error::Config { path: String::new(), message: format!("config text is not Unicode: {e}") })
                }
            }
        } else if config.is_instance_of::<PyDict>() {
            json_from_py(config).and_then(bifrost_core::Gateway::from_value)
        } else {
            return Err(PyTypeError::new_err(format!(
                "config must be a dict or JSON text, got {}",
                config.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
            )));
        };
        Ok(Gateway { inner: Arc::new(gw.map_err(|e| err(py, e))?) })
    }

    /// Starts a gateway from a JSON config file.
    #[classmethod]
    fn from_file<'py>(cls: &Bound<'py, PyType>, path: PathBuf) -> PyResult<Bound<'py, PyAny>> {
        let py = cls.py();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            err(py, Error::Config { path: path.display().to_string(), message: format!("cannot read the file: {e}") })
        })?;
        cls.call1((text,))
    }

    /// Sends a chat request and waits for the response (GIL released).
    fn chat(&self, py: Python<'_>, request: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let req: Request = request_from(py, request, "request")?;
        let gw = self.inner.clone();
        let resp = self.block(py, async move { gw.chat(req).await })?;
        to_py(py, &resp)
    }

    /// Sends a chat request; awaitable.
    fn achat<'py>(&self, py: Python<'py>, request: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let req: Request = request_from(py, request, "request")?;
        let gw = self.inner.clone();
        bridge::spawn(py, async move { gw.chat(req).await }, |py, r| match r {
            Ok(v) => to_py(py, &v),
            Err(e) => Err(err_async(py, e)),
        })
    }

    /// Submits a chat request and returns its Job; waits (GIL released)
    /// only under policy `block` with a full queue.
    fn submit(&self, py: Python<'_>, request: &Bound<'_, PyAny>) -> PyResult<Job> {
        let req: Request = request_from(py, request, "request")?;
        let gw = self.inner.clone();
        let job = self.block(py, async move { gw.submit(req).await })?;
        Ok(Job::new(job))
    }

    /// Submits a chat request; awaitable, resolving to its Job.
    fn asubmit<'py>(&self, py: Python<'py>, request: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let req: Request = request_from(py, request, "request")?;
        let gw = self.inner.clone();
        bridge::spawn(py, async move { gw.submit(req).await }, |py, r| match r {
            Ok(job) => Ok(Py::new(py, Job::new(job))?.into_any()),
            Err(e) => Err(err_async(py, e)),
        })
    }

    /// Opens a streamed chat: an iterator of `chat.completion.chunk` dicts.
    fn stream(&self, py: Python<'_>, request: &Bound<'_, PyAny>) -> PyResult<Stream> {
        let req: Request = request_from(py, request, "request")?;
        let gw = self.inner.clone();
        let s = self.block(py, async move { gw.stream(req).await })?;
        Stream::new(py, s)
    }

    /// A streamed chat for `async for`; the request is sent on first use.
    fn astream(&self, py: Python<'_>, request: &Bound<'_, PyAny>) -> PyResult<AsyncStream> {
        let req: Request = request_from(py, request, "request")?;
        Ok(AsyncStream::new(self.inner.clone(), req))
    }

    /// Computes embeddings (OpenAI embeddings shape).
    fn embed(&self, py: Python<'_>, request: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let req: EmbedRequest = request_from(py, request, "request")?;
        let gw = self.inner.clone();
        let resp = self.block(py, async move { gw.embed(req).await })?;
        to_py(py, &resp)
    }

    /// Computes embeddings; awaitable.
    fn aembed<'py>(&self, py: Python<'py>, request: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let req: EmbedRequest = request_from(py, request, "request")?;
        let gw = self.inner.clone();
        bridge::spawn(py, async move { gw.embed(req).await }, |py, r| match r {
            Ok(v) => to_py(py, &v),
            Err(e) => Err(err_async(py, e)),
        })
    }

    /// Live stats (docs/architecture.md §8 schema).
    fn stats(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(py, &self.inner.stats())
    }

    /// The same numbers as Prometheus text.
    fn prometheus(&self) -> String {
        self.inner.prometheus()
    }

    /// Per-provider health and an overall status.
    fn health(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(py, &self.inner.health())
    }

    /// Configured provider names.
    #[getter]
    fn providers(&self) -> Vec<String> {
        self.inner.providers()
    }

    /// Graceful shutdown: drains until `timeout` seconds, then ends what is
    /// left with SHUTDOWN; returns the report. Idempotent.
    #[pyo3(signature = (timeout = 10.0))]
    fn shutdown(&self, py: Python<'_>, timeout: f64) -> PyResult<Py<PyAny>> {
        let d = duration(py, timeout, "timeout")?;
        let gw = self.inner.clone();
        let report = self.block(py, async move { Ok(gw.shutdown(d).await) })?;
        to_py(py, &report)
    }

    /// Graceful shutdown; awaitable.
    #[pyo3(signature = (timeout = 10.0))]
    fn ashutdown<'py>(&self, py: Python<'py>, timeout: f64) -> PyResult<Bound<'py, PyAny>> {
        let d = duration(py, timeout, "timeout")?;
        let gw = self.inner.clone();
        bridge::spawn(py, async move { gw.shutdown(d).await }, |py, report| to_py(py, &report))
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.shutdown(py, 10.0)?;
        Ok(false)
    }

    fn __aenter__<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let obj: Py<PyAny> = slf.into_any().unbind();
        bridge::spawn(py, async {}, move |_py, ()| Ok(obj))
    }

    #[pyo3(signature = (*_exc))]
    fn __aexit__<'py>(&self, py: Python<'py>, _exc: &Bound<'py, pyo3::types::PyTuple>) -> PyResult<Bound<'py, PyAny>> {
        let gw = self.inner.clone();
        bridge::spawn(py, async move { gw.shutdown(Duration::from_secs(10)).await }, |py, _| {
            Ok(false.into_pyobject(py)?.to_owned().into_any().unbind())
        })
    }

    fn __repr__(&self) -> String {
        format!("<bifrost.Gateway providers={:?}>", self.inner.providers())
    }
}
