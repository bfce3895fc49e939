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
///
/// The stream is opened by `Gateway.stream` (its errors raise there); then
/// the same reader as [`AsyncStream`]'s reads it ahead into `ready` on
/// bifrost's runtime, at most [`WINDOW`] chunks, while Python works on the
/// ones before. `__next__` returns a ready chunk without releasing the GIL;
/// only with none ready does it wait (GIL released) on a condition variable
/// the reader signals. An error read behind chunks is raised once those
/// were returned. Leaving the loop early drops the stream, which stops the
/// reader and closes the upstream request.
#[pyclass(frozen, module = "bifrost")]
pub struct Stream {
    shared: Arc<Shared>,
}

impl Stream {
    pub fn new(py: Python<'_>, s: ChunkStream) -> PyResult<Self> {
        let fallback_index = s.fallback_index();
        let shared = Shared::new(Start::Pending(Open::Stream(Box::new(s))));
        {
            let mut inner = shared.inner.lock();
            inner.fallback_index = fallback_index;
            shared.start(&mut inner).map_err(|e| err(py, e))?;
        }
        Ok(Stream { shared })
    }

    /// The next chunk, waiting for the reader as long as it takes (call
    /// with the GIL released). None once the stream is over.
    fn wait_next(&self) -> Option<bifrost_core::Result<Chunk>> {
        let mut inner = self.shared.inner.lock();
        loop {
            match look(&self.shared, &mut inner) {
                Look::Chunk(c) => return Some(Ok(c)),
                Look::Done => return None,
                Look::Failed(e) => return Some(Err(e)),
                Look::Empty => self.shared.added.wait(&mut inner),
            }
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.shared.abort_reader();
    }
}

#[pymethods]
impl Stream {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        // A chunk read already: no GIL release. The lock is only tried here:
        // another thread may hold it while it waits (GIL released).
        let ready = self.shared.inner.try_lock().and_then(|mut inner| self.shared.take(&mut inner));
        let next = match ready {
            Some(c) => Some(Ok(c)),
            None => py.detach(|| self.wait_next()),
        };
        match next {
            Some(Ok(chunk)) => to_py(py, &chunk),
            Some(Err(e)) => Err(err(py, e)),
            None => Err(PyStopIteration::new_err(())),
        }
    }

    /// Stops the stream and cancels the upstream request.
    fn close(&self) {
        self.shared.stop();
    }

    /// Reads the rest of the stream into one `chat.completion` dict
    /// (`bifrost.Accumulator`: a restart marker starts the answer over).
    /// An error is raised as iteration raises it (with `text_so_far`).
    fn collect(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let out = py.detach(|| {
            let mut acc = StreamAccumulator::new();
            while let Some(chunk) = self.wait_next() {
                acc.push(&chunk?);
            }
            Ok(acc.message())
        });
        match out {
            Ok(message) => to_py(py, &message),
            Err(e) => Err(err(py, e)),
        }
    }

    /// 0 if the primary provider serves this stream, i + 1 for `fallbacks[i]`.
    #[getter]
    fn fallback_index(&self) -> u32 {
        self.shared.inner.lock().fallback_index
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
    /// The same, for threads waiting in `Stream.__next__` (GIL released).
    added: parking_lot::Condvar,
}

struct Inner {
    ready: VecDeque<Chunk>,
    /// What follows `ready` once the reader stopped.
    end: Option<End>,
    /// Futures of `__anext__` calls waiting for chunks (resolved with None).
    waiters: Vec<(crate::bridge::Target, Py<PyAny>)>,
    start: Start,
    /// The stream's `fallback_index` as of the reader's last read.
    fallback_index: u32,
}

enum End {
    Done,
    Failed(bifrost_core::Error),
}

enum Start {
    /// Not read yet: read (and, for a request, sent) on first use.
    Pending(Open),
    Reading(tokio::task::AbortHandle),
    Stopped,
}

/// What the reader starts from.
enum Open {
    /// A request `astream` has not sent yet.
    Request(Arc<Gateway>, Box<Request>),
    /// A stream `Gateway.stream` opened already.
    Stream(Box<ChunkStream>),
}

impl AsyncStream {
    pub fn new(gw: Arc<Gateway>, req: Request) -> Self {
        AsyncStream { shared: Shared::new(Start::Pending(Open::Request(gw, Box::new(req)))) }
    }
}

impl Drop for AsyncStream {
    fn drop(&mut self) {
        self.shared.abort_reader();
    }
}

impl Shared {
    fn new(start: Start) -> Arc<Self> {
        Arc::new(Shared {
            inner: Mutex::new(Inner {
                ready: VecDeque::new(),
                end: None,
                waiters: Vec::new(),
                start,
                fallback_index: 0,
            }),
            space: tokio::sync::Notify::new(),
            data: tokio::sync::Notify::new(),
            added: parking_lot::Condvar::new(),
        })
    }

    /// The reader holds the stream: stopping it closes the upstream request.
    fn abort_reader(&self) {
        if let Start::Reading(h) = &self.inner.lock().start {
            h.abort();
        }
    }

    /// Starts the reader if the request is still pending (call with `inner` locked).
    fn start(self: &Arc<Self>, inner: &mut Inner) -> Result<(), bifrost_core::Error> {
        if !matches!(inner.start, Start::Pending(..)) {
            return Ok(());
        }
        let Start::Pending(open) = std::mem::replace(&mut inner.start, Start::Stopped) else { return Ok(()) };
        let handle = runtime::handle()?;
        let shared = self.clone();
        let task = handle.spawn(async move {
            // A panic in the reader (a bug) still ends the stream, with
            // InternalError: no consumer is left waiting.
            let read = std::panic::AssertUnwindSafe(read_ahead(shared.clone(), open));
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
        self.added.notify_all();
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
async fn read_ahead(shared: Arc<Shared>, open: Open) {
    let mut s = match open {
        Open::Stream(s) => *s,
        Open::Request(gw, req) => match gw.stream(*req).await {
            Ok(s) => s,
            Err(e) => return shared.add(Vec::new(), Some(End::Failed(e))),
        },
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
        shared.inner.lock().fallback_index = s.fallback_index();
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
