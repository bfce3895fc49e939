//! A pool's admission gate: its `limits`, its buckets' store, and the
//! counts its stats report.
//!
//! The queue asks the gate before a worker takes the job at its front
//! (`pool/queue.rs`): the job's claims (one request and its estimated
//! tokens, on the provider's buckets and its model's) are taken all at once
//! or not at all. A job that must wait stays queued, at the front; the
//! worker that found it sleeps until the wait computed from the bucket has
//! passed (no polling), and a job whose wait would outlast its deadline
//! ends at once with RATE_LIMITED. After the job, the reservation is
//! settled: a chat or embedding's reported usage replaces the estimate; a
//! job that never reached the provider gives back everything.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::clock::{self, Nanos};
use crate::error::{Error, Result};
use crate::pool::keys::KeyRing;
use crate::pool::{Output, Work};
use crate::providers::StreamWatcher;
use crate::stats::{LimitStats, LimitsStoreStats};
use crate::types::EmbedInput;

use super::fleet::{FleetLeases, FleetStore, OwnedArg};
use super::headers::{observe, Window};
use super::inflight::InFlight;
use super::memory::MemoryStore;
use super::plan::{estimate_tokens, LimitScope, Limits};
use super::redis::{Arg, JobArg, LeaseArg, LeaseSet, Op, Reply, Shape, Stop, StoreError};
use super::store_config::OnUnavailable;
use super::{Acquired, Claim, Rate};
use reqwest::header::HeaderMap;

/// One bucket as the stats see it.
struct Bucket {
    /// Its name in a store (`<provider>:requests`, `<provider>:model:<m>:tokens`).
    name: String,
    rate: Rate,
    /// What this process enforces itself: `rate` with the memory store;
    /// `rate` ÷ `fleet_size` (the local share, while the Redis store is
    /// down) with Redis.
    local: Rate,
    /// `requests_per_minute` etc., for messages.
    label: String,
    /// Whether it counts tokens (what a reported usage settles).
    tokens: bool,
    waits: AtomicU64,
    rate_limited: AtomicU64,
}

/// Most tokens one response's reported usage is taken to mean.
const MAX_REPORTED_TOKENS: u64 = 1_000_000_000;

/// Most buckets one job draws from: the provider's requests and tokens,
/// and its model's.
const MAX_CLAIMS: usize = 4;

/// What one job claims: its buckets (one request from each request
/// bucket, `tokens` from each token bucket; [`Gate::units`]), without
/// allocating (kept inline in the job).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JobClaims {
    /// The job's estimated tokens.
    tokens: u64,
    /// With `scope: "key"`: the keys that may serve the job (bit `i`: key `i`).
    keys: u64,
    /// Within a key's block of buckets (block 0 without `scope: "key"`).
    buckets: [u16; MAX_CLAIMS],
    len: u8,
}

impl JobClaims {
    const EMPTY: JobClaims = JobClaims { tokens: 0, keys: 0, buckets: [0; MAX_CLAIMS], len: 0 };

    fn buckets(&self) -> impl Iterator<Item = usize> + '_ {
        self.buckets[..self.len as usize].iter().map(|&b| b as usize)
    }

    fn push(&mut self, bucket: Option<usize>) {
        if let Some(b) = bucket {
            let n = self.len as usize;
            if n < MAX_CLAIMS {
                self.buckets[n] = b as u16;
                self.len += 1;
            }
        }
    }
}

/// A pool's limits and their state. The buckets are numbered by `table`
/// and kept in the store (in process: one mutex held only for the
/// arithmetic, taken inside the queue lock and never the other way round).
pub(crate) struct Gate {
    provider: String,
    limits: Limits,
    table: Vec<Bucket>,
    store: MemoryStore,
    /// The provider's request and token buckets.
    provider_buckets: [Option<usize>; 2],
    /// A model's own (lower-case name).
    model_buckets: HashMap<String, [Option<usize>; 2]>,
    /// `max_in_flight`'s slots in this process, if set (with the Redis
    /// store: its local share, while the store is down; the fleet's are
    /// `FleetBuckets::leases`).
    in_flight: Option<Arc<InFlight>>,
    /// With `scope: "key"`, the provider's keys (the pool's ring, which
    /// owns eligibility and weights): each has its own block of `block`
    /// buckets, key `k`'s at `k * block` (none: one shared block).
    keys: Option<Arc<KeyRing>>,
    block: usize,
    /// With the Redis store, the buckets there (`store` then holds the
    /// local share).
    fleet: Option<FleetBuckets>,
}

/// A gate's buckets in the Redis store.
struct FleetBuckets {
    store: Arc<FleetStore>,
    /// By bucket number: its key (`{<prefix><provider>}:requests`) and shape.
    keys: Vec<Arc<str>>,
    shapes: Vec<Shape>,
    /// By bucket number: when the store last said it is full again (local
    /// clock), for stats.
    full_at: Vec<AtomicU64>,
    /// `max_in_flight` across the fleet, if set.
    leases: Option<Arc<FleetLeases>>,
    /// Leases the fleet held at the last answer, for stats.
    fleet_held: AtomicU64,
}

/// How often a job at the front asks again for a fleet lease (no one in
/// another process can wake it when one is released; a release in this
/// process does).
const LEASE_POLL: Nanos = 20 * clock::MS;

/// Where a job's claims were taken, kept in the high bits of its
/// [`LimitKey`] (the low bits are the key).
const KEY_MASK: LimitKey = 0x3f;
/// From this process's share (`local_share` while the Redis store is down).
const LOCAL: LimitKey = 0x40;
/// Nowhere (`fail_open` while the Redis store is down).
const UNCLAIMED: LimitKey = 0x80;

/// Which store holds a job's claims.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Fleet,
    Local,
    Nowhere,
}

/// Which block of buckets a job drew from: its key's with `scope: "key"`,
/// else 0.
pub(crate) type LimitKey = u8;

/// Most keys `scope: "key"` serves (a job's eligible keys are a `u64` mask).
pub(crate) const MAX_SCOPED_KEYS: usize = 64;

/// What a gate says about the job at the queue's front.
#[derive(Debug)]
pub(crate) enum Admit {
    /// Its claims are taken (from this key's buckets): start it.
    Go(LimitKey),
    /// Not before this moment (the job stays queued).
    Wait(Nanos),
    /// Never, or not before its deadline: end it with this error.
    Refuse(Error),
}

/// The answer of one check over a job's claims.
#[derive(Clone, Copy)]
enum Check {
    Fits,
    Wait(Nanos, usize),
    Never(usize),
    /// The buckets fit but every in-flight slot is taken.
    Busy,
}

