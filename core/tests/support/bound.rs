//! The §10 bound, judged on bifrost-mock's log of arrivals
//! (docs/architecture.md §10): over every interval between two arrivals,
//! the requests are at most `burst + rate·(t + slack)/period`, where the
//! slack allows for a request admitted early reaching the mock late on a
//! busy machine. Integers only.

#![allow(dead_code)] // each test binary uses the part it needs

use bifrost_mock::limits::Admission;

/// Panics naming the first interval of `log` over the bound.
pub fn requests_within(log: &[Admission], rate: u128, period_ns: u128, burst: u128, slack_ns: u128) {
    for i in 0..log.len() {
        for j in i..log.len() {
            let n = (j - i + 1) as u128;
            let t = (log[j].at_ns - log[i].at_ns) as u128 + slack_ns;
            assert!(n * period_ns <= burst * period_ns + rate * t, "{n} requests in {t} ns (slack included)");
        }
    }
}
