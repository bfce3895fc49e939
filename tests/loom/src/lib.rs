//! A loom model of the job slot and the hand-off mailbox.
//!
//! `core/src/pool/slot.rs` holds the only `unsafe` code of a job's slot and
//! depends on nothing but its `sync` module. This crate compiles that very
//! file against loom's atomics, `Arc` and `UnsafeCell` (the `sync` module
//! below), and the tests explore the interleavings of the parties that race
//! for a job: the push that starts it and hands it to a parked worker, the
//! worker, a canceller (or eviction, expiry, shutdown: all `QUEUED → DONE`)
//! and the handle reading the outcome. Loom reports any unsynchronised
//! access to the cell as a data race, and the tests check that each job is
//! ended once, its outcome delivered once and read once, and no token leaks.

#[cfg(test)]
mod sync {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, Ordering};
    pub(crate) use loom::sync::Arc;
}

#[cfg(test)]
#[allow(dead_code)]
#[path = "../../../core/src/pool/slot.rs"]
mod slot;

#[cfg(test)]
mod model;
