//! The one error type every bifrost API returns, and its stable kinds.
//!
//! Each variant carries what a caller needs to act on it (which provider,
//! which limit, which phase) and its `Display` says what happened and what to
//! change. [`ErrorKind`] is the language-neutral name of a variant
//! (`"QUEUE_FULL"`, …) that the Python, Node and C bindings expose unchanged.
//! No variant ever holds a key value: secrets cannot leak through errors.

use std::fmt;

/// The stable, language-neutral category of an [`Error`] (docs/architecture.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    QueueFull,
    Dropped,
    QueueTimeout,
    Timeout,
    Cancelled,
    Shutdown,
    CircuitOpen,
    Provider,
    Network,
    Protocol,
    InvalidRequest,
    UnknownProvider,
    Config,
    Internal,
    /// A limit of bifrost's own (docs/architecture.md §10) had no capacity
    /// before the job's deadline.
    RateLimited,
}

impl ErrorKind {
    /// Every kind, in declaration order (bindings use it to build their tables).
    pub const ALL: [ErrorKind; 15] = [
        ErrorKind::QueueFull,
        ErrorKind::Dropped,
        ErrorKind::QueueTimeout,
        ErrorKind::Timeout,
        ErrorKind::Cancelled,
        ErrorKind::Shutdown,
        ErrorKind::CircuitOpen,
        ErrorKind::Provider,
        ErrorKind::Network,
        ErrorKind::Protocol,
        ErrorKind::InvalidRequest,
        ErrorKind::UnknownProvider,
        ErrorKind::Config,
        ErrorKind::Internal,
        ErrorKind::RateLimited,
    ];

    /// The upper-snake-case name used by every binding (`"QUEUE_FULL"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::QueueFull => "QUEUE_FULL",
            ErrorKind::Dropped => "DROPPED",
            ErrorKind::QueueTimeout => "QUEUE_TIMEOUT",
            ErrorKind::Timeout => "TIMEOUT",
            ErrorKind::Cancelled => "CANCELLED",
            ErrorKind::Shutdown => "SHUTDOWN",
            ErrorKind::CircuitOpen => "CIRCUIT_OPEN",
            ErrorKind::Provider => "PROVIDER",
            ErrorKind::Network => "NETWORK",
            ErrorKind::Protocol => "PROTOCOL",
            ErrorKind::InvalidRequest => "INVALID_REQUEST",
            ErrorKind::UnknownProvider => "UNKNOWN_PROVIDER",
            ErrorKind::Config => "CONFIG",
            ErrorKind::Internal => "INTERNAL",
            ErrorKind::RateLimited => "RATE_LIMITED",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which part of a job's life ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutPhase {
    /// The request deadline passed while the job still waited in the queue.
    Queued,
    /// The request deadline passed while a worker was running the job.
    Processing,
    /// One attempt got no answer within
    /// `network_config.default_request_timeout_in_seconds` (its `timeout_ms`
    /// is that bound); the request itself may have no deadline.
    Attempt,
    /// One attempt sent no first content chunk (a stream) or no response
    /// head (a unary call) within `failover.first_token_timeout_ms` /
    /// `failover.headers_timeout_ms` (its `timeout_ms`).
    FirstToken,
}

/// Why a job ended with [`Error::Dropped`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// Policy `drop`: the queue was full when this job was submitted.
    QueueFull,
    /// Policy `drop_oldest`: a newer job took this job's place in a full queue.
    Evicted,
}

