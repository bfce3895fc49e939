//! Job ids: unique within a gateway, never 0 (0 means "no job" in the C API).
//!
//! Handed out from one counter per thread stripe, each on its own cache
//! line, so submitters on different cores do not bounce a shared line per
//! job: stripe `s` hands out `n * STRIPES + s` for `n = 1, 2, …`. Ids are
//! therefore unique but not in submission order across threads.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::stats::{thread_stripe, STRIPES};

/// One stripe's counter, alone on its cache line(s).
#[repr(align(128))]
struct Stripe(AtomicU64);

/// The source of a gateway's job ids.
pub(crate) struct JobIds {
    stripes: [Stripe; STRIPES],
}

impl Default for JobIds {
    fn default() -> Self {
        JobIds { stripes: std::array::from_fn(|_| Stripe(AtomicU64::new(1))) }
    }
}

impl JobIds {
    /// A fresh id.
    pub fn next(&self) -> u64 {
        let s = thread_stripe();
        self.stripes[s].0.fetch_add(1, Relaxed) * STRIPES as u64 + s as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_nonzero_across_threads() {
        let ids = std::sync::Arc::new(JobIds::default());
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let ids = ids.clone();
                std::thread::spawn(move || (0..10_000).map(|_| ids.next()).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<u64> = handles.into_iter().flat_map(|h| h.join().expect("thread")).collect();
        assert!(all.iter().all(|&id| id > 0));
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "duplicate ids");
    }
}
