//! A pool's buckets in Redis (docs/architecture.md §10): their keys, their
//! shapes in the script's exact arithmetic, and one call of the script.
//!
//! Every call is one `EVALSHA` of `redis_script.lua`, so every
//! check-and-take is one atomic step on the server, on the server's clock
//! (`TIME`); one take may carry several queued jobs ([`RedisConn::take`]),
//! taken in order while they fit: processes on hosts whose clocks disagree still share one
//! bucket. One gate's keys share a hash tag, `{<prefix><provider>}`, so a
//! job's several buckets live in one Cluster slot and one script can take
//! them together.
//!
//! Exactness: Redis runs scripts in Lua 5.1, whose numbers are doubles. A
//! bucket is kept in the finest unit (µs, ms or s) in which `burst ×
//! period` stays below 2^51 ([`Shape::of`]); in it every value the script
//! computes is an integer below 2^53, so nothing rounds. A bucket no unit
//! can hold is refused at config time, by name. The script's text names
//! its version (`bifrost_limits_v1`), so its SHA changes with it and two
//! bifrost versions can run side by side in a rolling deploy; a bucket
//! written by another shape (another limit or unit) is read as its
//! theoretical arrival time rounded up.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};

use crate::clock::{self, Nanos};

use super::gcra::Rate;

/// The script (see its header for the protocol).
pub(crate) const SCRIPT: &str = include_str!("redis_script.lua");
/// The lease renewals and releases (see its header).
pub(crate) const LEASES: &str = include_str!("redis_leases.lua");
/// Shared provider health (see its header).
pub(crate) const HEALTH: &str = include_str!("redis_health.lua");

/// Most a product of a bucket's numbers may reach in the script.
const EXACT: u64 = 1 << 51;

/// A bucket as the script keeps it: its rate in a time unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    pub rate: Rate,
    /// Microseconds per unit: 1, 1000 or 1 000 000.
    unit_us: u64,
    /// The period in units.
    period: u64,
}

impl Shape {
    /// The finest unit in which `rate` stays exact in the script, if any.
    pub fn of(rate: Rate) -> Option<Shape> {
        let period_us = rate.period_ns() / clock::US;
        if !rate.period_ns().is_multiple_of(clock::US) || rate.limit() >= EXACT {
            return None;
        }
        [1, 1_000, 1_000_000].into_iter().find_map(|unit_us| {
            let period = period_us / unit_us;
            let exact =
                period_us.is_multiple_of(unit_us) && rate.burst().checked_mul(period).is_some_and(|p| p < EXACT);
            exact.then_some(Shape { rate, unit_us, period })
        })
    }

    /// Nanoseconds per unit.
    fn unit_ns(&self) -> u128 {
        self.unit_us as u128 * clock::US as u128
    }

    /// `w + r/limit` units in ns, rounded up (so a caller waiting that long
    /// is admitted).
    fn ns_of(&self, w: i64, r: i64) -> Nanos {
        let (w, r) = (w.max(0) as u128, r.max(0) as u128);
        let ns = w * self.unit_ns() + (r * self.unit_ns()).div_ceil(self.rate.limit() as u128);
        ns.min(Nanos::MAX as u128) as Nanos
    }

    /// `ns` in whole units, rounded up.
    fn units_up(&self, ns: Nanos) -> u64 {
        (ns as u128).div_ceil(self.unit_ns()) as u64
    }
}

/// One bucket of a call: its key, its shape, and what the op does to it
/// (`n`: units to take, a signed adjustment, or the remaining units
/// observed; `m`: an observed reset in ns).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arg<'a> {
    pub key: &'a str,
    pub shape: Shape,
    pub n: i64,
    pub reset_ns: Nanos,
}

/// With a take: one `max_in_flight` lease to take with the claims.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeaseArg<'a> {
    /// The set of leases (same hash tag as the buckets).
    pub key: &'a str,
    pub max: u64,
    pub ttl_ms: u64,
    /// This lease's name (unique in the fleet).
    pub member: &'a str,
}

