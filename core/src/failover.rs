//! The `failover` policy: what each failure class does (docs/failover.md).
//!
//! A provider's `failover` section, and a request's own `"failover"`
//! (which wins key by key), say for six classes whether a failure is
//! `retry`-ed on the same provider (up to `network_config.max_retries`,
//! then the request's `fallbacks`), sent to the next `fallback` at once,
//! or `return`-ed as it is. The other classes are fixed (a protocol error
//! falls back, a refused key rotates keys, a bad request returns).
//! The same section bounds a stream's wait for its first content
//! (`first_token_timeout_ms`), a unary call's wait for its response head
//! (`headers_timeout_ms`), and says what a stream that fails after its
//! first content does (`stream_recovery`, see `pool::recover`).
//! Invariant, checked when the policy is read: a request too long for a
//! model is never resent unchanged to it (`on_context_length` is not
//! `retry`), and a content refusal is never retried.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a failure class does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FailoverAction {
    /// Try the same provider again (another key when it helps), up to
    /// `max_retries`; then the request's fallbacks.
    Retry,
    /// Go to the request's next fallback now.
    Fallback,
    /// End the request with this error.
    Return,
}

/// What a stream does when it fails after content reached the caller
/// (docs/failover.md "Stream recovery").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamRecovery {
    /// The stream ends with its error, which carries the text so far.
    Off,
    /// The request runs again (same or next route, per the policy); the
    /// stream yields a restart marker chunk, then the new answer from its start.
    Restart,
    /// Chunks are held until the stream completes (or `commit_after_chars`),
    /// so a failure before that is recovered invisibly.
    Buffer,
    /// The request runs again with the text so far as an assistant prefill
    /// and only the continuation is emitted; a route that refuses prefill
    /// gets a `restart` instead.
    Continue,
}

/// Per-class actions; a key left out keeps its default (shown per field).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailoverConfig {
    /// No answer within the attempt limit (default `fallback`: a route
    /// that went silent is not waited for again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<FailoverAction>,
    /// 429 / throttling (default `retry`, waiting `Retry-After` when it fits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_rate_limit: Option<FailoverAction>,
    /// 5xx, 529, 408 (default `retry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_server_error: Option<FailoverAction>,
    /// Connect, reset, TLS, a cut body (default `retry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_network: Option<FailoverAction>,
    /// The prompt does not fit the model (default `fallback`; `retry` is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_context_length: Option<FailoverAction>,
    /// The provider refused the content (default `return`; `retry` is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_content_policy: Option<FailoverAction>,
    /// A stream's first content (or a unary call's response head, with
    /// `headers_timeout_ms`) did not come in time (default `fallback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_first_token_timeout: Option<FailoverAction>,
    /// Streams: the longest wait from an attempt's start to its first
    /// content chunk (default 15000; 0 = none). Armed only when its action
    /// can do something: `retry` with a retry left, or `fallback` with a
    /// fallback to go to; else the attempt limit alone bounds the wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_token_timeout_ms: Option<u64>,
    /// Unary calls: the longest wait for the response head (default none:
    /// a non-streamed answer's head comes only when the whole answer is
    /// ready, so only a caller who knows its model's latency sets this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_timeout_ms: Option<u64>,
    /// What a stream does when it fails after its first content (default `restart`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_recovery: Option<StreamRecovery>,
    /// `buffer`: chunks flow to the caller once this many characters of
    /// content are held (default and most 1048576: a buffer is bounded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_after_chars: Option<u64>,
    /// After this many failed attempts in a row at the provider (server
    /// errors, timeouts, network errors), its failures are not retried
    /// until an attempt succeeds (default 5; 0 = always retry; at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend_retries_after: Option<u32>,
}

/// The default and largest `commit_after_chars`.
pub const MAX_COMMIT_AFTER_CHARS: u64 = 1 << 20;
/// The default `first_token_timeout_ms`.
pub const DEFAULT_FIRST_TOKEN_TIMEOUT_MS: u64 = 15_000;
/// The largest `first_token_timeout_ms` / `headers_timeout_ms` (one hour).
pub const MAX_FIRST_TOKEN_TIMEOUT_MS: u64 = 3_600_000;

