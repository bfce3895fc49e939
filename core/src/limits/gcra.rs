//! One token bucket as GCRA (the generic cell rate algorithm), in exact
//! integer arithmetic.
//!
//! A bucket admits `limit` units per `period` with a capacity of `burst`
//! units, refilled continuously. Its whole state is one number, the
//! theoretical arrival time `tat`: the moment the bucket would be full
//! again. A take of `n` units at `now` moves `tat` to
//! `max(tat, now) + n·period/limit` and is allowed when that is at most
//! `burst·period/limit` after `now`; otherwise it is refused with the
//! exact wait after which it would be allowed.
//!
//! Guarantee (docs/architecture.md §10): over any interval of length `t`,
//! the units admitted are at most `burst + limit·t/period`. Proof sketch:
//! every admitted unit advances `tat` by `period/limit`, `tat` never falls
//! below the time, and an admission at time `s` leaves `tat ≤ s +
//! burst·period/limit`; so the units admitted in `[a, b]` advanced `tat`
//! from at least `a` to at most `b + burst·period/limit`.
//!
//! Exactness: times are kept scaled by `limit` (`now · limit`, in u128), so
//! one unit costs exactly `period` scaled nanoseconds and no division
//! rounds until a wait is reported (rounded up, so a caller that waits that
//! long is always admitted).

use crate::clock::Nanos;

/// A bucket's fixed shape: `limit` units per `period_ns`, holding `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    limit: u64,
    period_ns: u64,
    burst: u64,
}

impl Rate {
    /// `limit` units per `period_ns` ns with capacity `burst` (all ≥ 1;
    /// zero is raised to one, as config validation refuses it earlier).
    pub fn new(limit: u64, period_ns: u64, burst: u64) -> Rate {
        Rate { limit: limit.max(1), period_ns: period_ns.max(1), burst: burst.max(1) }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn burst(&self) -> u64 {
        self.burst
    }

    pub fn period_ns(&self) -> u64 {
        self.period_ns
    }

    /// `ns` on the bucket's scaled clock.
    fn scaled(&self, ns: Nanos) -> u128 {
        ns as u128 * self.limit as u128
    }

    /// What `units` cost on the scaled clock.
    fn cost(&self, units: u64) -> u128 {
        units as u128 * self.period_ns as u128
    }

    /// The scaled span a full bucket covers.
    fn capacity(&self) -> u128 {
        self.cost(self.burst)
    }

    /// Scaled nanoseconds back to nanoseconds, rounded up.
    fn unscale_up(&self, scaled: u128) -> Nanos {
        let l = self.limit as u128;
        scaled.div_ceil(l).min(Nanos::MAX as u128) as Nanos
    }
}

/// The answer to a take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// Taken.
    Admitted,
    /// Not taken; it would be admitted after this many ns (and `Never` if
    /// the take is larger than the bucket can ever hold).
    Wait(Nanos),
    /// More units than `burst`: no wait makes room.
    Never,
}

/// A bucket's state: its theoretical arrival time on the scaled clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Bucket {
    tat: u128,
}

impl Bucket {
    /// Would `units` be admitted at `now`? The bucket is not changed.
    pub fn check(&self, rate: &Rate, units: u64, now: Nanos) -> Take {
        if units > rate.burst {
            return Take::Never;
        }
        let now_s = rate.scaled(now);
        let new_tat = self.tat.max(now_s) + rate.cost(units);
        let limit = now_s + rate.capacity();
        if new_tat <= limit {
            Take::Admitted
        } else {
            Take::Wait(rate.unscale_up(new_tat - limit))
        }
    }

    /// Takes `units` at `now` if [`Bucket::check`] admits them.
    pub fn take(&mut self, rate: &Rate, units: u64, now: Nanos) -> Take {
        let answer = self.check(rate, units, now);
        if answer == Take::Admitted {
            self.tat = self.tat.max(rate.scaled(now)) + rate.cost(units);
        }
        answer
    }

    /// Takes `units` whatever the level (a charge after the fact: the
    /// provider reported more usage than was reserved). Later takes wait
    /// for the debt.
    pub fn charge(&mut self, rate: &Rate, units: u64, now: Nanos) {
        self.tat = self.tat.max(rate.scaled(now)) + rate.cost(units);
    }

    /// Gives back `units` taken earlier (a reservation larger than the
    /// reported usage, or a job that never reached the provider). The
    /// bucket never holds more than `burst`.
    pub fn refund(&mut self, rate: &Rate, units: u64, now: Nanos) {
        self.tat = self.tat.saturating_sub(rate.cost(units)).max(rate.scaled(now));
    }

    /// Lowers the bucket to what the provider says is left: `remaining`
    /// units now (refilling at this bucket's rate from there). With nothing
    /// left, nothing is taken before the provider's reset `reset_ns` from
    /// now: its first unit comes then. Only ever lowers (a provider's view
    /// that is more generous than ours is not taken).
    pub fn observe(&mut self, rate: &Rate, remaining: u64, reset_ns: Nanos, now: Nanos) {
        let now_s = rate.scaled(now);
        // `remaining` left means the bucket is `burst - remaining` units
        // short of full.
        let by_level = now_s + rate.cost(rate.burst.saturating_sub(remaining));
        // One unit fits when `tat + cost(1) <= t + capacity`: not before
        // `t = now + reset`.
        let by_reset = (now_s + rate.scaled(reset_ns) + rate.capacity()).saturating_sub(rate.cost(1));
        let floor = if remaining == 0 { by_level.max(by_reset) } else { by_level };
        self.tat = self.tat.max(floor);
    }

