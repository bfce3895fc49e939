//! `max_in_flight` in one process: at most N of a provider's requests at
//! the upstream at once (docs/architecture.md §10).
//!
//! A job takes a slot with its other claims, at admission, and gives it
//! back when its request is over: when the job ends, or for a stream when
//! the stream ends or is dropped (its watcher, `gate.rs`). A worker whose
//! front job finds every slot taken waits for [`InFlight::released`], a
//! notification sent by every give-back, not for a computed time: no
//! polling. (With the Redis store the fleet's slots are leases there,
//! `fleet.rs`; these are then the local share.)

use std::sync::atomic::{AtomicU64, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed};
use tokio::sync::Notify;

/// A provider's in-flight slots.
pub(crate) struct InFlight {
    max: u64,
    taken: AtomicU64,
    /// Times a job at the queue's front waited for a slot.
    pub waits: AtomicU64,
    released: Notify,
}

impl InFlight {
    pub fn new(max: u64) -> InFlight {
        InFlight { max, taken: AtomicU64::new(0), waits: AtomicU64::new(0), released: Notify::new() }
    }

    /// Takes a slot if one is free.
    pub fn try_take(&self) -> bool {
        self.taken.fetch_update(AcqRel, Acquire, |n| (n < self.max).then_some(n + 1)).is_ok()
    }

    /// Gives a slot back and wakes one waiting worker (or leaves the
    /// wake-up for the next to wait, so none is lost).
    pub fn give_back(&self) {
        let before = self.taken.fetch_sub(1, AcqRel);
        debug_assert!(before > 0, "a slot given back that was not taken");
        self.released.notify_one();
    }

    /// Wakes one waiting worker without giving a slot back (a fleet lease
    /// was released: the worker asks the store again).
    pub fn wake(&self) {
        self.released.notify_one();
    }

    /// Resolves after a slot is given back.
    pub async fn released(&self) {
        self.released.notified().await
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// Slots taken now.
    pub fn taken(&self) -> u64 {
        self.taken.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn slots_are_taken_up_to_max_and_given_back() {
        let f = Arc::new(InFlight::new(2));
        assert!(f.try_take() && f.try_take());
        assert!(!f.try_take());
        f.give_back();
        assert_eq!(f.taken(), 1);
        assert!(f.try_take());
        // The give-back's wake-up is kept for the next waiter.
        futures_executor::block_on(f.released());
    }

    #[test]
    fn concurrent_takers_never_exceed_max() {
        let f = Arc::new(InFlight::new(7));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let f = f.clone();
                std::thread::spawn(move || (0..1000).filter(|_| f.try_take()).count())
            })
            .collect();
        let taken: usize = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
        assert_eq!(taken, 7);
    }
}