/// One job of a batch take: its claims, as (bucket's index in the call,
/// units), and its lease's name (with leases).
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobArg<'a> {
    pub claims: &'a [(usize, u64)],
    pub member: Option<&'a str>,
}

/// The lease set of a batch take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeaseSet<'a> {
    pub key: &'a str,
    pub max: u64,
    pub ttl_ms: u64,
}

/// What a batch take did: the first `taken` jobs were taken (claims and
/// leases); `used` per bucket after them; the leases held then; why the
/// next job was not (`None`: every job was taken).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TakeReply {
    pub taken: usize,
    pub used: Vec<Nanos>,
    pub held: Option<u64>,
    pub stop: Option<Stop>,
}

/// Why a batch take stopped at a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Per claim of that job, how long until it fits (0: fits).
    Wait(Vec<Nanos>),
    /// Its claim `.0` exceeds its bucket's burst.
    Never(usize),
    /// Every lease is held; the first expires in this many ns.
    Busy(Nanos),
}

/// What a lease call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaseOp {
    Renew,
    Release,
}

/// What a call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Take,
    Adjust,
    Observe,
    /// Reads the buckets (tests; stats use what the last call answered).
    #[cfg_attr(not(test), allow(dead_code))]
    Level,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Take => "take",
            Op::Adjust => "adjust",
            Op::Observe => "observe",
            Op::Level => "level",
        }
    }
}

/// The script's answer, in ns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Done (every claim taken, for a take); per bucket, how far its
    /// theoretical arrival time is ahead of now (0: full); with a lease,
    /// the leases held after this one was taken.
    Done { used: Vec<Nanos>, held: Option<u64> },
    /// A take with a lease refused: every lease is held (`.1` of them);
    /// the first expires in `.0` ns (unless renewed).
    Busy(Nanos, u64),
    /// A take refused: per bucket, how long until its claim fits (0: fits).
    Wait(Vec<Nanos>),
    /// A take refused: claim `.0` exceeds its bucket's burst.
    Never(usize),
}

/// Why a store call did not answer. Carries no URL, key or reply text
/// (a URL may hold a password).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreError {
    /// No answer within `timeout_ms`.
    Timeout,
    /// The connection failed or the server refused the call.
    Unavailable,
    /// An answer the script never gives (another program wrote the keys?).
    BadReply,
}

/// How the store is reached: one server (a manager that reconnects by
/// itself) or a Cluster (a connection that follows the slots, made on
/// first use and again after it failed to be made).
enum Target {
    Single(ConnectionManager),
    Cluster(Box<ClusterTarget>),
}

/// A Cluster's client, and its connection once made.
struct ClusterTarget {
    client: redis::cluster::ClusterClient,
    conn: tokio::sync::Mutex<Option<ClusterConnection>>,
}

/// A connection handle of either kind, for one call.
#[derive(Clone)]
enum Handle {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Handle {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Handle::Single(c) => c.req_packed_command(cmd),
            Handle::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Handle::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Handle::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Handle::Single(c) => c.get_db(),
            Handle::Cluster(c) => c.get_db(),
        }
    }
}

/// One connection to the store, shared by every gate, and the scripts.
pub(crate) struct RedisConn {
    client: redis::Client,
    target: Target,
    script: Script,
    leases: Script,
    health: Script,
    timeout: Duration,
}