/// Longest a worker sleeps for a slot before it looks again (a slot's
/// give-back wakes it before that; this only bounds the timer).
const MAX_SLOT_WAIT: Nanos = 3_600 * 1_000 * clock::MS;

impl Gate {
    /// The gate of `provider`; `keys` are its keys (given their own
    /// buckets with `scope: "key"`, at most [`MAX_SCOPED_KEYS`]); `fleet`
    /// the Redis store, if the buckets live there.
    pub fn new(provider: &str, limits: Limits, keys: &Arc<KeyRing>, fleet: Option<&Arc<FleetStore>>) -> Result<Gate> {
        let share = fleet.map_or(1, |f| f.settings.fleet_size.max(1));
        let scoped = limits.scope == LimitScope::Key && keys.len() > 0;
        let blocks = if scoped { keys.len().min(MAX_SCOPED_KEYS) } else { 1 };
        let mut table = Vec::new();
        let mut provider_buckets = [None, None];
        let mut model_buckets = HashMap::new();
        for k in 0..blocks {
            // `openai:requests`, or per key `openai:openai#0:requests`.
            let owner = if scoped { format!("{provider}:{provider}#{k}") } else { provider.to_string() };
            let key_label = if scoped { format!(" of key {provider}#{k}") } else { String::new() };
            let mut add = |name: String, rate: Option<Rate>, tokens: bool| {
                rate.map(|rate| {
                    table.push(Bucket {
                        label: format!("{}{key_label}", label(&name, rate)),
                        name,
                        rate,
                        local: Rate::new(rate.limit() / share, rate.period_ns(), rate.burst() / share),
                        tokens,
                        waits: AtomicU64::new(0),
                        rate_limited: AtomicU64::new(0),
                    });
                    // Block 0's indices are kept (every block has the same
                    // layout, at `k * block`).
                    table.len() - 1
                })
            };
            let ids = [
                add(format!("{owner}:requests"), limits.provider.requests, false),
                add(format!("{owner}:tokens"), limits.provider.tokens, true),
            ];
            if k == 0 {
                provider_buckets = ids;
            }
            for (model, rates) in &limits.models {
                let ids = [
                    add(format!("{owner}:model:{model}:requests"), rates.requests, false),
                    add(format!("{owner}:model:{model}:tokens"), rates.tokens, true),
                ];
                if k == 0 {
                    model_buckets.insert(model.clone(), ids);
                }
            }
        }
        let block = table.len() / blocks;
        let store = MemoryStore::new(table.len());
        let in_flight = limits.max_in_flight.map(|n| Arc::new(InFlight::new((n / share).max(1))));
        let keys = scoped.then(|| keys.clone());
        let fleet = match fleet {
            Some(f) => Some(FleetBuckets::new(f, provider, &table, limits.max_in_flight)?),
            None => None,
        };
        Ok(Gate {
            provider: provider.to_string(),
            limits,
            table,
            store,
            provider_buckets,
            model_buckets,
            in_flight,
            keys,
            block,
            fleet,
        })
    }

    /// Whether the buckets live in the Redis store (admission is then
    /// [`Gate::admit_fleet`], outside the queue lock).
    pub fn is_fleet(&self) -> bool {
        self.fleet.is_some()
    }

    /// Which store holds the claims taken under `key`.
    fn source(&self, key: LimitKey) -> Source {
        if key & UNCLAIMED != 0 {
            Source::Nowhere
        } else if key & LOCAL != 0 || self.fleet.is_none() {
            Source::Local
        } else {
            Source::Fleet
        }
    }

    /// The key a job admitted under `key` should go out on first (with
    /// `scope: "key"`; none when its claims were taken nowhere).
    pub fn preferred_key(&self, key: LimitKey) -> Option<usize> {
        (self.scoped() && key & UNCLAIMED == 0).then_some(key_index(key) as usize)
    }

    /// What `work` claims (computed once, at submit).
    pub fn claims(&self, work: &Work) -> JobClaims {
        let tokens = match work {
            Work::Chat(r) | Work::Stream(r) => estimate_tokens(r, self.limits.default_completion_tokens),
            Work::Embed(r) => embed_tokens(&r.input),
        };
        let mut c = JobClaims { tokens, ..JobClaims::EMPTY };
        c.push(self.provider_buckets[0]);
        c.push(self.provider_buckets[1]);
        if let Some(ids) = self.model_ids(work.model()) {
            c.push(ids[0]);
            c.push(ids[1]);
        }
        if let Some(keys) = &self.keys {
            c.keys = keys.eligible_mask(work.model());
        }
        c
    }

    /// `(bucket, units)` of each claim (buckets within block 0).
    pub fn units<'a>(&'a self, claims: &'a JobClaims) -> impl Iterator<Item = (usize, u64)> + 'a {
        claims.buckets().map(|b| (b, if self.table[b].tokens { claims.tokens } else { 1 }))
    }

    /// `model`'s own buckets, if it has limits of its own (names compare
    /// ignoring case).
    fn model_ids(&self, model: &str) -> Option<[Option<usize>; 2]> {
        if self.model_buckets.is_empty() {
            return None;
        }
        self.model_buckets.get(model).or_else(|| self.model_buckets.get(&model.to_lowercase())).copied()
    }

    /// With `scope: "key"`, the job's eligible keys in a weighted random
    /// order (each next key drawn by weight among those left), so the first
    /// of them with capacity is drawn by weight among the keys with
    /// capacity. Without: block 0 alone.
    fn key_order(&self, claims: &JobClaims) -> ([LimitKey; MAX_SCOPED_KEYS], usize) {
        let mut order = [0; MAX_SCOPED_KEYS];
        let n = self.keys.as_ref().map_or(0, |k| k.weighted_order(claims.keys, &mut order));
        // No eligible key (the job fails at key choice, and is refunded):
        // block 0 stands in.
        (order, n.max(1))
    }

    /// Takes the job's claims from the first key (in [`Gate::key_order`])
    /// whose buckets fit, and an in-flight slot. With none fitting, the
    /// shortest wait among the keys (`Never` only if every key is).
    fn take(&self, claims: &JobClaims, now: Nanos) -> (Check, LimitKey) {
        let (order, n) = self.key_order(claims);
        // With the Redis store this is its local share.
        let flag = if self.fleet.is_some() { LOCAL } else { 0 };
        let mut best: Option<(Check, LimitKey)> = None;
        for &key in &order[..n] {
            let key = key | flag;
            match self.take_buckets(claims, key, now) {
                Check::Fits => return (self.take_slot(claims, key), key),
                check => keep_best(&mut best, check, key),
            }
        }
        // Never `None`: `order` is not empty. (Busy would only wait.)
        best.unwrap_or((Check::Busy, 0))
    }

