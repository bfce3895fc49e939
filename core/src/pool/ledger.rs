//! The job ledger: where a pool counts each job's moves, so that a
//! snapshot of the job counters is one instant's truth.
//!
//! A job makes at most three moves, each recorded as one *section*:
//! - `accept` (it entered the pool: queued, or handed to a worker) or
//!   `refuse` (it was submitted and ended at once: dropped, rejected, timed
//!   out waiting for space);
//! - `start` (a worker began it);
//! - `end_queued` or `end_running`, with its outcome.
//!
//! From the move counts follow `submitted = accepted + refused`,
//! `queued = accepted − started − ended_queued` and
//! `running = started − ended_running`, so the accounting invariant
//! `submitted = queued + running + Σ outcomes` holds for any set of whole
//! sections. A snapshot therefore only has to contain whole sections, and
//! all sections that happened before one instant and none after it, for
//! `queued` and `running` to be that instant's (never below zero: a job's
//! `accept` happens before its `start`).
//!
//! Writers never wait and share no written cache line: counts live in
//! per-thread-stripe blocks, doubled into two *halves*. One global word,
//! `hot`, says which half writers use; only a snapshot writes it. A
//! section registers in its stripe's `inflight` for the half it read from
//! `hot`, re-reads `hot`, and retries on the other half if it changed
//! (Dekker's pattern, on SeqCst operations). A snapshot flips `hot`, waits
//! for the sections still in the old half (a few atomic adds each), then
//! reads it: in the single order of SeqCst operations, every section either
//! registered before the flip (and is waited for) or sees the flip (and
//! goes to the new half), so the old half holds exactly the sections before
//! the flip. Each half only ever grows; the snapshot adds the old half as
//! just read to the new half as it was when last frozen (nothing has
//! written it since), and remembers the old half for the next snapshot.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::Release, Ordering::SeqCst};

use parking_lot::Mutex;

use crate::stats::{thread_stripe, JobStats, Outcome, STRIPES};

/// Move counts of one stripe in one half (one cache line: the section's
/// registration and its counts are written together).
#[repr(align(128))]
#[derive(Default)]
struct Block {
    /// Sections running in this block now.
    inflight: AtomicU64,
    moves: [AtomicU64; MOVES],
}

/// Indices into [`Block::moves`]: the four moves, then each outcome.
const ACCEPTED: usize = 0;
const STARTED: usize = 1;
const ENDED_QUEUED: usize = 2;
const ENDED_RUNNING: usize = 3;
const REFUSED: usize = 4;
const OUTCOME_BASE: usize = 5;
const MOVES: usize = OUTCOME_BASE + 7;

fn outcome_index(o: Outcome) -> usize {
    OUTCOME_BASE
        + match o {
            Outcome::Completed => 0,
            Outcome::Failed => 1,
            Outcome::Dropped => 2,
            Outcome::Rejected => 3,
            Outcome::TimedOut => 4,
            Outcome::Cancelled => 5,
            Outcome::RateLimited => 6,
        }
}

pub(crate) use super::slot::Phase;

type Moves = [u64; MOVES];

/// The job counts of the accounting invariant, from move counts (the
/// other fields of [`JobStats`] are not the ledger's and stay 0).
fn job_stats(m: &Moves) -> JobStats {
    let at = |o| m[outcome_index(o)];
    JobStats {
        submitted: m[ACCEPTED].wrapping_add(m[REFUSED]),
        queued: m[ACCEPTED].wrapping_sub(m[STARTED]).wrapping_sub(m[ENDED_QUEUED]),
        running: m[STARTED].wrapping_sub(m[ENDED_RUNNING]),
        completed: at(Outcome::Completed),
        failed: at(Outcome::Failed),
        dropped: at(Outcome::Dropped),
        rejected: at(Outcome::Rejected),
        timed_out: at(Outcome::TimedOut),
        cancelled: at(Outcome::Cancelled),
        rate_limited: at(Outcome::RateLimited),
        ..JobStats::default()
    }
}

/// A pool's job ledger (module doc).
pub(crate) struct Ledger {
    /// The half writers use (0 or 1); written only by snapshots.
    hot: AtomicUsize,
    halves: [[Block; STRIPES]; 2],
    /// Each half's sums as last frozen; also serializes snapshots.
    frozen: Mutex<[Moves; 2]>,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger { hot: AtomicUsize::new(0), halves: Default::default(), frozen: Mutex::new([[0; MOVES]; 2]) }
    }
}

impl Ledger {
    /// Records one section: adds 1 to move `a` and to move `b` if any, in
    /// one half, registered so that a snapshot sees both or neither.
    #[inline]
    fn section(&self, a: usize, b: Option<usize>) {
        let stripe = thread_stripe();
        loop {
            let half = self.hot.load(Relaxed);
            let block = &self.halves[half][stripe];
            block.inflight.fetch_add(1, SeqCst);
            if self.hot.load(SeqCst) == half {
                block.moves[a].fetch_add(1, Relaxed);
                if let Some(b) = b {
                    block.moves[b].fetch_add(1, Relaxed);
                }
                // Release: a snapshot that sees the count drop sees the adds.
                block.inflight.fetch_sub(1, Release);
                return;
            }
            // A snapshot flipped `hot` in between: use the new half.
            block.inflight.fetch_sub(1, Release);
        }
    }

