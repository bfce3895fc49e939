//! `bifrost._bifrost`: the Python binding of bifrost-core.
//!
//! Thin by design: each file converts values and maps errors; routing,
//! retries and accounting live in the core. One tokio runtime (the core's)
//! serves every Gateway; asyncio gets its results through one completion
//! thread (`bridge`). The runtime starts with the first Gateway, not at
//! import, so `import bifrost` stays cheap.

mod bridge;
mod convert;
mod errors;
mod gateway;
mod job;
mod stream;

use pyo3::prelude::*;

/// Suggests `concurrency`, `buffer_size` and `timeout_ms` for a provider
/// (Little's law).
#[pyfunction]
#[pyo3(signature = (rate_limit_rps, avg_latency_s, error_rate = 0.0))]
fn optimal_concurrency(
    py: Python<'_>,
    rate_limit_rps: f64,
    avg_latency_s: f64,
    error_rate: f64,
) -> PyResult<Py<PyAny>> {
    let sizing = bifrost_core::optimal_concurrency(rate_limit_rps, avg_latency_s, error_rate)
        .map_err(|e| errors::to_py(py, e))?;
    convert::to_py(py, &sizing)
}

#[pymodule]
fn _bifrost(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<gateway::Gateway>()?;
    m.add_class::<job::Job>()?;
    m.add_class::<stream::Stream>()?;
    m.add_class::<stream::AsyncStream>()?;
    m.add_class::<stream::Accumulator>()?;
    m.add_class::<bridge::CancelHook>()?;
    m.add_function(wrap_pyfunction!(optimal_concurrency, m)?)?;
    m.add_function(wrap_pyfunction!(errors::error_classes, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
