//! `bifrost.Stream` (for `for`) and `bifrost.AsyncStream` (for `async for`):
//! chunk iterators over a core `ChunkStream`.
//!
//! Leaving the loop early drops the stream, which cancels the upstream
//! request; `close()` does it explicitly. An error the provider reports
//! mid-stream (or a cut-off stream) is raised from the iteration step.

use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::exceptions::{PyStopAsyncIteration, PyStopIteration};
use pyo3::prelude::*;

use bifrost_core::{runtime, Chunk, ChunkStream, Gateway, Request, StreamAccumulator};

use crate::convert::{from_py, to_py};
use crate::errors::{to_py as err, to_py_async as err_async};

/// A streamed chat for `for chunk in stream`.
#[pyclass(frozen, module = "bifrost")]
pub struct Stream {
    inner: Mutex<Option<ChunkStream>>,
}

impl Stream {
    pub fn new(s: ChunkStream) -> Self {
        Stream { inner: Mutex::new(Some(s)) }
    }
}

#[pymethods]
impl Stream {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let next = py.detach(|| {
            let mut guard = self.inner.lock();
            match guard.as_mut() {
                None => Ok(None),
                Some(s) => runtime::block_on(s.next_chunk()).map(|item| {
                    if !matches!(item, Some(Ok(_))) {
                        *guard = None; // the end, or an error: nothing follows
                    }
                    item
                }),
            }
        });
        match next {
            Err(e) | Ok(Some(Err(e))) => Err(err(py, e)),
            Ok(None) => Err(PyStopIteration::new_err(())),
            Ok(Some(Ok(chunk))) => to_py(py, &chunk),
        }
    }

    /// Stops the stream and cancels the upstream request.
    fn close(&self) {
        self.inner.lock().take();
    }

    /// Reads the rest of the stream into one `chat.completion` dict
    /// (`bifrost.Accumulator`: a restart marker starts the answer over).
    /// An error is raised as iteration raises it (with `text_so_far`).
    fn collect(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let out = py.detach(|| {
            let Some(mut s) = self.inner.lock().take() else { return Ok(StreamAccumulator::new().message()) };
            runtime::block_on(accumulate(&mut s))?
        });
        match out {
            Ok(message) => to_py(py, &message),
            Err(e) => Err(err(py, e)),
        }
    }

    /// 0 if the primary provider serves this stream, i + 1 for `fallbacks[i]`.
    #[getter]
    fn fallback_index(&self) -> u32 {
        self.inner.lock().as_ref().map(ChunkStream::fallback_index).unwrap_or(0)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close();
        false
    }
}

enum State {
    /// Not sent yet: sent on the first `__anext__`.
    Pending(Arc<Gateway>, Box<Request>),
    Open(ChunkStream),
    Done,
}

/// A streamed chat for `async for chunk in stream`.
#[pyclass(frozen, module = "bifrost")]
pub struct AsyncStream {
    state: Arc<tokio::sync::Mutex<State>>,
}

impl AsyncStream {
    pub fn new(gw: Arc<Gateway>, req: Request) -> Self {
        AsyncStream { state: Arc::new(tokio::sync::Mutex::new(State::Pending(gw, Box::new(req)))) }
    }
}

#[pymethods]
impl AsyncStream {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let state = self.state.clone();
        let next = async move {
            let mut st = state.lock().await;
            if matches!(*st, State::Pending(..)) {
                if let State::Pending(gw, req) = std::mem::replace(&mut *st, State::Done) {
                    match gw.stream(*req).await {
                        Ok(s) => *st = State::Open(s),
                        Err(e) => return Some(Err(e)),
                    }
                }
            }
            let item = match &mut *st {
                State::Open(s) => s.next_chunk().await,
                _ => None,
            };
            if !matches!(item, Some(Ok(_))) {
                *st = State::Done; // drops the stream: upstream closed
            }
            item
        };
        crate::bridge::spawn(py, next, |py, item| match item {
            None => Err(PyStopAsyncIteration::new_err(())),
            Some(Ok(chunk)) => to_py(py, &chunk),
            Some(Err(e)) => Err(err_async(py, e)),
        })
    }

    /// Reads the rest of the stream into one `chat.completion` dict, as
    /// `Stream.collect()` does; awaitable.
    fn collect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let state = self.state.clone();
        let all = async move {
            let mut st = state.lock().await;
            if let State::Pending(gw, req) = std::mem::replace(&mut *st, State::Done) {
                *st = State::Open(gw.stream(*req).await?);
            }
            let out = match &mut *st {
                State::Open(s) => accumulate(s).await,
                _ => Ok(StreamAccumulator::new().message()),
            };
            *st = State::Done;
            out
        };
        crate::bridge::spawn(py, all, |py, out| match out {
            Ok(message) => to_py(py, &message),
            Err(e) => Err(err_async(py, e)),
        })
    }

    /// Stops the stream and cancels the upstream request; awaitable.
    fn aclose<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let state = self.state.clone();
        crate::bridge::spawn(
            py,
            async move {
                *state.lock().await = State::Done;
            },
            |py, ()| Ok(py.None()),
        )
    }
}

/// The rest of `s`, accumulated.
async fn accumulate(s: &mut ChunkStream) -> bifrost_core::Result<serde_json::Value> {
    let mut acc = StreamAccumulator::new();
    while let Some(chunk) = s.next_chunk().await {
        acc.push(&chunk?);
    }
    Ok(acc.message())
}

/// `bifrost.Accumulator`: chunks in (`add`), the final `chat.completion`
/// out (`message()`), honouring restart markers (the core's
/// `StreamAccumulator`), for callers who iterate a stream themselves.
#[pyclass(frozen, module = "bifrost")]
pub struct Accumulator {
    inner: Mutex<StreamAccumulator>,
}

#[pymethods]
impl Accumulator {
    #[new]
    fn new() -> Self {
        Accumulator { inner: Mutex::new(StreamAccumulator::new()) }
    }

    /// Adds one chunk (a dict as a stream yields it); a restart marker
    /// starts the answer over. Not a chunk: InvalidRequestError.
    fn add(&self, py: Python<'_>, chunk: &Bound<'_, PyAny>) -> PyResult<()> {
        let chunk: Chunk = from_py(chunk, "chunk").map_err(|e| err(py, e))?;
        self.inner.lock().push(&chunk);
        Ok(())
    }

    /// The `chat.completion` dict of what was added.
    fn message(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(py, &self.inner.lock().message())
    }

    /// The content text of choice 0 so far.
    #[getter]
    fn text(&self) -> String {
        self.inner.lock().text().to_string()
    }

    /// Restart markers seen.
    #[getter]
    fn restarts(&self) -> u32 {
        self.inner.lock().restarts()
    }
}