/// The resolved actions of one request: defaults, the provider's section,
/// then the request's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    pub timeout: FailoverAction,
    pub rate_limit: FailoverAction,
    pub server_error: FailoverAction,
    pub network: FailoverAction,
    pub context_length: FailoverAction,
    pub content_policy: FailoverAction,
    pub first_token_timeout: FailoverAction,
    /// `first_token_timeout_ms`, `None` when 0.
    pub first_token_ms: Option<u64>,
    pub headers_ms: Option<u64>,
    pub recovery: StreamRecovery,
    pub commit_after_chars: u64,
    pub suspend_retries_after: u32,
}

impl Policy {
    /// DESIGN §11's defaults.
    pub(crate) const DEFAULT: Policy = Policy {
        timeout: FailoverAction::Fallback,
        rate_limit: FailoverAction::Retry,
        server_error: FailoverAction::Retry,
        network: FailoverAction::Retry,
        context_length: FailoverAction::Fallback,
        content_policy: FailoverAction::Return,
        first_token_timeout: FailoverAction::Fallback,
        first_token_ms: Some(DEFAULT_FIRST_TOKEN_TIMEOUT_MS),
        headers_ms: None,
        recovery: StreamRecovery::Restart,
        commit_after_chars: MAX_COMMIT_AFTER_CHARS,
        suspend_retries_after: crate::pool::outage::DEFAULT_SUSPEND_RETRIES_AFTER,
    };

    /// The defaults overlaid with `provider`, then with `request`.
    pub(crate) fn of(provider: Option<&FailoverConfig>, request: Option<&FailoverConfig>) -> Policy {
        let mut p = Policy::DEFAULT;
        for c in [provider, request].into_iter().flatten() {
            p.timeout = c.on_timeout.unwrap_or(p.timeout);
            p.rate_limit = c.on_rate_limit.unwrap_or(p.rate_limit);
            p.server_error = c.on_server_error.unwrap_or(p.server_error);
            p.network = c.on_network.unwrap_or(p.network);
            p.context_length = c.on_context_length.unwrap_or(p.context_length);
            p.content_policy = c.on_content_policy.unwrap_or(p.content_policy);
            p.first_token_timeout = c.on_first_token_timeout.unwrap_or(p.first_token_timeout);
            if let Some(ms) = c.first_token_timeout_ms {
                p.first_token_ms = (ms > 0).then_some(ms);
            }
            if let Some(ms) = c.headers_timeout_ms {
                p.headers_ms = (ms > 0).then_some(ms);
            }
            p.recovery = c.stream_recovery.unwrap_or(p.recovery);
            p.commit_after_chars = c.commit_after_chars.unwrap_or(p.commit_after_chars);
            p.suspend_retries_after = c.suspend_retries_after.unwrap_or(p.suspend_retries_after);
        }
        p
    }
}

impl FailoverConfig {
    /// Refuses what would break the invariant; `path` names the section.
    pub(crate) fn check(&self, path: &str) -> std::result::Result<(), (String, &'static str)> {
        if self.on_context_length == Some(FailoverAction::Retry) {
            return Err((
                format!("{path}.on_context_length"),
                "must be fallback or return: a request too long for a model is never resent unchanged to it",
            ));
        }
        if self.on_content_policy == Some(FailoverAction::Retry) {
            return Err((format!("{path}.on_content_policy"), "must be fallback or return: a refusal is not retried"));
        }
        for (key, v) in
            [("first_token_timeout_ms", self.first_token_timeout_ms), ("headers_timeout_ms", self.headers_timeout_ms)]
        {
            if v.is_some_and(|ms| ms > MAX_FIRST_TOKEN_TIMEOUT_MS) {
                return Err((format!("{path}.{key}"), "must be at most 3600000 (one hour); 0 turns it off"));
            }
        }
        if self.suspend_retries_after.is_some_and(|n| n > 1000) {
            return Err((format!("{path}.suspend_retries_after"), "must be at most 1000; 0 never suspends retries"));
        }
        if self.commit_after_chars.is_some_and(|n| n == 0 || n > MAX_COMMIT_AFTER_CHARS) {
            return Err((format!("{path}.commit_after_chars"), "must be 1..=1048576"));
        }
        Ok(())
    }

    /// [`FailoverConfig::check`] for a request's own section (INVALID_REQUEST).
    pub(crate) fn check_request(&self) -> Result<()> {
        self.check("failover").map_err(|(path, message)| Error::invalid(format!("{path} {message}")))
    }
}
