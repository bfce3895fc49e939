//! The circuit breaker of one provider pool.
//!
//! `closed`: calls go through; it opens after `failure_threshold`
//! consecutive failures, or when a failure brings the failure share of the
//! calls over the last `window_ms` to `error_rate` (with at least
//! `min_requests` calls in the window). `open`: calls fail fast with
//! CIRCUIT_OPEN for `open_ms`. `half_open`: up to `half_open_probes` calls
//! go through as probes; when that many succeed the breaker closes, and any
//! failure re-opens it.
//!
//! Only failures that say the provider is unwell count (5xx, 408, 429,
//! network errors, attempt timeouts); a 4xx answer is a healthy provider
//! refusing a bad request. Without a `circuit_breaker` section the breaker
//! is `disabled` and costs one branch per call.
//!
//! While closed — nearly always — a call takes no lock: admission reads one
//! flag, and an outcome updates atomic counters (the consecutive-failure
//! run, and with `error_rate` a ring of [`SLOTS`] time slots covering
//! `window_ms`, so the window slides in steps of `window_ms / SLOTS` and
//! costs O(1) per call whatever the call rate). The lock guards the state
//! changes: tripping, probing and closing again.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

use parking_lot::Mutex;

use crate::clock::{self, Nanos};
use crate::config::CircuitBreakerConfig;

enum Phase {
    Closed,
    /// Open until this moment on the pools' clock.
    Open {
        until: Nanos,
    },
    HalfOpen {
        in_flight: u32,
        successes: u32,
    },
}

/// The breaker's answer to "may this call go to the provider?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    Go,
    Probe,
    Reject { retry_in_ms: u64 },
}

/// What an outcome did to the breaker (what a fleet hears about).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    None,
    /// It opened, for `open_ms`.
    Opened(u64),
    /// A probe closed it.
    Closed,
}

/// Time slots of the error-rate window.
const SLOTS: usize = 10;

/// Calls and failures in one slot of the window; `slot` says which slot of
/// time they belong to (`u64::MAX`: none yet).
struct Slot {
    slot: AtomicU64,
    calls: AtomicU64,
    failures: AtomicU64,
}

/// The calls of the last `window_ms`, in [`SLOTS`] slots of time. Lock-free:
/// a call landing as its slot is recycled may be lost, harmlessly.
struct RateWindow {
    slot_ns: Nanos,
    slots: [Slot; SLOTS],
}

impl RateWindow {
    fn new(window_ms: u64) -> Self {
        RateWindow {
            slot_ns: (clock::from_ms(window_ms) / SLOTS as Nanos).max(1),
            slots: std::array::from_fn(|_| Slot {
                slot: AtomicU64::new(u64::MAX),
                calls: AtomicU64::new(0),
                failures: AtomicU64::new(0),
            }),
        }
    }

    fn record(&self, now: Nanos, failed: bool) {
        let current = now / self.slot_ns;
        let s = &self.slots[(current % SLOTS as u64) as usize];
        let old = s.slot.load(Relaxed);
        if old != current && s.slot.compare_exchange(old, current, Relaxed, Relaxed).is_ok() {
            s.calls.store(0, Relaxed);
            s.failures.store(0, Relaxed);
        }
        s.calls.fetch_add(1, Relaxed);
        if failed {
            s.failures.fetch_add(1, Relaxed);
        }
    }

    /// (calls, failures) over the window ending now.
    fn totals(&self, now: Nanos) -> (u64, u64) {
        let current = now / self.slot_ns;
        self.slots.iter().fold((0, 0), |(calls, failures), s| {
            let slot = s.slot.load(Relaxed);
            if slot <= current && current - slot < SLOTS as u64 {
                (calls + s.calls.load(Relaxed), failures + s.failures.load(Relaxed))
            } else {
                (calls, failures)
            }
        })
    }

    fn clear(&self) {
        for s in &self.slots {
            s.slot.store(u64::MAX, Relaxed);
        }
    }
}

pub(crate) struct Breaker {
    cfg: Option<CircuitBreakerConfig>,
    /// The phase is `Closed` (the lock-free fast path's flag).
    closed: AtomicBool,
    /// Consecutive unhealthy outcomes while closed.
    consecutive: AtomicU32,
    /// With `error_rate`: the window's calls and failures.
    window: Option<RateWindow>,
    phase: Mutex<Phase>,
    opened_total: AtomicU64,
}

impl Breaker {
    pub fn new(cfg: Option<CircuitBreakerConfig>) -> Self {
        let window = cfg.as_ref().filter(|c| c.error_rate.is_some()).map(|c| RateWindow::new(c.window_ms));
        Breaker {
            cfg,
            closed: AtomicBool::new(true),
            consecutive: AtomicU32::new(0),
            window,
            phase: Mutex::new(Phase::Closed),
            opened_total: AtomicU64::new(0),
        }
    }

