//! The Redis store at run time (docs/architecture.md §10): one connection
//! for the whole gateway, its health, and a writer for the calls nobody
//! waits on.
//!
//! - Every call is bounded by `timeout_ms` (`redis.rs`). A call that fails
//!   or times out marks the store down; while it is down no call is sent
//!   (the gates apply `on_unavailable` at once instead of waiting out a
//!   timeout per job), except one probe a second, which marks it up again
//!   when it answers. The connection reconnects by itself.
//! - Settlements (refunds, charges after the fact) and what the provider's
//!   headers said go through a bounded queue to one writer task, so no job
//!   waits for them and no caller thread (a C submitter cancelling a job)
//!   needs the runtime. A write that finds the queue full, or the store
//!   down, is dropped and counted: a dropped refund only makes the fleet
//!   admit less; a dropped charge lets it admit up to that many units more
//!   (usage above the estimate, rare).
//!
//! Invariant: `up` is false from a failed call until a call answers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::clock::{self, Nanos};
use crate::error::{Error, Result};
use crate::stats::LimitsStoreStats;

use super::redis::{Arg, Op, RedisConn, Reply, Shape, StoreError};
use super::store_config::{OnUnavailable, StoreSettings};

/// How long a down store is left alone before one call probes it.
pub(crate) const PROBE_EVERY: Nanos = 1_000 * clock::MS;

/// Settlements waiting for the writer, at most.
const WRITE_QUEUE: usize = 4096;

/// One bucket of a write, owned (it outlives its caller).
pub(crate) struct OwnedArg {
    pub key: Arc<str>,
    pub shape: Shape,
    pub n: i64,
    pub reset_ns: Nanos,
}

/// A call nobody waits for.
struct Write {
    op: Op,
    args: Vec<OwnedArg>,
}

/// The connection and its health (shared with the writer task).
struct Link {
    conn: RedisConn,
    up: AtomicBool,
    errors: AtomicU64,
    /// Writes not applied (queue full, store down or failing).
    dropped: AtomicU64,
    /// While down: when the next probe may go.
    probe_at: AtomicU64,
}

impl Link {
    /// Whether a call may go now (up, or the one probe that is due).
    fn may_call(&self, now: Nanos) -> bool {
        if self.up.load(Relaxed) {
            return true;
        }
        let at = self.probe_at.load(Relaxed);
        now >= at && self.probe_at.compare_exchange(at, now + PROBE_EVERY, Relaxed, Relaxed).is_ok()
    }

    async fn call(&self, op: Op, args: &[Arg<'_>]) -> std::result::Result<Reply, StoreError> {
        if !self.may_call(clock::now()) {
            return Err(StoreError::Unavailable);
        }
        let r = self.conn.call(op, args, None).await;
        match &r {
            Ok(_) => self.up.store(true, Relaxed),
            Err(e) => {
                self.errors.fetch_add(1, Relaxed);
                if self.up.swap(false, Relaxed) {
                    self.probe_at.store(clock::now() + PROBE_EVERY, Relaxed);
                    log::warn!("bifrost: the limits store stopped answering ({e:?}); on_unavailable applies");
                }
            }
        }
        r
    }
}

/// The gateway's Redis store.
pub(crate) struct FleetStore {
    link: Arc<Link>,
    pub settings: StoreSettings,
    writes: mpsc::Sender<Write>,
}

impl FleetStore {
    /// Connects lazily (a gateway starts while Redis is down) and starts
    /// the writer on the shared runtime.
    pub fn start(settings: StoreSettings) -> Result<Arc<FleetStore>> {
        let handle = crate::runtime::handle()?;
        let _entered = handle.enter();
        let timeout = Duration::from_millis(settings.timeout_ms);
        // The message never quotes the URL (it may carry a password).
        let conn = RedisConn::new(settings.url.expose(), timeout)
            .map_err(|_| Error::config("limits_store.url", "is not a valid Redis URL"))?;
        let link = Arc::new(Link {
            conn,
            up: AtomicBool::new(true),
            errors: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            probe_at: AtomicU64::new(0),
        });
        let (writes, rx) = mpsc::channel(WRITE_QUEUE);
        handle.spawn(write_loop(link.clone(), rx));
        Ok(Arc::new(FleetStore { link, settings, writes }))
    }

    /// One call, bounded by `timeout_ms`.
    pub async fn call(&self, op: Op, args: &[Arg<'_>]) -> std::result::Result<Reply, StoreError> {
        self.link.call(op, args).await
    }

    /// Queues a call nobody waits for (dropped and counted when the queue
    /// is full).
    pub fn send(&self, op: Op, args: Vec<OwnedArg>) {
        if args.is_empty() {
            return;
        }
        if self.writes.try_send(Write { op, args }).is_err() {
            self.link.dropped.fetch_add(1, Relaxed);
        }
    }

    pub fn policy(&self) -> OnUnavailable {
        self.settings.on_unavailable
    }

    /// Whether the store is answering (else `on_unavailable` applies).
    pub fn is_up(&self) -> bool {
        self.link.up.load(Relaxed)
    }

    /// For stats.
    pub fn stats(&self) -> LimitsStoreStats {
        let up = self.is_up();
        LimitsStoreStats {
            kind: "redis".to_string(),
            up,
            errors: self.link.errors.load(Relaxed),
            dropped_writes: self.link.dropped.load(Relaxed),
            fallback_active: !up,
        }
    }
}

/// The writer: one call at a time, in order; ends when the store is
/// dropped (its sender with it).
async fn write_loop(link: Arc<Link>, mut rx: mpsc::Receiver<Write>) {
    while let Some(w) = rx.recv().await {
        let args: Vec<Arg<'_>> =
            w.args.iter().map(|a| Arg { key: &a.key, shape: a.shape, n: a.n, reset_ns: a.reset_ns }).collect();
        // A settlement is not retried (see the module doc).
        if link.call(w.op, &args).await.is_err() {
            link.dropped.fetch_add(1, Relaxed);
        }
    }
}
