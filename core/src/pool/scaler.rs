//! Adaptive worker scaling of one pool (only with a `scaling` section).
//!
//! A controller task looks every `min_scale_interval_ms` and multiplies the
//! workers by `scale_up_factor` (capped at `max_workers`) when
//! - the queue is at least `scale_up_threshold` full, or
//! - jobs are waiting in the queue *and* the recent average processing time
//!   exceeds `max_latency_ms`. Slow calls alone are no reason to add
//!   workers: with a worker idle, another one would serve nobody (and would
//!   retire again after `idle_timeout_ms`, the flapping this rule prevents).
//!   The average is an exponential moving average over ~16 calls seeded by
//!   the first call, so the first slow call already counts in full.
//!
//! Scaling down is done by the workers themselves: one idle for
//! `idle_timeout_ms` retires, never below `min_workers`, when the queue is at
//! most `scale_down_threshold` full and at least one *other* worker would
//! still be free after it leaves (`total − 1 > running + queued`): a pool
//! sized exactly to its load keeps a spare, so a steady load does not
//! alternate between retiring a worker and scaling up again. A worker
//! retires only between jobs, so no job is ever abandoned.
//!
//! Counted in `workers.scale_ups` (events), `workers.added` (workers those
//! events added) and `workers.retired` (workers; one per retirement).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::config::ScalingConfig;

use super::PoolShared;

/// Queue depth / capacity.
fn utilization(pool: &PoolShared) -> f64 {
    pool.queue.depth() as f64 / pool.queue.capacity as f64
}

/// The controller task; ends when the pool closes.
pub(crate) async fn run(pool: Arc<PoolShared>, cfg: ScalingConfig) {
    let _alive = super::TaskAlive::helper(&pool);
    let interval = Duration::from_millis(cfg.min_scale_interval_ms);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = pool.abort.tripped() => return,
        }
        if pool.queue.is_closed() {
            return;
        }
        let total = pool.workers_alive.load(Ordering::Acquire);
        let waiting = pool.queue.depth() > 0;
        let slow = cfg.max_latency_ms.is_some_and(|max| pool.counters.recent_processing_us() > max * 1000);
        if (utilization(&pool) >= cfg.scale_up_threshold || (waiting && slow)) && total < cfg.max_workers {
            let target = ((total as f64 * cfg.scale_up_factor).ceil() as usize).clamp(total + 1, cfg.max_workers);
            pool.spawn_workers(target - total);
            pool.counters.scale_ups.fetch_add(1, Ordering::Relaxed);
            pool.counters.workers_added.fetch_add((target - total) as u64, Ordering::Relaxed);
        }
    }
}

/// Called by a worker idle for `idle_timeout_ms`: true if it may retire
/// (and has been counted out of `workers_alive`).
pub(crate) fn try_retire(pool: &PoolShared, cfg: &ScalingConfig) -> bool {
    if utilization(pool) > cfg.scale_down_threshold {
        return false;
    }
    // Jobs that need a worker now: running ones (this worker is idle, so
    // not among them) and queued ones.
    let demand = pool.ledger.running_estimate() as usize + pool.queue.depth();
    let mut n = pool.workers_alive.load(Ordering::Acquire);
    while n > cfg.min_workers && n - 1 > demand {
        match pool.workers_alive.compare_exchange(n, n - 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                pool.counters.workers_retired.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Err(actual) => n = actual,
        }
    }
    false
}
