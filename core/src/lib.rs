//! bifrost-core: provider-isolated worker pools for LLM requests.
//!
//! A [`Gateway`] owns one pool per configured provider: a bounded queue with
//! a backpressure policy (`block`, `error`, `drop`, `drop_oldest`) and a set
//! of worker tasks on one shared tokio runtime. Every submitted job ends in
//! exactly one outcome — a response or a typed [`Error`] — and every pool's
//! counters satisfy, whenever it is idle,
//! `submitted = queued + running + completed + failed + dropped + rejected + timed_out + cancelled`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), bifrost_core::Error> {
//! use bifrost_core::{Gateway, Request};
//! let gw = Gateway::from_json(r#"{"providers": {"local": {"kind": "mock"}}}"#)?;
//! let resp = gw.chat(Request::new("local/echo-1", "hello")).await?;
//! assert_eq!(resp.text(), Some("echo: hello"));
//! gw.shutdown(std::time::Duration::from_secs(1)).await;
//! # Ok(()) }
//! ```

pub mod accumulate;
pub mod bounds;
mod clock;
pub mod config;
pub mod error;
pub mod failover;
pub mod gateway;
mod ids;
pub mod json;
pub(crate) mod limits;
mod objpool;
mod pool;
mod providers;
mod redact;
pub mod runtime;
pub mod sizing;
pub mod stats;
pub mod types;

pub use accumulate::StreamAccumulator;
pub use config::{Config, MockConfig, ProviderKind, QueuePolicy, Secret};
pub use error::{DropReason, Error, ErrorKind, Result, TimeoutPhase};
pub use gateway::{Gateway, Health, ProviderHealth, ShutdownReport};
pub use pool::{Canceller, Job, JobOutput, SharedJob};
pub use providers::ChunkStream;
pub use sizing::{optimal_concurrency, Sizing};
pub use stats::{JobStats, Stats, WorkerStats};
pub use types::{
    Chunk, ChunkExtraFields, Content, EmbedInput, EmbedRequest, EmbedResponse, EmbedUsage, EmbeddingVector, Message,
    Request, Response, StreamRestart, Usage,
};
