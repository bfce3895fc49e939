//! The pools' monotonic clock: nanoseconds since one process-wide epoch, in
//! a `u64` ([`Nanos`]).
//!
//! A job is stamped when it is submitted, queued, started and finished, and
//! those stamps are subtracted from each other several times per job (queue
//! wait, processing time, latency, expiry, throughput second). As plain
//! integers each of those is one instruction, where `Instant` arithmetic
//! normalises a timespec every time. Readings come from the clock std's
//! `Instant` reads (CLOCK_UPTIME_RAW on Apple systems, CLOCK_MONOTONIC on
//! other Unix), so deadlines convert back to `Instant`s for tokio's timers
//! to within the nanoseconds between the two reads that fix the epoch
//! ([`instant`]); elsewhere it is `Instant` itself.
//!
//! This is the one clock of the core: job stamps and deadlines, the
//! breaker's open period, key cool-downs, the watchdog's bounds, the
//! throughput window and health timestamps are all on it, and
//! [`unix_ms`] turns a reading into wall time only when it is reported.
//! A `u64` of nanoseconds lasts 584 years.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Nanoseconds since the process-wide epoch.
pub(crate) type Nanos = u64;

/// Nanoseconds per millisecond / microsecond.
pub(crate) const MS: Nanos = 1_000_000;
pub(crate) const US: Nanos = 1_000;

/// The epoch: an `Instant` and the same moment on this clock's raw source.
struct Epoch {
    at: Instant,
    raw: Nanos,
}

fn epoch() -> &'static Epoch {
    static EPOCH: OnceLock<Epoch> = OnceLock::new();
    EPOCH.get_or_init(|| {
        let raw = raw_now();
        Epoch { at: Instant::now(), raw }
    })
}

/// The clock id std's `Instant` reads on this system.
#[cfg(all(unix, target_vendor = "apple"))]
const RAW_CLOCK: libc::clockid_t = libc::CLOCK_UPTIME_RAW;
#[cfg(all(unix, not(target_vendor = "apple")))]
const RAW_CLOCK: libc::clockid_t = libc::CLOCK_MONOTONIC;

/// The monotonic clock `Instant` reads, as nanoseconds, without
/// `Instant`'s timespec arithmetic.
#[cfg(unix)]
fn raw_now() -> Nanos {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; RAW_CLOCK is the clock
    // std's `Instant` reads on this system, so it exists.
    unsafe { libc::clock_gettime(RAW_CLOCK, &mut ts) };
    (ts.tv_sec as Nanos).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as Nanos)
}

#[cfg(not(unix))]
fn raw_now() -> Nanos {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as Nanos
}

/// Now.
pub(crate) fn now() -> Nanos {
    raw_now().saturating_sub(epoch().raw)
}

/// `at` on this clock (instants before the epoch read as 0).
#[cfg(test)]
pub(crate) fn nanos(at: Instant) -> Nanos {
    at.saturating_duration_since(epoch().at).as_nanos() as Nanos
}

/// The `Instant` of `ns`, for timers.
pub(crate) fn instant(ns: Nanos) -> Instant {
    epoch().at + Duration::from_nanos(ns)
}

/// The Unix time, in ms, of the moment `at` on this clock: now's wall time
/// minus how long ago `at` was (so a wall-clock step moves every reported
/// time alike, and no second epoch is kept).
pub(crate) fn unix_ms(at: Nanos) -> u64 {
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    wall.saturating_sub(now().saturating_sub(at) / MS)
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

    #[test]
    fn raw_readings_agree_with_instants() {
        // The epoch's two reads are nanoseconds apart; allow far more.
        let slack = 100 * US;
        for _ in 0..1000 {
            let before = now();
            let at = nanos(Instant::now());
            let after = now();
            assert!(at + slack >= before && at <= after + slack, "{before} <= {at} <= {after}");
        }
    }
}
