//! Sizing a provider pool from its rate limit and latency (Little's law).
//!
//! With `rate` requests/s allowed and `latency` seconds per request, about
//! `rate × latency` requests are in flight; failures are retried, so
//! `workers = ⌈rate × latency × (1 + error_rate)⌉`, clamped to 1..=10000.
//! The queue holds three times that (`buffer_size`), and a request may take
//! twice the average latency before it counts as timed out
//! (`timeout_ms = ⌈2000 × latency⌉`).
//!
//! The arithmetic is exact: each input is taken as the decimal it prints as
//! (its shortest round-trip form, i.e. what the user wrote: `4.062`, not the
//! binary fraction 4.06200000000000027…), and the products and ceilings are
//! computed on big integers, so `4.062` s gives 8124 ms and `50 × 2 × 1.1`
//! gives 110 workers, never one more.

use num_bigint::BigUint;
use num_integer::Integer;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Most workers `optimal_concurrency` suggests (the `concurrency` bound).
pub const MAX_SUGGESTED_WORKERS: u64 = 10_000;

/// Suggested `concurrency_and_buffer_size` and timeout for one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Sizing {
    /// Workers (`concurrency_and_buffer_size.concurrency`), 1..=10000.
    pub concurrency: u64,
    /// Queue slots (`concurrency_and_buffer_size.buffer_size`), 3 × workers.
    pub buffer_size: u64,
    /// Suggested request `timeout_ms` (at least 1; saturates at `u64::MAX`).
    pub timeout_ms: u64,
}

/// A finite, non-negative `f64` as the exact decimal `digits × 10^exp` of
/// its shortest round-trip form.
fn decimal(x: f64) -> (BigUint, i64) {
    // `{:e}` prints the shortest digits that round-trip: "4.062e0".
    let text = format!("{x:e}");
    let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = int.chars().chain(frac.chars()).filter(char::is_ascii_digit).collect();
    let value = BigUint::parse_bytes(digits.as_bytes(), 10).unwrap_or_default();
    (value, exp - frac.len() as i64)
}

fn pow10(n: u64) -> BigUint {
    BigUint::from(10u32).pow(n as u32)
}

/// `⌈value × 10^exp⌉`, saturating at `cap`.
fn ceil_scaled(value: &BigUint, exp: i64, cap: u64) -> u64 {
    let exact = if exp >= 0 {
        // Beyond 10^20 every non-zero value is past any u64 cap.
        if exp > 20 && *value > BigUint::default() {
            return cap;
        }
        value * pow10(exp as u64)
    } else {
        value.div_ceil(&pow10(exp.unsigned_abs()))
    };
    u64::try_from(exact).map_or(cap, |v| v.min(cap))
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
    let (rate, rate_exp) = decimal(rate_limit_rps);
    let (latency, latency_exp) = decimal(avg_latency_s);
    let (err, err_exp) = decimal(error_rate);
    // 1 + err = (10^-e + err) × 10^e, with e = min(err_exp, 0).
    let e = err_exp.min(0);
    let one_plus_err = pow10(e.unsigned_abs()) + err * pow10((err_exp - e) as u64);
    let in_flight = rate * &latency * one_plus_err;
    let workers = ceil_scaled(&in_flight, rate_exp + latency_exp + e, MAX_SUGGESTED_WORKERS).max(1);
    let timeout_ms = ceil_scaled(&(latency * BigUint::from(2u32)), latency_exp + 3, u64::MAX).max(1);
    Ok(Sizing { concurrency: workers, buffer_size: workers * 3, timeout_ms })
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

    #[test]
    fn exact_where_floats_round_up() {
        assert_eq!(optimal_concurrency(1.0, 4.062, 0.0).unwrap().timeout_ms, 8124);
        assert_eq!(optimal_concurrency(1.0, 0.0000001, 0.0).unwrap().timeout_ms, 1);
        assert_eq!(optimal_concurrency(1.0, 1e300, 0.0).unwrap().timeout_ms, u64::MAX);
        assert_eq!(optimal_concurrency(1e300, 1e300, 0.5).unwrap().concurrency, MAX_SUGGESTED_WORKERS);
        assert_eq!(optimal_concurrency(3.0, 0.1, 0.0).unwrap().concurrency, 1); // 0.30000000000000004 in floats
        assert_eq!(optimal_concurrency(10.0, 0.7, 0.1).unwrap().concurrency, 8); // 7.7 → 8
        assert_eq!(optimal_concurrency(100.0, 0.07, 0.0).unwrap().concurrency, 7); // 7.000000000000001 in floats
        assert_eq!(optimal_concurrency(5e-324, 1.0, 0.0).unwrap().concurrency, 1);
    }
}
