//! Provider implementations and what they share: the call context a worker
//! passes in, and the chunk stream a streaming call hands back.
//!
//! A provider call is one attempt; retries, deadlines, cancellation and panic
//! isolation are the worker's job (`pool::worker`), so providers stay plain
//! `async fn`s that turn a [`Request`] into a [`Response`] or an [`Error`].

pub mod mock;

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::sync::mpsc;

use crate::config::{KeyConfig, ProviderKind};
use crate::error::{Error, Result};
use crate::types::{Chunk, EmbedRequest, EmbedResponse, Request, Response};

/// What a worker tells a provider about the attempt it is making.
pub(crate) struct CallCtx<'a> {
    pub model: &'a str,
    pub job_id: u64,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The key chosen for this attempt, if the provider has keys.
    #[allow(dead_code)]
    pub key: Option<&'a KeyConfig>,
}

/// The provider behind one pool.
pub(crate) enum ProviderImpl {
    Mock(mock::MockProvider),
}

impl ProviderImpl {
    /// Builds the provider for a validated config entry.
    pub fn new(name: &str, kind: ProviderKind, cfg: &crate::config::ProviderConfig) -> Result<Self> {
        match kind {
            ProviderKind::Mock => {
                Ok(ProviderImpl::Mock(mock::MockProvider::new(name, cfg.mock.clone().unwrap_or_default())))
            }
            other => Err(Error::config(
                format!("providers.{name}.kind"),
                format!(
                    "provider kind '{}' is not available in this build yet (only 'mock' is); \
                     the HTTP providers land with the providers milestone",
                    other.as_str()
                ),
            )),
        }
    }

    pub async fn chat(&self, req: &Request, ctx: &CallCtx<'_>) -> Result<Response> {
        match self {
            ProviderImpl::Mock(m) => m.chat(req, ctx).await,
        }
    }

    pub async fn stream(&self, req: &Request, ctx: &CallCtx<'_>) -> Result<ChunkStream> {
        match self {
            ProviderImpl::Mock(m) => m.stream(req, ctx).await,
        }
    }

    pub async fn embed(&self, req: &EmbedRequest, ctx: &CallCtx<'_>) -> Result<EmbedResponse> {
        match self {
            ProviderImpl::Mock(m) => m.embed(req, ctx).await,
        }
    }
}

/// A stream of `chat.completion.chunk`s. Ends after the final chunk; a
/// stream the provider cut off yields an `Err` item, never a silent end.
/// Dropping it stops the upstream.
pub struct ChunkStream {
    source: Source,
}

enum Source {
    /// Every chunk is already known (the mock provider).
    Ready(VecDeque<Result<Chunk>>),
    /// Chunks arrive from a task reading the upstream.
    #[allow(dead_code)]
    Channel(mpsc::Receiver<Result<Chunk>>),
}

impl ChunkStream {
    pub(crate) fn ready(chunks: VecDeque<Result<Chunk>>) -> Self {
        ChunkStream { source: Source::Ready(chunks) }
    }

    /// The next chunk, or `None` after the last one.
    pub async fn next_chunk(&mut self) -> Option<Result<Chunk>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl std::fmt::Debug for ChunkStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChunkStream")
    }
}

impl Stream for ChunkStream {
    type Item = Result<Chunk>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match &mut self.source {
            Source::Ready(q) => Poll::Ready(q.pop_front()),
            Source::Channel(rx) => rx.poll_recv(cx),
        }
    }
}
