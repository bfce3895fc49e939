//! Handing core futures to asyncio, with completions delivered in batches.
//!
//! `spawn(py, future, convert)` creates an asyncio future on the running
//! loop, runs `future` on the core runtime, and hands its output to the
//! loop's [`LoopHub`]: a queue plus a pipe the loop watches
//! (`loop.add_reader`). The first completion queued after a drain writes
//! one byte; the loop wakes, and `LoopHub.drain` — on the loop's own
//! thread, with the GIL it already holds — converts every queued output to
//! Python and resolves its future. So a burst of completions costs one
//! wake-up of the loop and no other thread, and no thread but the loop's
//! ever waits for the GIL. Cancelling the asyncio future (a cancelled task)
//! aborts the core future, which cancels its job.
//!
//! A loop without `add_reader` (Windows' proactor loop) is served by a
//! completion thread instead: it takes the GIL once per batch, converts,
//! and resolves the batch with one `call_soon_threadsafe`.
//!
//! Synchronisation (as the Node binding's `Hub`): the queue is guarded by
//! its mutex; `scheduled` is true from the byte written until the drain
//! starts. A producer queues, then writes the byte only if `scheduled` was
//! false; the drain clears `scheduled` before taking the queue, so no
//! completion is left without a wake-up to come.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyList;

type Convert = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

struct Completion {
    event_loop: Arc<Py<PyAny>>,
    future: Py<PyAny>,
    convert: Convert,
}

static SENDER: OnceLock<Mutex<Sender<Completion>>> = OnceLock::new();
static RESOLVE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Where a loop's completions go: its hub, or the completion thread.
#[derive(Clone)]
pub enum Target {
    Hub(Arc<HubQueue>),
    Thread(Arc<Py<PyAny>>),
}

impl Target {
    /// The target of the running loop `event_loop` (call on its thread).
    pub fn of(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> Target {
        thread_local! {
            // The last loop seen on this thread and its target: a thread
            // normally runs one loop, so the lookup is one identity check.
            static LAST: RefCell<Option<(Py<PyAny>, Target)>> = const { RefCell::new(None) };
        }
        if let Some(t) =
            LAST.with_borrow(|last| last.as_ref().filter(|(l, _)| l.is(event_loop)).map(|(_, t)| t.clone()))
        {
            return t;
        }
        let target = match LoopHub::attach(py, event_loop) {
            Some(hub) => Target::Hub(hub),
            None => Target::Thread(Arc::new(event_loop.clone().unbind())),
        };
        LAST.set(Some((event_loop.clone().unbind(), target.clone())));
        target
    }

    /// Hands over a completion (from any thread).
    fn send(&self, future: Py<PyAny>, convert: Convert) {
        match self {
            Target::Hub(q) => q.push(future, convert),
            Target::Thread(l) => {
                let _ = sender().send(Completion { event_loop: l.clone(), future, convert });
            }
        }
    }
}

/// The queue half of a [`LoopHub`], shared with the tasks that complete.
pub struct HubQueue {
    queue: Mutex<Vec<(Py<PyAny>, Convert)>>,
    scheduled: AtomicBool,
    #[cfg(unix)]
    wake: std::os::unix::net::UnixStream,
}

impl HubQueue {
    fn push(&self, future: Py<PyAny>, convert: Convert) {
        self.queue.lock().push((future, convert));
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            #[cfg(unix)]
            {
                use std::io::Write;
                // Non-blocking; a full socket already holds a wake-up.
                let _ = (&self.wake).write(&[1]);
            }
        }
    }
}

/// A loop's end of the completion queue: `drain` is registered with
/// `loop.add_reader` on the socket `fileno()`.
#[pyclass(frozen)]
pub struct LoopHub {
    queue: Arc<HubQueue>,
    #[cfg(unix)]
    readable: std::os::unix::net::UnixStream,
}

