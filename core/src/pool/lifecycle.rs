//! A pool's life: starting its tasks, closing it, draining it and
//! aborting it, and knowing when its last task is gone.
//!
//! A pool runs `concurrency` workers (more under `scaling`), a reaper, a
//! watchdog, and a scaler when scaling is on. Each task holds a
//! [`TaskAlive`] for as long as it runs, however it ends, so
//! [`PoolShared::wait_workers`] returning true means every job the pool
//! accepted has been counted and delivered. `close` stops new submits and
//! lets workers drain the queue; `abort_now` also ends every queued and
//! running job with SHUTDOWN.

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::config::{ProviderConfig, ProviderKind};
use crate::error::{Error, Result};
use crate::providers::ProviderImpl;
use crate::stats::{Outcome, PoolCounters};

use super::queue::JobQueue;
use super::{breaker, keys, ledger, probe, reaper, scaler, watchdog, worker, PoolLink, PoolShared};

/// A one-way signal: once tripped it stays tripped, and wakes every waiter.
#[derive(Default)]
pub(crate) struct Latch {
    tripped: AtomicBool,
    notify: Notify,
}

impl Latch {
    pub fn trip(&self) {
        self.tripped.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_tripped(&self) -> bool {
        self.tripped.load(Ordering::Acquire)
    }

    /// Resolves once the latch is tripped.
    pub async fn tripped(&self) {
        loop {
            let mut n = pin!(self.notify.notified());
            n.as_mut().enable();
            if self.is_tripped() {
                return;
            }
            n.await;
        }
    }
}

/// Counts a pool task as alive until it ends, however it ends.
pub(crate) struct TaskAlive {
    pool: Arc<PoolShared>,
    is_worker: bool,
}

impl TaskAlive {
    /// A worker task of `pool` (counted in `workers_alive` as well).
    pub fn worker(pool: &Arc<PoolShared>) -> TaskAlive {
        TaskAlive { pool: pool.clone(), is_worker: true }
    }

    /// Any other task of `pool` (reaper, watchdog, scaler).
    pub fn helper(pool: &Arc<PoolShared>) -> TaskAlive {
        TaskAlive { pool: pool.clone(), is_worker: false }
    }

    /// A retiring worker that was already counted out of `workers_alive`
    /// (by the scaler's `try_retire`): its end no longer counts there.
    pub fn counted_out(&mut self) {
        self.is_worker = false;
    }
}

impl Drop for TaskAlive {
    fn drop(&mut self) {
        if self.is_worker {
            self.pool.workers_alive.fetch_sub(1, Ordering::AcqRel);
        }
        if self.pool.tasks_alive.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.pool.workers_gone.notify_waiters();
        }
    }
}