impl RedisConn {
    /// A connection to `url` (with `cluster`, a seed node of a Cluster)
    /// that connects on first use (so a gateway starts while Redis is
    /// down). Must be called inside the runtime.
    pub fn new(url: &str, cluster: bool, timeout: Duration) -> Result<RedisConn, StoreError> {
        let client = redis::Client::open(url).map_err(|_| StoreError::Unavailable)?;
        // Every call is bounded by `timeout` here and again by the caller;
        // reconnects back off from 10 ms up to 1 s and never stop.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_secs(1));
        let target = if cluster {
            let client = redis::cluster::ClusterClient::builder([url])
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(2)
                .build()
                .map_err(|_| StoreError::Unavailable)?;
            Target::Cluster(Box::new(ClusterTarget { client, conn: tokio::sync::Mutex::new(None) }))
        } else {
            let conn =
                ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(|_| StoreError::Unavailable)?;
            Target::Single(conn)
        };
        Ok(RedisConn {
            client,
            target,
            script: Script::new(SCRIPT),
            leases: Script::new(LEASES),
            health: Script::new(HEALTH),
            timeout,
        })
    }

    /// A handle for one call (a Cluster's connection is made here, bounded,
    /// the first time and after a failed try).
    async fn handle(&self) -> Result<Handle, StoreError> {
        match &self.target {
            Target::Single(c) => Ok(Handle::Single(c.clone())),
            Target::Cluster(t) => {
                let mut slot = t.conn.lock().await;
                if let Some(c) = slot.as_ref() {
                    return Ok(Handle::Cluster(c.clone()));
                }
                let c = bounded(self.timeout, t.client.get_async_connection()).await?;
                *slot = Some(c.clone());
                Ok(Handle::Cluster(c))
            }
        }
    }

    /// A new connection subscribed to `channel` (for shared health; on a
    /// Cluster, to the seed node: a publish reaches every node).
    pub async fn subscribe(&self, channel: &str) -> Result<redis::aio::PubSub, StoreError> {
        let mut ps = bounded(self.timeout, self.client.get_async_pubsub()).await?;
        bounded(self.timeout, ps.subscribe(channel)).await?;
        Ok(ps)
    }

    /// One call of the health script on the provider's keys under `base`:
    /// its integers (one for most ops, several for 'read').
    pub async fn health(&self, base: &str, args: &[String]) -> Result<Vec<i64>, StoreError> {
        let mut inv = self.health.prepare_invoke();
        inv.key(base);
        for a in args {
            inv.arg(a);
        }
        let mut conn = self.handle().await?;
        let v: redis::Value = bounded(self.timeout, inv.invoke_async(&mut conn)).await?;
        match v {
            redis::Value::Int(n) => Ok(vec![n]),
            redis::Value::Array(items) => items
                .into_iter()
                .map(|i| if let redis::Value::Int(n) = i { Ok(n) } else { Err(StoreError::BadReply) })
                .collect(),
            _ => Err(StoreError::BadReply),
        }
    }

