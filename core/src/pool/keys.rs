//! A provider's keys: weighted choice, per-key counters, and cooldown of
//! keys the provider rejected.
//!
//! A key is chosen by weight among the enabled keys whose `models` allow the
//! request's model and that are not cooling down. A 401/403 puts the key in
//! cooldown for `keys[].cooldown_ms` (default 60 s); a 429 asks the next
//! attempt to prefer another key. When every eligible key is cooling down
//! the call fails with PROVIDER 401 "credentials exhausted". Keys are named
//! by `<provider>#<index>` everywhere; values never leave [`KeyConfig`].

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::config::KeyConfig;
use crate::error::{Error, Result};
use crate::stats::KeyStats;

struct Slot {
    id: String,
    requests: AtomicU64,
    errors: AtomicU64,
    /// Cooling down until this ms on the pools' clock (0: alive).
    dead_until_ms: AtomicU64,
}

/// The keys of one provider pool.
pub(crate) struct KeyRing {
    provider: String,
    keys: Vec<KeyConfig>,
    slots: Vec<Slot>,
}

impl KeyRing {
    pub fn new(provider: &str, keys: &[KeyConfig]) -> Self {
        KeyRing {
            provider: provider.to_string(),
            keys: keys.to_vec(),
            slots: (0..keys.len())
                .map(|i| Slot {
                    id: format!("{provider}#{i}"),
                    requests: AtomicU64::new(0),
                    errors: AtomicU64::new(0),
                    dead_until_ms: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    fn now_ms(&self) -> u64 {
        crate::clock::now() / crate::clock::MS
    }

    /// Configured keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn key(&self, i: usize) -> &KeyConfig {
        &self.keys[i]
    }

    pub fn id(&self, i: usize) -> &str {
        &self.slots[i].id
    }

    fn alive(&self, i: usize, now: u64) -> bool {
        self.slots[i].dead_until_ms.load(Relaxed) <= now
    }

    /// Whether key `i` may serve `model` at all (enabled, allowed, weight > 0).
    fn eligible(&self, i: usize, model: &str) -> bool {
        self.keys[i].allows(model) && self.keys[i].weight > 0.0
    }

    /// The keys that may serve `model`, as a bit mask (bit `i`: key `i`;
    /// keys past 63 are left out). What `limits` `scope: "key"` admits among.
    pub fn eligible_mask(&self, model: &str) -> u64 {
        (0..self.keys.len().min(64)).filter(|&i| self.eligible(i, model)).fold(0, |m, i| m | 1 << i)
    }

    /// One of `candidates`, drawn by weight.
    fn pick(&self, candidates: impl Iterator<Item = usize> + Clone) -> Option<usize> {
        let total: f64 = candidates.clone().map(|i| self.keys[i].weight).sum();
        let mut left = fastrand::f64() * total;
        let mut last = None;
        for i in candidates {
            left -= self.keys[i].weight;
            last = Some(i);
            if left < 0.0 {
                break;
            }
        }
        last
    }

    /// The keys of `mask` in a random order drawn by weight (each next key
    /// by weight among those left: a Plackett–Luce order, so the first of
    /// any subset is drawn by weight within it). Writes `out`, returns how
    /// many.
    pub fn weighted_order(&self, mut mask: u64, out: &mut [u8; 64]) -> usize {
        let mut n = 0;
        while mask != 0 {
            let Some(i) = self.pick((0..self.keys.len().min(64)).filter(|i| mask & (1 << i) != 0)) else { break };
            out[n] = i as u8;
            n += 1;
            mask &= !(1 << i);
        }
        n
    }

    /// Picks a key for `model`, avoiding `avoid` when another is usable,
    /// and taking `prefer` when it is usable (the key whose `limits`
    /// buckets admitted the job). `Ok(None)` for a provider without keys
    /// (the mock).
    pub fn choose(&self, model: &str, avoid: Option<usize>, prefer: Option<usize>) -> Result<Option<usize>> {
        if self.keys.is_empty() {
            return Ok(None);
        }
        let eligible: Vec<usize> = (0..self.keys.len()).filter(|&i| self.eligible(i, model)).collect();
        if eligible.is_empty() {
            return Err(Error::invalid(format!(
                "provider '{}' has no enabled key with weight > 0 whose models allow model '{model}'",
                self.provider
            )));
        }
        let now = self.now_ms();
        let alive: Vec<usize> = eligible.iter().copied().filter(|&i| self.alive(i, now)).collect();
        if alive.is_empty() {
            let next = eligible.iter().map(|&i| self.slots[i].dead_until_ms.load(Relaxed)).min().unwrap_or(now);
            return Err(Error::Provider {
                provider: self.provider.clone(),
                status: 401,
                message: format!(
                    "credentials exhausted: all {} keys for model '{model}' were rejected (401/403) and are \
                     cooling down; the first is usable again in {} ms",
                    eligible.len(),
                    next.saturating_sub(now)
                ),
                body: String::new(),
                retry_after_ms: Some(next.saturating_sub(now)),
            });
        }
        if let Some(p) = prefer.filter(|p| alive.contains(p) && Some(*p) != avoid) {
            return Ok(Some(p));
        }
        let preferred: Vec<usize> = match avoid {
            Some(a) if alive.len() > 1 => alive.iter().copied().filter(|&i| i != a).collect(),
            _ => alive,
        };
        Ok(self.pick(preferred.iter().copied()))
    }

    /// True if some key other than `i` could serve `model` now.
    pub fn has_alternative(&self, model: &str, i: usize) -> bool {
        let now = self.now_ms();
        (0..self.keys.len()).any(|j| j != i && self.eligible(j, model) && self.alive(j, now))
    }

    pub fn record_request(&self, i: usize) {
        self.slots[i].requests.fetch_add(1, Relaxed);
    }

    pub fn record_error(&self, i: usize) {
        self.slots[i].errors.fetch_add(1, Relaxed);
    }

    /// Puts key `i` in cooldown after the provider rejected it.
    pub fn mark_rejected(&self, i: usize) {
        let until = self.now_ms() + self.keys[i].cooldown_ms;
        self.slots[i].dead_until_ms.fetch_max(until, Relaxed);
    }

    /// Puts key `i` in cooldown for `ms` (another process of the fleet saw
    /// it rejected); never shortens one.
    pub fn cool_down(&self, i: usize, ms: u64) {
        if let Some(slot) = self.slots.get(i) {
            slot.dead_until_ms.fetch_max(self.now_ms().saturating_add(ms), Relaxed);
        }
    }

    /// How long key `i` still cools down, in ms (0: alive).
    pub fn cooldown_left_ms(&self, i: usize) -> u64 {
        self.slots.get(i).map_or(0, |s| s.dead_until_ms.load(Relaxed).saturating_sub(self.now_ms()))
    }

    /// Keys usable now.
    pub fn live_count(&self) -> usize {
        let now = self.now_ms();
        (0..self.keys.len()).filter(|&i| self.keys[i].enabled && self.alive(i, now)).count()
    }

    pub fn snapshot(&self) -> Vec<KeyStats> {
        let now = self.now_ms();
        self.slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let until = s.dead_until_ms.load(Relaxed);
                let state = if !self.keys[i].enabled {
                    "disabled"
                } else if until > now {
                    "cooldown"
                } else {
                    "alive"
                };
                KeyStats {
                    id: s.id.clone(),
                    requests: s.requests.load(Relaxed),
                    errors: s.errors.load(Relaxed),
                    state: state.to_string(),
                    cooldown_remaining_ms: until.saturating_sub(now),
                }
            })
            .collect()
    }
}
