//! The pools' monotonic clock: nanoseconds since one process-wide epoch, in
//! a `u64` ([`Nanos`]).
//!
//! A job is stamped when it is submitted, queued, started and finished, and
//! those stamps are subtracted from each other several times per job (queue
//! wait, processing time, latency, expiry, throughput second). As plain
//! integers each of those is one instruction, where `Instant` arithmetic
//! normalises a timespec every time. The readings are `Instant`s underneath,
//! so deadlines convert back exactly ([`instant`]) for tokio's timers.
//! A `u64` of nanoseconds lasts 584 years.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Nanoseconds since the process-wide epoch.
pub(crate) type Nanos = u64;

/// Nanoseconds per millisecond / microsecond.
pub(crate) const MS: Nanos = 1_000_000;
pub(crate) const US: Nanos = 1_000;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Now.
pub(crate) fn now() -> Nanos {
    nanos(Instant::now())
}

/// `at` on this clock (instants before the epoch read as 0).
pub(crate) fn nanos(at: Instant) -> Nanos {
    at.saturating_duration_since(epoch()).as_nanos() as Nanos
}

/// The `Instant` of `ns`, for timers.
pub(crate) fn instant(ns: Nanos) -> Instant {
    epoch() + Duration::from_nanos(ns)
}

/// A duration as nanoseconds (saturating).
pub(crate) fn nanos_of(d: Duration) -> Nanos {
    d.as_nanos().min(Nanos::MAX as u128) as Nanos
}

/// `ms` milliseconds as nanoseconds (saturating: a far deadline stays far).
pub(crate) fn from_ms(ms: u64) -> Nanos {
    ms.saturating_mul(MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_round_trip_through_instants_and_only_move_forward() {
        let a = now();
        let at = instant(a);
        assert_eq!(nanos(at), a);
        std::thread::sleep(Duration::from_millis(2));
        let b = now();
        assert!(b >= a + 2 * MS, "{a} then {b}");
        assert_eq!(from_ms(u64::MAX), u64::MAX);
    }
}