    /// Units that could be taken at `now`, and ns until the bucket is full.
    pub fn level(&self, rate: &Rate, now: Nanos) -> (u64, Nanos) {
        let now_s = rate.scaled(now);
        let used = self.tat.saturating_sub(now_s);
        let free = rate.capacity().saturating_sub(used) / rate.period_ns as u128;
        (free.min(rate.burst as u128) as u64, rate.unscale_up(used))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: Nanos = 1_000_000_000;

    #[test]
    fn a_full_bucket_admits_its_burst_then_refills_continuously() {
        let rate = Rate::new(60, 60 * S, 10); // 1 per second, 10 at once
        let mut b = Bucket::default();
        let t0 = 1000 * S;
        for _ in 0..10 {
            assert_eq!(b.take(&rate, 1, t0), Take::Admitted);
        }
        assert_eq!(b.take(&rate, 1, t0), Take::Wait(S));
        assert_eq!(b.take(&rate, 1, t0 + S - 1), Take::Wait(1));
        assert_eq!(b.take(&rate, 1, t0 + S), Take::Admitted);
        assert_eq!(b.take(&rate, 11, t0 + 100 * S), Take::Never);
        assert_eq!(b.level(&rate, t0 + 100 * S), (10, 0));
    }

    #[test]
    fn waits_are_exact_for_rates_that_do_not_divide() {
        let rate = Rate::new(7, 60 * S, 1); // one per 60/7 s
        let mut b = Bucket::default();
        assert_eq!(b.take(&rate, 1, 0), Take::Admitted);
        let Take::Wait(w) = b.take(&rate, 1, 0) else { panic!("must wait") };
        assert_eq!(w, (60 * S).div_ceil(7));
        assert_eq!(b.take(&rate, 1, w - 1), Take::Wait(1));
        assert_eq!(b.take(&rate, 1, w), Take::Admitted);
    }

    #[test]
    fn refunds_and_charges_move_the_level_exactly() {
        let rate = Rate::new(1000, 60 * S, 1000);
        let mut b = Bucket::default();
        let now = 5 * S;
        assert_eq!(b.take(&rate, 600, now), Take::Admitted);
        b.refund(&rate, 250, now);
        assert_eq!(b.level(&rate, now).0, 650);
        b.charge(&rate, 100, now);
        assert_eq!(b.level(&rate, now).0, 550);
        b.refund(&rate, 10_000, now); // never more than full
        assert_eq!(b.level(&rate, now), (1000, 0));
    }

    #[test]
    fn the_providers_view_only_lowers_the_bucket() {
        let rate = Rate::new(100, 60 * S, 100);
        let mut b = Bucket::default();
        b.observe(&rate, 40, 36 * S, 0);
        assert_eq!(b.level(&rate, 0).0, 40);
        b.observe(&rate, 90, 0, 0); // more generous: ignored
        assert_eq!(b.level(&rate, 0).0, 40);
        b.observe(&rate, 0, 20 * S, 0); // nothing left until the reset
        assert_eq!(b.level(&rate, 0).0, 0);
        assert_eq!(b.check(&rate, 1, 0), Take::Wait(20 * S), "nothing before the reset");
        assert_eq!(b.check(&rate, 2, 20 * S), Take::Wait(60 * S / 100), "then one, refilling at our rate");
        assert_eq!(b.take(&rate, 1, 20 * S), Take::Admitted);
        let mut short = Bucket::default();
        short.observe(&rate, 0, 0, 0); // empty, reset now: refills from empty
        assert_eq!(short.check(&rate, 1, 0), Take::Wait(60 * S / 100));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, rng_seed: proptest::test_runner::RngSeed::Fixed(0xb1f0), ..ProptestConfig::default() })]

        /// The §10 bound: for every interval between two admissions, the
        /// units admitted in it are at most burst + limit·t/period.
        #[test]
        fn admitted_never_exceeds_burst_plus_rate_times_interval(
            limit in 1u64..5000,
            period_s in 1u64..120,
            burst in 1u64..500,
            steps in proptest::collection::vec((0u64..3 * S, 1u64..50, 0u8..4), 1..300),
        ) {
            let rate = Rate::new(limit, period_s * S, burst);
            let mut b = Bucket::default();
            let mut now = 0;
            let mut admitted: Vec<(Nanos, u64)> = Vec::new();
            for (dt, units, op) in steps {
                now += dt;
                match op {
                    // A take that is refused and retried after its wait is admitted.
                    0 => match b.take(&rate, units, now) {
                        Take::Admitted => admitted.push((now, units)),
                        Take::Wait(w) => {
                            prop_assert!(w > 0);
                            prop_assert!(b.check(&rate, units, now + w - 1) != Take::Admitted, "the reported wait is the least");
                            prop_assert_eq!(b.take(&rate, units, now + w), Take::Admitted, "the reported wait suffices");
                            now += w;
                            admitted.push((now, units));
                        }
                        Take::Never => prop_assert!(units > burst),
                    },
                    // Refunds of what was admitted may only restore capacity.
                    1 => {
                        if let Some((_, u)) = admitted.pop() {
                            b.refund(&rate, u, now);
                        }
                    }
                    _ => {
                        if b.take(&rate, units, now) == Take::Admitted {
                            admitted.push((now, units));
                        }
                    }
                }
            }
            // Every window [admitted[i].t, admitted[j].t].
            for i in 0..admitted.len() {
                let mut sum: u128 = 0;
                for j in i..admitted.len() {
                    sum += admitted[j].1 as u128;
                    let t = (admitted[j].0 - admitted[i].0) as u128;
                    // sum ≤ burst + limit·t/period, kept in integers.
                    prop_assert!(
                        sum * (period_s * S) as u128 <= burst as u128 * (period_s * S) as u128 + limit as u128 * t,
                        "{} units in {} ns (limit {}/{} s, burst {})", sum, t, limit, period_s, burst
                    );
                }
            }
        }
    }
}
