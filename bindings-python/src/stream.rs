//! `bifrost.Stream` (for `for`) and `bifrost.AsyncStream` (for `async for`):
//! chunk iterators over a core `ChunkStream`.
//!
//! Leaving the loop early drops the stream, which cancels the upstream
//! request; `close()` does it explicitly. An error the provider reports
//! mid-stream (or a cut-off stream) is raised from the iteration step.

use std::collections::VecDeque;
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

/// Most chunks the reader holds ahead of the consumer.
const WINDOW: usize = 256;
/// Most chunks the reader adds at once.
const MAX_BATCH: usize = 256;
/// Waiters (tasks in `__anext__`) beyond which done ones are dropped.
const PRUNE_WAITERS: usize = 16;

/// A streamed chat for `async for chunk in stream`.
///
/// One reader task per stream (started by the first `__anext__` or
/// `collect`, which sends the request) reads ahead of the consumer into
/// `ready`, at most [`WINDOW`] chunks, taking every chunk that is already
/// there each time. `__anext__` returns a [`Next`] awaitable: a chunk in
/// `ready` is returned at once, with no task, future or event-loop wake-up;
/// otherwise it waits on an asyncio future that the reader resolves (through
/// the completion thread, batched with every other ready future of the
/// loop) when chunks or the end arrive, then looks again. A cancelled
/// `__anext__` loses nothing: the chunk it would have taken stays in
/// `ready`. An error read behind chunks is raised once those were returned.
#[pyclass(frozen, module = "bifrost")]
pub struct AsyncStream {
    shared: Arc<Shared>,
}

struct Shared {
    inner: Mutex<Inner>,
    /// The consumer took chunks from a full window: the reader may read on.
    space: tokio::sync::Notify,
    /// The reader added chunks or ended: `collect` looks again.
    data: tokio::sync::Notify,
}

struct Inner {
    ready: VecDeque<Chunk>,
    /// What follows `ready` once the reader stopped.
    end: Option<End>,
    /// Futures of `__anext__` calls waiting for chunks (resolved with None).
    waiters: Vec<(crate::bridge::Target, Py<PyAny>)>,
    start: Start,
}

enum End {
    Done,
    Failed(bifrost_core::Error),
}

enum Start {
    /// Not sent yet: sent on first use.
    Pending(Arc<Gateway>, Box<Request>),
    Reading(tokio::task::AbortHandle),
    Stopped,
}

impl AsyncStream {
    pub fn new(gw: Arc<Gateway>, req: Request) -> Self {
        AsyncStream {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner {
                    ready: VecDeque::new(),
                    end: None,
                    waiters: Vec::new(),
                    start: Start::Pending(gw, Box::new(req)),
                }),
                space: tokio::sync::Notify::new(),
                data: tokio::sync::Notify::new(),
            }),
        }
    }
}

impl Drop for AsyncStream {
    fn drop(&mut self) {
        // The reader holds the stream: stopping it closes the upstream request.
        if let Start::Reading(h) = &self.shared.inner.lock().start {
            h.abort();
        }
    }
}

impl Shared {
    /// Starts the reader if the request is still pending (call with `inner` locked).
    fn start(self: &Arc<Self>, inner: &mut Inner) -> Result<(), bifrost_core::Error> {
        if !matches!(inner.start, Start::Pending(..)) {
            return Ok(());
        }
        let Start::Pending(gw, req) = std::mem::replace(&mut inner.start, Start::Stopped) else { return Ok(()) };
        let handle = runtime::handle()?;
        let shared = self.clone();
        let task = handle.spawn(async move {
            // A panic in the reader (a bug) still ends the stream, with
            // InternalError: no consumer is left waiting.
            let read = std::panic::AssertUnwindSafe(read_ahead(shared.clone(), gw, req));
            if let Err(panic) = futures_util::FutureExt::catch_unwind(read).await {
                let what = bifrost_core::error::panic_text(&*panic);
                let message = format!("bifrost's Python binding panicked: {what}");
                shared.add(Vec::new(), Some(End::Failed(bifrost_core::Error::Internal { message })));
            }
        });
        inner.start = Start::Reading(task.abort_handle());
        Ok(())
    }

    /// Adds chunks (and the end), then wakes whoever waits for them.
    fn add(&self, batch: Vec<Chunk>, end: Option<End>) {
        let waiters = {
            let mut inner = self.inner.lock();
            inner.ready.extend(batch);
            if inner.end.is_none() {
                inner.end = end;
            }
            std::mem::take(&mut inner.waiters)
        };
        self.data.notify_one();
        for (target, future) in waiters {
            crate::bridge::wake(&target, future);
        }
    }

    /// The next chunk, if one is ready (telling the reader when it frees a full window).
    fn take(&self, inner: &mut Inner) -> Option<Chunk> {
        let chunk = inner.ready.pop_front()?;
        if inner.ready.len() + 1 == WINDOW {
            self.space.notify_one();
        }
        Some(chunk)
    }

    /// Stops the reader and drops what it read; waiting `__anext__` calls end.
    fn stop(&self) {
        {
            let mut inner = self.inner.lock();
            if let Start::Reading(h) = std::mem::replace(&mut inner.start, Start::Stopped) {
                h.abort();
            }
            inner.ready.clear();
            inner.end = Some(End::Done);
        }
        self.add(Vec::new(), None);
    }
}

