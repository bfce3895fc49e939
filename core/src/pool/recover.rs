//! Stream recovery: what a stream does when it fails *after* its first
//! content reached the caller (docs/failover.md "Stream recovery").
//!
//! Before the first content, a stream's failures belong to its attempt
//! (`pool::attempts`) and to its route (`pool::route`), invisibly. After
//! it, the caller has text, so a failure is visible, and the request's
//! `stream_recovery` decides:
//! - `off`: the stream ends with [`Error::Interrupted`], carrying the text so far;
//! - `restart`: the request runs again where the failure class's action
//!   says (`retry`: the same route, up to its `max_retries`; `fallback`:
//!   the next of the request's fallbacks), the stream yields a *restart
//!   marker* (`choices: []`, `extra_fields.restart`), then the new answer;
//! - `buffer`: chunks are held until the stream ends (or until
//!   `commit_after_chars` of content are held), so a failure before that
//!   is recovered with no marker and the caller sees only one answer;
//! - `continue`: the request runs again with the text so far as an
//!   assistant prefill and only the continuation is emitted; a route that
//!   refuses the prefill (any 4xx) gets a `restart` there instead, so the
//!   prefill's refusal is never the stream's final error.
//!
//! Invariants: every new answer is a new job in its pool (its queue, its
//! limits, its stats); recoveries are bounded (`max_retries` per route,
//! then each fallback once) and stay inside the request's deadline; a
//! cancelled or deadline-expired stream is never recovered; a failure with
//! no action left ends the stream with one error item, after which it
//! yields nothing. The text kept is bounded by `MAX_COMMIT_AFTER_CHARS`.
//! Recovery is driven by the consumer's polls (no task of its own): the
//! next answer is requested when the caller asks for the next chunk.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{ready, Context, Poll};

use futures_util::Stream;

use crate::clock::{self, Nanos};
use crate::error::{Error, Result, TimeoutPhase};
use crate::failover::{FailoverAction, Policy, StreamRecovery, MAX_COMMIT_AFTER_CHARS};
use crate::providers::ChunkStream;
use crate::types::{split_model, Chunk, ChunkExtraFields, Message, Request, StreamRestart};

use super::classify::{action, class_of, FailureClass};
use super::job::{Timing, Work};
use super::route::Pools;

/// How a stream's request can be run again.
pub(crate) struct RecoveryPlan {
    pub pools: Pools,
    pub next_id: std::sync::Arc<crate::ids::JobIds>,
    /// The request as submitted (its `fallbacks` included).
    pub request: Request,
    /// The request's end-to-end deadline.
    pub deadline: Option<Nanos>,
    /// The mode: the primary provider's `failover`, then the request's.
    pub mode: StreamRecovery,
    pub commit_after_chars: u64,
}

/// The most chunks `buffer` holds back, whatever they carry (tool-call
/// deltas have no content to count).
const MAX_HELD_CHUNKS: usize = 16_384;

type NextAnswer = Pin<Box<dyn Future<Output = Result<ChunkStream>> + Send>>;

/// A stream under recovery: the answer being read and how to get another.
pub(crate) struct Recovering {
    plan: RecoveryPlan,
    /// `[request.model, fallbacks…]`.
    targets: Vec<String>,
    /// Index in `targets` of the route serving `current`.
    serving: usize,
    /// Restarts of the serving route so far (bounded by its `max_retries`).
    same_route_restarts: u32,
    /// Answers started so far (the first is 1).
    attempt: u32,
    current: ChunkStream,
    /// The next answer, once a failure asked for one.
    pending: Option<NextAnswer>,
    /// The pending answer continues `text` (a `continue` recovery).
    continuing: bool,
    /// Why the pending answer was asked for (the restart marker's reason).
    reason: String,
    /// Content text of choice 0 the caller has (or, buffering, is held),
    /// since the last restart; `None` once past the bound.
    text: Option<String>,
    /// Its length in characters.
    chars: u64,
    /// Other text held (reasoning), in characters, for `buffer`'s bound.
    other_chars: u64,
    /// The current answer streamed something `continue` cannot prefill
    /// (tool calls, several choices, reasoning).
    not_prefillable: bool,
    /// `buffer`: chunks held back from the caller, and whether they flow now.
    held: VecDeque<Chunk>,
    committed: bool,
    /// Items to yield before reading on (a restart marker, released chunks).
    out: VecDeque<Result<Chunk>>,
    ended: bool,
}