    /// After the buckets: an in-flight slot, or the buckets back.
    fn take_slot(&self, claims: &JobClaims, key: LimitKey) -> Check {
        // The buckets first, then a slot: a job refused a slot gives the
        // buckets back (no one waits on that), and a slot is never taken
        // and given back unused (whose wake-up would spin a worker).
        if self.try_slot() {
            Check::Fits
        } else {
            self.refund_buckets(claims, key);
            Check::Busy
        }
    }

    /// Takes an in-flight slot if there are slots and one is free.
    fn try_slot(&self) -> bool {
        self.in_flight.as_ref().is_none_or(|f| f.try_take())
    }

    /// Bucket `b` of a job's claims, in `key`'s block.
    fn at(&self, b: usize, key: LimitKey) -> usize {
        b + key_index(key) as usize * self.block
    }

    /// Takes every bucket claim if all fit (one atomic step of the store).
    fn take_buckets(&self, claims: &JobClaims, key: LimitKey, now: Nanos) -> Check {
        let mut buf = [Claim { bucket: 0, rate: Rate::new(1, 1, 1), units: 0 }; MAX_CLAIMS];
        let mut n = 0;
        for (b, units) in self.units(claims) {
            let b = self.at(b, key);
            buf[n] = Claim { bucket: b, rate: self.table[b].local, units };
            n += 1;
        }
        match self.store.acquire_now(&buf[..n], now) {
            Acquired::Admitted => Check::Fits,
            Acquired::Wait(w, i) => Check::Wait(w, buf[i].bucket),
            Acquired::Never(i) => Check::Never(buf[i].bucket),
        }
    }

    /// Takes `claims` at `now` if they fit now (the key whose buckets they
    /// came from); no counts change otherwise (a push's try, before the
    /// job is queued).
    pub fn try_take(&self, claims: &JobClaims, now: Nanos) -> Option<LimitKey> {
        if self.fleet.is_some() {
            return None; // a push never waits for the network
        }
        match self.take(claims, now) {
            (Check::Fits, key) => Some(key),
            _ => None,
        }
    }

    /// Takes `claims` at `now` if they fit, for a job whose wait may last
    /// until `expiry`.
    pub fn admit(&self, claims: &JobClaims, now: Nanos, expiry: Nanos) -> Admit {
        let (check, key) = self.take(claims, now);
        self.decide(check, key, now, expiry)
    }

    /// [`Gate::admit`] with the Redis store: one atomic call per key tried
    /// (bounded by `timeout_ms`), then an in-flight slot. With the store
    /// down, `on_unavailable` decides at once.
    pub async fn admit_fleet(&self, claims: &JobClaims, expiry: Nanos) -> Admit {
        let Some(f) = &self.fleet else { return self.admit(claims, clock::now(), expiry) };
        let (order, n) = self.key_order(claims);
        let mut best: Option<(Check, LimitKey)> = None;
        for &key in &order[..n] {
            let check = match self.take_fleet(f, claims, key, true).await {
                Ok(check) => check,
                Err(_) => return self.admit_fallback(f, claims, clock::now(), expiry),
            };
            match check {
                // (With the claims, the fleet's lease, if any.)
                Check::Fits => return Admit::Go(key),
                check => keep_best(&mut best, check, key),
            }
        }
        let (check, key) = best.unwrap_or((Check::Busy, 0));
        // The wait counts from the store's answer.
        self.decide(check, key, clock::now(), expiry)
    }

    /// Most jobs one batch asks the Redis store about.
    pub const MAX_BATCH: usize = 16;

    /// Whether several queued jobs can be asked about in one call (the
    /// Redis store, without `scope: "key"`, whose key choice is per job).
    pub fn batches(&self) -> bool {
        self.fleet.is_some() && self.keys.is_none()
    }

    /// [`Gate::admit_fleet`] for the jobs at the queue's front, in order,
    /// in one call: the answers for the first jobs, each `Go` until the
    /// first that is not (its wait, refusal or busy slots); the jobs past
    /// that one were not asked about. With the store down, the answer for
    /// the first job alone, by `on_unavailable`.
    pub async fn admit_fleet_batch(&self, jobs: &[(&JobClaims, Nanos)]) -> Vec<Admit> {
        let Some(f) = self.fleet.as_ref().filter(|_| self.batches() && jobs.len() > 1) else {
            let mut out = Vec::with_capacity(1);
            if let Some(&(claims, expiry)) = jobs.first() {
                out.push(self.admit_fleet(claims, expiry).await);
            }
            return out;
        };
        // The distinct buckets of the batch, and each job's claims on them.
        let mut ids: Vec<usize> = Vec::new();
        let mut claims: Vec<Vec<(usize, u64)>> = Vec::with_capacity(jobs.len());
        for (c, _) in jobs {
            let mut mine = Vec::with_capacity(MAX_CLAIMS);
            for (b, n) in self.units(c) {
                let at = ids.iter().position(|&x| x == b).unwrap_or_else(|| {
                    ids.push(b);
                    ids.len() - 1
                });
                mine.push((at, n));
            }
            claims.push(mine);
        }
        let args: Vec<Arg<'_>> =
            ids.iter().map(|&b| Arg { key: &f.keys[b], shape: f.shapes[b], n: 0, reset_ns: 0 }).collect();
        let members: Vec<String> = match &f.leases {
            Some(_) => jobs.iter().map(|_| f.store.new_member()).collect(),
            None => Vec::new(),
        };
        let job_args: Vec<JobArg<'_>> = claims
            .iter()
            .enumerate()
            .map(|(i, c)| JobArg { claims: c, member: members.get(i).map(String::as_str) })
            .collect();
        let set = f.leases.as_ref().map(|l| LeaseSet { key: &l.key, max: l.max, ttl_ms: f.store.lease_ttl_ms() });
        let reply = match f.store.take(&args, &job_args, set).await {
            Ok(r) => r,
            Err(_) => return vec![self.admit_fallback(f, jobs[0].0, clock::now(), jobs[0].1)],
        };
        f.seen(&ids, &reply.used);
        if let (Some(l), Some(held)) = (&f.leases, reply.held) {
            for m in members.into_iter().take(reply.taken) {
                l.hold(m);
            }
            f.fleet_held.store(held, Relaxed);
        }
        let mut out: Vec<Admit> = (0..reply.taken).map(|_| Admit::Go(0)).collect();
        let Some(&(_, expiry)) = jobs.get(reply.taken) else { return out };
        let mine = &claims[reply.taken];
        let check = match reply.stop {
            Some(Stop::Wait(waits)) => {
                let units: Vec<u64> = mine.iter().map(|&(_, n)| n).collect();
                let at: Vec<usize> = mine.iter().map(|&(i, _)| ids[i]).collect();
                f.refused(&at, &units, &waits)
            }
            Some(Stop::Never(i)) => Check::Never(mine.get(i).map_or(0, |&(j, _)| ids[j])),
            Some(Stop::Busy(_)) => Check::Busy,
            // (Not reached: a job the store did not take has a reason.)
            None => return out,
        };
        out.push(self.decide(check, 0, clock::now(), expiry));
        out
    }

