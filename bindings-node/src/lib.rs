//! bifrost-node: the Node binding of bifrost (napi-rs).
//!
//! Thin by design: `gateway.rs` forwards each call to the core `Gateway`
//! on bifrost's shared runtime, `protocol.rs` (the call protocol's Rust side:
//! event kinds and their batched delivery) settles JS promises through one
//! threadsafe function per gateway, `errors.rs` maps core
//! errors. The public JS API (`Gateway`, `Job`, `BifrostError`, streams as
//! async iterables, `AbortSignal`) lives in `bindings-node/index.js`, over
//! the call registry of `bindings-node/protocol.js`.
//!
//! Runtime: this crate does not enable napi's `async` feature, so napi
//! starts no tokio runtime of its own; every task runs on the core's shared
//! runtime (`bifrost_core::runtime::handle()`). Handing that runtime to
//! napi (`create_custom_tokio_runtime`) would let napi shut it down when
//! its last environment is torn down (e.g. the only worker thread that
//! loaded the addon exits), leaving the core holding a dead handle.

mod errors;
mod gateway;
mod protocol;

use napi_derive::napi;

/// `optimal_concurrency` as JSON text (`{concurrency, buffer_size, timeout_ms}`).
#[napi]
pub fn optimal_concurrency(rate_limit_rps: f64, avg_latency_s: f64, error_rate: f64) -> napi::Result<String> {
    let s = bifrost_core::optimal_concurrency(rate_limit_rps, avg_latency_s, error_rate)
        .map_err(|e| errors::to_napi(&e))?;
    serde_json::to_string(&s).map_err(|e| napi::Error::from_reason(e.to_string()))
}

/// The crate version.
/// Every core error kind's code (`BifrostError#code`), in the core's order:
/// index.js's `ERROR_CODES` is this list, so it cannot drift from the core.
#[napi]
pub fn error_codes() -> Vec<&'static str> {
    bifrost_core::ErrorKind::ALL.iter().map(|k| k.as_str()).collect()
}

#[napi]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// The core's stream accumulator for `Accumulator` in index.js: chunks in
/// as JSON text, the final `chat.completion` out as JSON text, restart
/// markers honoured (bifrost_core::StreamAccumulator).
#[napi]
pub struct NativeAccumulator {
    inner: bifrost_core::StreamAccumulator,
}

#[napi]
impl NativeAccumulator {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        NativeAccumulator { inner: bifrost_core::StreamAccumulator::new() }
    }

    /// Adds one chunk (JSON text); not a chunk: INVALID_REQUEST.
    #[napi]
    pub fn add(&mut self, chunk: String) -> napi::Result<()> {
        let chunk: bifrost_core::Chunk = bifrost_core::bounds::parse_strict(&chunk).map_err(|e| {
            let at = if e.path.is_empty() { String::new() } else { format!(".{}", e.path) };
            errors::to_napi(&bifrost_core::Error::InvalidRequest { message: format!("chunk{at}: {}", e.message) })
        })?;
        self.inner.push(&chunk);
        Ok(())
    }

    /// The `chat.completion` of what was added, as JSON text.
    #[napi]
    pub fn message(&self) -> String {
        self.inner.message().to_string()
    }

    /// The content text of choice 0 so far.
    #[napi(getter)]
    pub fn text(&self) -> String {
        self.inner.text().to_string()
    }

    /// Restart markers seen.
    #[napi(getter)]
    pub fn restarts(&self) -> u32 {
        self.inner.restarts()
    }
}
