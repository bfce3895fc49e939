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
//!   needs the runtime. The writer merges what is queued ([`write_loop`]). A write that finds the queue full, or the store
//!   down, is dropped and counted: a dropped refund only makes the fleet
//!   admit less; a dropped charge lets it admit up to that many units more
//!   (usage above the estimate, rare).
//!
//! - `max_in_flight` across the fleet is a set of leases in Redis, taken
//!   with a job's claims in one call (`redis_script.lua`). This process
//!   renews the leases it holds every third of `lease_ttl_ms`
//!   ([`renew_loop`]), so a process that dies (SIGKILL) loses its leases
//!   within one TTL, never forever; a release removes one. A process's
//!   leases are interchangeable, so it keeps only their names, and a job
//!   ending releases any one of them.
//!
//! Invariant: `up` is false from a failed call until a call answers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::clock::{self, Nanos};
use crate::error::{Error, Result};
use crate::stats::LimitsStoreStats;

use super::redis::{Arg, JobArg, LeaseArg, LeaseOp, LeaseSet, Op, RedisConn, Reply, Shape, StoreError, TakeReply};
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
enum Write {
    Buckets { op: Op, args: Vec<OwnedArg> },
    Release { key: Arc<str>, member: String },
    Health { base: String, args: Vec<String> },
}

/// Most lease names one renewal call carries.
const RENEW_CHUNK: usize = 512;

/// The connection and its health (shared with the writer task).
struct Link {
    conn: RedisConn,
    up: AtomicBool,
    errors: AtomicU64,
    /// Writes not applied (queue full, store down or failing).
    dropped: AtomicU64,
    /// A health change was not applied: the fleet may not know this
    /// process's key cooldowns or open breakers (re-published, see
    /// `limits::health`).
    health_lost: AtomicBool,
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

    /// Runs one store call if one may go now (see [`Link::may_call`]) and
    /// records its outcome in the health. Every call goes through here.
    async fn guarded<T>(
        &self,
        call: impl std::future::Future<Output = std::result::Result<T, StoreError>>,
    ) -> std::result::Result<T, StoreError> {
        if !self.may_call(clock::now()) {
            return Err(StoreError::Unavailable);
        }
        let r = call.await;
        self.note(&r);
        r
    }

    async fn call(
        &self,
        op: Op,
        args: &[Arg<'_>],
        lease: Option<LeaseArg<'_>>,
    ) -> std::result::Result<Reply, StoreError> {
        self.guarded(self.conn.call(op, args, lease, None)).await
    }

    async fn leases(
        &self,
        op: LeaseOp,
        key: &str,
        ttl_ms: u64,
        members: &[String],
    ) -> std::result::Result<u64, StoreError> {
        self.guarded(self.conn.leases(op, key, ttl_ms, members)).await
    }

    async fn health(&self, base: &str, args: &[String]) -> std::result::Result<Vec<i64>, StoreError> {
        self.guarded(self.conn.health(base, args)).await
    }

    /// Records a call's outcome in the health.
    fn note<T>(&self, r: &std::result::Result<T, StoreError>) {
        match r {
            Ok(_) => self.up.store(true, Relaxed),
            Err(e) => {
                self.errors.fetch_add(1, Relaxed);
                if self.up.swap(false, Relaxed) {
                    self.probe_at.store(clock::now() + PROBE_EVERY, Relaxed);
                    log::warn!("bifrost: the limits store stopped answering ({e:?}); on_unavailable applies");
                }
            }
        }
    }
}

/// One gate's `max_in_flight` across the fleet: the leases this process
/// holds in the set `key`.
pub(crate) struct FleetLeases {
    pub key: Arc<str>,
    pub max: u64,
    held: Mutex<Vec<String>>,
    /// Leases the store had expired before this process renewed them (it
    /// was stalled past the TTL): the fleet may have run over `max` then.
    lost: AtomicU64,
}

impl FleetLeases {
    /// Records a lease the store gave this process.
    pub fn hold(&self, member: String) {
        self.held.lock().push(member);
    }

    /// Leases held now.
    pub fn count(&self) -> u64 {
        self.held.lock().len() as u64
    }