/// Every failure bifrost reports. See [`ErrorKind`] for the stable names.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The queue was full: policy `error`, or `try_submit` under `block`.
    QueueFull { provider: String, buffer_size: usize, policy: &'static str },
    /// Policy `drop` or `drop_oldest` discarded the job.
    Dropped { provider: String, reason: DropReason },
    /// The job waited longer than `queue.wait_timeout_ms` (for space under
    /// policy `block`, or in the queue for a worker).
    QueueTimeout { provider: String, waited_ms: u64, wait_timeout_ms: u64 },
    /// The request's `timeout_ms` deadline passed.
    Timeout { provider: String, phase: TimeoutPhase, timeout_ms: u64 },
    /// The caller cancelled the job (or dropped its handle).
    Cancelled { provider: String },
    /// The gateway is shutting down or shut down.
    Shutdown { provider: Option<String> },
    /// The provider's circuit breaker is open.
    CircuitOpen { provider: String, retry_in_ms: u64 },
    /// The provider answered with an error status. `retry_after_ms` is the
    /// provider's `Retry-After`, when it sent one.
    Provider { provider: String, status: u16, message: String, body: String, retry_after_ms: Option<u64> },
    /// The provider could not be reached, or the connection broke.
    Network { provider: String, message: String },
    /// The provider answered, but not in its protocol: invalid JSON, a 200
    /// that is not a completion, an event that is not a chunk, a stream that
    /// ends with neither its terminal event nor a finish.
    Protocol { provider: String, message: String },
    /// The request is malformed; the message says what to fix.
    InvalidRequest { message: String },
    /// The request's `model` names a provider the gateway does not have.
    UnknownProvider { provider: String, known: Vec<String> },
    /// The configuration is invalid; `path` is the offending key.
    Config { path: String, message: String },
    /// A bug or a panic inside bifrost or a provider, caught and isolated.
    Internal { message: String },
    /// One of the provider's `limits` had no capacity before the job's
    /// deadline (or the job asks for more than a full bucket holds); the
    /// job never reached the provider. `limit` names the bucket;
    /// `retry_after_ms` is when it has room (none if it never will).
    RateLimited { provider: String, limit: String, retry_after_ms: Option<u64> },
    /// The primary provider failed and so did every fallback: the primary's
    /// error (which gives this error its kind, status and body) with each
    /// fallback target's error attached.
    WithFallbacks { primary: Box<Error>, fallbacks: Vec<(String, Error)> },
    /// A stream failed after content reached the caller and was not (or
    /// could not be) recovered: `error` (which gives this error its kind,
    /// status and body) with the content text the caller got since the
    /// stream's start or its last restart marker.
    Interrupted { error: Box<Error>, text_so_far: String },
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The stable category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::WithFallbacks { primary, .. } => primary.kind(),
            Error::Interrupted { error, .. } => error.kind(),
            Error::QueueFull { .. } => ErrorKind::QueueFull,
            Error::Dropped { .. } => ErrorKind::Dropped,
            Error::QueueTimeout { .. } => ErrorKind::QueueTimeout,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Cancelled { .. } => ErrorKind::Cancelled,
            Error::Shutdown { .. } => ErrorKind::Shutdown,
            Error::CircuitOpen { .. } => ErrorKind::CircuitOpen,
            Error::Provider { .. } => ErrorKind::Provider,
            Error::Network { .. } => ErrorKind::Network,
            Error::Protocol { .. } => ErrorKind::Protocol,
            Error::InvalidRequest { .. } => ErrorKind::InvalidRequest,
            Error::UnknownProvider { .. } => ErrorKind::UnknownProvider,
            Error::Config { .. } => ErrorKind::Config,
            Error::Internal { .. } => ErrorKind::Internal,
            Error::RateLimited { .. } => ErrorKind::RateLimited,
        }
    }

    /// The provider's HTTP status, for [`ErrorKind::Provider`] errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Provider { status, .. } => Some(*status),
            Error::WithFallbacks { primary, .. } => primary.status(),
            Error::Interrupted { error, .. } => error.status(),
            _ => None,
        }
    }

    /// The provider's response body, for [`ErrorKind::Provider`] errors.
    pub fn body(&self) -> Option<&str> {
        match self {
            Error::Provider { body, .. } => Some(body),
            Error::WithFallbacks { primary, .. } => primary.body(),
            Error::Interrupted { error, .. } => error.body(),
            _ => None,
        }
    }

    /// When to come back, in ms, if the provider (`Retry-After`) or the
    /// circuit breaker said so (docs/architecture.md §6: every binding exposes it).
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            Error::Provider { retry_after_ms, .. } => *retry_after_ms,
            Error::CircuitOpen { retry_in_ms, .. } => Some(*retry_in_ms),
            Error::RateLimited { retry_after_ms, .. } => *retry_after_ms,
            Error::WithFallbacks { primary, .. } => primary.retry_after_ms(),
            Error::Interrupted { error, .. } => error.retry_after_ms(),
            _ => None,
        }
    }

    /// The provider this error concerns, when there is one.
    pub fn provider(&self) -> Option<&str> {
        match self {
            Error::QueueFull { provider, .. }
            | Error::Dropped { provider, .. }
            | Error::QueueTimeout { provider, .. }
            | Error::Timeout { provider, .. }
            | Error::Cancelled { provider }
            | Error::CircuitOpen { provider, .. }
            | Error::Provider { provider, .. }
            | Error::Network { provider, .. }
            | Error::Protocol { provider, .. }
            | Error::UnknownProvider { provider, .. }
            | Error::RateLimited { provider, .. } => Some(provider),
            Error::Shutdown { provider } => provider.as_deref(),
            Error::WithFallbacks { primary, .. } => primary.provider(),
            Error::Interrupted { error, .. } => error.provider(),
            _ => None,
        }
    }

    /// The key path a CONFIG error names (`providers.a.kind`; empty for
    /// the whole text), for every binding's `path` field.
    pub fn config_path(&self) -> Option<&str> {
        match self.primary() {
            Error::Config { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The primary provider's error (itself, unless fallbacks were tried).
    pub fn primary(&self) -> &Error {
        match self {
            Error::WithFallbacks { primary, .. } => primary,
            Error::Interrupted { error, .. } => error.primary(),
            other => other,
        }
    }

    /// Each fallback target tried, with its error (empty without fallbacks).
    pub fn fallback_errors(&self) -> &[(String, Error)] {
        match self {
            Error::WithFallbacks { fallbacks, .. } => fallbacks,
            Error::Interrupted { error, .. } => error.fallback_errors(),
            _ => &[],
        }
    }

    /// The content text a stream had sent when it failed past recovery
    /// (since its start or its last restart marker), for every binding.
    pub fn text_so_far(&self) -> Option<&str> {
        match self {
            Error::Interrupted { text_so_far, .. } => Some(text_so_far),
            _ => None,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidRequest { message: message.into() }
    }

    pub(crate) fn config(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::QueueFull { provider, buffer_size, policy } => write!(
                f,
                "queue of provider '{provider}' is full (buffer_size={buffer_size}, policy={policy}); \
                 raise concurrency_and_buffer_size.buffer_size or retry later"
            ),
            Error::Dropped { provider, reason: DropReason::QueueFull } => {
                write!(f, "job dropped: queue of provider '{provider}' is full (policy=drop)")
            }
            Error::Dropped { provider, reason: DropReason::Evicted } => write!(
                f,
                "job dropped: a newer job replaced it in the full queue of provider '{provider}' (policy=drop_oldest)"
            ),
            Error::QueueTimeout { provider, waited_ms, wait_timeout_ms } => write!(
                f,
                "job waited {waited_ms} ms in the queue of provider '{provider}', longer than \
                 queue.wait_timeout_ms={wait_timeout_ms}; add workers (concurrency) or raise the wait timeout"
            ),
            Error::Timeout { provider, phase: TimeoutPhase::Queued, timeout_ms } => write!(
                f,
                "request timeout_ms={timeout_ms} ran out while the job was still queued for provider '{provider}'"
            ),
            Error::Timeout { provider, phase: TimeoutPhase::Processing, timeout_ms } => {
                write!(f, "request timeout_ms={timeout_ms} ran out while provider '{provider}' was processing the job")
            }
            Error::Timeout { provider, phase: TimeoutPhase::Attempt, timeout_ms } => write!(
                f,
                "provider '{provider}' did not answer within network_config.default_request_timeout_in_seconds={} \
                 (one attempt)",
                timeout_ms / 1000
            ),
            Error::Timeout { provider, phase: TimeoutPhase::FirstToken, timeout_ms } => write!(
                f,
                "provider '{provider}' sent no first token within {timeout_ms} ms \
                 (failover.first_token_timeout_ms for streams, failover.headers_timeout_ms for unary calls)"
            ),
            Error::Cancelled { provider } => write!(f, "job for provider '{provider}' was cancelled"),
            Error::Shutdown { provider: Some(p) } => {
                write!(f, "gateway is shutting down; provider '{p}' accepts no more work")
            }
            Error::Shutdown { provider: None } => write!(f, "gateway is shut down"),
            Error::CircuitOpen { provider, retry_in_ms } => {
                write!(f, "circuit breaker of provider '{provider}' is open; next probe in {retry_in_ms} ms")
            }
            Error::Provider { provider, status, message, .. } => {
                write!(f, "provider '{provider}' returned HTTP {status}: {message}")
            }
            Error::Network { provider, message } => {
                write!(f, "network error talking to provider '{provider}': {message}")
            }
            Error::Protocol { provider, message } => {
                write!(f, "provider '{provider}' broke its protocol: {message}")
            }
            Error::InvalidRequest { message } => write!(f, "invalid request: {message}"),
            Error::UnknownProvider { provider, known } => write!(
                f,
                "unknown provider '{provider}'; configured providers: {}",
                if known.is_empty() { "(none)".to_string() } else { known.join(", ") }
            ),
            Error::Config { path, message } => {
                if path.is_empty() {
                    write!(f, "invalid config: {message}")
                } else {
                    write!(f, "invalid config: {path}: {message}")
                }
            }
            Error::Internal { message } => write!(f, "internal error: {message}"),
            Error::RateLimited { provider, limit, retry_after_ms: Some(ms) } => write!(
                f,
                "provider '{provider}' is rate limited by its {limit} limit: capacity in {ms} ms, after the job's deadline"
            ),
            Error::RateLimited { provider, limit, retry_after_ms: None } => {
                write!(f, "provider '{provider}': the job needs more than its {limit} limit ever holds")
            }
            Error::Interrupted { error, text_so_far } => write!(
                f,
                "{error} (after {} characters of the answer had been streamed; the error carries them)",
                text_so_far.chars().count()
            ),
            Error::WithFallbacks { primary, fallbacks } => {
                write!(f, "{primary}; fallbacks failed too: ")?;
                for (i, (target, e)) in fallbacks.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "[{target}] {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Error {}

/// The text of a caught panic's payload (a `&str` or `String` message, as
/// `panic!` makes), for errors and logs; the one reader of panic payloads for
/// the core and every binding.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
