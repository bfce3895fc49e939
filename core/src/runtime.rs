//! The one tokio runtime shared by every Gateway and every binding.
//!
//! It is created lazily on first use with `BIFROST_WORKER_THREADS` threads
//! (default: the number of CPUs) and lives for the rest of the process. All
//! pool workers run on it; callers may await bifrost futures from any
//! executor, because every timer bifrost creates is registered on this
//! runtime, not on the caller's.
//!
//! A host that must own the runtime can call [`build`], give the core its
//! handle with [`adopt`] before anything else runs, and keep the runtime
//! alive for the whole process: there is still one thread pool. (The Node
//! binding does not: napi shuts a runtime it owns down when the last JS
//! environment that loaded the addon exits, which would strand the core, so
//! it runs on the runtime bifrost builds and owns, like everyone else.)
//!
//! A tokio runtime does not survive `fork()`: its threads exist only in the
//! parent. [`handle`] records the pid that started the runtime and returns
//! [`Error::Internal`] in a forked child instead of letting it hang.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use tokio::runtime::{Handle, Runtime};

use crate::error::{Error, Result};

struct Shared {
    pid: u32,
    handle: Handle,
    /// The runtime itself when bifrost owns it (see [`adopt`]): held, never
    /// read, so it lives as long as the process.
    _owned: Option<Runtime>,
}

static SHARED: OnceLock<std::result::Result<Shared, String>> = OnceLock::new();

/// Set in a `fork()` child (by a `pthread_atfork` handler), so the check on
/// every call is one atomic load, not a `getpid` system call.
static FORKED: AtomicBool = AtomicBool::new(false);

#[cfg(unix)]
extern "C" fn mark_forked() {
    FORKED.store(true, Ordering::SeqCst);
}

fn watch_forks() {
    #[cfg(unix)]
    // SAFETY: registers a handler that only stores to an atomic, which is
    // async-signal-safe as a fork child handler must be.
    unsafe {
        libc::pthread_atfork(None, None, Some(mark_forked));
    }
}

/// Threads the shared runtime uses: `BIFROST_WORKER_THREADS` or the CPU count.
fn configured_threads() -> std::result::Result<usize, String> {
    match std::env::var("BIFROST_WORKER_THREADS") {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=1024).contains(&n) => Ok(n),
            _ => Err(format!("BIFROST_WORKER_THREADS must be an integer 1..=1024, got {v:?}")),
        },
        Err(_) => Ok(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)),
    }
}

/// Builds a runtime configured as bifrost's shared one (threads from
/// `BIFROST_WORKER_THREADS`), for a binding that must hand it to its host.
pub fn build() -> Result<Runtime> {
    let threads = configured_threads().map_err(|m| Error::config("BIFROST_WORKER_THREADS", m))?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("bifrost-rt")
        .enable_time()
        .enable_io()
        .build()
        .map_err(|e| Error::Internal { message: format!("cannot start the bifrost runtime: {e}") })
}

/// Makes `handle` the shared runtime (its owner keeps it alive for the
/// process). Returns false if the shared runtime already exists.
pub fn adopt(handle: Handle) -> bool {
    let mut adopted = false;
    SHARED.get_or_init(|| {
        adopted = true;
        watch_forks();
        Ok(Shared { pid: std::process::id(), handle, _owned: None })
    });
    adopted
}

fn shared() -> &'static std::result::Result<Shared, String> {
    SHARED.get_or_init(|| {
        watch_forks();
        build().map_err(|e| e.to_string()).map(|rt| Shared {
            pid: std::process::id(),
            handle: rt.handle().clone(),
            _owned: Some(rt),
        })
    })
}

/// The message of every call made in a fork() child of a process whose
/// runtime had started.
const FORKED_CHILD: &str = "bifrost was started in a parent process and this process is a fork() child; \
                            its runtime threads do not exist here. Create gateways only after forking \
                            (e.g. in each worker process), or use the spawn start method";

/// INTERNAL in a fork() child of a process whose runtime had started (its
/// threads, and every queue's workers, exist only in the parent): a job
/// submitted there would never run. One relaxed atomic load otherwise.
pub fn check_not_forked() -> Result<()> {
    if !FORKED.load(Ordering::Relaxed) {
        return Ok(());
    }
    match SHARED.get() {
        Some(Ok(s)) if s.pid != std::process::id() => Err(Error::Internal { message: FORKED_CHILD.to_string() }),
        _ => Ok(()),
    }
}

/// The shared runtime's handle; errors in a forked child or on a bad
/// `BIFROST_WORKER_THREADS`.
pub fn handle() -> Result<&'static Handle> {
    match shared() {
        Ok(s) if !FORKED.load(Ordering::Relaxed) || s.pid == std::process::id() => Ok(&s.handle),
        Ok(_) => Err(Error::Internal { message: FORKED_CHILD.to_string() }),
        Err(msg) => Err(Error::Config { path: "BIFROST_WORKER_THREADS".into(), message: msg.clone() }),
    }
}

/// Number of worker threads of the shared runtime (0 if it failed to start).
pub fn worker_threads() -> usize {
    match SHARED.get() {
        Some(Ok(s)) => s.handle.metrics().num_workers(),
        _ => configured_threads().unwrap_or(0),
    }
}

/// True when the current thread is one of the shared runtime's workers, where
/// a blocking wait could starve the very jobs it waits for.
pub fn on_runtime_thread() -> bool {
    match (SHARED.get(), Handle::try_current()) {
        (Some(Ok(s)), Ok(h)) => s.handle.id() == h.id(),
        _ => false,
    }
}

/// Runs `fut` to completion from synchronous code (a binding's blocking
/// call): on the caller's thread, with bifrost's timers on the shared
/// runtime. Refuses (INTERNAL) on a runtime thread, where it would deadlock.
pub fn block_on<F: std::future::Future>(fut: F) -> Result<F::Output> {
    if on_runtime_thread() {
        return Err(Error::Internal {
            message: "a blocking bifrost call was made on a bifrost runtime thread (e.g. inside a \
                      callback); use the async API there"
                .into(),
        });
    }
    let _guard = handle()?.enter();
    Ok(futures_executor::block_on(fut))
}
