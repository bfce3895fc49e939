//! `bifrost.Stream` (for `for`) and `bifrost.AsyncStream` (for `async for`):
//! chunk iterators over a core `ChunkStream`.
//!
//! Leaving the loop early drops the stream, which cancels the upstream
//! request; `close()` does it explicitly. An error the provider reports
//! mid-stream (or a cut-off stream) is raised from the iteration step.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures_util::Stream as _;

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
            runtime::block_on(accumulate(&mut s, StreamAccumulator::new()))?
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
    /// Read after the chunks before it were handed over: raised next.
    Failed(bifrost_core::Error),
    Done,
}

/// Most chunks one read hands to Python at once.
const MAX_BATCH: usize = 256;

/// What one read of the stream gave.
enum Read {
    /// At least one chunk (more follow if the stream is still open).
    Chunks(Vec<Chunk>),
    Failed(bifrost_core::Error),
    End,
}

/// A streamed chat for `async for chunk in stream`.
///
/// Chunks cross into Python in batches: one read on the core runtime waits
/// for the next chunk, then takes every chunk that is already there (up to
/// [`MAX_BATCH`]) without waiting again; the first resolves the awaited
/// future and the rest wait in `ready`, from which the next `__anext__`
/// calls return at once, with no task, future or event-loop wake-up each.
/// An error read after some chunks is kept (`State::Failed`) and raised once
/// those chunks were returned, so nothing is lost or reordered.
#[pyclass(frozen, module = "bifrost")]
pub struct AsyncStream {
    shared: Arc<Shared>,
}

struct Shared {
    state: Arc<tokio::sync::Mutex<State>>,
    /// Chunks read but not yet returned, oldest first.
    ready: Mutex<VecDeque<Chunk>>,
}

impl AsyncStream {
    pub fn new(gw: Arc<Gateway>, req: Request) -> Self {
        AsyncStream {
            shared: Arc::new(Shared {
                state: Arc::new(tokio::sync::Mutex::new(State::Pending(gw, Box::new(req)))),
                ready: Mutex::new(VecDeque::new()),
            }),
        }
    }
}

/// Opens the stream if it is still pending; then reads: the next chunk
/// (waiting for it), and every further chunk that is ready now.
async fn read_batch(st: &mut State) -> Read {
    if let State::Pending(..) = st {
        if let State::Pending(gw, req) = std::mem::replace(st, State::Done) {
            match gw.stream(*req).await {
                Ok(s) => *st = State::Open(s),
                Err(e) => return Read::Failed(e),
            }
        }
    }
    let s = match st {
        State::Open(s) => s,
        State::Failed(_) => {
            let State::Failed(e) = std::mem::replace(st, State::Done) else { unreachable!() };
            return Read::Failed(e);
        }
        _ => return Read::End,
    };
    let first = match s.next_chunk().await {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            *st = State::Done; // drops the stream: upstream closed
            return Read::Failed(e);
        }
        None => {
            *st = State::Done;
            return Read::End;
        }
    };
    let mut batch = vec![first];
    // What is already there, without waiting: polling a `Stream` that is
    // not ready yet loses nothing (its next poll registers the real waker).
    let mut cx = Context::from_waker(Waker::noop());
    while batch.len() < MAX_BATCH {
        match Pin::new(&mut *s).poll_next(&mut cx) {
            Poll::Ready(Some(Ok(c))) => batch.push(c),
            Poll::Ready(Some(Err(e))) => {
                *st = State::Failed(e);
                break;
            }
            Poll::Ready(None) => {
                *st = State::Done;
                break;
            }
            Poll::Pending => break,
        }
    }
    Read::Chunks(batch)
}

/// An awaitable that is already done: `await` returns its value without
/// suspending (what `__anext__` returns for a chunk already read).
#[pyclass(frozen, module = "bifrost")]
pub struct Ready {
    value: Mutex<Option<Py<PyAny>>>,
}

#[pymethods]
impl Ready {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let value = self.value.lock().take().unwrap_or_else(|| py.None());
        Err(PyStopIteration::new_err((value,)))
    }
}

#[pymethods]
impl AsyncStream {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if let Some(chunk) = self.shared.ready.lock().pop_front() {
            let value = to_py(py, &chunk)?;
            return Ok(Bound::new(py, Ready { value: Mutex::new(Some(value)) })?.into_any());
        }
        let shared = self.shared.clone();
        let next = async move {
            // The guard travels with the batch and is released only once the
            // batch is in `ready`: a concurrent `__anext__` reads after it.
            let mut st = shared.state.clone().lock_owned().await;
            let read = read_batch(&mut st).await;
            (st, read)
        };
        let shared = self.shared.clone();
        crate::bridge::spawn(py, next, move |py, (mut guard, read)| {
            let (chunk, terminal) = {
                let mut ready = shared.ready.lock();
                let terminal = match read {
                    Read::Chunks(batch) => {
                        ready.extend(batch);
                        None
                    }
                    other => Some(other),
                };
                (ready.pop_front(), terminal)
            };
            match (chunk, terminal) {
                // An end or error read behind chunks that a concurrent call
                // left waits its turn (the end is the state already).
                (Some(chunk), terminal) => {
                    if let Some(Read::Failed(e)) = terminal {
                        *guard = State::Failed(e);
                    }
                    drop(guard);
                    to_py(py, &chunk)
                }
                (None, Some(Read::Failed(e))) => Err(err_async(py, e)),
                (None, _) => Err(PyStopAsyncIteration::new_err(())),
            }
        })
    }

    /// Reads the rest of the stream into one `chat.completion` dict, as
    /// `Stream.collect()` does; awaitable.
    fn collect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let shared = self.shared.clone();
        let all = async move {
            let mut st = shared.state.lock().await;
            // Chunks already read come first.
            let mut acc = StreamAccumulator::new();
            for chunk in shared.ready.lock().drain(..) {
                acc.push(&chunk);
            }
            if let State::Pending(gw, req) = std::mem::replace(&mut *st, State::Done) {
                *st = State::Open(gw.stream(*req).await?);
            }
            match std::mem::replace(&mut *st, State::Done) {
                State::Open(mut s) => accumulate(&mut s, acc).await,
                State::Failed(e) => Err(e),
                _ => Ok(acc.message()),
            }
        };
        crate::bridge::spawn(py, all, |py, out| match out {
            Ok(message) => to_py(py, &message),
            Err(e) => Err(err_async(py, e)),
        })
    }

    /// Stops the stream and cancels the upstream request; awaitable.
    fn aclose<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let shared = self.shared.clone();
        crate::bridge::spawn(
            py,
            async move {
                *shared.state.lock().await = State::Done;
                shared.ready.lock().clear();
            },
            |py, ()| Ok(py.None()),
        )
    }
}

/// The rest of `s`, accumulated onto `acc`.
async fn accumulate(s: &mut ChunkStream, mut acc: StreamAccumulator) -> bifrost_core::Result<serde_json::Value> {
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
