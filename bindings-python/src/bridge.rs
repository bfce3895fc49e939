//! Handing core futures to asyncio, with completions delivered in batches.
//!
//! `spawn(py, future, convert)` creates an asyncio future on the running
//! loop, runs `future` on the core runtime, and passes its output to one
//! dedicated completion thread. That thread keeps its Python thread state
//! for the life of the process, takes the GIL once per batch of
//! completions, converts each output to Python, and resolves the whole
//! batch of a loop with a single `call_soon_threadsafe` — one event-loop
//! wake-up per batch instead of one GIL round trip, one blocking-pool hop
//! and one wake-up per request. Cancelling the asyncio future (a cancelled
//! task) aborts the core future, which cancels its job.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::OnceLock;

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyList;

type Convert = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

struct Completion {
    event_loop: Py<PyAny>,
    future: Py<PyAny>,
    convert: Convert,
}

static SENDER: OnceLock<Mutex<Sender<Completion>>> = OnceLock::new();
static RESOLVE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

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
    let mut groups: Vec<(Py<PyAny>, Bound<'_, PyList>)> = Vec::new();
    for c in batch {
        let item = match (c.convert)(py) {
            Ok(v) => (c.future, true, v).into_pyobject(py),
            Err(e) => (c.future, false, e.into_value(py)).into_pyobject(py),
        };
        let Ok(item) = item else { continue };
        match groups.iter().position(|(l, _)| l.is(&c.event_loop)) {
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

/// Resolves `future` (of `event_loop`) with `None`, from any thread:
/// through the completion thread, batched with the loop's other futures
/// (a cancelled future is left alone).
pub fn wake(event_loop: Py<PyAny>, future: Py<PyAny>) {
    let _ = sender().send(Completion { event_loop, future, convert: Box::new(|py| Ok(py.None())) });
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
    let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
    let future = event_loop.call_method0("create_future")?;
    let (l, f) = (event_loop.clone().unbind(), future.clone().unbind());
    let tx = sender();
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
        let _ = tx.send(Completion { event_loop: l, future: f, convert });
    });
    future.call_method1("add_done_callback", (CancelHook { abort: task.abort_handle() },))?;
    Ok(future)
}
