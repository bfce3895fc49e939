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

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::clock::{self, Nanos};
use crate::error::{Error, Result};
use crate::pool::{Output, Work};
use crate::stats::LimitStats;
use crate::types::EmbedInput;

use super::memory::MemoryStore;
use super::plan::{estimate_tokens, Claims, Limits};
use super::{Acquired, Rate};

/// One bucket as the stats see it.
struct Bucket {
    rate: Rate,
    /// `requests_per_minute` etc., for messages.
    label: String,
    waits: AtomicU64,
    rate_limited: AtomicU64,
}

/// A pool's limits and their state.
pub(crate) struct Gate {
    provider: String,
    limits: Limits,
    store: MemoryStore,
    /// By store name (`<provider>:requests`, `<provider>:model:<m>:tokens`).
    buckets: BTreeMap<String, Bucket>,
}

/// What a gate says about the job at the queue's front.
#[derive(Debug)]
pub(crate) enum Admit {
    /// Its claims are taken: start it.
    Go,
    /// Not before this moment (the job stays queued).
    Wait(Nanos),
    /// Never, or not before its deadline: end it with this error.
    Refuse(Error),
}

impl Gate {
    pub fn new(provider: &str, limits: Limits) -> Gate {
        let mut buckets = BTreeMap::new();
        // Every bucket a request can claim, known up front (provider scope).
        for (name, rate) in limits.claims(provider, None, "", 0).iter_rates() {
            buckets.insert(name.to_string(), bucket(rate, name));
        }
        for model in limits.models.keys() {
            for (name, rate) in limits.claims(provider, None, model, 0).iter_rates() {
                buckets.entry(name.to_string()).or_insert_with(|| bucket(rate, name));
            }
        }
        Gate { provider: provider.to_string(), limits, store: MemoryStore::default(), buckets }
    }

    /// What `work` claims (computed once, at submit).
    pub fn claims(&self, work: &Work) -> Claims {
        let (model, tokens) = match work {
            Work::Chat(r) | Work::Stream(r) => {
                (work.model(), estimate_tokens(r, self.limits.default_completion_tokens))
            }
            Work::Embed(r) => (work.model(), embed_tokens(&r.input)),
        };
        self.limits.claims(&self.provider, None, model, tokens)
    }

    /// Takes `claims` at `now` if they fit now; no counts change otherwise
    /// (a push's try, before the job is queued).
    pub fn try_take(&self, claims: &Claims, now: Nanos) -> bool {
        claims.is_empty() || self.store.acquire_now(&claims.as_claims(), now) == Acquired::Admitted
    }

    /// Takes `claims` at `now` if they fit, for a job whose wait may last
    /// until `expiry`.
    pub fn admit(&self, claims: &Claims, now: Nanos, expiry: Nanos) -> Admit {
        if claims.is_empty() {
            return Admit::Go;
        }
        match self.store.acquire_now(&claims.as_claims(), now) {
            Acquired::Admitted => Admit::Go,
            Acquired::Wait(wait, i) => {
                let name = claims.name(i);
                let until = now.saturating_add(wait);
                if until > expiry {
                    return Admit::Refuse(self.refuse(name, Some(wait)));
                }
                if let Some(b) = self.buckets.get(name) {
                    b.waits.fetch_add(1, Relaxed);
                }
                Admit::Wait(until)
            }
            Acquired::Never(i) => Admit::Refuse(self.refuse(claims.name(i), None)),
        }
    }

    fn refuse(&self, name: &str, wait: Option<Nanos>) -> Error {
        let label = match self.buckets.get(name) {
            Some(b) => {
                b.rate_limited.fetch_add(1, Relaxed);
                b.label.clone()
            }
            None => name.to_string(),
        };
        Error::RateLimited {
            provider: self.provider.clone(),
            limit: label,
            retry_after_ms: wait.map(|w| w.div_ceil(clock::MS)),
        }
    }

    /// Settles a finished job's reservation: reported usage replaces the
    /// estimate; a job that never reached the provider gives it all back.
    pub fn settle(&self, claims: &Claims, outcome: &Result<Output>, now: Nanos) {
        let used = match outcome {
            Ok(Output::Chat(r)) => Some(r.usage.total_tokens),
            Ok(Output::Embed(r)) => Some(r.usage.total_tokens),
            // A stream's usage arrives at its end: the estimate stands.
            Ok(Output::Stream(_)) => None,
            Err(e) if never_sent(e) => {
                self.refund(claims, now);
                return;
            }
            Err(_) => None,
        };
        let Some(used) = used else { return };
        for (name, rate, reserved) in claims.token_claims() {
            let delta = used as i64 - reserved as i64;
            self.store.adjust_now(name, rate, delta, now);
        }
    }

    /// Gives back every claim (a job admitted but never started).
    pub fn refund(&self, claims: &Claims, now: Nanos) {
        for (name, rate, units) in claims.all() {
            self.store.adjust_now(name, rate, -(units as i64), now);
        }
    }

    /// The buckets' state now, by name without the provider prefix.
    pub fn snapshot(&self) -> BTreeMap<String, LimitStats> {
        let now = clock::now();
        let prefix = format!("{}:", self.provider);
        self.buckets
            .iter()
            .map(|(name, b)| {
                let (remaining, reset_ns) = self.store.level_now(name, b.rate, now);
                let key = name.strip_prefix(&prefix).unwrap_or(name).to_string();
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
            .collect()
    }
}

fn bucket(rate: Rate, name: &str) -> Bucket {
    Bucket { rate, label: label(name, rate), waits: AtomicU64::new(0), rate_limited: AtomicU64::new(0) }
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

/// A job that failed before any byte went to the provider: its
/// reservation is given back.
fn never_sent(e: &Error) -> bool {
    matches!(
        e,
        Error::Cancelled { .. } | Error::Shutdown { .. } | Error::CircuitOpen { .. } | Error::RateLimited { .. }
    )
}

/// An embedding request's tokens: about 4 bytes each.
fn embed_tokens(input: &EmbedInput) -> u64 {
    let bytes: u64 = match input {
        EmbedInput::One(s) => s.len() as u64,
        EmbedInput::Many(v) => v.iter().map(|s| s.len() as u64).sum(),
    };
    bytes.div_ceil(4).max(1)
}