impl Recovering {
    /// Follows `current` (the request's first answer, served by
    /// `targets[current.fallback_index()]`) under `plan`.
    pub(crate) fn new(current: ChunkStream, plan: RecoveryPlan) -> Recovering {
        let mut targets = Vec::with_capacity(1 + plan.request.fallbacks.len());
        targets.push(plan.request.model.clone());
        targets.extend(plan.request.fallbacks.iter().cloned());
        // (With `off` the plan holds no request: `targets` is a stand-in.)
        let serving = current.fallback_index() as usize;
        let committed = plan.mode != StreamRecovery::Buffer;
        Recovering {
            plan,
            targets,
            serving,
            same_route_restarts: 0,
            attempt: 1,
            current,
            pending: None,
            continuing: false,
            reason: String::new(),
            text: Some(String::new()),
            chars: 0,
            other_chars: 0,
            not_prefillable: false,
            held: VecDeque::new(),
            committed,
            out: VecDeque::new(),
            ended: false,
        }
    }

    /// The route serving the stream now (0 = the primary).
    pub(crate) fn fallback_index(&self) -> u32 {
        self.serving as u32
    }

    /// Notes what the caller gets of `chunk`: its text, and whether a
    /// prefill could still continue it.
    fn note(&mut self, chunk: &Chunk) {
        for choice in &chunk.choices {
            let d = &choice.delta;
            if choice.index != 0
                || d.tool_calls.is_some()
                || d.reasoning_content.as_deref().is_some_and(|r| !r.is_empty())
            {
                self.not_prefillable = true;
            }
            // What `buffer` holds counts reasoning too (bounded either way).
            if let Some(r) = &d.reasoning_content {
                self.other_chars += r.chars().count() as u64;
            }
            if choice.index == 0 {
                if let (Some(text), Some(piece)) = (&mut self.text, &d.content) {
                    if (text.len() + piece.len()) as u64 > MAX_COMMIT_AFTER_CHARS * 4 {
                        self.text = None; // past the bound: no prefill, no text in the error
                    } else {
                        text.push_str(piece);
                        self.chars += piece.chars().count() as u64;
                    }
                }
            }
        }
    }

    /// What `buffer` holds, in characters: past `commit_after_chars` (or
    /// [`MAX_HELD_CHUNKS`] chunks, whatever they carry) the chunks flow.
    fn held_chars(&self) -> u64 {
        if self.text.is_none() || self.held.len() >= MAX_HELD_CHUNKS {
            return u64::MAX;
        }
        self.chars + self.other_chars
    }

    /// What to do about `e`, the current answer's failure: ask for the
    /// next answer (true), or end the stream with `e` (false).
    fn recover(&mut self, e: &Error) -> bool {
        if self.plan.mode == StreamRecovery::Off {
            return false;
        }
        // The caller's own end (cancel, deadline, shutdown) is not a failure to recover.
        let Some(class) = class_of(e) else { return false };
        if matches!(e, Error::Timeout { phase: TimeoutPhase::Processing | TimeoutPhase::Queued, .. }) {
            return false;
        }
        let remaining_ms = match self.plan.deadline {
            Some(d) => match d.saturating_sub(clock::now()) / clock::MS {
                0 => return false,
                left => Some(left),
            },
            None => None,
        };
        let Some(pool) = self.pool_of(self.serving).cloned() else { return false };
        let policy = Policy::of(pool.failover.as_ref(), self.plan.request.failover.as_ref());
        let act = action(class, &policy);
        let target = match act {
            FailoverAction::Return => return false,
            FailoverAction::Retry
                if self.same_route_restarts < pool.network.max_retries
                    && pool.retry_gate.allows_retry(policy.suspend_retries_after) =>
            {
                self.same_route_restarts += 1;
                pool.counters.retries.fetch_add(1, Ordering::Relaxed);
                self.serving
            }
            // Retries spent, or `fallback`: the next route, if any.
            _ if self.serving + 1 < self.targets.len() => {
                self.same_route_restarts = 0;
                self.serving + 1
            }
            _ => return false,
        };
        // `continue` where it can: text only, one choice, within the bound.
        let prefill = match (&self.text, self.plan.mode) {
            (Some(t), StreamRecovery::Continue) if !t.is_empty() && !self.not_prefillable => Some(t.clone()),
            _ => None,
        };
        self.reason = e.to_string();
        self.start(target, prefill, remaining_ms);
        true
    }

    fn pool_of(&self, target: usize) -> Option<&std::sync::Arc<super::PoolShared>> {
        let (provider, _) = split_model(self.targets.get(target)?).ok()?;
        self.plan.pools.get(provider)
    }