    pub fn admit(&self) -> Admit {
        let Some(cfg) = &self.cfg else { return Admit::Go };
        if self.closed.load(Acquire) {
            return Admit::Go;
        }
        let mut phase = self.phase.lock();
        let now = clock::now();
        match &mut *phase {
            Phase::Closed => Admit::Go,
            Phase::Open { until } if now < *until => {
                Admit::Reject { retry_in_ms: until.saturating_sub(now) / clock::MS }
            }
            Phase::Open { .. } => {
                *phase = Phase::HalfOpen { in_flight: 1, successes: 0 };
                Admit::Probe
            }
            Phase::HalfOpen { in_flight, successes } => {
                if *in_flight + *successes < cfg.half_open_probes {
                    *in_flight += 1;
                    Admit::Probe
                } else {
                    Admit::Reject { retry_in_ms: 0 }
                }
            }
        }
    }

    /// Records the outcome of an admitted call (`healthy`: the provider
    /// answered, even if with a client error).
    pub fn record(&self, admit: Admit, healthy: bool) -> Change {
        let Some(cfg) = &self.cfg else { return Change::None };
        match admit {
            Admit::Reject { .. } => Change::None,
            Admit::Probe => self.record_probe(cfg, healthy),
            // Admitted while closed (if the breaker opened since, the
            // counters it updates are reset when it closes again).
            Admit::Go => {
                let mut trip = if healthy {
                    if self.consecutive.load(Relaxed) != 0 {
                        self.consecutive.store(0, Relaxed);
                    }
                    false
                } else {
                    self.consecutive.fetch_add(1, Relaxed) + 1 >= cfg.failure_threshold
                };
                if let (Some(window), Some(rate)) = (&self.window, cfg.error_rate) {
                    let now = clock::now();
                    window.record(now, !healthy);
                    if !healthy && !trip {
                        let (calls, failures) = window.totals(now);
                        trip = calls >= cfg.min_requests && failures as f64 >= rate * calls as f64;
                    }
                }
                if trip {
                    let mut phase = self.phase.lock();
                    if matches!(*phase, Phase::Closed) {
                        self.trip(&mut phase, cfg);
                        return Change::Opened(cfg.open_ms);
                    }
                }
                Change::None
            }
        }
    }

    fn record_probe(&self, cfg: &CircuitBreakerConfig, healthy: bool) -> Change {
        let mut phase = self.phase.lock();
        if let Phase::HalfOpen { in_flight, successes } = &mut *phase {
            *in_flight = in_flight.saturating_sub(1);
            if !healthy {
                self.trip(&mut phase, cfg);
                return Change::Opened(cfg.open_ms);
            }
            *successes += 1;
            if *successes >= cfg.half_open_probes {
                self.close(&mut phase);
                return Change::Closed;
            }
        }
        Change::None
    }

    fn close(&self, phase: &mut Phase) {
        self.consecutive.store(0, Relaxed);
        if let Some(w) = &self.window {
            w.clear();
        }
        *phase = Phase::Closed;
        self.closed.store(true, Release);
    }

    /// Another process of the fleet saw the provider fail: open (or stay
    /// open) for `ms` from now. Without a `circuit_breaker` section, nothing.
    pub fn force_open(&self, ms: u64) {
        if self.cfg.is_none() {
            return;
        }
        let mut phase = self.phase.lock();
        let until = clock::now().saturating_add(clock::from_ms(ms));
        match &mut *phase {
            Phase::Open { until: u } => *u = (*u).max(until),
            _ => {
                self.closed.store(false, Release);
                *phase = Phase::Open { until };
                self.opened_total.fetch_add(1, Relaxed);
            }
        }
    }

    /// How long the breaker stays open, in ms, if it is open.
    pub fn open_left_ms(&self) -> Option<u64> {
        match &*self.phase.lock() {
            Phase::Open { until } => Some(until.saturating_sub(clock::now()) / clock::MS).filter(|&ms| ms > 0),
            _ => None,
        }
    }

    /// Another process's probe succeeded: close.
    pub fn force_close(&self) {
        let mut phase = self.phase.lock();
        if !matches!(*phase, Phase::Closed) {
            self.close(&mut phase);
        }
    }

    /// Gives back an admission that was not used (the call never started).
    pub fn release(&self, admit: Admit) {
        if admit == Admit::Probe {
            if let Phase::HalfOpen { in_flight, .. } = &mut *self.phase.lock() {
                *in_flight = in_flight.saturating_sub(1);
            }
        }
    }