    pub fn lost(&self) -> u64 {
        self.lost.load(Relaxed)
    }
}

/// The gateway's Redis store.
pub(crate) struct FleetStore {
    link: Arc<Link>,
    pub settings: StoreSettings,
    writes: mpsc::Sender<Write>,
    /// Every gate's leases, for the renewer.
    leases: Arc<Mutex<Vec<Weak<FleetLeases>>>>,
    /// This process's lease names: `<instance>:<n>`.
    instance: String,
    next_member: AtomicU64,
}

impl FleetStore {
    /// Connects lazily (a gateway starts while Redis is down) and starts
    /// the writer on the shared runtime.
    pub fn start(settings: StoreSettings) -> Result<Arc<FleetStore>> {
        let handle = crate::runtime::handle()?;
        let _entered = handle.enter();
        let timeout = Duration::from_millis(settings.timeout_ms);
        // The message never quotes the URL (it may carry a password).
        let conn = RedisConn::new(settings.url.expose(), settings.cluster, timeout)
            .map_err(|_| Error::config("limits_store.url", "is not a valid Redis URL"))?;
        let link = Arc::new(Link {
            conn,
            up: AtomicBool::new(true),
            errors: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            health_lost: AtomicBool::new(false),
            probe_at: AtomicU64::new(0),
        });
        let (writes, rx) = mpsc::channel(WRITE_QUEUE);
        handle.spawn(write_loop(link.clone(), rx));
        let leases = Arc::new(Mutex::new(Vec::new()));
        handle.spawn(renew_loop(link.clone(), Arc::downgrade(&leases), settings.lease_ttl_ms));
        let instance = format!("{:x}-{:016x}", std::process::id(), fastrand::u64(..));
        Ok(Arc::new(FleetStore { link, settings, writes, leases, instance, next_member: AtomicU64::new(0) }))
    }

