//! Admission limits (docs/architecture.md §10): token buckets for requests
//! and tokens, kept in a store that one process ([`memory::MemoryStore`])
//! or a whole fleet (a Redis store, next) shares.
//!
//! - `headers`: what a response's rate-limit headers say (OpenAI, Anthropic,
//!   Retry-After), as untrusted input.
//! - `plan`: the `limits` config section, validated, and the claims (one
//!   request, its estimated tokens) a request makes on its buckets.
//! - `gcra`: one bucket, in exact integer arithmetic, with the bound
//!   `admitted ≤ burst + limit·t/period` over any interval.
//! - [`LimitStore`]: what a store does, all-or-nothing over the several
//!   buckets one job needs (its key's requests and tokens, its model's):
//!   either every claim is taken, or none is and the answer is the longest
//!   wait among them, computed from the buckets (no polling).
//! - `inflight`: `max_in_flight`'s slots, and the lease a stream holds.
//! - `gate`: a pool's admission gate (the queue asks it before a job
//!   starts): claims, key choice with `scope: "key"`, settlement, and
//!   learning from the provider's headers.
//!
//! One process only for now: the gate uses the memory store synchronously.

pub(crate) mod fleet;
pub(crate) mod gate;
pub(crate) mod gcra;
pub(crate) mod headers;
pub(crate) mod health;
pub(crate) mod inflight;
pub(crate) mod memory;
pub(crate) mod plan;
pub(crate) mod store_config;
// Wired to the gate by the `limits_store` config (next step).
#[allow(dead_code)]
pub(crate) mod redis;

use std::future::Future;

use crate::clock::Nanos;

pub(crate) use gcra::Rate;

/// One bucket a job needs `units` of. Buckets are numbered by their
/// gate's table; a fleet store maps each number to the bucket's name there
/// (`<provider>:requests`, `<provider>:model:<m>:tokens`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claim {
    pub bucket: usize,
    pub rate: Rate,
    pub units: u64,
}

/// What a store did with a set of claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// Every claim was taken.
    Admitted,
    /// None was taken; all would be admitted after this many ns (the
    /// longest of the waits), if nothing else takes meanwhile; the index
    /// of the claim whose bucket needs that long.
    Wait(Nanos, usize),
    /// None was taken; claim `.0` is larger than its bucket's burst.
    Never(usize),
}

/// What a limits store does (the memory store and the Redis store behind
/// one interface). Every call is one atomic step on the store's state.
// The gate calls the memory store's synchronous twins; this async face is
// what the Redis store (issue 17) implements.
#[allow(dead_code)]
pub(crate) trait LimitStore: Send + Sync {
    /// Takes every claim at `now`, or none (see [`Acquired`]).
    fn acquire(&self, claims: &[Claim], now: Nanos) -> impl Future<Output = Acquired> + Send;

    /// Settles a reservation: `delta > 0` charges more units (the provider
    /// reported more than was reserved), `delta < 0` refunds them. The
    /// store may apply it later, but before its next take from the bucket.
    fn adjust(&self, bucket: usize, rate: Rate, delta: i64) -> impl Future<Output = ()> + Send;

    /// Lowers a bucket to the provider's view (`remaining` units, full
    /// again in `reset_ns`).
    fn observe(
        &self,
        bucket: usize,
        rate: Rate,
        remaining: u64,
        reset_ns: Nanos,
        now: Nanos,
    ) -> impl Future<Output = ()> + Send;

    /// Units free now and ns until full (for stats).
    fn level(&self, bucket: usize, rate: Rate, now: Nanos) -> impl Future<Output = (u64, Nanos)> + Send;
}