    /// Runs `op` on `args`' buckets, all in one hash tag; `now_us`
    /// replaces the server's clock (tests only).
    pub async fn call(
        &self,
        op: Op,
        args: &[Arg<'_>],
        lease: Option<LeaseArg<'_>>,
        now_us: Option<u64>,
    ) -> Result<Reply, StoreError> {
        if op == Op::Take {
            // One job claiming `n` of every bucket.
            let claims: Vec<(usize, u64)> = args.iter().enumerate().map(|(i, a)| (i, a.n.max(0) as u64)).collect();
            let job = JobArg { claims: &claims, member: lease.map(|l| l.member) };
            let set = lease.map(|l| LeaseSet { key: l.key, max: l.max, ttl_ms: l.ttl_ms });
            let t = self.take(args, &[job], set, now_us).await?;
            return Ok(match t.stop {
                None if t.taken == 1 => Reply::Done { used: t.used, held: t.held },
                Some(Stop::Wait(waits)) => Reply::Wait(waits),
                Some(Stop::Never(i)) => Reply::Never(i),
                Some(Stop::Busy(ns)) => Reply::Busy(ns, t.held.unwrap_or(0)),
                None => return Err(StoreError::BadReply),
            });
        }
        let mut inv = self.script.prepare_invoke();
        inv.arg(op.name()).arg(now_us.map(|t| t.to_string()).unwrap_or_default()).arg(args.len());
        for a in args {
            let s = a.shape;
            let m = if op == Op::Observe { s.units_up(a.reset_ns) } else { 0 };
            inv.key(a.key).arg(s.rate.limit()).arg(s.period).arg(s.rate.burst()).arg(s.unit_us).arg(a.n).arg(m);
        }
        let mut conn = self.handle().await?;
        let reply: Vec<i64> = bounded(self.timeout, inv.invoke_async(&mut conn)).await?;
        match reply.split_first() {
            Some((1, rest)) => Ok(Reply::Done { used: pairs(rest, args)?, held: None }),
            _ => Err(StoreError::BadReply),
        }
    }

    /// Takes `jobs` in order, each all its claims (on `buckets`) and with
    /// `lease` one lease, while they fit: one atomic call for the batch.
    /// The first job that does not fit, and every job after it, is not
    /// taken ([`TakeReply::stop`] says why).
    pub async fn take(
        &self,
        buckets: &[Arg<'_>],
        jobs: &[JobArg<'_>],
        lease: Option<LeaseSet<'_>>,
        now_us: Option<u64>,
    ) -> Result<TakeReply, StoreError> {
        let mut inv = self.script.prepare_invoke();
        inv.arg("take").arg(now_us.map(|t| t.to_string()).unwrap_or_default()).arg(buckets.len());
        for a in buckets {
            let s = a.shape;
            inv.key(a.key).arg(s.rate.limit()).arg(s.period).arg(s.rate.burst()).arg(s.unit_us).arg(0).arg(0);
        }
        inv.arg(jobs.len());
        if let Some(l) = lease {
            inv.key(l.key).arg(l.max).arg(l.ttl_ms);
        }
        for j in jobs {
            inv.arg(j.claims.len());
            for &(i, n) in j.claims {
                inv.arg(i + 1).arg(n);
            }
            if lease.is_some() {
                inv.arg(j.member.unwrap_or_default());
            }
        }
        let mut conn = self.handle().await?;
        let reply: Vec<i64> = bounded(self.timeout, inv.invoke_async(&mut conn)).await?;
        parse_take(&reply, buckets, jobs, lease.is_some())
    }

    /// Renews or releases `members` of the lease set `key`: how many of
    /// them were still held.
    pub async fn leases(&self, op: LeaseOp, key: &str, ttl_ms: u64, members: &[String]) -> Result<u64, StoreError> {
        let mut inv = self.leases.prepare_invoke();
        inv.key(key).arg(if op == LeaseOp::Renew { "renew" } else { "release" }).arg(ttl_ms);
        for m in members {
            inv.arg(m);
        }
        let mut conn = self.handle().await?;
        let kept: i64 = bounded(self.timeout, inv.invoke_async(&mut conn)).await?;
        Ok(kept.max(0) as u64)
    }
}

/// `call` within `timeout`, its failures as [`StoreError`]s (which quote
/// nothing of the server's).
async fn bounded<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Err(StoreError::Timeout),
        Ok(Err(e)) if e.is_timeout() => Err(StoreError::Timeout),
        Ok(Err(_)) => Err(StoreError::Unavailable),
        Ok(Ok(v)) => Ok(v),
    }
}

/// Per bucket, `w r` pairs in ns.
fn pairs(rest: &[i64], args: &[Arg<'_>]) -> Result<Vec<Nanos>, StoreError> {
    if rest.len() != 2 * args.len() {
        return Err(StoreError::BadReply);
    }
    Ok(args.iter().zip(rest.chunks_exact(2)).map(|(a, p)| a.shape.ns_of(p[0], p[1])).collect())
}

/// The script's reply to a take of `jobs` (`leased`: with leases).
fn parse_take(reply: &[i64], buckets: &[Arg<'_>], jobs: &[JobArg<'_>], leased: bool) -> Result<TakeReply, StoreError> {
    let bad = StoreError::BadReply;
    let (&taken, rest) = reply.split_first().ok_or(bad)?;
    let taken = usize::try_from(taken).map_err(|_| bad)?;
    if taken > jobs.len() || rest.len() < 2 * buckets.len() {
        return Err(bad);
    }
    let (used, rest) = rest.split_at(2 * buckets.len());
    let used = pairs(used, buckets)?;
    let (held, rest) = match (leased, rest.split_first()) {
        (true, Some((&h, rest))) => (Some(h.max(0) as u64), rest),
        (true, None) => return Err(bad),
        (false, _) => (None, rest),
    };
    let stop = match (rest, jobs.get(taken)) {
        ([], None) => None,
        ([0, waits @ ..], Some(job)) if waits.len() == 2 * job.claims.len() => Some(Stop::Wait(
            job.claims
                .iter()
                .zip(waits.chunks_exact(2))
                .map(|(&(i, _), p)| buckets[i].shape.ns_of(p[0], p[1]))
                .collect(),
        )),
        ([-1, i], Some(job)) if (*i as usize) < job.claims.len() => Some(Stop::Never(*i as usize)),
        ([2, ms], Some(_)) if leased => Some(Stop::Busy((*ms).max(1) as Nanos * clock::MS)),
        _ => return Err(bad),
    };
    Ok(TakeReply { taken, used, held, stop })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::gcra::{Bucket, Take};
    use proptest::prelude::*;

    const S: Nanos = 1_000_000_000;

    #[test]
    fn shapes_pick_the_finest_exact_unit_and_refuse_what_none_holds() {
        let shape = |limit, period, burst| Shape::of(Rate::new(limit, period, burst)).map(|s| (s.unit_us, s.period));
        assert_eq!(shape(500, 60 * S, 500), Some((1, 60_000_000)));
        // 150M tokens a minute: 1.5e8 × 6e7 µs is past 2^51; in ms it fits.
        assert_eq!(shape(150_000_000, 60 * S, 150_000_000), Some((1_000, 60_000)));
        assert_eq!(shape(1_000_000_000, 86_400 * S, 1_000_000_000), Some((1_000_000, 86_400)));
        assert_eq!(shape(1_000_000_000_000, 86_400 * S, 1_000_000_000_000), None);
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    /// One step of the model test: a take, a refund, an observe.
    #[derive(Debug, Clone)]
    enum Step {
        Take(u64),
        Refund(u64),
        Observe(u64, Nanos),
    }

    fn step() -> impl Strategy<Value = (u64, Step)> {
        let s = prop_oneof![
            6 => (1u64..60).prop_map(Step::Take),
            2 => (1u64..60).prop_map(Step::Refund),
            1 => (0u64..40, 0u64..20 * S).prop_map(|(n, r)| Step::Observe(n, r)),
        ];
        // Time moves in whole µs (the script's finest unit).
        ((0u64..2_000_000), s)
    }

    /// The script against the in-process bucket (`gcra.rs`), the same
    /// steps at the same moments: the same answers, to the nanosecond.
    #[test]
    fn the_script_answers_exactly_as_the_memory_bucket() {
        let Some(redis) = crate::limits::redis_server::RedisServer::start() else { return };
        let rt = runtime();
        let conn = rt.block_on(async { RedisConn::new(&redis.url(), false, Duration::from_secs(5)) }).unwrap();
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: 48,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed),
            ..ProptestConfig::default()
        });
        let case =
            (1u64..5_000, prop_oneof![Just(S), Just(60 * S)], 1u64..120, proptest::collection::vec(step(), 1..80));
        let n = std::sync::atomic::AtomicU64::new(0);
        runner
            .run(&case, |(limit, period, burst, steps)| {
                let n = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let rate = Rate::new(limit, period, burst);
                let shape = Shape::of(rate).expect("exact in µs");
                prop_assert_eq!(shape.unit_us, 1);
                let key = format!("{{t}}:model:{n}");
                let mut model = Bucket::default();
                let mut now_us = 1_700_000_000_000_000u64;
                for (dt, s) in steps {
                    now_us += dt;
                    let now = now_us * 1_000;
                    let (op, arg) = match s {
                        Step::Take(u) => (Op::Take, Arg { key: &key, shape, n: u as i64, reset_ns: 0 }),
                        Step::Refund(u) => (Op::Adjust, Arg { key: &key, shape, n: -(u as i64), reset_ns: 0 }),
                        // Resets in whole µs, as the script rounds them up.
                        Step::Observe(left, reset) => {
                            (Op::Observe, Arg { key: &key, shape, n: left as i64, reset_ns: reset / 1_000 * 1_000 })
                        }
                    };
                    let got = rt.block_on(conn.call(op, &[arg], None, Some(now_us))).unwrap();
                    let expected = match s {
                        Step::Take(u) => match model.take(&rate, u, now) {
                            Take::Admitted => None,
                            Take::Wait(w) => Some(Reply::Wait(vec![w])),
                            Take::Never => Some(Reply::Never(0)),
                        },
                        Step::Refund(u) => {
                            model.refund(&rate, u, now);
                            None
                        }
                        Step::Observe(left, reset) => {
                            model.observe(&rate, left, reset / 1_000 * 1_000, now);
                            None
                        }
                    };
                    let expected =
                        expected.unwrap_or_else(|| Reply::Done { used: vec![model.level(&rate, now).1], held: None });
                    prop_assert_eq!(
                        &got,
                        &expected,
                        "{:?} at {} µs (limit {}, period {}, burst {})",
                        s,
                        now_us,
                        limit,
                        period,
                        burst
                    );
                }
                Ok(())
            })
            .unwrap();
    }