    /// A gate's leases in the set `key`, renewed while this store lives.
    pub fn leases(&self, key: Arc<str>, max: u64) -> Arc<FleetLeases> {
        let l = Arc::new(FleetLeases { key, max, held: Mutex::new(Vec::new()), lost: AtomicU64::new(0) });
        let mut all = self.leases.lock();
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&l));
        l
    }

    /// A fresh lease name, unique in the fleet.
    pub fn new_member(&self) -> String {
        format!("{}:{}", self.instance, self.next_member.fetch_add(1, Relaxed))
    }

    pub fn lease_ttl_ms(&self) -> u64 {
        self.settings.lease_ttl_ms
    }

    /// Gives back one of `leases` (any: they are interchangeable).
    pub fn release(&self, leases: &FleetLeases) {
        let Some(member) = leases.held.lock().pop() else { return };
        if self.writes.try_send(Write::Release { key: leases.key.clone(), member }).is_err() {
            // It expires within one TTL.
            self.link.dropped.fetch_add(1, Relaxed);
        }
    }

    /// One call, bounded by `timeout_ms`.
    pub async fn call(
        &self,
        op: Op,
        args: &[Arg<'_>],
        lease: Option<LeaseArg<'_>>,
    ) -> std::result::Result<Reply, StoreError> {
        self.link.call(op, args, lease).await
    }

    /// A batch take (`redis.rs`), bounded.
    pub async fn take(
        &self,
        buckets: &[Arg<'_>],
        jobs: &[JobArg<'_>],
        lease: Option<LeaseSet<'_>>,
    ) -> std::result::Result<TakeReply, StoreError> {
        self.link.guarded(self.link.conn.take(buckets, jobs, lease, None)).await
    }

    /// Queues a call nobody waits for (dropped and counted when the queue
    /// is full).
    pub fn send(&self, op: Op, args: Vec<OwnedArg>) {
        if args.is_empty() {
            return;
        }
        if self.writes.try_send(Write::Buckets { op, args }).is_err() {
            self.link.dropped.fetch_add(1, Relaxed);
        }
    }

    /// One call of the health script (`redis_health.lua`), bounded.
    pub async fn health(&self, base: &str, args: &[String]) -> std::result::Result<Vec<i64>, StoreError> {
        self.link.health(base, args).await
    }

    /// Queues a health change nobody waits for.
    pub fn send_health(&self, base: String, args: Vec<String>) {
        if self.writes.try_send(Write::Health { base, args }).is_err() {
            self.link.dropped.fetch_add(1, Relaxed);
            self.link.health_lost.store(true, Relaxed);
        }
    }

    /// Whether a health change was lost since the last call (and so this
    /// process's health must be published again).
    pub fn take_health_lost(&self) -> bool {
        self.link.health_lost.load(Relaxed) && self.link.health_lost.swap(false, Relaxed)
    }

    /// A connection subscribed to `channel`.
    pub async fn subscribe(&self, channel: &str) -> std::result::Result<redis::aio::PubSub, StoreError> {
        self.link.conn.subscribe(channel).await
    }

    /// This process's name in the fleet (lease and probe holder).
    pub fn instance(&self) -> &str {
        &self.instance
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
            ..LimitsStoreStats::default()
        }
    }
}

/// One gate's adjustments in a writer batch: bucket → (shape, summed
/// delta, writes merged).
type Merged = BTreeMap<Arc<str>, (Shape, i64, u64)>;

/// Writes one writer call takes from the queue at most.
const WRITE_BATCH: usize = 512;

/// The writer: ends when the store is dropped (its sender with it). It
/// takes what is queued (up to [`WRITE_BATCH`]) and merges it: the
/// adjustments of one bucket are summed, and those of one gate (one hash
/// tag) go in one call; the releases of one lease set go in one call; the
/// rest go one by one. So settlements keep up with admission however many
/// jobs a second finish.
async fn write_loop(link: Arc<Link>, mut rx: mpsc::Receiver<Write>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let mut adjust: BTreeMap<&str, Merged> = BTreeMap::new();
        let mut releases: BTreeMap<Arc<str>, Vec<String>> = BTreeMap::new();
        let mut others = Vec::new();
        for w in &batch {
            match w {
                Write::Buckets { op: Op::Adjust, args } => {
                    for a in args {
                        let tag = a.key.split_once('}').map_or(&*a.key, |(t, _)| t);
                        let e = adjust.entry(tag).or_default().entry(a.key.clone()).or_insert((a.shape, 0, 0));
                        (e.1, e.2) = (e.1.saturating_add(a.n), e.2 + 1);
                    }
                }
                Write::Release { key, member } => releases.entry(key.clone()).or_default().push(member.clone()),
                other => others.push(other),
            }
        }
        // A settlement is not retried (see the module doc); a lease not
        // released expires within one TTL.
        for buckets in adjust.values() {
            let args: Vec<Arg<'_>> = buckets
                .iter()
                .filter(|(_, (_, n, _))| *n != 0)
                .map(|(key, &(shape, n, _))| Arg { key, shape, n, reset_ns: 0 })
                .collect();
            if !args.is_empty() && link.call(Op::Adjust, &args, None).await.is_err() {
                link.dropped.fetch_add(buckets.values().map(|v| v.2).sum(), Relaxed);
            }
        }
        for (key, members) in &releases {
            for chunk in members.chunks(RENEW_CHUNK) {
                if link.leases(LeaseOp::Release, key, 0, chunk).await.is_err() {
                    link.dropped.fetch_add(chunk.len() as u64, Relaxed);
                }
            }
        }
        for w in others {
            let failed = match w {
                Write::Buckets { op, args } => {
                    let args: Vec<Arg<'_>> = args
                        .iter()
                        .map(|a| Arg { key: &a.key, shape: a.shape, n: a.n, reset_ns: a.reset_ns })
                        .collect();
                    link.call(*op, &args, None).await.is_err()
                }
                Write::Health { base, args } => {
                    let lost = link.health(base, args).await.is_err();
                    if lost {
                        link.health_lost.store(true, Relaxed);
                    }
                    lost
                }
                // (Merged above.)
                Write::Release { .. } => false,
            };
            if failed {
                link.dropped.fetch_add(1, Relaxed);
            }
        }
    }
}

/// The renewer: every third of the TTL, moves the expiry of every lease
/// this process holds; ends when the store is dropped.
async fn renew_loop(link: Arc<Link>, leases: Weak<Mutex<Vec<Weak<FleetLeases>>>>, ttl_ms: u64) {
    let every = Duration::from_millis((ttl_ms / 3).max(1));
    loop {
        tokio::time::sleep(every).await;
        let Some(all) = leases.upgrade() else { return };
        let sets: Vec<Arc<FleetLeases>> = all.lock().iter().filter_map(Weak::upgrade).collect();
        drop(all);
        for set in sets {
            let members = set.held.lock().clone();
            for chunk in members.chunks(RENEW_CHUNK) {
                if let Ok(kept) = link.leases(LeaseOp::Renew, &set.key, ttl_ms, chunk).await {
                    set.lost.fetch_add((chunk.len() as u64).saturating_sub(kept), Relaxed);
                }
            }
        }
    }
}