    /// `on_unavailable`, for a job the Redis store could not answer for.
    fn admit_fallback(&self, f: &FleetBuckets, claims: &JobClaims, now: Nanos, expiry: Nanos) -> Admit {
        match f.store.policy() {
            // (Its keys carry `LOCAL`: see `take`.)
            OnUnavailable::LocalShare => self.admit(claims, now, expiry),
            OnUnavailable::FailOpen => Admit::Go(UNCLAIMED),
            OnUnavailable::FailClosed => {
                if let Some(b) = claims.buckets().next() {
                    self.table[b].rate_limited.fetch_add(1, Relaxed);
                }
                Admit::Refuse(Error::RateLimited {
                    provider: self.provider.clone(),
                    limit: "limits_store (unavailable, on_unavailable \"fail_closed\")".to_string(),
                    retry_after_ms: Some(super::fleet::PROBE_EVERY / clock::MS),
                })
            }
        }
    }

    /// Takes every bucket claim of `key` in the Redis store, and with
    /// `lease` a fleet in-flight lease if the gate has `max_in_flight`; or
    /// none of them.
    async fn take_fleet(&self, f: &FleetBuckets, claims: &JobClaims, key: LimitKey, lease: bool) -> StoreResult<Check> {
        let mut ids = [0usize; MAX_CLAIMS];
        let mut units = [0u64; MAX_CLAIMS];
        let mut args = Vec::with_capacity(MAX_CLAIMS);
        for (i, (b, n)) in self.units(claims).enumerate() {
            let b = self.at(b, key);
            (ids[i], units[i]) = (b, n);
            args.push(Arg { key: &f.keys[b], shape: f.shapes[b], n: n as i64, reset_ns: 0 });
        }
        let member = f.leases.as_ref().filter(|_| lease).map(|l| (l, f.store.new_member()));
        let lease_arg = member.as_ref().map(|(l, m)| LeaseArg {
            key: &l.key,
            max: l.max,
            ttl_ms: f.store.lease_ttl_ms(),
            member: m,
        });
        Ok(match f.store.call(Op::Take, &args, lease_arg).await? {
            Reply::Done { used, held } => {
                f.seen(&ids[..args.len()], &used);
                if let (Some((l, m)), Some(n)) = (member, held) {
                    l.hold(m);
                    f.fleet_held.store(n, Relaxed);
                }
                Check::Fits
            }
            Reply::Busy(_, held) => {
                f.fleet_held.store(held, Relaxed);
                Check::Busy
            }
            Reply::Wait(waits) => f.refused(&ids[..args.len()], &units[..args.len()], &waits),
            Reply::Never(i) => Check::Never(ids[i.min(args.len().saturating_sub(1))]),
        })
    }

    /// What an admission check means for the job (its wait against its
    /// `expiry`).
    fn decide(&self, check: Check, key: LimitKey, now: Nanos, expiry: Nanos) -> Admit {
        match check {
            Check::Fits => Admit::Go(key),
            Check::Wait(wait, b) => {
                let until = now.saturating_add(wait);
                if until > expiry {
                    return Admit::Refuse(self.refuse(b, Some(wait)));
                }
                self.table[b].waits.fetch_add(1, Relaxed);
                Admit::Wait(until)
            }
            Check::Never(b) => Admit::Refuse(self.refuse(b, None)),
            Check::Busy => {
                if let Some(f) = &self.in_flight {
                    f.waits.fetch_add(1, Relaxed);
                }
                // Until a slot is given back (which wakes the worker), or
                // the job expires; a fleet lease is asked for again soon.
                let most = if key & LOCAL == 0 && self.fleet.is_some() { LEASE_POLL } else { MAX_SLOT_WAIT };
                Admit::Wait(expiry.min(now.saturating_add(most)))
            }
        }
    }

    /// `max_in_flight`'s slots (what a worker waiting for one listens to).
    pub fn in_flight(&self) -> Option<&InFlight> {
        self.in_flight.as_deref()
    }

    /// Gives back the in-flight slot (or fleet lease) of a job admitted
    /// under `key` whose request is over.
    pub fn release(&self, key: LimitKey) {
        match (self.source(key), &self.fleet) {
            (Source::Nowhere, _) => {}
            (Source::Fleet, Some(f)) => {
                if let Some(l) = &f.leases {
                    f.store.release(l);
                    // A worker of this process waiting for a lease asks again now.
                    if let Some(local) = &self.in_flight {
                        local.wake();
                    }
                }
            }
            _ => {
                if let Some(f) = &self.in_flight {
                    f.give_back();
                }
            }
        }
    }

    /// What a stream's job hands its stream: settles the reservation with
    /// the stream's reported usage, and holds the job's in-flight slot
    /// until the stream is over.
    pub fn stream_watcher(self: &Arc<Self>, claims: JobClaims, key: LimitKey) -> Box<dyn StreamWatcher> {
        Box::new(StreamSettle { gate: self.clone(), claims: Some(claims), key })
    }

    fn refuse(&self, b: usize, wait: Option<Nanos>) -> Error {
        let bucket = &self.table[b];
        bucket.rate_limited.fetch_add(1, Relaxed);
        Error::RateLimited {
            provider: self.provider.clone(),
            limit: bucket.label.clone(),
            retry_after_ms: wait.map(|w| w.div_ceil(clock::MS)),
        }
    }

