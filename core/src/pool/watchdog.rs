//! The stall detector of one pool.
//!
//! Every job has a bound by which its worker must be done: the request
//! deadline, or (without one) every attempt timing out plus every backoff,
//! plus a grace second. Workers enforce these bounds themselves, so a worker
//! still busy past its bound means a provider future that blocks its thread
//! or never yields — a bug worth seeing. Once a second, while jobs run, the
//! watchdog counts such workers (`jobs.stalled` now, `jobs.stalls_total`
//! ever) and logs each new stall at `warn` level through the `log` facade.
//! It stops when the pool starts closing (stalls during a drain end at the
//! shutdown deadline anyway).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::clock::{self, Nanos};

use super::PoolShared;

const GRACE: Duration = Duration::from_secs(1);
const TICK: Duration = Duration::from_secs(1);

/// What one worker is doing, for the watchdog.
#[derive(Default)]
pub(crate) struct WorkerSlot {
    /// Ms on the pools' clock by which the current job must be done (0: idle).
    busy_until_ms: AtomicU64,
    job_id: AtomicU64,
    /// The job id already reported as stalled (to log each stall once).
    reported: AtomicU64,
}

impl WorkerSlot {
    pub fn start(&self, job_id: u64, bound: Nanos) {
        let ms = bound.saturating_add(clock::nanos_of(GRACE)) / clock::MS;
        self.job_id.store(job_id, Relaxed);
        self.busy_until_ms.store(ms.max(1), Relaxed);
    }

    pub fn finish(&self) {
        self.busy_until_ms.store(0, Relaxed);
    }
}

/// Registers a worker's slot with its pool.
pub(crate) fn register(pool: &PoolShared) -> Arc<WorkerSlot> {
    let slot = Arc::new(WorkerSlot::default());
    let mut slots = pool.worker_slots.lock();
    slots.retain(|w| w.strong_count() > 0);
    slots.push(Arc::downgrade(&slot));
    slot
}

/// The latest a job without a deadline may take: every attempt timing out
/// and every backoff at its longest (Retry-After pauses count up to 60 s).
pub(crate) fn job_bound(pool: &PoolShared, started: Nanos, deadline: Option<Nanos>) -> Nanos {
    if let Some(d) = deadline {
        return d;
    }
    let n = &pool.network;
    let attempts = n.max_retries as u64 + 1;
    let pause = n.retry_backoff_max_ms.max(60_000);
    started
        .saturating_add(clock::from_ms(n.default_request_timeout_in_seconds.saturating_mul(1000 * attempts)))
        .saturating_add(clock::from_ms(pause.saturating_mul(n.max_retries as u64)))
}

/// The watchdog task; ends when the pool starts closing.
pub(crate) async fn run(pool: Arc<PoolShared>) {
    let _alive = super::TaskAlive::helper(&pool);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = pool.closing.tripped() => return,
        }
        if pool.ledger.running_estimate() == 0 {
            pool.counters.stalled.store(0, Relaxed);
            continue;
        }
        let now = clock::now() / clock::MS;
        let slots: Vec<Weak<WorkerSlot>> = pool.worker_slots.lock().clone();
        let mut stalled = 0;
        for slot in slots.iter().filter_map(Weak::upgrade) {
            let until = slot.busy_until_ms.load(Relaxed);
            if until == 0 || now <= until {
                continue;
            }
            stalled += 1;
            let job = slot.job_id.load(Relaxed);
            if slot.reported.swap(job, Relaxed) != job {
                pool.counters.stalls_total.fetch_add(1, Relaxed);
                log::warn!(
                    "bifrost: a worker of provider '{}' is stuck on job {job}, {} ms past its deadline; \
                     a provider call is blocking its thread",
                    pool.name,
                    now - until + GRACE.as_millis() as u64
                );
            }
        }
        pool.counters.stalled.store(stalled, Relaxed);
    }
}
