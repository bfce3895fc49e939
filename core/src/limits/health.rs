//! Provider health shared by the fleet through the Redis store
//! (docs/architecture.md §10): when one process learns that a key is
//! rejected (401/403) or that a provider's circuit breaker opened, every
//! process stops sending there; a half-open breaker lets **one** probe go
//! across the fleet.
//!
//! - Each change is one call of `redis_health.lua`, which stores the state
//!   in a key that expires with it (`{<prefix><provider>}:health:open`,
//!   `…:cooldown:<i>`) and publishes it on `<prefix>health`.
//! - Every process listens on that channel ([`listen`]) and applies what it
//!   hears to its own pools. On (re)connecting it first reads the stored
//!   state, so a change published while it was away is not missed, and
//!   reads it again when a pool registers after that read (the listener
//!   starts before the gateway's pools exist).
//! - The probe: a process whose breaker would send a half-open probe first
//!   takes the fleet's probe lock (`…:probe`, held for one attempt's
//!   timeout); a process that does not get it fails fast, as if open. The
//!   probe's success publishes `closed` (every breaker closes); its failure
//!   re-opens the breaker everywhere.
//! - With the store down, each process keeps its own health (its own
//!   probe), as without a store. A change that did not reach the store
//!   (down, failing, or the write queue full) is not lost: on every
//!   (re)connection, and whenever a health write failed, each process
//!   publishes again what it still holds — every key still cooling down
//!   and an open breaker, with the time they have left — so the fleet
//!   hears of a 401 met while Redis was away once it is back.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::Mutex;

use crate::pool::PoolShared;

use super::fleet::FleetStore;

/// The fleet's health, for one gateway's pools.
pub(crate) struct FleetHealth {
    store: Arc<FleetStore>,
    channel: String,
    pools: Mutex<HashMap<String, Weak<PoolShared>>>,
    /// A pool registered after the last read of the stored state (the
    /// listener starts before the gateway's pools are registered): read it
    /// again, or a change published before this process subscribed is
    /// never applied.
    resync_needed: std::sync::atomic::AtomicBool,
}

impl FleetHealth {
    /// Starts listening (on the shared runtime) for the fleet's changes.
    pub fn start(store: &Arc<FleetStore>) -> crate::error::Result<Arc<FleetHealth>> {
        let channel = format!("{}health", store.settings.prefix);
        let health = Arc::new(FleetHealth {
            store: store.clone(),
            channel,
            pools: Mutex::new(HashMap::new()),
            resync_needed: std::sync::atomic::AtomicBool::new(false),
        });
        crate::runtime::handle()?.spawn(listen(Arc::downgrade(&health)));
        Ok(health)
    }