impl PoolShared {
    /// Builds the pool and spawns its workers on the shared runtime.
    pub fn start(
        name: &str,
        kind: ProviderKind,
        cfg: &ProviderConfig,
        buffers: Arc<crate::objpool::BufferPool>,
        fleet: Option<&Arc<crate::limits::fleet::FleetStore>>,
        fleet_health: Option<&Arc<crate::limits::health::FleetHealth>>,
    ) -> Result<Arc<PoolShared>> {
        let provider = ProviderImpl::new(name, kind, cfg, buffers)?;
        let probe_model = cfg.probe_model(name, kind)?;
        let handle = crate::runtime::handle()?;
        let (min_workers, max_workers) = match &cfg.scaling {
            Some(sc) => (sc.min_workers, sc.max_workers),
            None => (cfg.concurrency_and_buffer_size.concurrency, cfg.concurrency_and_buffer_size.concurrency),
        };
        let concurrency = cfg.concurrency_and_buffer_size.concurrency.clamp(min_workers, max_workers);
        let scaling = cfg.scaling.clone().filter(|sc| sc.min_workers < sc.max_workers);
        let wait_timeout = Duration::from_millis(cfg.queue.wait_timeout_ms);
        let keys = Arc::new(keys::KeyRing::new(name, &cfg.keys));
        let gate = match &cfg.limits {
            Some(l) => {
                let path = format!("providers.{name}.limits");
                let limits = crate::limits::plan::Limits::from_config(l, &path)?;
                limits.check_keys(cfg.keys.len(), &path)?;
                Some(Arc::new(crate::limits::gate::Gate::new(name, limits, &keys, fleet)?))
            }
            None => None,
        };
        let pool = Arc::new_cyclic(|me| PoolShared {
            name: name.to_string(),
            policy: cfg.queue.policy,
            wait_timeout,
            min_workers,
            max_workers,
            scaling: scaling.clone(),
            queue: JobQueue::new(cfg.concurrency_and_buffer_size.buffer_size, wait_timeout, gate.clone()),
            counters: PoolCounters::new(),
            ledger: ledger::Ledger::default(),
            provider,
            keys: keys.clone(),
            breaker: breaker::Breaker::new(cfg.circuit_breaker.clone()),
            probe: parking_lot::Mutex::new(if probe_model.is_some() {
                probe::ProbeState::Pending
            } else {
                probe::ProbeState::Off
            }),
            worker_slots: parking_lot::Mutex::new(Vec::new()),
            last: Default::default(),
            network: cfg.network_config.clone(),
            failover: cfg.failover,
            retry_gate: Default::default(),
            abort: Latch::default(),
            closing: Latch::default(),
            workers_alive: AtomicUsize::new(concurrency),
            // Workers, the reaper, the watchdog and the scaler if any.
            tasks_alive: AtomicUsize::new(concurrency + 2 + usize::from(scaling.is_some())),
            workers_gone: Notify::new(),
            links: std::array::from_fn(|_| Arc::new(PoolLink { pool: me.clone() })),
            gate,
            fleet_health: fleet_health.cloned(),
        });
        for _ in 0..concurrency {
            handle.spawn(worker::run(pool.clone()));
        }
        handle.spawn(reaper::run(pool.clone()));
        handle.spawn(watchdog::run(pool.clone()));
        if let Some(model) = probe_model {
            handle.spawn(probe::run(pool.clone(), model));
        }
        if let Some(sc) = scaling {
            handle.spawn(scaler::run(pool.clone(), sc));
        }
        Ok(pool)
    }

    /// Stops accepting jobs; workers drain what is queued, then exit.
    pub fn close(&self) {
        self.queue.close();
        self.closing.trip();
    }

    /// Waits until every task of the pool exited, or `deadline` passed;
    /// true if they did.
    pub async fn wait_workers(&self, deadline: Instant) -> bool {
        let Ok(handle) = crate::runtime::handle() else { return false };
        let mut sleep = {
            let _g = handle.enter();
            Box::pin(tokio::time::sleep_until(deadline.into()))
        };
        loop {
            let mut gone = pin!(self.workers_gone.notified());
            gone.as_mut().enable();
            if self.tasks_alive.load(Ordering::Acquire) == 0 {
                return true;
            }
            tokio::select! {
                _ = gone => {}
                _ = sleep.as_mut() => return self.tasks_alive.load(Ordering::Acquire) == 0,
            }
        }
    }

    /// Hard stop: running jobs end SHUTDOWN, queued ones too.
    pub fn abort_now(&self) {
        self.queue.close();
        self.closing.trip();
        self.abort.trip();
        for ending in self.queue.drain_all() {
            let err = Error::Shutdown { provider: Some(self.name.clone()) };
            self.finish(ending, Err(err), Outcome::Failed);
        }
    }

    /// Waits, from synchronous code, up to `limit` for the pool's tasks to
    /// end (after an abort they end at their next poll), so a process that
    /// exits right after dropping a gateway leaves nothing behind. Returns
    /// at once on a runtime thread, where waiting could block them.
    pub fn wait_tasks_blocking(&self, limit: Duration) {
        if crate::runtime::on_runtime_thread() {
            return;
        }
        let until = Instant::now() + limit;
        while self.tasks_alive.load(Ordering::Acquire) > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Adds `n` workers (scale-up); none once the pool is closing.
    pub fn spawn_workers(self: &Arc<Self>, n: usize) {
        let Ok(handle) = crate::runtime::handle() else { return };
        if self.queue.is_closed() {
            return;
        }
        self.workers_alive.fetch_add(n, Ordering::AcqRel);
        self.tasks_alive.fetch_add(n, Ordering::AcqRel);
        for _ in 0..n {
            handle.spawn(worker::run(self.clone()));
        }
    }
}