impl LoopHub {
    /// A hub registered with `event_loop`, or `None` if the loop has no
    /// `add_reader` (or no socket pair could be made).
    #[cfg(unix)]
    fn attach(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> Option<Arc<HubQueue>> {
        use std::os::fd::AsRawFd;
        let (readable, wake) = std::os::unix::net::UnixStream::pair().ok()?;
        readable.set_nonblocking(true).ok()?;
        wake.set_nonblocking(true).ok()?;
        let queue = Arc::new(HubQueue { queue: Mutex::new(Vec::new()), scheduled: AtomicBool::new(false), wake });
        let fd = readable.as_raw_fd();
        let hub = Bound::new(py, LoopHub { queue: queue.clone(), readable }).ok()?;
        let drain = hub.getattr("drain").ok()?;
        event_loop.call_method1("add_reader", (fd, drain)).ok()?;
        Some(queue)
    }

    #[cfg(not(unix))]
    fn attach(_py: Python<'_>, _event_loop: &Bound<'_, PyAny>) -> Option<Arc<HubQueue>> {
        None
    }
}

#[pymethods]
impl LoopHub {
    /// Resolves every queued future (the loop calls it when woken).
    fn drain(&self, py: Python<'_>) {
        #[cfg(unix)]
        {
            use std::io::Read;
            let mut buf = [0u8; 64];
            while matches!((&self.readable).read(&mut buf), Ok(n) if n == buf.len()) {}
        }
        self.queue.scheduled.store(false, Ordering::Release);
        let items = std::mem::take(&mut *self.queue.queue.lock());
        for (future, convert) in items {
            let future = future.bind(py);
            // A cancelled task's future: nobody waits for it.
            if future.call_method0(pyo3::intern!(py, "cancelled")).and_then(|c| c.is_truthy()).unwrap_or(true) {
                continue;
            }
            let _ = match convert(py) {
                Ok(v) => future.call_method1(pyo3::intern!(py, "set_result"), (v,)),
                Err(e) => future.call_method1(pyo3::intern!(py, "set_exception"), (e.into_value(py),)),
            };
        }
    }
}

fn sender() -> Sender<Completion> {
    SENDER
        .get_or_init(|| {
            let (tx, rx) = channel();
            std::thread::Builder::new()
                .name("bifrost-asyncio".into())
                .spawn(move || deliver_forever(rx))
                .expect("spawn the bifrost completion thread");
            Mutex::new(tx)
        })
        .lock()
        .clone()
}

fn deliver_forever(rx: Receiver<Completion>) {
    // Only this thread touches the receiver; the mutex makes it Sync for `detach`.
    let rx = Mutex::new(rx);
    Python::attach(|py| loop {
        // Wait without the GIL; then take everything that is ready.
        let batch = py.detach(|| {
            let rx = rx.lock();
            let first = rx.recv().ok()?;
            let mut batch = vec![first];
            while let Ok(more) = rx.try_recv() {
                batch.push(more);
            }
            Some(batch)
        });
        match batch {
            Some(batch) => deliver(py, batch),
            None => return,
        }
    })
}

fn deliver(py: Python<'_>, batch: Vec<Completion>) {
    let Ok(resolve) = RESOLVE.get_or_try_init(py, || {
        py.import("bifrost._gateway").and_then(|m| m.getattr("_resolve_batch")).map(Bound::unbind)
    }) else {
        return;
    };
    // Group by event loop, keeping order within each.
    let mut groups: Vec<(Arc<Py<PyAny>>, Bound<'_, PyList>)> = Vec::new();
    for c in batch {
        let item = match (c.convert)(py) {
            Ok(v) => (c.future, true, v).into_pyobject(py),
            Err(e) => (c.future, false, e.into_value(py)).into_pyobject(py),
        };
        let Ok(item) = item else { continue };
        match groups.iter().position(|(l, _)| Arc::ptr_eq(l, &c.event_loop)) {
            Some(i) => {
                let _ = groups[i].1.append(item);
            }
            None => {
                let list = PyList::empty(py);
                let _ = list.append(item);
                groups.push((c.event_loop, list));
            }
        }
    }
    for (event_loop, items) in groups {
        // A closed loop refuses: its futures are gone with it.
        let _ = event_loop.bind(py).call_method1("call_soon_threadsafe", (resolve.bind(py), items));
    }
}

static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `asyncio.get_running_loop()` (RuntimeError outside a loop, as asyncio says).
pub fn running_loop<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
    GET_RUNNING_LOOP
        .get_or_try_init(py, || py.import("asyncio")?.getattr("get_running_loop").map(Bound::unbind))?
        .bind(py)
        .call0()
}

/// Aborts the core task when its asyncio future is cancelled.
#[pyclass(frozen)]
pub struct CancelHook {
    abort: tokio::task::AbortHandle,
}

#[pymethods]
impl CancelHook {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if future.call_method0("cancelled")?.is_truthy()? {
            self.abort.abort();
        }
        Ok(())
    }
}

/// Resolves `future` (of the loop `target` serves) with `None`, from any
/// thread, batched with the loop's other futures (a cancelled future is
/// left alone).
pub fn wake(target: &Target, future: Py<PyAny>) {
    target.send(future, Box::new(|py| Ok(py.None())));
}

/// Runs `fut` on the core runtime and returns an asyncio future (of the
/// running loop) resolved with `convert(output)`.
pub fn spawn<'py, F, T, C>(py: Python<'py>, fut: F, convert: C) -> PyResult<Bound<'py, PyAny>>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
    C: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let handle = bifrost_core::runtime::handle().map_err(|e| crate::errors::to_py(py, e))?;
    let event_loop = running_loop(py)?;
    let future = event_loop.call_method0(pyo3::intern!(py, "create_future"))?;
    let target = Target::of(py, &event_loop);
    let f = future.clone().unbind();
    let task = handle.spawn(async move {
        // A panic in `fut` (a bug: the core catches provider panics itself)
        // resolves the asyncio future with InternalError: no awaiter is
        // left hanging and no panic reaches Python.
        let mut fut = std::pin::pin!(fut);
        let out = std::future::poll_fn(|cx| {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
                Ok(std::task::Poll::Ready(out)) => std::task::Poll::Ready(Ok(out)),
                Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
                Err(panic) => std::task::Poll::Ready(Err(bifrost_core::error::panic_text(&*panic))),
            }
        })
        .await;
        let convert: Convert = match out {
            Ok(out) => Box::new(move |py| convert(py, out)),
            Err(what) => Box::new(move |py| {
                Err(crate::errors::to_py(
                    py,
                    bifrost_core::Error::Internal { message: format!("bifrost's Python binding panicked: {what}") },
                ))
            }),
        };
        target.send(f, convert);
    });
    future.call_method1("add_done_callback", (CancelHook { abort: task.abort_handle() },))?;
    Ok(future)
}