    /// Before a retry's request goes out (or a first request on another key
    /// than the one admitted, with `scope: "key"`): takes one more request
    /// from `key`'s request buckets (every request the provider sees is
    /// counted).
    /// `None` when taken, else how long until it would be (`Nanos::MAX`:
    /// never); the caller weighs that against the job's deadline.
    pub async fn take_retry(&self, claims: &JobClaims, key: LimitKey, now: Nanos) -> Option<Nanos> {
        let mut requests = JobClaims::EMPTY;
        for b in claims.buckets().filter(|&b| !self.table[b].tokens) {
            requests.push(Some(b));
        }
        let check = match &self.fleet {
            None => self.take_buckets(&requests, key, now),
            Some(f) => match self.take_fleet(f, &requests, key, false).await {
                Ok(check) => check,
                Err(_) => match f.store.policy() {
                    OnUnavailable::LocalShare => self.take_buckets(&requests, key, clock::now()),
                    OnUnavailable::FailOpen => Check::Fits,
                    OnUnavailable::FailClosed => Check::Never(requests.buckets().next().unwrap_or(0)),
                },
            },
        };
        match check {
            Check::Fits | Check::Busy => None,
            Check::Wait(wait, b) => {
                self.table[b].waits.fetch_add(1, Relaxed);
                Some(wait)
            }
            Check::Never(_) => Some(Nanos::MAX),
        }
    }

    /// The RATE_LIMITED error of a request that `key`'s request buckets
    /// cannot take before the job's deadline (`wait`: when they could).
    pub fn request_refusal(&self, claims: &JobClaims, key: LimitKey, wait: Option<Nanos>) -> Error {
        let b = claims.buckets().map(|b| self.at(b, key)).find(|&b| !self.table[b].tokens).unwrap_or(0);
        self.refuse(b, wait)
    }

    /// Whether every key has its own buckets (`scope: "key"`).
    pub fn scoped(&self) -> bool {
        self.keys.is_some()
    }

    /// Settles the reservation of a job whose request went out: reported
    /// usage replaces the token estimate; without a report (a failure, a
    /// stream) the estimate stands, as the provider may have counted it.
    pub fn settle(&self, claims: &JobClaims, key: LimitKey, outcome: &Result<Output>) {
        let used = match outcome {
            Ok(Output::Chat(r)) => r.usage.total_tokens,
            Ok(Output::Embed(r)) => r.usage.total_tokens,
            // A stream's usage arrives at its end ([`Gate::settle_usage`]).
            Ok(Output::Stream(_)) | Err(_) => return,
        };
        self.settle_usage(claims, key, used);
    }

    /// Replaces the token reservation of `claims` with `used`, the usage
    /// the provider reported (a response's, or a stream's at its end).
    pub fn settle_usage(&self, claims: &JobClaims, key: LimitKey, used: u64) {
        // Usage is the provider's word (untrusted): more than this for one
        // request is not believed.
        let used = used.min(MAX_REPORTED_TOKENS);
        let delta = used.min(i64::MAX as u64) as i64 - claims.tokens.min(i64::MAX as u64) as i64;
        let tokens = claims.buckets().filter(|&b| self.table[b].tokens).map(|b| (b, delta));
        self.adjust(tokens, key);
    }

    /// Adds `delta` units to each bucket (of `key`'s block) in the store
    /// that holds the job's claims (the Redis store's writer does it
    /// later; see `fleet.rs`).
    fn adjust(&self, deltas: impl Iterator<Item = (usize, i64)>, key: LimitKey) {
        match (self.source(key), &self.fleet) {
            (Source::Nowhere, _) => {}
            (Source::Fleet, Some(f)) => {
                let args = deltas
                    .filter(|&(_, d)| d != 0)
                    .map(|(b, n)| {
                        let b = self.at(b, key);
                        OwnedArg { key: f.keys[b].clone(), shape: f.shapes[b], n, reset_ns: 0 }
                    })
                    .collect();
                f.store.send(Op::Adjust, args);
            }
            _ => {
                for (b, delta) in deltas {
                    let b = self.at(b, key);
                    self.store.adjust_now(b, self.table[b].local, delta);
                }
            }
        }
    }

    /// Gives back every claim (taken from `key`'s buckets) and the job's
    /// in-flight slot (a job whose request never went out).
    pub fn refund(&self, claims: &JobClaims, key: LimitKey) {
        self.refund_buckets(claims, key);
        self.release(key);
    }

    fn refund_buckets(&self, claims: &JobClaims, key: LimitKey) {
        self.adjust(self.units(claims).map(|(b, units)| (b, -(units.min(i64::MAX as u64) as i64))), key);
    }

    /// Whether responses' rate-limit headers lower the buckets
    /// (`learn_from_headers`).
    pub fn learns(&self) -> bool {
        self.limits.learn_from_headers
    }

