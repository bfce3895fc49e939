//! The one place core errors become Python exceptions.
//!
//! Exception classes live in `bifrost/_errors.py` (so `ConfigError` can
//! also be a `ValueError`); each instance gets `kind`, `status_code`,
//! `body`, `provider`, `fallback_errors`, `retry_after_ms`, `path` (the
//! key path of a CONFIG error) and `text_so_far` (what a failed stream had sent) attributes, as the Node binding's errors have. In asyncio code a
//! cancelled job raises `asyncio.CancelledError`, as asyncio users expect.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyTuple};

use bifrost_core::{Error, ErrorKind};

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn class_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::QueueFull => "QueueFullError",
        ErrorKind::Dropped => "DroppedError",
        ErrorKind::QueueTimeout => "QueueTimeoutError",
        ErrorKind::Timeout => "RequestTimeoutError",
        ErrorKind::Cancelled => "CancelledError",
        ErrorKind::Shutdown => "ShutdownError",
        ErrorKind::CircuitOpen => "CircuitOpenError",
        ErrorKind::Provider => "ProviderError",
        ErrorKind::Network => "NetworkError",
        ErrorKind::Protocol => "ProtocolError",
        ErrorKind::InvalidRequest => "InvalidRequestError",
        ErrorKind::UnknownProvider => "UnknownProviderError",
        ErrorKind::Config => "ConfigError",
        ErrorKind::Internal => "InternalError",
        ErrorKind::RateLimited => "RateLimitedError",
        // A kind newer than this binding (ErrorKind is non-exhaustive);
        // tests/python/test_errors.py checks every kind has its own class.
        _ => "BifrostError",
    }
}

/// `(kind, class name)` for every core error kind, so the test suite can
/// check that each has its own class (`ErrorKind` is non-exhaustive).
#[pyfunction]
pub fn error_classes() -> Vec<(&'static str, &'static str)> {
    ErrorKind::ALL.iter().map(|&k| (k.as_str(), class_name(k))).collect()
}

fn build<'py>(py: Python<'py>, e: &Error) -> PyResult<Bound<'py, PyAny>> {
    let module = ERRORS.get_or_try_init(py, || py.import("bifrost._errors").map(Bound::unbind))?.bind(py);
    let cls = module.getattr(class_name(e.kind()))?;
    let fallbacks = PyList::empty(py);
    for (target, fe) in e.fallback_errors() {
        fallbacks.append(PyTuple::new(py, [target.into_pyobject(py)?.into_any(), build(py, fe)?])?)?;
    }
    cls.call1((
        e.to_string(),
        e.kind().as_str(),
        e.status(),
        e.body().map(str::to_string),
        e.provider().map(str::to_string),
        fallbacks,
        e.retry_after_ms(),
        e.config_path().map(str::to_string),
        e.text_so_far().map(str::to_string),
    ))
}

/// A core error as the matching `bifrost.*Error`.
pub fn to_py(py: Python<'_>, e: Error) -> PyErr {
    match build(py, &e) {
        Ok(instance) => PyErr::from_value(instance),
        Err(import_failed) => import_failed,
    }
}

/// Like [`to_py`], but a cancelled job is `asyncio.CancelledError`.
pub fn to_py_async(py: Python<'_>, e: Error) -> PyErr {
    if e.kind() == ErrorKind::Cancelled {
        if let Ok(cls) = py.import("asyncio").and_then(|m| m.getattr("CancelledError")) {
            if let Ok(instance) = cls.call1((e.to_string(),)) {
                return PyErr::from_value(instance);
            }
        }
    }
    to_py(py, e)
}
