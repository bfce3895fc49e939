//! Provider implementations and what they share: the call context a worker
//! passes in, and the chunk stream a streaming call hands back.
//!
//! A provider call is one attempt; retries, deadlines, cancellation and panic
//! isolation are the worker's job (`pool::worker`), so providers stay plain
//! `async fn`s that turn a [`Request`] into a [`Response`] or an [`Error`].

pub(crate) mod anthropic;
pub(crate) mod bedrock;
#[cfg(test)]
mod fuzz;
pub(crate) mod http;
mod mapping;
pub mod mock;
pub(crate) mod openai;

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::Stream;

use crate::config::{KeyConfig, ProviderConfig, ProviderKind};
use crate::error::Result;
use crate::objpool::BufferPool;
use crate::types::{Chunk, EmbedRequest, EmbedResponse, Request, Response};

/// What a worker tells a provider about the attempt it is making.
pub(crate) struct CallCtx<'a> {
    pub provider: &'a str,
    pub model: &'a str,
    pub job_id: u64,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The key chosen for this attempt, if the provider has keys.
    pub key: Option<&'a KeyConfig>,
    /// Its index among the provider's keys.
    pub key_index: Option<usize>,
    /// The request's end-to-end deadline (bounds a stream's life too).
    pub deadline: Option<Instant>,
    /// The request's `timeout_ms`, for messages about that deadline.
    pub timeout_ms: Option<u64>,
    /// Shown every HTTP response's status and headers before its body is
    /// read (`limits.learn_from_headers`, docs/architecture.md §10).
    pub on_response: Option<&'a OnResponse<'a>>,
    /// `failover.headers_timeout_ms` of a unary call, when armed: the
    /// longest wait for the response head (a FIRST_TOKEN timeout).
    pub headers_timeout: Option<std::time::Duration>,
}

/// What sees a response's status and headers (see [`CallCtx::on_response`]).
pub(crate) type OnResponse<'a> = dyn Fn(u16, &reqwest::header::HeaderMap) + Sync + 'a;

/// OpenAI's `stop` (a string or a list) as a list, for providers that
/// name it differently.
pub(crate) fn stop_sequences(params: &serde_json::Map<String, serde_json::Value>) -> Option<serde_json::Value> {
    match params.get("stop")? {
        serde_json::Value::String(s) => Some(serde_json::Value::Array(vec![serde_json::Value::String(s.clone())])),
        serde_json::Value::Array(a) => Some(serde_json::Value::Array(a.clone())),
        _ => None,
    }
}

/// A stream's first-chunk report of what of the request was not sent
/// (taken once; `None` when everything was sent).
pub(crate) fn unmapped_report(unmapped: &mut Vec<String>) -> Option<Box<crate::types::ChunkExtraFields>> {
    (!unmapped.is_empty())
        .then(|| Box::new(crate::types::ChunkExtraFields { unmapped_params: std::mem::take(unmapped), restart: None }))
}

impl CallCtx<'_> {
    /// The chosen key's non-secret id (`openai#0`), for messages.
    pub fn key_id(&self) -> String {
        match self.key_index {
            Some(i) => format!("{}#{i}", self.provider),
            None => format!("{}#-", self.provider),
        }
    }
}

/// The provider behind one pool.
/// Unix time in seconds, for the `created` field of responses and chunks.
/// On Linux from the coarse real-time clock: second resolution is all
/// `created` needs, and the fine clock is a noticeable share of a job.
pub(crate) fn unix_now_s() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec for the call.
        if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0 {
            return u64::try_from(ts.tv_sec).unwrap_or(0);
        }
    }
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub(crate) enum ProviderImpl {
    Mock(mock::MockProvider),
    OpenAi(openai::OpenAi),
    Anthropic(anthropic::Anthropic),
    Bedrock(bedrock::Bedrock),
}

impl ProviderImpl {
    /// Builds the provider for a validated config entry.
    pub fn new(name: &str, kind: ProviderKind, cfg: &ProviderConfig, buffers: Arc<BufferPool>) -> Result<Self> {
        Ok(match kind {
            ProviderKind::Mock => {
                ProviderImpl::Mock(mock::MockProvider::new(name, cfg.mock.clone().unwrap_or_default()))
            }
            ProviderKind::Openai => ProviderImpl::OpenAi(openai::OpenAi::new(name, cfg, buffers)?),
            ProviderKind::Anthropic => ProviderImpl::Anthropic(anthropic::Anthropic::new(name, cfg, buffers)?),
            ProviderKind::Bedrock => ProviderImpl::Bedrock(bedrock::Bedrock::new(name, cfg, buffers)?),
        })
    }

