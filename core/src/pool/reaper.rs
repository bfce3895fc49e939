//! The reaper: one task per pool that ends queued jobs whose queue wait
//! limit (`queue.wait_timeout_ms`) or request deadline (`timeout_ms`) ran
//! out, at that moment, even while every worker is busy.
//!
//! It sleeps until the queue's next expiry (see `queue::JobQueue::sweep`)
//! and is woken early only when a push brings an earlier one, so its cost is
//! one timer per expiry horizon, not one per job; with an empty queue it
//! parks and costs nothing. It exits when the pool is aborted, or when the
//! queue is closed and drained.

use std::sync::Arc;
use std::time::Instant;

use crate::clock;
use crate::stats::Outcome;

use super::PoolShared;

pub(crate) async fn run(pool: Arc<PoolShared>) {
    let _alive = super::TaskAlive::helper(&pool);
    let mut expired = Vec::new();
    let mut sleep = Box::pin(tokio::time::sleep_until(Instant::now().into()));
    loop {
        let mut woken = std::pin::pin!(pool.queue.reaper.notified());
        woken.as_mut().enable();
        let now = clock::now();
        let sweep = pool.queue.sweep(now, &mut expired);
        for ending in expired.drain(..) {
            let err = pool.expiry_error(ending.job(), now);
            pool.finish(ending, Err(err), Outcome::TimedOut);
        }
        if sweep.finished || pool.abort.is_tripped() {
            return;
        }
        match sweep.next {
            Some(at) => {
                sleep.as_mut().reset(clock::instant(at).into());
                tokio::select! {
                    _ = woken => {}
                    _ = sleep.as_mut() => {}
                    _ = pool.abort.tripped() => return,
                }
            }
            None => {
                tokio::select! {
                    _ = woken => {}
                    _ = pool.abort.tripped() => return,
                }
            }
        }
    }
}
