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
use crate::stats::LimitStats;
use crate::types::EmbedInput;

use super::headers::{observe, Window};
use super::inflight::{InFlight, Lease};
use super::memory::MemoryStore;
use super::plan::{estimate_tokens, LimitScope, Limits};
use super::{Acquired, Claim, Rate};
use reqwest::header::HeaderMap;

/// One bucket as the stats see it.
struct Bucket {
    /// Its name in a store (`<provider>:requests`, `<provider>:model:<m>:tokens`).
    name: String,
    rate: Rate,
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
    /// `max_in_flight`'s slots, if set.
    in_flight: Option<Arc<InFlight>>,
    /// With `scope: "key"`, the provider's keys (the pool's ring, which
    /// owns eligibility and weights): each has its own block of `block`
    /// buckets, key `k`'s at `k * block` (none: one shared block).
    keys: Option<Arc<KeyRing>>,
    block: usize,
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
    /// buckets with `scope: "key"`, at most [`MAX_SCOPED_KEYS`]).
    pub fn new(provider: &str, limits: Limits, keys: &Arc<KeyRing>) -> Gate {
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
        let in_flight = limits.max_in_flight.map(|n| Arc::new(InFlight::new(n)));
        let keys = scoped.then(|| keys.clone());
        Gate {
            provider: provider.to_string(),
            limits,
            table,
            store,
            provider_buckets,
            model_buckets,
            in_flight,
            keys,
            block,
        }
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
        let mut best: Option<(Check, LimitKey)> = None;
        for &key in &order[..n] {
            let check = self.take_buckets(claims, key, now);
            match check {
                Check::Fits => return (self.take_slot(claims, key), key),
                Check::Wait(w, _) => {
                    if !matches!(best, Some((Check::Wait(bw, _), _)) if bw <= w) {
                        best = Some((check, key));
                    }
                }
                Check::Never(_) | Check::Busy => {
                    if best.is_none() {
                        best = Some((check, key));
                    }
                }
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
        match &self.in_flight {
            Some(f) if !f.try_take() => {
                self.refund_buckets(claims, key);
                Check::Busy
            }
            _ => Check::Fits,
        }
    }

    /// Bucket `b` of a job's claims, in `key`'s block.
    fn at(&self, b: usize, key: LimitKey) -> usize {
        b + key as usize * self.block
    }

    /// Takes every bucket claim if all fit (one atomic step of the store).
    fn take_buckets(&self, claims: &JobClaims, key: LimitKey, now: Nanos) -> Check {
        let mut buf = [Claim { bucket: 0, rate: Rate::new(1, 1, 1), units: 0 }; MAX_CLAIMS];
        let mut n = 0;
        for (b, units) in self.units(claims) {
            let b = self.at(b, key);
            buf[n] = Claim { bucket: b, rate: self.table[b].rate, units };
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
        match self.take(claims, now) {
            (Check::Fits, key) => Some(key),
            _ => None,
        }
    }

    /// Takes `claims` at `now` if they fit, for a job whose wait may last
    /// until `expiry`.
    pub fn admit(&self, claims: &JobClaims, now: Nanos, expiry: Nanos) -> Admit {
        let (check, key) = self.take(claims, now);
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
                // the job expires.
                Admit::Wait(expiry.min(now.saturating_add(MAX_SLOT_WAIT)))
            }
        }
    }

    /// `max_in_flight`'s slots (what a worker waiting for one listens to).
    pub fn in_flight(&self) -> Option<&InFlight> {
        self.in_flight.as_deref()
    }

    /// Gives back the in-flight slot of a job whose request is over.
    pub fn release(&self) {
        if let Some(f) = &self.in_flight {
            f.give_back();
        }
    }

    /// What a stream's job hands its stream: settles the reservation with
    /// the stream's reported usage, and holds the job's in-flight slot
    /// until the stream is over.
    pub fn stream_watcher(self: &Arc<Self>, claims: JobClaims, key: LimitKey) -> Box<dyn StreamWatcher> {
        Box::new(StreamSettle {
            gate: self.clone(),
            claims: Some(claims),
            key,
            _slot: self.in_flight.clone().map(Lease),
        })
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
    pub fn take_retry(&self, claims: &JobClaims, key: LimitKey, now: Nanos) -> Option<Nanos> {
        let mut requests = JobClaims::EMPTY;
        for b in claims.buckets().filter(|&b| !self.table[b].tokens) {
            requests.push(Some(b));
        }
        match self.take_buckets(&requests, key, now) {
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
        for b in claims.buckets().filter(|&b| self.table[b].tokens) {
            let b = self.at(b, key);
            self.store.adjust_now(b, self.table[b].rate, delta);
        }
    }

    /// Gives back every claim (taken from `key`'s buckets) and the job's
    /// in-flight slot (a job whose request never went out).
    pub fn refund(&self, claims: &JobClaims, key: LimitKey) {
        self.refund_buckets(claims, key);
        self.release();
    }

    fn refund_buckets(&self, claims: &JobClaims, key: LimitKey) {
        for (b, units) in self.units(claims) {
            let b = self.at(b, key);
            self.store.adjust_now(b, self.table[b].rate, -(units.min(i64::MAX as u64) as i64));
        }
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
        for (bucket, window, out) in [(requests, seen.requests, others_out), (tokens, token_window, 0)] {
            let (Some(b), Some(Window { remaining: Some(left), reset_ms })) = (bucket, window) else { continue };
            let reset = if left == 0 { reset_ms.map_or(0, clock::from_ms) } else { 0 };
            self.store.observe_now(b, self.table[b].rate, left.saturating_sub(out), reset, now);
        }
        if let (429, Some(after), Some(b)) = (status, seen.retry_after_ms, requests) {
            self.store.observe_now(b, self.table[b].rate, 0, clock::from_ms(after), now);
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
        self.table
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let (remaining, reset_ns) = self.store.level_now(i, b.rate, now);
                let key = b.name.strip_prefix(&prefix).unwrap_or(&b.name).to_string();
                (
                    key,
                    LimitStats {
                        limit: b.rate.limit(),
                        period_ms: b.rate.period_ns() / clock::MS,
                        burst: b.rate.burst(),
                        remaining,
                        reset_ms: reset_ns.div_ceil(clock::MS),
                        waits: b.waits.load(Relaxed),
                        rate_limited: b.rate_limited.load(Relaxed),
                    },
                )
            })
            .chain(self.in_flight.as_ref().map(|f| {
                let stats = LimitStats {
                    limit: f.max(),
                    period_ms: 0,
                    burst: f.max(),
                    remaining: f.max().saturating_sub(f.taken()),
                    reset_ms: 0,
                    waits: f.waits.load(Relaxed),
                    rate_limited: 0,
                };
                ("in_flight".to_string(), stats)
            }))
            .collect()
    }
}

/// A stream's limits (see [`Gate::stream_watcher`]).
struct StreamSettle {
    gate: Arc<Gate>,
    /// Taken at the first reported usage (a stream settles once).
    claims: Option<JobClaims>,
    key: LimitKey,
    _slot: Option<Lease>,
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
        )
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
            Gate::new("openai", Limits::from_config(&cfg, "providers.openai.limits").unwrap(), &keys)
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
        let g = Gate::new("openai", Limits::from_config(&cfg, "p").unwrap(), &keys);
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
}