    /// Lowers the buckets a `model` request drew from to what one response
    /// of the provider said (`learn_from_headers`; see `headers.rs`): its
    /// model's buckets when the model has limits of its own, else the
    /// provider's, in `key`'s block (the key that sent it, with `scope:
    /// "key"`). `others_out` requests besides this one are still out
    /// and maybe not yet in the provider's count, so they come off its
    /// `remaining` requests (two concurrent requests do not both spend the
    /// last one; their tokens are not known here). A window with nothing
    /// left, or a 429's `Retry-After`, holds the bucket empty until the
    /// provider's reset.
    pub fn learn(&self, model: &str, key: LimitKey, status: u16, headers: &HeaderMap, others_out: u64) {
        let now = clock::now();
        let named = headers.iter().filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v)));
        let seen = observe(named, clock::unix_ms(now));
        let [requests, tokens] = self.buckets_of(model).map(|b| b.map(|b| self.at(b, key)));
        // Anthropic may give input and output token windows instead of
        // one; the tighter stands for the total.
        let token_window = seen.tokens.or_else(|| {
            [seen.input_tokens, seen.output_tokens]
                .into_iter()
                .flatten()
                .min_by_key(|w| w.remaining.unwrap_or(u64::MAX))
        });
        let mut views = Vec::with_capacity(3);
        for (bucket, window, out) in [(requests, seen.requests, others_out), (tokens, token_window, 0)] {
            let (Some(b), Some(Window { remaining: Some(left), reset_ms })) = (bucket, window) else { continue };
            let reset = if left == 0 { reset_ms.map_or(0, clock::from_ms) } else { 0 };
            views.push((b, left.saturating_sub(out), reset));
        }
        if let (429, Some(after), Some(b)) = (status, seen.retry_after_ms, requests) {
            views.push((b, 0, clock::from_ms(after)));
        }
        match &self.fleet {
            // Every process backs off together.
            Some(f) if f.store.is_up() => {
                let args = views
                    .into_iter()
                    .map(|(b, left, reset_ns)| OwnedArg {
                        key: f.keys[b].clone(),
                        shape: f.shapes[b],
                        n: left.min(i64::MAX as u64) as i64,
                        reset_ns,
                    })
                    .collect();
                f.store.send(Op::Observe, args);
            }
            _ => {
                for (b, left, reset) in views {
                    self.store.observe_now(b, self.table[b].local, left, reset, now);
                }
            }
        }
    }

    /// The request and token buckets that describe `model`'s limits: its
    /// own if it has any, else the provider's.
    fn buckets_of(&self, model: &str) -> [Option<usize>; 2] {
        let own = self.model_ids(model).unwrap_or([None, None]);
        [own[0].or(self.provider_buckets[0]), own[1].or(self.provider_buckets[1])]
    }

    /// The buckets' state now, by name without the provider prefix.
    pub fn snapshot(&self) -> BTreeMap<String, LimitStats> {
        let now = clock::now();
        let prefix = format!("{}:", self.provider);
        // The Redis store's buckets as it last answered for them, unless
        // this process enforces its share now.
        let fleet = self.fleet.as_ref().filter(|f| f.store.is_up());
        self.table
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let rate = if fleet.is_some() { b.rate } else { b.local };
                let (remaining, reset_ns) = match fleet {
                    Some(f) => f.level(i, now),
                    None => self.store.level_now(i, rate, now),
                };
                let key = b.name.strip_prefix(&prefix).unwrap_or(&b.name).to_string();
                (
                    key,
                    LimitStats {
                        limit: rate.limit(),
                        period_ms: rate.period_ns() / clock::MS,
                        burst: rate.burst(),
                        remaining,
                        reset_ms: reset_ns.div_ceil(clock::MS),
                        waits: b.waits.load(Relaxed),
                        rate_limited: b.rate_limited.load(Relaxed),
                    },
                )
            })
            .chain(self.in_flight.as_ref().map(|f| {
                // The fleet's leases as last seen, unless this process
                // enforces its share now.
                let (max, taken) = match (fleet, fleet.and_then(|fl| fl.leases.as_ref())) {
                    (Some(fl), Some(l)) => (l.max, fl.fleet_held.load(Relaxed)),
                    _ => (f.max(), f.taken()),
                };
                let stats = LimitStats {
                    limit: max,
                    period_ms: 0,
                    burst: max,
                    remaining: max.saturating_sub(taken),
                    reset_ms: 0,
                    waits: f.waits.load(Relaxed),
                    rate_limited: 0,
                };
                ("in_flight".to_string(), stats)
            }))
            .collect()
    }
}

impl Gate {
    /// The store's state, for stats.
    pub fn store_stats(&self) -> LimitsStoreStats {
        match &self.fleet {
            Some(f) => {
                let mut s = f.store.stats();
                if let Some(l) = &f.leases {
                    (s.leases_held, s.leases_lost) = (l.count(), l.lost());
                }
                s
            }
            None => LimitsStoreStats { kind: "memory".to_string(), up: true, ..LimitsStoreStats::default() },
        }
    }
}

/// Of the keys tried so far, the one to wait for: the shortest wait, else
/// the first that cannot fit (`Never`) or whose slots are busy.
fn keep_best(best: &mut Option<(Check, LimitKey)>, check: Check, key: LimitKey) {
    let better = match (check, &*best) {
        (Check::Wait(w, _), Some((Check::Wait(bw, _), _))) => w < *bw,
        (Check::Wait(..), _) => true,
        (_, None) => true,
        _ => false,
    };
    if better {
        *best = Some((check, key));
    }
}

/// The key bits of a [`LimitKey`] (without where its claims were taken).
pub(crate) fn key_index(key: LimitKey) -> LimitKey {
    key & KEY_MASK
}

type StoreResult<T> = std::result::Result<T, StoreError>;

impl FleetBuckets {
    fn new(
        store: &Arc<FleetStore>,
        provider: &str,
        table: &[Bucket],
        max_in_flight: Option<u64>,
    ) -> Result<FleetBuckets> {
        let prefix = &store.settings.prefix;
        let mut keys = Vec::with_capacity(table.len());
        let mut shapes = Vec::with_capacity(table.len());
        for b in table {
            // `openai:model:gpt-4o:tokens` → `{bifrost:openai}:model:gpt-4o:tokens`:
            // one hash tag per gate (one Cluster slot).
            let rest = b.name.strip_prefix(provider).unwrap_or(&b.name);
            keys.push(Arc::from(format!("{{{prefix}{provider}}}{rest}")));
            shapes.push(Shape::of(b.rate).ok_or_else(|| {
                Error::config(format!("providers.{provider}.limits"), "too large for the Redis store to keep exactly")
            })?);
        }
        let full_at = table.iter().map(|_| AtomicU64::new(0)).collect();
        let prefix = &store.settings.prefix;
        let leases = max_in_flight.map(|max| store.leases(Arc::from(format!("{{{prefix}{provider}}}:in_flight")), max));
        Ok(FleetBuckets { store: store.clone(), keys, shapes, full_at, leases, fleet_held: AtomicU64::new(0) })
    }

    /// Records what the store answered: bucket `ids[i]` is full again
    /// `used[i]` ns from now.
    fn seen(&self, ids: &[usize], used: &[Nanos]) {
        let now = clock::now();
        for (&b, &u) in ids.iter().zip(used) {
            self.full_at[b].store(now.saturating_add(u), Relaxed);
        }
    }

    /// A refusal's check: the longest of the waits (claim `i` of `units`
    /// units on bucket `ids[i]`), recorded for stats.
    fn refused(&self, ids: &[usize], units: &[u64], waits: &[Nanos]) -> Check {
        self.seen_short(ids, units, waits);
        let (i, w) = waits.iter().copied().enumerate().max_by_key(|&(_, w)| w).unwrap_or((0, 0));
        Check::Wait(w.max(1), ids.get(i).copied().unwrap_or(0))
    }

    /// Records what a refusal says: a bucket whose claim of `units` fits
    /// after `wait` is full again `wait + capacity - cost(units)` from now.
    fn seen_short(&self, ids: &[usize], units: &[u64], waits: &[Nanos]) {
        let now = clock::now();
        for ((&b, &n), &w) in ids.iter().zip(units).zip(waits) {
            if w == 0 {
                continue;
            }
            let rate = self.shapes[b].rate;
            let span = |u: u64| (u as u128 * rate.period_ns() as u128) / rate.limit() as u128;
            let used = (w as u128 + span(rate.burst())).saturating_sub(span(n)).min(Nanos::MAX as u128) as Nanos;
            self.full_at[b].store(now.saturating_add(used), Relaxed);
        }
    }