    fn trip(&self, phase: &mut Phase, cfg: &CircuitBreakerConfig) {
        self.closed.store(false, Release);
        *phase = Phase::Open { until: clock::now().saturating_add(clock::from_ms(cfg.open_ms)) };
        self.opened_total.fetch_add(1, Relaxed);
    }

    /// `disabled`, `closed`, `open` or `half_open`.
    pub fn state(&self) -> &'static str {
        if self.cfg.is_none() {
            return "disabled";
        }
        match &*self.phase.lock() {
            Phase::Closed => "closed",
            Phase::Open { until } if clock::now() < *until => "open",
            Phase::Open { .. } | Phase::HalfOpen { .. } => "half_open",
        }
    }

    pub fn opened_total(&self) -> u64 {
        self.opened_total.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn cfg(threshold: u32, open_ms: u64, probes: u32) -> CircuitBreakerConfig {
        CircuitBreakerConfig {
            failure_threshold: threshold,
            error_rate: None,
            window_ms: 10_000,
            min_requests: 20,
            open_ms,
            half_open_probes: probes,
        }
    }

    #[test]
    fn opens_after_consecutive_failures_then_half_opens_and_closes() {
        let b = Breaker::new(Some(cfg(3, 30, 2)));
        for _ in 0..2 {
            let a = b.admit();
            b.record(a, false);
        }
        assert_eq!(b.state(), "closed");
        let a = b.admit();
        b.record(a, true); // resets the run
        for _ in 0..3 {
            let a = b.admit();
            b.record(a, false);
        }
        assert_eq!(b.state(), "open");
        assert!(matches!(b.admit(), Admit::Reject { .. }));
        std::thread::sleep(Duration::from_millis(40));
        let (p1, p2) = (b.admit(), b.admit());
        assert_eq!((p1, p2), (Admit::Probe, Admit::Probe));
        assert!(matches!(b.admit(), Admit::Reject { .. }), "only two probes");
        b.record(p1, true);
        assert_eq!(b.state(), "half_open");
        b.record(p2, true);
        assert_eq!(b.state(), "closed");
        assert_eq!(b.opened_total(), 1);
    }

    #[test]
    fn a_failed_probe_reopens_and_error_rate_trips() {
        let mut c = cfg(100, 20, 1);
        c.error_rate = Some(0.5);
        c.min_requests = 4;
        let r = Breaker::new(Some(c));
        for ok in [true, false, true, false] {
            let a = r.admit();
            r.record(a, ok);
        }
        assert_eq!(r.state(), "open", "2 of 4 failed at error_rate 0.5");
        std::thread::sleep(Duration::from_millis(25));
        let p = r.admit();
        assert_eq!(p, Admit::Probe);
        r.record(p, false);
        assert_eq!(r.state(), "open");
        assert_eq!(r.opened_total(), 2);
        assert_eq!(Breaker::new(None).state(), "disabled");
    }

    #[test]
    fn error_rate_counts_only_the_window_and_trips_on_a_failure() {
        let mut c = cfg(100, 1_000, 1);
        c.error_rate = Some(0.5);
        c.min_requests = 4;
        c.window_ms = 50;
        let b = Breaker::new(Some(c));
        for _ in 0..3 {
            let a = b.admit();
            b.record(a, false);
        }
        assert_eq!(b.state(), "closed", "3 calls: below min_requests");
        std::thread::sleep(Duration::from_millis(70));
        // The three failures left the window: one more is 1 call in it.
        let a = b.admit();
        b.record(a, false);
        assert_eq!(b.state(), "closed", "old failures must not count");
        // 1 failure + 2 successes + 1 failure = 2 of 4: trips on the failure.
        for ok in [true, true] {
            let a = b.admit();
            b.record(a, ok);
        }
        assert_eq!(b.state(), "closed");
        let a = b.admit();
        b.record(a, false);
        assert_eq!(b.state(), "open");
        assert!(matches!(b.admit(), Admit::Reject { .. }));
    }

    #[test]
    fn a_busy_window_costs_constant_memory_and_time() {
        let mut c = cfg(1_000_000, 1_000, 1);
        c.error_rate = Some(0.5);
        c.min_requests = 10;
        let b = Breaker::new(Some(c));
        // A million calls in well under the 10 s window: every one is
        // counted, in ten slots.
        for i in 0..1_000_000u32 {
            let a = b.admit();
            b.record(a, i % 4 != 0);
        }
        let (calls, failures) = b.window.as_ref().map(|w| w.totals(clock::now())).unwrap_or_default();
        assert_eq!((calls, failures), (1_000_000, 250_000));
        assert_eq!(b.state(), "closed", "25 % < 50 %");
    }
}
