//! Admission limits (docs/architecture.md §10): token buckets for requests
//! and tokens, and `max_in_flight`, kept in a store that one process
//! ([`memory::MemoryStore`]) or a whole fleet (Redis) shares.
//!
//! - `headers`: what a response's rate-limit headers say (OpenAI, Anthropic,
//!   Retry-After), as untrusted input.
//! - `plan`: the `limits` config section, validated, and the claims (one
//!   request, its estimated tokens) a request makes on its buckets.
//! - `gcra`: one bucket, in exact integer arithmetic, with the bound
//!   `admitted ≤ burst + limit·t/period` over any interval.
//! - `memory`: the one-process store, all-or-nothing over the several
//!   buckets one job needs (its key's requests and tokens, its model's):
//!   either every claim is taken, or none is and the answer is the longest
//!   wait among them, computed from the buckets (no polling). Called
//!   synchronously, inside the queue lock.
//! - `inflight`: `max_in_flight`'s slots in one process.
//! - The Redis store: `store_config` (the `limits_store` section), `redis`
//!   (the scripts and one call of them: the same arithmetic, exact in Lua's
//!   doubles, one atomic call per check-and-take on the server's clock),
//!   `fleet` (the connection, its health and `on_unavailable`, the writer
//!   of settlements, the fleet's `max_in_flight` leases) and `health`
//!   (key cooldowns and circuit breakers shared by the fleet). Called
//!   asynchronously, outside the queue lock.
//! - `gate`: a pool's admission gate (the queue asks it before a job
//!   starts): claims, key choice with `scope: "key"`, settlement, and
//!   learning from the provider's headers, on whichever store.

pub(crate) mod fleet;
pub(crate) mod gate;
pub(crate) mod gcra;
pub(crate) mod headers;
pub(crate) mod health;
pub(crate) mod inflight;
pub(crate) mod memory;
pub(crate) mod plan;
pub(crate) mod redis;
pub(crate) mod store_config;

/// A real `redis-server` for the store's unit tests (the integration
/// tests' harness).
#[cfg(test)]
#[path = "../../tests/support/redis_server.rs"]
pub(crate) mod redis_server;

use crate::clock::Nanos;

pub(crate) use gcra::Rate;

/// One bucket a job needs `units` of. Buckets are numbered by their
/// gate's table (the Redis store names each: `{bifrost:openai}:requests`).
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