    /// Units free and ns until full, from the last answer about bucket `b`.
    fn level(&self, b: usize, now: Nanos) -> (u64, Nanos) {
        let ahead = self.full_at[b].load(Relaxed).saturating_sub(now);
        let rate = self.shapes[b].rate;
        let used = (ahead as u128 * rate.limit() as u128).div_ceil(rate.period_ns() as u128);
        (rate.burst().saturating_sub(used.min(u64::MAX as u128) as u64), ahead)
    }
}

/// A stream's limits (see [`Gate::stream_watcher`]): its in-flight slot
/// is given back when the stream is dropped (ended, failed or abandoned).
struct StreamSettle {
    gate: Arc<Gate>,
    /// Taken at the first reported usage (a stream settles once).
    claims: Option<JobClaims>,
    key: LimitKey,
}

impl Drop for StreamSettle {
    fn drop(&mut self) {
        self.gate.release(self.key);
    }
}

impl StreamWatcher for StreamSettle {
    fn usage(&mut self, total_tokens: u64) {
        if let Some(claims) = self.claims.take() {
            self.gate.settle_usage(&claims, self.key, total_tokens);
        }
    }
}

/// The config key a bucket comes from (`tokens_per_minute`,
/// `models.gpt-4o.requests_per_second`), for messages.
fn label(name: &str, rate: Rate) -> String {
    let what = if name.ends_with(":tokens") { "tokens" } else { "requests" };
    let per = match rate.period_ns() {
        n if n == clock::nanos_of(std::time::Duration::from_secs(1)) => "second",
        n if n == clock::nanos_of(std::time::Duration::from_secs(60)) => "minute",
        _ => "day",
    };
    match name.split_once(":model:").and_then(|(_, rest)| rest.rsplit_once(':')) {
        Some((model, _)) => format!("models.{model}.{what}_per_{per}"),
        None => format!("{what}_per_{per}"),
    }
}

