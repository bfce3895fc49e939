//! What a pool reports about itself: the `stats()` snapshot, `health()`,
//! the histograms behind the Prometheus text, and the last outcomes.
//!
//! Every number here is read from the pool's own state: job counts from the
//! [`ledger`](super::ledger) (one consistent instant per snapshot), gauges
//! from the queue and the worker count, health from the breaker, the keys,
//! the probe and the watchdog. Nothing outside the pool reads its fields.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::{self, Nanos};
use crate::error::Result;
use crate::stats::{
    CircuitStats, Histogram, JobStats, LatencyStats, Outcome, ProviderHealth, ProviderStats, QueueStats, WorkerStats,
};

use super::job::Output;
use super::probe::ProbeState;
use super::PoolShared;

/// When the pool last completed and last failed a job, for `health()`.
#[derive(Default)]
pub(crate) struct LastOutcomes {
    /// Ms on the pools' clock of the last completed job (0: none).
    success_ms: AtomicU64,
    /// Ms on the pools' clock and message of the last failed job.
    error: parking_lot::Mutex<(u64, Option<String>)>,
}

/// Totals a shutdown report subtracts: completed, failed, cancelled, aborted.
pub(crate) type Totals = [u64; 4];

impl PoolShared {
    /// Records when a worker finished its last job (for `health()`); uses
    /// the worker's own timestamp, so no extra clock read per job.
    pub fn note_outcome(&self, outcome: &Result<Output>, bucket: Outcome, at: Nanos) {
        let ms = (at / clock::MS).max(1);
        match (outcome, bucket) {
            // Written only when the millisecond changed: a store per job
            // would bounce this line between cores.
            (Ok(_), _) if self.last.success_ms.load(Ordering::Relaxed) != ms => {
                self.last.success_ms.store(ms, Ordering::Relaxed)
            }
            (Ok(_), _) => {}
            (Err(e), Outcome::Failed) => *self.last.error.lock() = (ms, Some(e.to_string())),
            _ => {}
        }
    }

    /// A snapshot for `stats()`.
    pub fn snapshot(&self) -> ProviderStats {
        let c = &self.counters;
        let jobs = self.ledger.snapshot();
        let running = jobs.running;
        let alive = self.workers_alive.load(Ordering::Relaxed) as u64;
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let depth = self.queue.depth() as u64;
        ProviderStats {
            workers: WorkerStats {
                total: alive,
                busy: running.min(alive),
                idle: alive.saturating_sub(running),
                min: self.min_workers as u64,
                max: self.max_workers as u64,
                scale_ups: ld(&c.scale_ups),
                added: ld(&c.workers_added),
                retired: ld(&c.workers_retired),
            },
            queue: QueueStats { depth, capacity: self.queue.capacity as u64, policy: self.policy.as_str().to_string() },
            jobs: JobStats {
                retries: c.retries.load(Ordering::Relaxed),
                panics: c.panics.load(Ordering::Relaxed),
                stalled: ld(&c.stalled),
                stalls_total: ld(&c.stalls_total),
                fallbacks_served: c.fallbacks_served.load(Ordering::Relaxed),
                ..jobs
            },
            latency_us: LatencyStats { queue_wait: c.queue_wait.summary(), processing: c.processing.summary() },
            throughput_per_s: c.throughput.per_second(),
            circuit: CircuitStats {
                state: self.breaker.state().to_string(),
                opened_total: self.breaker.opened_total(),
            },
            keys: self.keys.snapshot(),
            limits: self.gate.as_ref().map(|g| g.snapshot()).unwrap_or_default(),
            limits_store: self.gate.as_ref().map(|g| g.store_stats()),
        }
    }

    /// The queue-wait and processing histograms (for the Prometheus text).
    pub fn histograms(&self) -> (&Histogram, &Histogram) {
        (&self.counters.queue_wait, &self.counters.processing)
    }

    /// Completed, failed, cancelled and aborted jobs so far.
    pub fn totals(&self) -> Totals {
        let jobs = self.ledger.snapshot();
        [jobs.completed, jobs.failed, jobs.cancelled, self.counters.aborted.load(Ordering::Relaxed)]
    }

    /// This pool's health: `shutdown` once closed; `degraded` when the queue
    /// is ≥ 90 % full, workers are missing, the circuit is not closed, no
    /// key is usable, the startup probe failed or a worker is stalled.
    pub fn health(&self) -> ProviderHealth {
        let util = self.queue.depth() as f64 / self.queue.capacity as f64;
        let workers = self.workers_alive.load(Ordering::Relaxed) as u64;
        let circuit = self.breaker.state();
        let keys = self.keys.len() as u64;
        let live_keys = self.keys.live_count() as u64;
        let (error_ms, last_error) = self.last.error.lock().clone();
        let probe = self.probe.lock().clone();
        let stalled_workers = self.counters.stalled.load(Ordering::Relaxed);
        let status = if self.queue.is_closed() {
            "shutdown"
        } else if util >= 0.9
            || workers < self.min_workers as u64
            || matches!(circuit, "open" | "half_open")
            || (keys > 0 && live_keys == 0)
            || matches!(probe, ProbeState::Failed { .. })
            || stalled_workers > 0
        {
            "degraded"
        } else {
            "ok"
        };
        let unix = |ms: u64| if ms == 0 { 0 } else { clock::unix_ms(clock::from_ms(ms)) };
        ProviderHealth {
            status: status.into(),
            circuit: circuit.into(),
            queue_utilization: util,
            workers,
            live_keys,
            keys,
            last_success_unix_ms: unix(self.last.success_ms.load(Ordering::Relaxed)),
            last_error_unix_ms: unix(error_ms),
            last_error,
            startup_probe: probe.label().into(),
            startup_probe_error: match probe {
                ProbeState::Failed { error } => Some(error),
                _ => None,
            },
            stalled_workers,
        }
    }
}