    // HTTP calls are boxed: their futures are kilobytes, and an unboxed one
    // would make every job's future (mock included) that large to move.
    //
    // Every error of an HTTP provider passes its provider's redactor on the
    // way out (`redact`), whichever code path built it.
    pub async fn chat(&self, req: &Request, ctx: &CallCtx<'_>) -> Result<Response> {
        match self {
            ProviderImpl::Mock(p) => p.chat(req, ctx).await,
            ProviderImpl::OpenAi(p) => Box::pin(p.chat(req, ctx)).await.map_err(|e| self.redact(e)),
            ProviderImpl::Anthropic(p) => Box::pin(p.chat(req, ctx)).await.map_err(|e| self.redact(e)),
            ProviderImpl::Bedrock(p) => Box::pin(p.chat(req, ctx)).await.map_err(|e| self.redact(e)),
        }
    }

    pub async fn stream(&self, req: &Request, ctx: &CallCtx<'_>) -> Result<ChunkStream> {
        match self {
            ProviderImpl::Mock(p) => p.stream(req, ctx).await,
            ProviderImpl::OpenAi(p) => Box::pin(p.stream(req, ctx)).await.map_err(|e| self.redact(e)),
            ProviderImpl::Anthropic(p) => Box::pin(p.stream(req, ctx)).await.map_err(|e| self.redact(e)),
            ProviderImpl::Bedrock(p) => Box::pin(p.stream(req, ctx)).await.map_err(|e| self.redact(e)),
        }
    }

    fn redact(&self, e: crate::error::Error) -> crate::error::Error {
        match self {
            ProviderImpl::Mock(_) => e,
            ProviderImpl::OpenAi(p) => p.http.redactor.error(e),
            ProviderImpl::Anthropic(p) => p.http.redactor.error(e),
            ProviderImpl::Bedrock(p) => p.http.redactor.error(e),
        }
    }

    pub async fn embed(&self, req: &EmbedRequest, ctx: &CallCtx<'_>) -> Result<EmbedResponse> {
        match self {
            ProviderImpl::Mock(p) => p.embed(req, ctx).await,
            ProviderImpl::OpenAi(p) => Box::pin(p.embed(req, ctx)).await.map_err(|e| self.redact(e)),
            ProviderImpl::Anthropic(_) | ProviderImpl::Bedrock(_) => Err(crate::error::Error::invalid(format!(
                "provider '{}' (kind {}) has no embeddings endpoint in bifrost; use an OpenAI-compatible provider",
                ctx.provider,
                if matches!(self, ProviderImpl::Anthropic(_)) { "anthropic" } else { "bedrock" }
            ))),
        }
    }
}

/// A stream of `chat.completion.chunk`s. Ends after the final chunk; a
/// stream the provider cut off yields an `Err` item, never a silent end.
/// Dropping it stops the upstream.
pub struct ChunkStream {
    source: Source,
    /// Items read ahead (an attempt reads up to the first content).
    prefix: VecDeque<Result<Chunk>>,
    fallback_index: u32,
    /// Told the stream's reported usage; dropped when the stream ends,
    /// fails or is dropped (see [`StreamWatcher`]).
    watcher: Option<Box<dyn StreamWatcher>>,
}

/// What follows a stream for the provider's `limits`: it hears the first
/// reported `usage.total_tokens` (and settles the reservation with it) and
/// is dropped when the upstream request is over (giving back its
/// in-flight slot).
pub(crate) trait StreamWatcher: Send + Sync {
    fn usage(&mut self, total_tokens: u64);
}

enum Source {
    /// Every chunk is already known (the mock provider).
    Ready(VecDeque<Result<Chunk>>),
    /// Chunks decoded from the upstream body as the consumer polls
    /// (`http::BodyReader`); dropping it closes the upstream connection.
    Body(Box<dyn http::ChunkSource>),
    /// Another stream, under `failover.stream_recovery` (`pool::recover`).
    Recovering(Box<crate::pool::recover::Recovering>),
}

impl ChunkStream {
    pub(crate) fn ready(chunks: VecDeque<Result<Chunk>>) -> Self {
        ChunkStream { source: Source::Ready(chunks), prefix: VecDeque::new(), fallback_index: 0, watcher: None }
    }

    pub(crate) fn body(source: Box<dyn http::ChunkSource>) -> Self {
        ChunkStream { source: Source::Body(source), prefix: VecDeque::new(), fallback_index: 0, watcher: None }
    }