    /// Applies the fleet's changes to `pool` from now on.
    pub fn register(&self, pool: &Arc<PoolShared>) {
        self.pools.lock().insert(pool.name.clone(), Arc::downgrade(pool));
        self.resync_needed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn base(&self, provider: &str) -> String {
        format!("{{{}{provider}}}:health", self.store.settings.prefix)
    }

    fn send(&self, provider: &str, op: &str, rest: &[String]) {
        let mut args = vec![op.to_string(), self.channel.clone(), provider.to_string()];
        args.extend_from_slice(rest);
        self.store.send_health(self.base(provider), args);
    }

    /// Key `i` of `provider` was rejected: cooling down for `ms` fleet-wide.
    pub fn key_rejected(&self, provider: &str, i: usize, ms: u64) {
        self.send(provider, "cooldown", &[i.to_string(), ms.max(1).to_string()]);
    }

    /// `provider`'s breaker opened for `ms`.
    pub fn opened(&self, provider: &str, ms: u64) {
        self.send(provider, "open", &[ms.max(1).to_string()]);
    }

    /// `provider`'s breaker closed after a successful probe.
    pub fn closed(&self, provider: &str) {
        self.send(provider, "closed", &[]);
    }

    /// Takes the fleet's one half-open probe of `provider` for `ms`; true
    /// when this process may send it (also when the store does not answer:
    /// then each process probes for itself).
    pub async fn take_probe(&self, provider: &str, ms: u64) -> bool {
        let args = [
            "probe".to_string(),
            self.channel.clone(),
            provider.to_string(),
            self.store.instance().to_string(),
            ms.max(1).to_string(),
        ];
        match self.store.health(&self.base(provider), &args).await {
            Ok(v) => v.first() == Some(&1),
            Err(_) => true,
        }
    }

    /// Applies one published change.
    fn apply(&self, message: &str) {
        let mut words = message.split(' ');
        let (Some(op), Some(provider)) = (words.next(), words.next()) else { return };
        let Some(pool) = self.pools.lock().get(provider).and_then(Weak::upgrade) else { return };
        let num = |w: Option<&str>| w.and_then(|w| w.parse::<u64>().ok());
        match op {
            "cooldown" => {
                if let (Some(i), Some(ms)) = (num(words.next()), num(words.next())) {
                    pool.keys.cool_down(i as usize, ms);
                }
            }
            "open" => {
                if let Some(ms) = num(words.next()) {
                    pool.breaker.force_open(ms);
                }
            }
            "closed" => pool.breaker.force_close(),
            _ => {}
        }
    }

    /// Publishes again this process's key cooldowns and open breakers,
    /// with the time they have left (changes the store may have missed).
    fn republish(&self) {
        let pools: Vec<Arc<PoolShared>> = self.pools.lock().values().filter_map(Weak::upgrade).collect();
        for pool in pools {
            for i in 0..pool.keys.len() {
                let left = pool.keys.cooldown_left_ms(i);
                if left > 0 {
                    self.key_rejected(&pool.name, i, left);
                }
            }
            if let Some(left) = pool.breaker.open_left_ms() {
                self.opened(&pool.name, left);
            }
        }
    }

    /// Reads the stored state of every pool (after (re)connecting); false
    /// when the store did not answer (then it is read again later).
    async fn resync(&self) -> bool {
        let pools: Vec<Arc<PoolShared>> = self.pools.lock().values().filter_map(Weak::upgrade).collect();
        for pool in pools {
            let n = pool.keys.len();
            let args = ["read".to_string(), self.channel.clone(), pool.name.clone(), n.to_string()];
            let Ok(v) = self.store.health(&self.base(&pool.name), &args).await else { return false };
            if let Some(&open) = v.first().filter(|&&ms| ms > 0) {
                pool.breaker.force_open(open as u64);
            }
            for (i, &ms) in v.iter().skip(1).enumerate().take(n) {
                if ms > 0 {
                    pool.keys.cool_down(i, ms as u64);
                }
            }
        }
        true
    }
}

/// Listens for the fleet's changes until the gateway is dropped;
/// reconnects by itself (every half second while the store is away).
async fn listen(health: Weak<FleetHealth>) {
    loop {
        let Some(h) = health.upgrade() else { return };
        let subscribed = h.store.subscribe(&h.channel).await;
        let mut ps = match subscribed {
            Ok(ps) => ps,
            Err(_) => {
                drop(h);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        h.resync_needed.store(false, std::sync::atomic::Ordering::SeqCst);
        let mut synced = h.resync().await;
        h.republish();
        let channel = h.channel.clone();
        drop(h);
        let mut messages = ps.on_message();
        // A message at least every few seconds is not promised: wake up to
        // notice a dropped gateway.
        loop {
            match tokio::time::timeout(Duration::from_secs(1), messages.next()).await {
                Ok(Some(msg)) => {
                    let Some(h) = health.upgrade() else { return };
                    if msg.get_channel_name() == channel {
                        if let Ok(text) = msg.get_payload::<String>() {
                            h.apply(&text);
                        }
                    }
                }
                Ok(None) => break, // the connection ended: subscribe again
                Err(_) => {
                    if health.strong_count() == 0 {
                        return;
                    }
                }
            }
            // What did not get through is sent (or read) again.
            let Some(h) = health.upgrade() else { return };
            if h.resync_needed.swap(false, std::sync::atomic::Ordering::SeqCst) {
                synced = false;
            }
            if !synced {
                synced = h.resync().await;
            }
            if h.store.take_health_lost() {
                h.republish();
            }
        }
    }
}
