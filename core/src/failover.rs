//! The `failover` policy: what each failure class does (docs/failover.md).
//!
//! A provider's `failover` section, and a request's own `"failover"`
//! (which wins key by key), say for six classes whether a failure is
//! `retry`-ed on the same provider (up to `network_config.max_retries`,
//! then the request's `fallbacks`), sent to the next `fallback` at once,
//! or `return`-ed as it is. The other classes are fixed (a protocol error
//! falls back, a refused key rotates keys, a bad request returns).
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
}

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
        Ok(())
    }

    /// [`FailoverConfig::check`] for a request's own section (INVALID_REQUEST).
    pub(crate) fn check_request(&self) -> Result<()> {
        self.check("failover").map_err(|(path, message)| Error::invalid(format!("{path} {message}")))
    }
}