    /// A job's several buckets are taken together or not at all, and a
    /// bucket written by another shape (a config change) is read
    /// conservatively.
    #[test]
    fn claims_are_all_or_nothing_and_a_changed_shape_rounds_up() {
        let Some(redis) = crate::limits::redis_server::RedisServer::start() else { return };
        let rt = runtime();
        let conn = rt.block_on(async { RedisConn::new(&redis.url(), false, Duration::from_secs(5)) }).unwrap();
        let requests = Shape::of(Rate::new(10, 60 * S, 10)).unwrap();
        let tokens = Shape::of(Rate::new(150_000_000, 60 * S, 150_000_000)).unwrap();
        assert_eq!(tokens.unit_us, 1_000, "tokens in ms");
        let t0 = 1_700_000_000_000_000u64;
        let take = |n_tokens: i64, at: u64| {
            let args = [
                Arg { key: "{p}:requests", shape: requests, n: 1, reset_ns: 0 },
                Arg { key: "{p}:tokens", shape: tokens, n: n_tokens, reset_ns: 0 },
            ];
            rt.block_on(conn.call(Op::Take, &args, None, Some(at))).unwrap()
        };
        // 100M of 150M tokens, then 60M more does not fit: neither bucket moves.
        assert_eq!(take(100_000_000, t0), Reply::Done { used: vec![6 * S, 40 * S], held: None });
        let Reply::Wait(w) = take(60_000_000, t0) else { panic!("the tokens do not fit") };
        assert_eq!(w, vec![0, 4 * S], "the request fits; the tokens need 4 s");
        let level = |at| {
            let args = [
                Arg { key: "{p}:requests", shape: requests, n: 0, reset_ns: 0 },
                Arg { key: "{p}:tokens", shape: tokens, n: 0, reset_ns: 0 },
            ];
            rt.block_on(conn.call(Op::Level, &args, None, Some(at))).unwrap()
        };
        assert_eq!(level(t0), Reply::Done { used: vec![6 * S, 40 * S], held: None }, "the refused take took nothing");
        assert_eq!(take(160_000_000, t0), Reply::Never(1));
        // The same key read with a limit of 7/min (a new config): its
        // tat (6 s ahead) is kept, rounded up to whole µs.
        let seven = Shape::of(Rate::new(7, 60 * S, 7)).unwrap();
        let arg = [Arg { key: "{p}:requests", shape: seven, n: 0, reset_ns: 0 }];
        let done = |used| Reply::Done { used, held: None };
        assert_eq!(rt.block_on(conn.call(Op::Level, &arg, None, Some(t0))).unwrap(), done(vec![6 * S]));
        // Without a test clock, the server's: a fresh bucket is full and
        // its key expires when it is full again.
        let arg = [Arg { key: "{p}:live", shape: requests, n: 1, reset_ns: 0 }];
        assert_eq!(rt.block_on(conn.call(Op::Take, &arg, None, None)).unwrap(), done(vec![6 * S]));
        let ttl = redis.command(&["PTTL", "{p}:live"]).unwrap();
        let ms: u64 = ttl.trim_start_matches(':').parse().unwrap();
        assert!((5_000..=6_002).contains(&ms), "expires when full: {ms} ms");
    }