/// The reader: opens the stream, then reads it ahead of the consumer (at
/// most [`WINDOW`] chunks) until it ends or fails.
async fn read_ahead(shared: Arc<Shared>, gw: Arc<Gateway>, req: Box<Request>) {
    let mut s = match gw.stream(*req).await {
        Ok(s) => s,
        Err(e) => return shared.add(Vec::new(), Some(End::Failed(e))),
    };
    loop {
        while shared.inner.lock().ready.len() >= WINDOW {
            shared.space.notified().await;
        }
        let mut batch = Vec::new();
        let end = s.next_batch(MAX_BATCH, &mut batch).await.map(|r| match r {
            Ok(()) => End::Done,
            Err(e) => End::Failed(e),
        });
        let over = end.is_some();
        shared.add(batch, end);
        if over {
            return; // dropping `s` closes the upstream request
        }
    }
}

/// What one look at the stream found.
enum Look {
    Chunk(Chunk),
    Done,
    Failed(bifrost_core::Error),
    Empty,
}

fn look(shared: &Arc<Shared>, inner: &mut Inner) -> Look {
    if let Some(chunk) = shared.take(inner) {
        return Look::Chunk(chunk);
    }
    match inner.end.take() {
        Some(End::Done) => {
            inner.end = Some(End::Done);
            Look::Done
        }
        Some(End::Failed(e)) => {
            inner.end = Some(End::Done); // raised once; then the stream is over
            Look::Failed(e)
        }
        None => match shared.start(inner) {
            Ok(()) if matches!(inner.start, Start::Stopped) => Look::Done,
            Ok(()) => Look::Empty,
            Err(e) => {
                inner.end = Some(End::Done);
                Look::Failed(e)
            }
        },
    }
}

/// What `AsyncStream.__anext__` returns: an awaitable that returns the
/// next chunk, waiting (an asyncio future of the running loop) only while
/// none is ready.
#[pyclass(frozen, module = "bifrost")]
pub struct Next {
    shared: Arc<Shared>,
}

#[pymethods]
impl Next {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// A chunk: `StopIteration(chunk)`; nothing yet: yields a future to
    /// the task (which comes back here once it is resolved).
    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let first = look(&self.shared, &mut self.shared.inner.lock());
        let found = match first {
            Look::Empty => {
                // Python is called without the lock held (a finalizer it runs may lock it).
                let event_loop = crate::bridge::running_loop(py)?;
                let future = event_loop.call_method0(pyo3::intern!(py, "create_future"))?;
                let target = crate::bridge::Target::of(py, &event_loop);
                let mut inner = self.shared.inner.lock();
                match look(&self.shared, &mut inner) {
                    Look::Empty => {
                        if inner.waiters.len() >= PRUNE_WAITERS {
                            // Futures of cancelled calls (C futures: `done()` runs no Python code).
                            inner.waiters.retain(|(_, f)| {
                                !f.bind(py).call_method0("done").and_then(|d| d.is_truthy()).unwrap_or(true)
                            });
                        }
                        inner.waiters.push((target, future.clone().unbind()));
                        drop(inner);
                        future.setattr("_asyncio_future_blocking", true)?;
                        return Ok(future.unbind());
                    }
                    other => other,
                }
            }
            other => other,
        };
        match found {
            Look::Chunk(chunk) => Err(PyStopIteration::new_err((to_py(py, &chunk)?,))),
            Look::Done | Look::Empty => Err(PyStopAsyncIteration::new_err(())),
            Look::Failed(e) => Err(err_async(py, e)),
        }
    }

    /// `__next__`, for drivers that step awaitables with `send(None)`.
    fn send(&self, py: Python<'_>, _value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.__next__(py)
    }
}

/// An awaitable that is already done: `await` returns its value without
/// suspending (what `aclose()` returns).
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

    fn __anext__(&self) -> Next {
        Next { shared: self.shared.clone() }
    }

    /// Reads the rest of the stream into one `chat.completion` dict, as
    /// `Stream.collect()` does; awaitable.
    fn collect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let shared = self.shared.clone();
        let all = async move {
            let mut acc = StreamAccumulator::new();
            loop {
                let notified = shared.data.notified();
                let mut batch = Vec::new();
                let end = {
                    let mut inner = shared.inner.lock();
                    loop {
                        match look(&shared, &mut inner) {
                            Look::Chunk(c) => batch.push(c),
                            Look::Empty => break None,
                            Look::Done => break Some(Ok(())),
                            Look::Failed(e) => break Some(Err(e)),
                        }
                    }
                };
                for chunk in &batch {
                    acc.push(chunk);
                }
                match end {
                    Some(Ok(())) => return Ok(acc.message()),
                    Some(Err(e)) => return Err(e),
                    None => notified.await,
                }
            }
        };
        crate::bridge::spawn(py, all, |py, out| match out {
            Ok(message) => to_py(py, &message),
            Err(e) => Err(err_async(py, e)),
        })
    }

    /// Stops the stream and cancels the upstream request; awaitable.
    fn aclose(&self, py: Python<'_>) -> PyResult<Ready> {
        self.shared.stop();
        Ok(Ready { value: Mutex::new(Some(py.None())) })
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
