//! The one-process limits store: every bucket behind one mutex, held only
//! for the few arithmetic steps of a call (never across an await), so a
//! set of claims is checked and taken atomically.
//!
//! Refunds (a reservation larger than the reported usage, or a job whose
//! request never went out) do not take the mutex: they add to the
//! bucket's pending counter, which the next call that reads or takes from
//! that bucket applies first, under the lock. Until then the bucket looks
//! fuller-used than it is, never emptier: a refund applied late can only
//! admit later. Extra charges (usage above the reservation, rare) are
//! applied at once, under the lock.
//!
//! Layout: the first [`INLINE`] buckets (a provider's requests and tokens),
//! the mutex guarding them and their pending refunds share one 64-byte
//! cache line, so an admission and a settlement on another thread move one
//! line between cores, not three. Further buckets (models, keys) sit behind
//! a second mutex, always taken after the first.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::{Mutex, MutexGuard};

use crate::clock::Nanos;

use super::gcra::{Bucket, Rate, Take};
use super::{Acquired, Claim};

/// Buckets kept in the store's first cache line.
const INLINE: usize = 2;

/// Buckets by number, in this process.
#[derive(Default)]
#[repr(C, align(64))]
pub(crate) struct MemoryStore {
    first: Mutex<[Bucket; INLINE]>,
    first_refunds: [AtomicU64; INLINE],
    rest: Mutex<Vec<Bucket>>,
    /// Pending refunds of buckets `INLINE..n`.
    rest_refunds: Box<[AtomicU64]>,
}

/// The store's buckets, locked.
struct Locked<'a> {
    first: MutexGuard<'a, [Bucket; INLINE]>,
    rest: Option<MutexGuard<'a, Vec<Bucket>>>,
}

impl Locked<'_> {
    fn get(&mut self, i: usize) -> &mut Bucket {
        if i < INLINE {
            return &mut self.first[i];
        }
        let rest = self.rest.as_mut().expect("buckets past the first line are locked when named");
        if i - INLINE >= rest.len() {
            rest.resize(i - INLINE + 1, Bucket::default());
        }
        &mut rest[i - INLINE]
    }
}

impl MemoryStore {
    /// A store for buckets `0..n` (more are added when named; their
    /// refunds then take the lock).
    pub fn new(n: usize) -> MemoryStore {
        MemoryStore {
            rest_refunds: (INLINE..n.max(INLINE)).map(|_| AtomicU64::new(0)).collect(),
            ..MemoryStore::default()
        }
    }

