//! The circuit breaker of one provider pool.
//!
//! `closed`: calls go through; it opens after `failure_threshold`
//! consecutive failures, or when the failure share over the last `window_ms`
//! reaches `error_rate` (with at least `min_requests` calls in the window).
//! `open`: calls fail fast with CIRCUIT_OPEN for `open_ms`. `half_open`:
//! up to `half_open_probes` calls go through as probes; when that many
//! succeed the breaker closes, and any failure re-opens it.
//!
//! Only failures that say the provider is unwell count (5xx, 408, 429,
//! network errors, attempt timeouts); a 4xx answer is a healthy provider
//! refusing a bad request. Without a `circuit_breaker` section the breaker
//! is `disabled` and costs one branch per call.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::CircuitBreakerConfig;

enum Phase {
    Closed { consecutive: u32, window: VecDeque<(Instant, bool)> },
    Open { until: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
}

/// The breaker's answer to "may this call go to the provider?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    Go,
    Probe,
    Reject { retry_in_ms: u64 },
}

pub(crate) struct Breaker {
    cfg: Option<CircuitBreakerConfig>,
    phase: Mutex<Phase>,
    opened_total: AtomicU64,
}

impl Breaker {
    pub fn new(cfg: Option<CircuitBreakerConfig>) -> Self {
        Breaker {
            cfg,
            phase: Mutex::new(Phase::Closed { consecutive: 0, window: VecDeque::new() }),
            opened_total: AtomicU64::new(0),
        }
    }

    pub fn admit(&self) -> Admit {
        let Some(cfg) = &self.cfg else { return Admit::Go };
        let mut phase = self.phase.lock();
        let now = Instant::now();
        match &mut *phase {
            Phase::Closed { .. } => Admit::Go,
            Phase::Open { until } if now < *until => {
                Admit::Reject { retry_in_ms: until.saturating_duration_since(now).as_millis() as u64 }
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
    pub fn record(&self, admit: Admit, healthy: bool) {
        let Some(cfg) = &self.cfg else { return };
        if matches!(admit, Admit::Reject { .. }) {
            return;
        }
        let mut phase = self.phase.lock();
        let now = Instant::now();
        match &mut *phase {
            Phase::HalfOpen { in_flight, successes } if admit == Admit::Probe => {
                *in_flight = in_flight.saturating_sub(1);
                if !healthy {
                    self.trip(&mut phase, cfg, now);
                } else {
                    *successes += 1;
                    if *successes >= cfg.half_open_probes {
                        *phase = Phase::Closed { consecutive: 0, window: VecDeque::new() };
                    }
                }
            }
            Phase::Closed { consecutive, window } => {
                *consecutive = if healthy { 0 } else { *consecutive + 1 };
                let mut trip = *consecutive >= cfg.failure_threshold;
                if let Some(rate) = cfg.error_rate {
                    let horizon = Duration::from_millis(cfg.window_ms);
                    window.push_back((now, healthy));
                    while window.front().is_some_and(|(t, _)| now.saturating_duration_since(*t) > horizon) {
                        window.pop_front();
                    }
                    let failures = window.iter().filter(|(_, ok)| !ok).count();
                    if window.len() as u64 >= cfg.min_requests && failures as f64 >= rate * window.len() as f64 {
                        trip = true;
                    }
                }
                if trip {
                    self.trip(&mut phase, cfg, now);
                }
            }
            // A call admitted before the breaker opened finished late.
            _ => {}
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

    fn trip(&self, phase: &mut Phase, cfg: &CircuitBreakerConfig, now: Instant) {
        *phase = Phase::Open { until: now + Duration::from_millis(cfg.open_ms) };
        self.opened_total.fetch_add(1, Relaxed);
    }

    /// `disabled`, `closed`, `open` or `half_open`.
    pub fn state(&self) -> &'static str {
        if self.cfg.is_none() {
            return "disabled";
        }
        match &*self.phase.lock() {
            Phase::Closed { .. } => "closed",
            Phase::Open { until } if Instant::now() < *until => "open",
            Phase::Open { .. } | Phase::HalfOpen { .. } => "half_open",
        }
    }

    pub fn opened_total(&self) -> u64 {
        self.opened_total.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
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
        let b = Breaker::new(Some(cfg(100, 20, 1)));
        let mut c = cfg(100, 20, 1);
        c.error_rate = Some(0.5);
        c.min_requests = 4;
        let r = Breaker::new(Some(c));
        for ok in [true, false, true, false] {
            let a = r.admit();
            r.record(a, ok);
        }
        assert_eq!(r.state(), "open", "2 of 4 failed at error_rate 0.5");
        drop(b);
        std::thread::sleep(Duration::from_millis(25));
        let p = r.admit();
        assert_eq!(p, Admit::Probe);
        r.record(p, false);
        assert_eq!(r.state(), "open");
        assert_eq!(r.opened_total(), 2);
        assert_eq!(Breaker::new(None).state(), "disabled");
    }
}
