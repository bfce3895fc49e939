//! Adaptive worker scaling of one pool (only with a `scaling` section).
//!
//! A controller task looks every `min_scale_interval_ms`: when the queue is
//! at least `scale_up_threshold` full, or the recent average processing time
//! exceeds `max_latency_ms`, it multiplies the workers by `scale_up_factor`
//! (capped at `max_workers`). Scaling down is done by the workers
//! themselves: one idle for `idle_timeout_ms` while the queue is at most
//! `scale_down_threshold` full retires, never below `min_workers`. A worker
//! retires only between jobs, so no job is ever abandoned. Scale events are
//! counted in `workers.scale_ups` / `workers.scale_downs`.

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
    let _alive = super::TaskAlive { pool: pool.clone(), is_worker: false };
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
        let slow = cfg.max_latency_ms.is_some_and(|max| pool.counters.recent_processing_us() > max * 1000);
        if (utilization(&pool) >= cfg.scale_up_threshold || slow) && total < cfg.max_workers {
            let target = ((total as f64 * cfg.scale_up_factor).ceil() as usize).clamp(total + 1, cfg.max_workers);
            pool.spawn_workers(target - total);
            pool.counters.scale_ups.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Called by a worker idle for `idle_timeout_ms`: true if it may retire
/// (and has been counted out of `workers_alive`).
pub(crate) fn try_retire(pool: &PoolShared, cfg: &ScalingConfig) -> bool {
    if utilization(pool) > cfg.scale_down_threshold {
        return false;
    }
    let mut n = pool.workers_alive.load(Ordering::Acquire);
    while n > cfg.min_workers {
        match pool.workers_alive.compare_exchange(n, n - 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                pool.counters.scale_downs.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Err(actual) => n = actual,
        }
    }
    false
}