    /// The job entered the pool (queued, or handed to a worker). Must be
    /// recorded before any worker can see the job.
    #[inline]
    pub fn accept(&self) {
        self.section(ACCEPTED, None);
    }

    /// The job was submitted and ended at once with `outcome`.
    pub fn refuse(&self, outcome: Outcome) {
        self.section(REFUSED, Some(outcome_index(outcome)));
    }

    /// A worker began the job.
    #[inline]
    pub fn start(&self) {
        self.section(STARTED, None);
    }

    /// The job ended with `outcome`, from `phase`.
    #[inline]
    pub fn end(&self, phase: Phase, outcome: Outcome) {
        let moved = match phase {
            Phase::Queued => ENDED_QUEUED,
            Phase::Running => ENDED_RUNNING,
        };
        self.section(moved, Some(outcome_index(outcome)));
    }

    /// The counts at one instant during this call (module doc).
    pub fn snapshot(&self) -> JobStats {
        let mut frozen = self.frozen.lock();
        let old = self.hot.load(Relaxed);
        self.hot.store(old ^ 1, SeqCst);
        let mut sums = [0u64; MOVES];
        for block in &self.halves[old] {
            let mut spins = 0u32;
            // Only sections that registered before the flip remain: each is
            // a few atomic adds, unless its thread was preempted mid-way.
            while block.inflight.load(SeqCst) != 0 {
                spins += 1;
                if spins < 64 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            for (sum, m) in sums.iter_mut().zip(&block.moves) {
                // Relaxed: the SeqCst load of `inflight` that read 0 acquired
                // every section's adds (its decrements are Release RMWs).
                *sum = sum.wrapping_add(m.load(Relaxed));
            }
        }
        frozen[old] = sums;
        let mut total = sums;
        for (t, other) in total.iter_mut().zip(&frozen[old ^ 1]) {
            *t = t.wrapping_add(*other);
        }
        job_stats(&total)
    }

    /// Jobs running now, read without a snapshot (for the scaler and the
    /// watchdog, which only need an estimate; exact whenever no job moves).
    pub fn running_estimate(&self) -> u64 {
        let (mut started, mut ended) = (0u64, 0u64);
        for block in self.halves.iter().flatten() {
            started = started.wrapping_add(block.moves[STARTED].load(Relaxed));
            ended = ended.wrapping_add(block.moves[ENDED_RUNNING].load(Relaxed));
        }
        // Reads of moving counters can see an end before its start.
        (started.wrapping_sub(ended) as i64).max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn counts_follow_the_moves() {
        let l = Ledger::default();
        l.accept();
        l.accept();
        l.accept();
        l.refuse(Outcome::Rejected);
        l.start();
        l.start();
        l.end(Phase::Running, Outcome::Completed);
        l.end(Phase::Queued, Outcome::Cancelled);
        let c = l.snapshot();
        assert_eq!(
            c,
            JobStats { submitted: 4, running: 1, completed: 1, rejected: 1, cancelled: 1, ..JobStats::default() }
        );
        // A second snapshot with no moves in between reads the same.
        assert_eq!(l.snapshot(), c);
        l.end(Phase::Running, Outcome::Failed);
        assert_eq!(l.snapshot().failed, 1);
        assert_eq!(l.snapshot().running, 0);
        assert_eq!(l.running_estimate(), 0);
    }

    /// Writers on several threads move jobs through every path while a
    /// reader snapshots: every snapshot balances, no gauge goes below zero
    /// (a wrapped gauge would be huge), and totals never shrink.
    #[test]
    fn every_snapshot_under_concurrent_moves_is_consistent() {
        let l = Arc::new(Ledger::default());
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (l, stop) = (l.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut i = 0u64;
                    while !stop.load(Relaxed) || i < 10_000 {
                        match (i + w) % 5 {
                            0 => l.refuse(Outcome::Dropped),
                            1 => {
                                l.accept();
                                l.end(Phase::Queued, Outcome::TimedOut);
                            }
                            _ => {
                                l.accept();
                                l.start();
                                l.end(Phase::Running, Outcome::Completed);
                            }
                        }
                        i += 1;
                    }
                    i
                })
            })
            .collect();
        let mut last = JobStats::default();
        for _ in 0..20_000 {
            let c = l.snapshot();
            let sum =
                c.queued + c.running + c.completed + c.failed + c.dropped + c.rejected + c.timed_out + c.cancelled;
            assert_eq!(c.submitted, sum, "{c:?}");
            assert!(c.queued <= 4 && c.running <= 4, "a gauge beyond the writers in flight: {c:?}");
            assert!(c.submitted >= last.submitted && c.completed >= last.completed, "{last:?} then {c:?}");
            last = c;
        }
        stop.store(true, Relaxed);
        let total: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
        let c = l.snapshot();
        assert_eq!(c.submitted, total);
        assert_eq!((c.queued, c.running), (0, 0));
    }
}
