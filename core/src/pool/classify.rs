//! One classifier of failures, for the three rules that depend on what
//! kind of failure a job met: whether to try again on the same provider
//! (a retry), whether to move on to the next provider (a fallback), and
//! whether the failure says the provider itself is unwell (the circuit
//! breaker). Keeping them side by side makes their differences visible:
//! every retryable failure is also fallback-worthy, and a full or closed
//! queue is fallback-worthy without being a retry or a health signal.

use crate::error::{Error, TimeoutPhase};

/// Worth another attempt on the same provider (with backoff).
pub(crate) fn retryable(e: &Error) -> bool {
    match e {
        Error::Provider { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
        Error::Network { .. } => true,
        Error::Timeout { phase: TimeoutPhase::Processing | TimeoutPhase::Attempt, .. } => true,
        _ => false,
    }
}

/// Worth trying the request's next fallback provider.
pub(crate) fn fallback_worthy(e: &Error) -> bool {
    retryable(e)
        || matches!(
            e,
            Error::QueueFull { .. }
                | Error::Dropped { .. }
                | Error::QueueTimeout { .. }
                | Error::CircuitOpen { .. }
                | Error::Timeout { .. }
                | Error::Protocol { .. }
        )
        || matches!(e, Error::Provider { status: 401 | 403, .. })
}

/// Says the provider itself is unwell (counts against its breaker).
pub(crate) fn unhealthy(e: &Error) -> bool {
    match e {
        Error::Provider { status, .. } => *status >= 500 || matches!(status, 408 | 429),
        Error::Network { .. } | Error::Protocol { .. } | Error::Timeout { .. } | Error::Internal { .. } => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_retryable_failure_is_fallback_worthy() {
        let provider = |status| Error::Provider {
            provider: "p".into(),
            status,
            message: String::new(),
            body: String::new(),
            retry_after_ms: None,
        };
        for status in [400, 401, 403, 404, 408, 409, 422, 429, 500, 501, 502, 503, 504, 529] {
            let e = provider(status);
            assert!(!retryable(&e) || fallback_worthy(&e), "{status}");
        }
        assert!(retryable(&provider(503)) && unhealthy(&provider(503)));
        assert!(!retryable(&provider(401)) && fallback_worthy(&provider(401)) && !unhealthy(&provider(401)));
        let full = Error::QueueFull { provider: "p".into(), buffer_size: 1, policy: "error" };
        assert!(!retryable(&full) && fallback_worthy(&full) && !unhealthy(&full));
    }
}
