//! Object pools: bounded free lists of byte buffers, with hit/miss stats.
//!
//! Serializing a request body for a provider needs a growable byte buffer;
//! allocating one per call is measurable at a million jobs a second. A
//! [`BufferPool`] keeps cleared buffers on a lock-free queue;
//! [`BufferPool::get`] hands one out (or allocates on a miss) inside a
//! [`PooledBuf`] guard that gives it back when dropped. The HTTP providers
//! hand the guard itself to the HTTP client as the body (`Bytes::from_owner`,
//! no copy), so the buffer comes back when the request is sent.
//!
//! Memory, not a count, bounds a pool: the idle buffers' capacities add up to
//! at most [`MAX_IDLE_BYTES`] (a returned buffer past that is freed), one that
//! grew beyond `max_keep_bytes` is never kept, and prewarming allocates at
//! most [`MAX_PREWARM_BYTES`] up front — the rest of `initial_pool_size`
//! fills lazily as buffers come back.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::stats::ObjectPoolStats;

/// Buffers larger than this are not kept on return.
pub const DEFAULT_MAX_KEEP_BYTES: usize = 1 << 20;
/// Capacity a fresh buffer starts with.
const INITIAL_BUF_BYTES: usize = 4096;
/// Most bytes a pool's idle buffers hold in all.
pub const MAX_IDLE_BYTES: usize = 64 << 20;
/// Most bytes prewarming allocates when a gateway starts (1024 buffers).
pub const MAX_PREWARM_BYTES: usize = 4 << 20;

/// A bounded free list of `Vec<u8>` buffers.
pub struct BufferPool {
    free: ArrayQueue<Vec<u8>>,
    max_keep_bytes: usize,
    /// Sum of the idle buffers' capacities (≤ `MAX_IDLE_BYTES`).
    idle_bytes: AtomicUsize,
    requests: AtomicU64,
    hits: AtomicU64,
    returns: AtomicU64,
}

impl BufferPool {
    /// A pool keeping at most `max_idle` buffers (and [`MAX_IDLE_BYTES`]),
    /// `prewarm` of them allocated now (up to [`MAX_PREWARM_BYTES`]).
    pub fn new(max_idle: usize, prewarm: usize, max_keep_bytes: usize) -> Arc<Self> {
        let pool = BufferPool {
            free: ArrayQueue::new(max_idle.max(1)),
            max_keep_bytes,
            idle_bytes: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            returns: AtomicU64::new(0),
        };
        let budget = MAX_PREWARM_BYTES / INITIAL_BUF_BYTES;
        for _ in 0..prewarm.min(max_idle.max(1)).min(budget) {
            let buf = Vec::with_capacity(INITIAL_BUF_BYTES);
            pool.idle_bytes.fetch_add(buf.capacity(), Relaxed);
            let _ = pool.free.push(buf);
        }
        Arc::new(pool)
    }

    /// An empty buffer, from the free list when one is idle.
    pub fn get(self: &Arc<Self>) -> PooledBuf {
        self.requests.fetch_add(1, Relaxed);
        let buf = match self.free.pop() {
            Some(b) => {
                self.hits.fetch_add(1, Relaxed);
                self.idle_bytes.fetch_sub(b.capacity(), Relaxed);
                b
            }
            None => Vec::with_capacity(INITIAL_BUF_BYTES),
        };
        PooledBuf { buf, pool: Some(self.clone()) }
    }

    fn give_back(&self, mut buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap > self.max_keep_bytes {
            return;
        }
        // Reserve the bytes first, so concurrent returns cannot overshoot.
        if self.idle_bytes.fetch_add(cap, Relaxed) + cap > MAX_IDLE_BYTES {
            self.idle_bytes.fetch_sub(cap, Relaxed);
            return;
        }
        buf.clear();
        match self.free.push(buf) {
            Ok(()) => {
                self.returns.fetch_add(1, Relaxed);
            }
            Err(_) => {
                self.idle_bytes.fetch_sub(cap, Relaxed);
            }
        }
    }

    /// Bytes the idle buffers hold now.
    #[cfg(test)]
    pub fn idle_bytes(&self) -> usize {
        self.idle_bytes.load(Relaxed)
    }

    /// Counters for `stats()`.
    pub fn stats(&self) -> ObjectPoolStats {
        let requests = self.requests.load(Relaxed);
        let hits = self.hits.load(Relaxed).min(requests);
        ObjectPoolStats {
            requests,
            hits,
            misses: requests - hits,
            returns: self.returns.load(Relaxed),
            idle: self.free.len() as u64,
            hit_ratio: if requests == 0 { 0.0 } else { hits as f64 / requests as f64 },
        }
    }
}

/// A buffer on loan from a [`BufferPool`]; returns itself when dropped.
pub struct PooledBuf {
    buf: Vec<u8>,
    pool: Option<Arc<BufferPool>>,
}

impl Deref for PooledBuf {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.buf
    }
}

impl DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give_back(std::mem::take(&mut self.buf));
        }
    }
}

/// The gateway's buffer pools, by role.
pub struct Buffers {
    /// Request bodies serialized for a provider.
    pub request: Arc<BufferPool>,
}

impl Buffers {
    /// Keeps up to `max(initial, 16)` buffers, `initial` prewarmed (within
    /// [`MAX_PREWARM_BYTES`]).
    pub fn new(initial: usize) -> Self {
        let max_idle = initial.max(16);
        Buffers { request: BufferPool::new(max_idle, initial, DEFAULT_MAX_KEEP_BYTES) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_clears_and_refuses_huge() {
        let pool = BufferPool::new(2, 1, 8192);
        let mut a = pool.get();
        a.extend_from_slice(b"hello");
        drop(a);
        let b = pool.get();
        assert!(b.is_empty(), "returned buffers are cleared");
        let mut c = pool.get(); // miss: free list empty
        c.reserve(10_000);
        drop(c); // too big: not kept
        drop(b);
        let s = pool.stats();
        assert_eq!((s.requests, s.hits, s.misses), (3, 2, 1));
        assert_eq!(s.returns, 2);
        assert_eq!(s.idle, 1);
    }

    #[test]
    fn memory_bounds_prewarm_and_idle_buffers() {
        let pool = BufferPool::new(100_000, 100_000, 1 << 20);
        assert_eq!(pool.stats().idle as usize, MAX_PREWARM_BYTES / INITIAL_BUF_BYTES, "prewarm stops at its budget");
        assert!(pool.idle_bytes() <= MAX_PREWARM_BYTES);
        // Return 200 buffers of 512 KiB: only MAX_IDLE_BYTES worth stay.
        let big: Vec<_> = (0..200)
            .map(|_| {
                let mut b = pool.get();
                b.reserve(512 << 10);
                b
            })
            .collect();
        drop(big);
        assert!(pool.idle_bytes() <= MAX_IDLE_BYTES, "{} idle bytes", pool.idle_bytes());
        assert!(pool.idle_bytes() > MAX_IDLE_BYTES / 2);
    }
}
