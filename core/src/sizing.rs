//! Sizing a provider pool from its rate limit and latency (Little's law).
//!
//! With `rate` requests/s allowed and `latency` seconds per request, about
//! `rate × latency` requests are in flight; failures are retried, so
//! `workers = ⌈rate × latency × (1 + error_rate)⌉`. The queue holds three
//! times that (`buffer_size`), and a request may take twice the average
//! latency before it counts as timed out.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Suggested `concurrency_and_buffer_size` and timeout for one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sizing {
    /// Workers (`concurrency_and_buffer_size.concurrency`), 1..=10000.
    pub concurrency: u64,
    /// Queue slots (`concurrency_and_buffer_size.buffer_size`).
    pub buffer_size: u64,
    /// Suggested request `timeout_ms`.
    pub timeout_ms: u64,
}

/// Workers, queue and timeout for a provider allowing `rate_limit_rps`
/// requests/s with `avg_latency_s` seconds per request and `error_rate`
/// (0..1) of failures.
pub fn optimal_concurrency(rate_limit_rps: f64, avg_latency_s: f64, error_rate: f64) -> Result<Sizing> {
    if !(rate_limit_rps.is_finite() && rate_limit_rps > 0.0) {
        return Err(Error::invalid(format!("rate_limit_rps must be a number > 0, got {rate_limit_rps}")));
    }
    if !(avg_latency_s.is_finite() && avg_latency_s > 0.0) {
        return Err(Error::invalid(format!("avg_latency_s must be a number > 0 (seconds), got {avg_latency_s}")));
    }
    if !(0.0..1.0).contains(&error_rate) {
        return Err(Error::invalid(format!("error_rate must be 0 <= rate < 1, got {error_rate}")));
    }
    // The epsilon keeps 50 × 2 × 1.1 = 110.00000000000001 at 110.
    let workers = (rate_limit_rps * avg_latency_s * (1.0 + error_rate) - 1e-9).ceil().clamp(1.0, 10_000.0) as u64;
    Ok(Sizing {
        concurrency: workers,
        buffer_size: (workers * 3).min(1_000_000),
        timeout_ms: ((2.0 * avg_latency_s * 1000.0).ceil() as u64).max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn littles_law() {
        // 50 req/s at 2 s with 10 % errors: 50 × 2 × 1.1 = 110 workers.
        assert_eq!(
            optimal_concurrency(50.0, 2.0, 0.1).unwrap(),
            Sizing { concurrency: 110, buffer_size: 330, timeout_ms: 4000 }
        );
        assert_eq!(optimal_concurrency(0.5, 0.1, 0.0).unwrap().concurrency, 1);
        assert!(optimal_concurrency(0.0, 1.0, 0.0).unwrap_err().to_string().contains("rate_limit_rps"));
        assert!(optimal_concurrency(1.0, -1.0, 0.0).is_err());
        assert!(optimal_concurrency(1.0, 1.0, 1.0).unwrap_err().to_string().contains("error_rate"));
    }
}