    /// A batch take goes in queue order and stops at the first job that
    /// does not fit (its buckets or every lease held); the jobs after it
    /// are not taken even if they would fit.
    #[test]
    fn a_batch_takes_jobs_in_order_and_stops_at_the_first_that_does_not_fit() {
        let Some(redis) = crate::limits::redis_server::RedisServer::start() else { return };
        let rt = runtime();
        let conn = rt.block_on(async { RedisConn::new(&redis.url(), false, Duration::from_secs(5)) }).unwrap();
        let requests = Shape::of(Rate::new(60, 60 * S, 3)).unwrap();
        let tokens = Shape::of(Rate::new(100, 60 * S, 100)).unwrap();
        let buckets = [
            Arg { key: "{b}:requests", shape: requests, n: 0, reset_ns: 0 },
            Arg { key: "{b}:tokens", shape: tokens, n: 0, reset_ns: 0 },
        ];
        let t0 = 1_700_000_000_000_000u64;
        let (small, big, tiny) = ([(0, 1), (1, 30)], [(0, 1), (1, 80)], [(0, 1), (1, 1)]);
        let jobs = [
            JobArg { claims: &small, member: None },
            JobArg { claims: &small, member: None },
            JobArg { claims: &big, member: None },
            JobArg { claims: &tiny, member: None },
        ];
        let r = rt.block_on(conn.take(&buckets, &jobs, None, Some(t0))).unwrap();
        // Two jobs (60 tokens); the third needs 80 of the 40 left: 24 s.
        assert_eq!(r.taken, 2);
        assert_eq!(r.used, vec![2 * S, 36 * S]);
        assert_eq!(r.stop, Some(Stop::Wait(vec![0, 24 * S])), "the fourth would fit but waits its turn");
        // Leases: one left of two, so one job of three is taken.
        let set = LeaseSet { key: "{b}:in_flight", max: 2, ttl_ms: 60_000 };
        let one = [(0, 0)];
        let leased = |m| JobArg { claims: &one, member: Some(m) };
        let first = rt.block_on(conn.take(&buckets[..1], &[leased("a")], Some(set), Some(t0))).unwrap();
        assert_eq!((first.taken, first.held), (1, Some(1)));
        let r = rt.block_on(conn.take(&buckets[..1], &[leased("b"), leased("c"), leased("d")], Some(set), Some(t0)));
        let r = r.unwrap();
        assert_eq!((r.taken, r.held), (1, Some(2)));
        assert!(matches!(r.stop, Some(Stop::Busy(ns)) if ns <= 60 * S), "{:?}", r.stop);
    }
}