    /// `stream` under recovery (`pool::recover`): what the caller reads.
    pub(crate) fn recovering(stream: ChunkStream, plan: crate::pool::recover::RecoveryPlan) -> Self {
        let fallback_index = stream.fallback_index;
        ChunkStream {
            source: Source::Recovering(Box::new(crate::pool::recover::Recovering::new(stream, plan))),
            prefix: VecDeque::new(),
            fallback_index,
            watcher: None,
        }
    }

    /// Follows the stream with `watcher`: told the usage when the chunk
    /// carrying it is read (once), dropped when the stream ends, fails or
    /// is dropped.
    pub(crate) fn watch(&mut self, watcher: Box<dyn StreamWatcher>) {
        self.watcher = Some(watcher);
    }

    /// 0 if the primary provider serves this stream, i + 1 for
    /// `fallbacks[i]` (after a restart: the route serving it now).
    pub fn fallback_index(&self) -> u32 {
        match &self.source {
            Source::Recovering(r) => r.fallback_index(),
            _ => self.fallback_index,
        }
    }

    pub(crate) fn set_fallback_index(&mut self, index: u32) {
        self.fallback_index = index;
    }

    /// Reads ahead until the first chunk with content, a finish reason, or
    /// the end; an error before any content is returned (and the stream is
    /// then spent). Read chunks are replayed by `next_chunk`.
    pub(crate) async fn peek_first_content(&mut self) -> Result<()> {
        loop {
            let item = std::future::poll_fn(|cx| self.poll_source(cx)).await;
            match item {
                None => return Ok(()),
                Some(Err(e)) => return Err(e),
                Some(Ok(c)) => {
                    let done = is_first_content(&c);
                    self.prefix.push_back(Ok(c));
                    if done {
                        return Ok(());
                    }
                }
            }
        }
    }

    fn poll_source(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Chunk>>> {
        match &mut self.source {
            Source::Ready(q) => Poll::Ready(q.pop_front()),
            Source::Body(b) => b.poll_chunk(cx),
            Source::Recovering(r) => Pin::new(&mut **r).poll_next(cx),
        }
    }

    /// The next chunk, or `None` after the last one.
    pub async fn next_chunk(&mut self) -> Option<Result<Chunk>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Waits for the next chunk, then takes every further chunk that is
    /// already there without waiting again: at most `max` (≥ 1) chunks,
    /// appended to `batch`. Returns `None` while the stream goes on,
    /// `Some(Ok(()))` once it ended and `Some(Err(e))` once it failed (after
    /// the chunks before it). What bindings hand over in one crossing.
    ///
    /// Cancel-safe: it waits only for the first chunk, and polling a
    /// stream that is not ready yet loses nothing (the next poll registers
    /// the real waker).
    pub async fn next_batch(&mut self, max: usize, batch: &mut Vec<Chunk>) -> Option<Result<()>> {
        match self.next_chunk().await {
            Some(Ok(c)) => batch.push(c),
            Some(Err(e)) => return Some(Err(e)),
            None => return Some(Ok(())),
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        for _ in 1..max.max(1) {
            match Pin::new(&mut *self).poll_next(&mut cx) {
                Poll::Ready(Some(Ok(c))) => batch.push(c),
                Poll::Ready(Some(Err(e))) => return Some(Err(e)),
                Poll::Ready(None) => return Some(Ok(())),
                Poll::Pending => break,
            }
        }
        None
    }
}

/// A chunk with content or a finish: what ends a stream's invisible part.
pub(crate) fn is_first_content(c: &Chunk) -> bool {
    c.choices.iter().any(|ch| ch.delta.has_content() || ch.finish_reason.is_some())
}

impl std::fmt::Debug for ChunkStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChunkStream")
    }
}

impl Stream for ChunkStream {
    type Item = Result<Chunk>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = match self.prefix.pop_front() {
            Some(item) => Poll::Ready(Some(item)),
            None => self.poll_source(cx),
        };
        if let Some(watcher) = &mut self.watcher {
            match &item {
                Poll::Ready(Some(Ok(chunk))) => {
                    if let Some(usage) = &chunk.usage {
                        watcher.usage(usage.total_tokens);
                    }
                }
                // The upstream request is over.
                Poll::Ready(Some(Err(_)) | None) => self.watcher = None,
                Poll::Pending => {}
            }
        }
        item
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn coarse_unix_time_agrees_with_the_system_clock() {
        let fine = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs();
        let coarse = super::unix_now_s();
        assert!(coarse.abs_diff(fine) <= 1, "coarse {coarse} vs fine {fine}");
    }
}