    /// Asks `targets[target]` for a new answer (continuing `prefill`).
    fn start(&mut self, target: usize, prefill: Option<String>, remaining_ms: Option<u64>) {
        self.serving = target;
        self.continuing = prefill.is_some();
        let mut req = self.plan.request.clone();
        req.model = self.targets[target].clone();
        req.timeout_ms = remaining_ms;
        // What comes after this target (read to arm first-token bounds).
        req.fallbacks = self.targets[target + 1..].to_vec();
        if let Some(text) = prefill {
            req.messages.push(Message::new("assistant", text));
        }
        let pool = self.pool_of(target).cloned();
        let id = self.plan.next_id.next();
        let timing =
            Timing { submitted: clock::now(), deadline: self.plan.deadline, timeout_ms: self.plan.request.timeout_ms };
        let fallback_index = target as u32;
        self.pending = Some(Box::pin(async move {
            let Some(pool) = pool else {
                return Err(Error::Internal { message: "stream recovery: a route's pool is gone".into() });
            };
            let mut stream = pool.submit::<ChunkStream>(id, Work::Stream(Box::new(req)), timing, true).await?.await?;
            stream.set_fallback_index(fallback_index);
            if fallback_index > 0 {
                pool.counters.fallbacks_served.fetch_add(1, Ordering::Relaxed);
            }
            Ok(stream)
        }));
    }

    /// The pending answer came: marker (unless the recovery is invisible),
    /// then its chunks.
    fn took_over(&mut self, stream: ChunkStream) {
        self.current = stream;
        self.attempt += 1;
        let invisible = !self.committed || self.continuing;
        if !self.continuing {
            // The new answer starts over.
            self.text = Some(String::new());
            self.chars = 0;
            self.other_chars = 0;
            self.not_prefillable = false;
        }
        if !self.committed {
            self.held.clear();
        }
        if !invisible {
            let (provider, model) = split_model(&self.targets[self.serving]).unwrap_or(("", ""));
            let marker = Chunk {
                object: "chat.completion.chunk".into(),
                created: crate::providers::unix_now_s(),
                model: model.to_string(),
                extra_fields: Some(Box::new(ChunkExtraFields {
                    restart: Some(StreamRestart {
                        attempt: self.attempt,
                        provider: provider.to_string(),
                        model: model.to_string(),
                        reason: std::mem::take(&mut self.reason),
                    }),
                    ..Default::default()
                })),
                ..Default::default()
            };
            self.out.push_back(Ok(marker));
        }
    }

    /// The stream's end with `e`: the text so far comes with it.
    fn fail(&mut self, e: Error) -> Error {
        self.ended = true;
        self.held.clear();
        match self.text.take() {
            Some(text) if !text.is_empty() => Error::Interrupted { error: Box::new(e), text_so_far: text },
            _ => e,
        }
    }

    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Chunk>>> {
        loop {
            if let Some(item) = self.out.pop_front() {
                return Poll::Ready(Some(item));
            }
            if self.ended {
                return Poll::Ready(None);
            }
            if let Some(next) = &mut self.pending {
                let outcome = ready!(next.as_mut().poll(cx));
                self.pending = None;
                match outcome {
                    Ok(stream) => self.took_over(stream),
                    // A route that refuses the prefill gets a restart there.
                    Err(e) if self.continuing && class_of(&e) == Some(FailureClass::BadRequest) => {
                        self.continuing = false;
                        let remaining_ms = self.plan.deadline.map(|d| d.saturating_sub(clock::now()) / clock::MS);
                        if remaining_ms == Some(0) {
                            let e = self.fail(e);
                            return Poll::Ready(Some(Err(e)));
                        }
                        self.reason = format!("{}; the route refused the assistant prefill: {e}", self.reason);
                        self.start(self.serving, None, remaining_ms);
                    }
                    Err(e) => {
                        if !self.recover(&e) {
                            let e = self.fail(e);
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                }
                continue;
            }
            match ready!(Pin::new(&mut self.current).poll_next(cx)) {
                Some(Ok(chunk)) => {
                    self.note(&chunk);
                    if self.committed {
                        return Poll::Ready(Some(Ok(chunk)));
                    }
                    self.held.push_back(chunk);
                    if self.held_chars() >= self.plan.commit_after_chars {
                        self.committed = true;
                        self.out.extend(self.held.drain(..).map(Ok));
                    }
                }
                None => {
                    self.ended = true;
                    self.out.extend(self.held.drain(..).map(Ok));
                }
                Some(Err(e)) => {
                    if !self.recover(&e) {
                        let e = self.fail(e);
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
        }
    }
}

impl Stream for Recovering {
    type Item = Result<Chunk>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_item(cx)
    }
}