    /// Locks the first line, and the rest too if `beyond` names a bucket there.
    fn lock(&self, beyond: bool) -> Locked<'_> {
        let first = self.first.lock();
        Locked { first, rest: beyond.then(|| self.rest.lock()) }
    }

    fn refunds(&self, i: usize) -> Option<&AtomicU64> {
        if i < INLINE {
            Some(&self.first_refunds[i])
        } else {
            self.rest_refunds.get(i - INLINE)
        }
    }

    /// Bucket `i`, with its pending refunds applied at `now`.
    fn slot<'a>(&self, locked: &'a mut Locked<'_>, i: usize, rate: &Rate, now: Nanos) -> &'a mut Bucket {
        let b = locked.get(i);
        if let Some(p) = self.refunds(i) {
            if p.load(Relaxed) != 0 {
                b.refund(rate, p.swap(0, Relaxed), now);
            }
        }
        b
    }

    /// Takes every claim at `now`, or none (see [`Acquired`]). Claims on one bucket are
    /// merged first, so a bucket named twice is checked for their sum (a
    /// job's claims name distinct buckets: then nothing is allocated).
    pub fn acquire_now(&self, claims: &[Claim], now: Nanos) -> Acquired {
        let distinct = claims.iter().enumerate().all(|(i, c)| claims[..i].iter().all(|d| d.bucket != c.bucket));
        if !distinct {
            return self.acquire_merged(claims, now);
        }
        let mut locked = self.lock(claims.iter().any(|c| c.bucket >= INLINE));
        let mut wait = (0, 0);
        for (i, c) in claims.iter().enumerate() {
            match self.slot(&mut locked, c.bucket, &c.rate, now).check(&c.rate, c.units, now) {
                Take::Admitted => {}
                Take::Wait(w) if w > wait.0 => wait = (w, i),
                Take::Wait(_) => {}
                Take::Never => return Acquired::Never(i),
            }
        }
        if wait.0 > 0 {
            return Acquired::Wait(wait.0, wait.1);
        }
        for c in claims {
            // Checked just above, under the same lock: this take is admitted.
            let taken = locked.get(c.bucket).take(&c.rate, c.units, now);
            debug_assert_eq!(taken, Take::Admitted);
        }
        Acquired::Admitted
    }

    /// Claims that name a bucket more than once, merged (the answer's index
    /// is that of the first claim on the bucket).
    fn acquire_merged(&self, claims: &[Claim], now: Nanos) -> Acquired {
        let mut merged: Vec<Claim> = Vec::with_capacity(claims.len());
        let mut first: Vec<usize> = Vec::with_capacity(claims.len());
        for (i, c) in claims.iter().enumerate() {
            match merged.iter_mut().find(|m| m.bucket == c.bucket) {
                Some(m) => m.units = m.units.saturating_add(c.units),
                None => {
                    merged.push(*c);
                    first.push(i);
                }
            }
        }
        match self.acquire_now(&merged, now) {
            Acquired::Wait(w, i) => Acquired::Wait(w, first[i]),
            Acquired::Never(i) => Acquired::Never(first[i]),
            Acquired::Admitted => Acquired::Admitted,
        }
    }

    /// Settles a reservation: `delta < 0` refunds, applied
    /// at the bucket's next use; `delta > 0` charges, at once (see the
    /// module docs).
    pub fn adjust_now(&self, bucket: usize, rate: Rate, delta: i64) {
        if delta < 0 {
            if let Some(p) = self.refunds(bucket) {
                // Cannot wrap: one refund is at most 1e9 units (a
                // reservation, `plan.rs`, or a usage, capped in `gate.rs`),
                // every take from the bucket empties its counter, and 2^64
                // is 1.8e10 such refunds.
                p.fetch_add(delta.unsigned_abs(), Relaxed);
                return;
            }
        }
        if delta == 0 {
            return;
        }
        let now = crate::clock::now();
        let mut locked = self.lock(bucket >= INLINE);
        let b = self.slot(&mut locked, bucket, &rate, now);
        if delta > 0 {
            b.charge(&rate, delta as u64, now);
        } else {
            b.refund(&rate, delta.unsigned_abs(), now);
        }
    }

    /// Lowers a bucket to the provider's view (`remaining` units, full again in `reset_ns`).
    pub fn observe_now(&self, bucket: usize, rate: Rate, remaining: u64, reset_ns: Nanos, now: Nanos) {
        let mut locked = self.lock(bucket >= INLINE);
        self.slot(&mut locked, bucket, &rate, now).observe(&rate, remaining, reset_ns, now)
    }

    /// Units free now and ns until full (for stats).
    pub fn level_now(&self, bucket: usize, rate: Rate, now: Nanos) -> (u64, Nanos) {
        let mut locked = self.lock(bucket >= INLINE);
        self.slot(&mut locked, bucket, &rate, now).level(&rate, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Nanos = 1_000_000_000;

    const REQUESTS: usize = 0;
    const TOKENS: usize = 1;

    fn claims(rpm: &Rate, tpm: &Rate, tokens: u64) -> [Claim; 2] {
        [Claim { bucket: REQUESTS, rate: *rpm, units: 1 }, Claim { bucket: TOKENS, rate: *tpm, units: tokens }]
    }

    #[test]
    fn claims_are_taken_all_or_none_with_the_longest_wait() {
        let store = MemoryStore::default();
        let rpm = Rate::new(60, 60 * S, 60); // 1/s
        let tpm = Rate::new(600, 60 * S, 600); // 10 tokens/s
        assert_eq!(store.acquire_now(&claims(&rpm, &tpm, 500), 0), Acquired::Admitted);
        // 200 tokens: 100 short, 10 s of refill; requests have room.
        assert_eq!(store.acquire_now(&claims(&rpm, &tpm, 200), 0), Acquired::Wait(10 * S, 1));
        // Refused claims took nothing: the request bucket is where it was.
        assert_eq!(store.level_now(REQUESTS, rpm, 0).0, 59);
        assert_eq!(store.acquire_now(&claims(&rpm, &tpm, 200), 10 * S), Acquired::Admitted);
        assert_eq!(store.acquire_now(&claims(&rpm, &tpm, 601), 10 * S), Acquired::Never(1));
    }

    #[test]
    fn reconciling_leaves_the_level_at_the_reported_usage() {
        let store = MemoryStore::default();
        let tpm = Rate::new(100_000, 60 * S, 100_000);
        let now = 3 * S;
        let mut used = 0;
        for (reserved, reported) in [(900u64, 312u64), (500, 500), (200, 760), (1000, 0)] {
            let c = [Claim { bucket: 0, rate: tpm, units: reserved }];
            assert_eq!(store.acquire_now(&c, now), Acquired::Admitted);
            store.adjust_now(0, tpm, reported as i64 - reserved as i64);
            used += reported;
        }
        assert_eq!(store.level_now(0, tpm, now).0, 100_000 - used);
    }

    #[test]
    fn one_bucket_claimed_twice_counts_both() {
        let store = MemoryStore::default();
        let r = Rate::new(10, 60 * S, 10);
        assert_eq!(store.acquire_now(&[Claim { bucket: 3, rate: r, units: 5 }], 0), Acquired::Admitted);
        let twice = [Claim { bucket: 3, rate: r, units: 3 }, Claim { bucket: 3, rate: r, units: 3 }];
        // 6 needed, 5 free: one unit short, 6 s of refill.
        assert_eq!(store.acquire_now(&twice, 0), Acquired::Wait(6 * S, 0));
        assert_eq!(store.level_now(3, r, 0).0, 5, "nothing taken");
        let too_big = [Claim { bucket: 3, rate: r, units: 6 }, Claim { bucket: 3, rate: r, units: 6 }];
        assert_eq!(store.acquire_now(&too_big, 0), Acquired::Never(0));
    }

    #[test]
    fn the_first_buckets_their_lock_and_their_refunds_fill_one_cache_line() {
        assert_eq!(std::mem::offset_of!(MemoryStore, rest), 64);
        let store = MemoryStore::new(5);
        let r = Rate::new(10, 60 * S, 10);
        // Refunds pending on an inline bucket and on one past the line.
        for b in [1, 4] {
            assert_eq!(store.acquire_now(&[Claim { bucket: b, rate: r, units: 7 }], 0), Acquired::Admitted);
            store.adjust_now(b, r, -5);
            assert_eq!(store.level_now(b, r, 0).0, 8, "bucket {b}");
        }
    }

    #[test]
    fn concurrent_takers_never_exceed_the_burst() {
        let store = std::sync::Arc::new(MemoryStore::default());
        let r = Rate::new(1000, 3600 * S, 1000);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let c = [Claim { bucket: 0, rate: r, units: 3 }];
                    (0..200).filter(|_| store.acquire_now(&c, 0) == Acquired::Admitted).count() as u64
                })
            })
            .collect();
        let taken: u64 = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
        assert_eq!(taken * 3, 999, "333 takes of 3 fit in 1000, at one instant");
    }
}