/// An embedding request's tokens: about 4 bytes each.
fn embed_tokens(input: &EmbedInput) -> u64 {
    let bytes: u64 = match input {
        EmbedInput::One(s) => s.len() as u64,
        EmbedInput::Many(v) => v.iter().map(|s| s.len() as u64).sum(),
    };
    bytes.div_ceil(4).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Request;

    fn gate(v: serde_json::Value) -> Gate {
        let cfg: super::super::plan::LimitsConfig = serde_json::from_value(v).unwrap();
        Gate::new(
            "openai",
            Limits::from_config(&cfg, "providers.openai.limits").unwrap(),
            &Arc::new(KeyRing::new("openai", &[])),
            None,
        )
        .unwrap()
    }

    #[test]
    fn a_request_claims_the_provider_buckets_and_its_models() {
        let g = gate(serde_json::json!({"requests_per_minute": 500, "tokens_per_minute": 200000,
            "models": {"GPT-4o": {"tokens_per_minute": 30000}}}));
        let names: Vec<_> = g.table.iter().map(|b| (b.name.as_str(), b.label.as_str())).collect();
        assert_eq!(
            names,
            [
                ("openai:requests", "requests_per_minute"),
                ("openai:tokens", "tokens_per_minute"),
                ("openai:model:gpt-4o:tokens", "models.gpt-4o.tokens_per_minute")
            ]
        );
        let mut r = Request::new("openai/gpt-4o", "12345678");
        r.params.insert("max_tokens".into(), serde_json::json!(10));
        let c = g.claims(&Work::Chat(Box::new(r.clone())));
        assert_eq!(g.units(&c).collect::<Vec<_>>(), [(0, 1), (1, 12), (2, 12)]);
        r.model = "openai/gpt-4o-mini".into();
        let c = g.claims(&Work::Chat(Box::new(r)));
        assert_eq!(g.units(&c).collect::<Vec<_>>(), [(0, 1), (1, 12)], "no model limit for another model");
    }

    /// Keys as a provider's config makes them (`models` resolved).
    fn keys_of(keys: serde_json::Value) -> Arc<KeyRing> {
        let cfg = crate::config::Config::from_value(serde_json::json!({"providers": {"openai": {"keys": keys}}}));
        Arc::new(KeyRing::new("openai", &cfg.unwrap().providers["openai"].keys))
    }

    #[test]
    fn with_scope_key_a_job_takes_a_key_with_capacity_by_weight() {
        let keys = keys_of(serde_json::json!([{"value": "a", "weight": 3.0, "models": ["*"]},
            {"value": "b", "weight": 1.0, "models": ["*"]}]));
        let scoped = |v: serde_json::Value| {
            let cfg: super::super::plan::LimitsConfig = serde_json::from_value(v).unwrap();
            Gate::new("openai", Limits::from_config(&cfg, "providers.openai.limits").unwrap(), &keys, None).unwrap()
        };
        let job = Work::Chat(Box::new(Request::new("openai/gpt-4o", "hi")));
        // Plenty of capacity on both: keys are drawn by weight (3 : 1).
        let g = scoped(serde_json::json!({"requests_per_day": 1000000, "scope": "key"}));
        let names: Vec<_> = g.table.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["openai:openai#0:requests", "openai:openai#1:requests"]);
        let claims = g.claims(&job);
        fastrand::seed(7);
        let first = (0..4000).filter(|_| g.try_take(&claims, 0) == Some(0)).count();
        assert!((2800..=3200).contains(&first), "{first} of 4000 on the weight-3 key");
        // Two a day per key: four jobs fit whatever the weights, each on a
        // key with capacity; the fifth waits for the sooner of the two.
        let g = scoped(serde_json::json!({"requests_per_day": 2, "scope": "key"}));
        let mut on = [0; 2];
        for _ in 0..4 {
            match g.admit(&claims, 0, Nanos::MAX) {
                Admit::Go(k) => on[k as usize] += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(on, [2, 2]);
        match g.admit(&claims, 0, clock::from_ms(1000)) {
            Admit::Refuse(e) => assert!(e.to_string().contains("requests_per_day of key openai#"), "{e}"),
            other => panic!("{other:?}"),
        }
        let stats = g.snapshot();
        assert_eq!((stats["openai#0:requests"].remaining, stats["openai#1:requests"].remaining), (0, 0));
        // A key whose `models` leave out the job's model is never drawn.
        let keys = keys_of(serde_json::json!([{"value": "a", "models": ["other"]}, {"value": "b", "models": ["*"]}]));
        let cfg: super::super::plan::LimitsConfig =
            serde_json::from_value(serde_json::json!({"requests_per_day": 5, "scope": "key"})).unwrap();
        let g = Gate::new("openai", Limits::from_config(&cfg, "p").unwrap(), &keys, None).unwrap();
        let claims = g.claims(&job);
        assert!((0..5).all(|_| g.try_take(&claims, 0) == Some(1)));
        assert_eq!(g.try_take(&claims, 0), None);
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(*n, v.parse().unwrap());
        }
        h
    }

    fn remaining(g: &Gate, name: &str) -> u64 {
        g.snapshot()[name].remaining
    }

    #[test]
    fn headers_lower_the_buckets_the_model_drew_from() {
        let g = gate(serde_json::json!({"requests_per_minute": 500, "tokens_per_minute": 200000,
            "learn_from_headers": true, "models": {"gpt-4o": {"tokens_per_minute": 30000}}}));
        assert!(g.learns());
        let openai = headers(&[
            ("x-ratelimit-remaining-requests", "120".into()),
            ("x-ratelimit-remaining-tokens", "1000".into()),
            ("x-ratelimit-reset-tokens", "6m0s".into()),
        ]);
        // gpt-4o has its own token bucket: that one is lowered; the
        // requests come off the provider's (gpt-4o has no request limit),
        // less the 20 other requests still out.
        g.learn("gpt-4o", 0, 200, &openai, 20);
        assert_eq!(remaining(&g, "requests"), 100);
        assert_eq!(remaining(&g, "model:gpt-4o:tokens"), 1000);
        assert_eq!(remaining(&g, "tokens"), 200_000, "the provider's token bucket is not gpt-4o's");
        g.learn("gpt-4o-mini", 0, 200, &openai, 0);
        assert_eq!(remaining(&g, "tokens"), 1000);
        // A more generous view never raises a bucket.
        g.learn("gpt-4o-mini", 0, 200, &headers(&[("x-ratelimit-remaining-requests", "499".into())]), 0);
        assert_eq!(remaining(&g, "requests"), 100);
    }

    #[test]
    fn anthropic_windows_and_a_429s_retry_after_hold_the_bucket_empty() {
        let g = gate(serde_json::json!({"requests_per_minute": 50, "tokens_per_minute": 100000,
            "learn_from_headers": true}));
        let soon = bifrost_mock::limits::rfc3339(std::time::SystemTime::now() + std::time::Duration::from_secs(30));
        let anthropic = headers(&[
            ("anthropic-ratelimit-input-tokens-remaining", "5000".into()),
            ("anthropic-ratelimit-output-tokens-remaining", "700".into()),
            ("anthropic-ratelimit-requests-remaining", "0".into()),
            ("anthropic-ratelimit-requests-reset", soon),
        ]);
        g.learn("claude", 0, 200, &anthropic, 0);
        assert_eq!(remaining(&g, "tokens"), 700, "the tighter of input and output");
        let now = clock::now();
        let claims = g.claims(&Work::Chat(Box::new(Request::new("p/claude", "hi"))));
        match g.admit(&claims, now, now + clock::from_ms(60_000)) {
            // Reset is 30 s away at second resolution: 29..=31 s.
            Admit::Wait(until) => assert!(
                until - now >= clock::from_ms(28_000) && until - now <= clock::from_ms(31_000),
                "{}",
                (until - now) / clock::MS
            ),
            other => panic!("must wait for the reset: {other:?}"),
        }
        let g = gate(serde_json::json!({"requests_per_minute": 50, "learn_from_headers": true}));
        let claims = g.claims(&Work::Chat(Box::new(Request::new("p/m", "hi"))));
        g.learn("m", 0, 429, &headers(&[("retry-after", "20".into())]), 0);
        let e = match g.admit(&claims, now, now + clock::from_ms(1000)) {
            Admit::Refuse(e) => e,
            other => panic!("{other:?}"),
        };
        assert!(e.retry_after_ms().is_some_and(|ms| ms > 19_000 && ms <= 20_100), "{e}");
        let g = gate(serde_json::json!({"requests_per_minute": 50, "learn_from_headers": true}));
        g.learn("m", 0, 200, &headers(&[("retry-after", "600".into())]), 0);
        assert_eq!(remaining(&g, "requests"), 50, "Retry-After counts only on a 429");
    }

    /// The Redis store admits the queue's front jobs in one call, in
    /// order, up to the first that does not fit, whose answer is its wait.
    #[test]
    fn a_batch_admits_the_front_jobs_in_order_up_to_the_first_that_must_wait() {
        let Some(redis) = crate::limits::redis_server::RedisServer::start() else { return };
        let settings = crate::limits::store_config::StoreSettings {
            url: crate::config::Secret::new(redis.url()),
            cluster: false,
            prefix: "t:".into(),
            timeout_ms: 5_000,
            on_unavailable: OnUnavailable::FailClosed,
            fleet_size: 1,
            lease_ttl_ms: 10_000,
        };
        let fleet = FleetStore::start(settings).unwrap();
        let cfg: super::super::plan::LimitsConfig =
            serde_json::from_value(serde_json::json!({"requests_per_minute": 3, "max_in_flight": 10})).unwrap();
        let g = Gate::new(
            "openai",
            Limits::from_config(&cfg, "p").unwrap(),
            &Arc::new(KeyRing::new("openai", &[])),
            Some(&fleet),
        )
        .unwrap();
        assert!(g.batches());
        let c = g.claims(&Work::Chat(Box::new(Request::new("openai/m", "hi"))));
        let far = clock::now() + clock::from_ms(3_600_000);
        let answers = crate::runtime::handle().unwrap().block_on(g.admit_fleet_batch(&[(&c, far); 5]));
        assert_eq!(answers.len(), 4, "three admitted, the fourth answered, the fifth not asked: {answers:?}");
        assert!(answers[..3].iter().all(|a| matches!(a, Admit::Go(0))), "{answers:?}");
        match &answers[3] {
            Admit::Wait(until) => assert!(*until > clock::now() + clock::from_ms(15_000), "a minute / 3"),
            other => panic!("{other:?}"),
        }
        let stats = g.snapshot();
        assert_eq!(stats["requests"].remaining, 0, "{stats:?}");
        assert_eq!(g.store_stats().leases_held, 3, "one lease per admitted job");
        for _ in 0..3 {
            g.release(0);
        }
        assert_eq!(g.store_stats().leases_held, 0);
    }
}
