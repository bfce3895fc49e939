//! The one tokio runtime shared by every Gateway and every binding.
//!
//! It is created lazily on first use with `BIFROST_WORKER_THREADS` threads
//! (default: the number of CPUs) and lives for the rest of the process. All
//! pool workers run on it; callers may await bifrost futures from any
//! executor, because every timer bifrost creates is registered on this
//! runtime, not on the caller's.
//!
//! A tokio runtime does not survive `fork()`: its threads exist only in the
//! parent. [`handle`] records the pid that built the runtime and returns
//! [`Error::Internal`] in a forked child instead of letting it hang.

use std::sync::OnceLock;

use tokio::runtime::{Handle, Runtime};

use crate::error::{Error, Result};

struct Shared {
    pid: u32,
    runtime: Runtime,
}

static SHARED: OnceLock<std::result::Result<Shared, String>> = OnceLock::new();

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

fn build() -> std::result::Result<Shared, String> {
    let threads = configured_threads()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("bifrost-rt")
        .enable_time()
        .enable_io()
        .build()
        .map_err(|e| format!("cannot start the bifrost runtime: {e}"))?;
    Ok(Shared { pid: std::process::id(), runtime })
}

/// The shared runtime's handle; errors in a forked child or on a bad
/// `BIFROST_WORKER_THREADS`.
pub fn handle() -> Result<&'static Handle> {
    match SHARED.get_or_init(build) {
        Ok(shared) if shared.pid == std::process::id() => Ok(shared.runtime.handle()),
        Ok(_) => Err(Error::Internal {
            message: "bifrost was started in a parent process and this process is a fork() child; \
                      its runtime threads do not exist here. Create gateways only after forking \
                      (e.g. in each worker process), or use the spawn start method"
                .to_string(),
        }),
        Err(msg) => Err(Error::Config { path: "BIFROST_WORKER_THREADS".into(), message: msg.clone() }),
    }
}

/// Number of worker threads of the shared runtime (0 if it failed to start).
pub fn worker_threads() -> usize {
    match SHARED.get() {
        Some(Ok(s)) => s.runtime.metrics().num_workers(),
        _ => configured_threads().unwrap_or(0),
    }
}

/// True when the current thread is one of the shared runtime's workers, where
/// a blocking wait could starve the very jobs it waits for.
pub fn on_runtime_thread() -> bool {
    match (SHARED.get(), Handle::try_current()) {
        (Some(Ok(s)), Ok(h)) => s.runtime.handle().id() == h.id(),
        _ => false,
    }
}
