//! The one-process limits store: every bucket in a map behind one mutex,
//! held only for the few arithmetic steps of a call (never across an
//! await), so a set of claims is checked and taken atomically.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::clock::Nanos;

use super::gcra::{Bucket, Rate, Take};
use super::{Acquired, Claim, LimitStore};

/// Buckets by name, in this process.
#[derive(Default)]
pub(crate) struct MemoryStore {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl MemoryStore {
    fn with_bucket<R>(&self, bucket: &str, f: impl FnOnce(&mut Bucket) -> R) -> R {
        let mut map = self.buckets.lock();
        match map.get_mut(bucket) {
            Some(b) => f(b),
            None => f(map.entry(bucket.to_string()).or_default()),
        }
    }

    /// [`LimitStore::acquire`], synchronously. Claims on one bucket are
    /// merged first, so a bucket named twice is checked for their sum.
    pub fn acquire_now(&self, claims: &[Claim<'_>], now: Nanos) -> Acquired {
        // (bucket, rate, units, index of the first claim on it)
        let mut merged: Vec<(&str, Rate, u64, usize)> = Vec::with_capacity(claims.len());
        for (i, c) in claims.iter().enumerate() {
            match merged.iter_mut().find(|m| m.0 == c.bucket) {
                Some(m) => m.2 = m.2.saturating_add(c.units),
                None => merged.push((c.bucket, c.rate, c.units, i)),
            }
        }
        let mut map = self.buckets.lock();
        let mut wait = (0, 0);
        for (name, rate, units, i) in &merged {
            match map.get(*name).copied().unwrap_or_default().check(rate, *units, now) {
                Take::Admitted => {}
                Take::Wait(w) if w > wait.0 => wait = (w, *i),
                Take::Wait(_) => {}
                Take::Never => return Acquired::Never(*i),
            }
        }
        if wait.0 > 0 {
            return Acquired::Wait(wait.0, wait.1);
        }
        for (name, rate, units, _) in &merged {
            let b = match map.get_mut(*name) {
                Some(b) => b,
                None => map.entry((*name).to_string()).or_default(),
            };
            // Checked just above, under the same lock: this take is admitted.
            let taken = b.take(rate, *units, now);
            debug_assert_eq!(taken, Take::Admitted);
        }
        Acquired::Admitted
    }
}

impl MemoryStore {
    /// [`LimitStore::adjust`], synchronously.
    pub fn adjust_now(&self, bucket: &str, rate: Rate, delta: i64, now: Nanos) {
        self.with_bucket(bucket, |b| match delta {
            d if d > 0 => b.charge(&rate, d as u64, now),
            d if d < 0 => b.refund(&rate, d.unsigned_abs(), now),
            _ => {}
        })
    }

    /// [`LimitStore::level`], synchronously.
    pub fn level_now(&self, bucket: &str, rate: Rate, now: Nanos) -> (u64, Nanos) {
        self.buckets.lock().get(bucket).copied().unwrap_or_default().level(&rate, now)
    }
}

impl LimitStore for MemoryStore {
    async fn acquire(&self, claims: &[Claim<'_>], now: Nanos) -> Acquired {
        self.acquire_now(claims, now)
    }

    async fn adjust(&self, bucket: &str, rate: Rate, delta: i64, now: Nanos) {
        self.adjust_now(bucket, rate, delta, now)
    }

    async fn observe(&self, bucket: &str, rate: Rate, remaining: u64, reset_ns: Nanos, now: Nanos) {
        self.with_bucket(bucket, |b| b.observe(&rate, remaining, reset_ns, now))
    }

    async fn level(&self, bucket: &str, rate: Rate, now: Nanos) -> (u64, Nanos) {
        self.level_now(bucket, rate, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_executor::block_on;

    const S: Nanos = 1_000_000_000;

    fn claims<'a>(rpm: &'a Rate, tpm: &'a Rate, tokens: u64) -> [Claim<'a>; 2] {
        [Claim { bucket: "p:requests", rate: *rpm, units: 1 }, Claim { bucket: "p:tokens", rate: *tpm, units: tokens }]
    }

    #[test]
    fn claims_are_taken_all_or_none_with_the_longest_wait() {
        let store = MemoryStore::default();
        let rpm = Rate::new(60, 60 * S, 60); // 1/s
        let tpm = Rate::new(600, 60 * S, 600); // 10 tokens/s
        assert_eq!(block_on(store.acquire(&claims(&rpm, &tpm, 500), 0)), Acquired::Admitted);
        // 200 tokens: 100 short, 10 s of refill; requests have room.
        assert_eq!(block_on(store.acquire(&claims(&rpm, &tpm, 200), 0)), Acquired::Wait(10 * S, 1));
        // Refused claims took nothing: the request bucket is where it was.
        assert_eq!(block_on(store.level("p:requests", rpm, 0)).0, 59);
        assert_eq!(block_on(store.acquire(&claims(&rpm, &tpm, 200), 10 * S)), Acquired::Admitted);
        assert_eq!(block_on(store.acquire(&claims(&rpm, &tpm, 601), 10 * S)), Acquired::Never(1));
    }

    #[test]
    fn reconciling_leaves_the_level_at_the_reported_usage() {
        let store = MemoryStore::default();
        let tpm = Rate::new(100_000, 60 * S, 100_000);
        let now = 3 * S;
        let mut used = 0;
        for (reserved, reported) in [(900u64, 312u64), (500, 500), (200, 760), (1000, 0)] {
            let c = [Claim { bucket: "t", rate: tpm, units: reserved }];
            assert_eq!(block_on(store.acquire(&c, now)), Acquired::Admitted);
            block_on(store.adjust("t", tpm, reported as i64 - reserved as i64, now));
            used += reported;
        }
        assert_eq!(block_on(store.level("t", tpm, now)).0, 100_000 - used);
    }

    #[test]
    fn one_bucket_claimed_twice_counts_both() {
        let store = MemoryStore::default();
        let r = Rate::new(10, 60 * S, 10);
        assert_eq!(block_on(store.acquire(&[Claim { bucket: "b", rate: r, units: 5 }], 0)), Acquired::Admitted);
        let twice = [Claim { bucket: "b", rate: r, units: 3 }, Claim { bucket: "b", rate: r, units: 3 }];
        // 6 needed, 5 free: one unit short, 6 s of refill.
        assert_eq!(block_on(store.acquire(&twice, 0)), Acquired::Wait(6 * S, 0));
        assert_eq!(block_on(store.level("b", r, 0)).0, 5, "nothing taken");
        let too_big = [Claim { bucket: "b", rate: r, units: 6 }, Claim { bucket: "b", rate: r, units: 6 }];
        assert_eq!(block_on(store.acquire(&too_big, 0)), Acquired::Never(0));
    }

    #[test]
    fn concurrent_takers_never_exceed_the_burst() {
        let store = std::sync::Arc::new(MemoryStore::default());
        let r = Rate::new(1000, 3600 * S, 1000);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let c = [Claim { bucket: "x", rate: r, units: 3 }];
                    (0..200).filter(|_| store.acquire_now(&c, 0) == Acquired::Admitted).count() as u64
                })
            })
            .collect();
        let taken: u64 = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
        assert_eq!(taken * 3, 999, "333 takes of 3 fit in 1000, at one instant");
    }
}
