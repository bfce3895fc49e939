//! Retries stop while a provider is clearly down, without a configured
//! circuit breaker (docs/failover.md "Outages").
//!
//! Every attempt's outcome is told to the pool's [`RetryGate`]: a success
//! resets it, a failure that says the provider is unwell (classes
//! `server_error`, `timeout`, `first_token_timeout`, `network`) counts one
//! more in a row. Once `failover.suspend_retries_after` such failures came
//! in a row (default 5), a failed attempt is not retried on this provider:
//! the job goes to its fallbacks at once, or ends with the error. First
//! attempts still go out, so each new request is a probe and the first
//! success lifts the suspension: the provider is used fully again as soon
//! as it answers. Rate limiting (429) is not an outage and is not counted;
//! neither are the request's own faults (4xx). The count is per process
//! (a configured `circuit_breaker` with a Redis store is the fleet-wide
//! tool, and also skips first attempts).

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use crate::error::Error;

use super::classify::{class_of, FailureClass};

/// The default `suspend_retries_after`.
pub const DEFAULT_SUSPEND_RETRIES_AFTER: u32 = 5;

/// Failed attempts in a row at one provider (see the module docs).
#[derive(Default)]
pub(crate) struct RetryGate {
    in_a_row: AtomicU32,
}

impl RetryGate {
    /// An attempt succeeded.
    pub(crate) fn succeeded(&self) {
        // Read first: the common healthy case writes nothing shared.
        if self.in_a_row.load(Relaxed) != 0 {
            self.in_a_row.store(0, Relaxed);
        }
    }

    /// An attempt failed with `e`.
    pub(crate) fn failed(&self, e: &Error) {
        let outage = matches!(
            class_of(e),
            Some(
                FailureClass::ServerError
                    | FailureClass::Timeout
                    | FailureClass::FirstTokenTimeout
                    | FailureClass::Network
            )
        );
        if outage {
            let _ = self.in_a_row.fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_add(1)));
        }
    }

    /// Whether a retry may go to this provider (`suspend_after` 0: always).
    pub(crate) fn allows_retry(&self, suspend_after: u32) -> bool {
        suspend_after == 0 || self.in_a_row.load(Relaxed) < suspend_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16) -> Error {
        Error::Provider {
            provider: "p".into(),
            status,
            message: String::new(),
            body: String::new(),
            retry_after_ms: None,
        }
    }

    #[test]
    fn suspends_after_failures_in_a_row_and_a_success_lifts_it() {
        let g = RetryGate::default();
        for _ in 0..4 {
            g.failed(&err(503));
        }
        assert!(g.allows_retry(5));
        g.failed(&Error::Network { provider: "p".into(), message: "reset".into() });
        assert!(!g.allows_retry(5) && g.allows_retry(0) && g.allows_retry(6));
        // Throttling and the request's own faults are no outage.
        g.succeeded();
        for _ in 0..10 {
            g.failed(&err(429));
            g.failed(&err(400));
        }
        assert!(g.allows_retry(1));
    }
}
