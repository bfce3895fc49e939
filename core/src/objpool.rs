//! Object pools: bounded free lists of byte buffers, with hit/miss stats.
//!
//! Serializing a request body or a response for a binding needs a growable
//! byte buffer; allocating one per job is measurable at a million jobs a
//! second. A [`BufferPool`] keeps up to `max_idle` cleared buffers on a
//! lock-free queue; [`BufferPool::get`] hands one out (or allocates on a
//! miss) inside a [`PooledBuf`] guard that gives it back when dropped.
//! A returned buffer is cleared, and one that grew beyond `max_keep_bytes`
//! is freed instead of kept, so one huge response cannot pin memory forever.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::stats::ObjectPoolStats;

/// Buffers larger than this are not kept on return.
pub const DEFAULT_MAX_KEEP_BYTES: usize = 1 << 20;
/// Capacity a fresh buffer starts with.
const INITIAL_BUF_BYTES: usize = 4096;

/// A bounded free list of `Vec<u8>` buffers.
pub struct BufferPool {
    free: ArrayQueue<Vec<u8>>,
    max_keep_bytes: usize,
    requests: AtomicU64,
    hits: AtomicU64,
    returns: AtomicU64,
}

impl BufferPool {
    /// A pool keeping at most `max_idle` buffers, `prewarm` of them
    /// allocated now.
    pub fn new(max_idle: usize, prewarm: usize, max_keep_bytes: usize) -> Arc<Self> {
        let pool = BufferPool {
            free: ArrayQueue::new(max_idle.max(1)),
            max_keep_bytes,
            requests: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            returns: AtomicU64::new(0),
        };
        for _ in 0..prewarm.min(max_idle.max(1)) {
            let _ = pool.free.push(Vec::with_capacity(INITIAL_BUF_BYTES));
        }
        Arc::new(pool)
    }

    /// An empty buffer, from the free list when one is idle.
    pub fn get(self: &Arc<Self>) -> PooledBuf {
        self.requests.fetch_add(1, Relaxed);
        let buf = match self.free.pop() {
            Some(b) => {
                self.hits.fetch_add(1, Relaxed);
                b
            }
            None => Vec::with_capacity(INITIAL_BUF_BYTES),
        };
        PooledBuf { buf, pool: Some(self.clone()) }
    }

    fn give_back(&self, mut buf: Vec<u8>) {
        if buf.capacity() > self.max_keep_bytes {
            return;
        }
        buf.clear();
        if self.free.push(buf).is_ok() {
            self.returns.fetch_add(1, Relaxed);
        }
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

impl PooledBuf {
    /// Keeps the bytes and gives up pooling for this buffer.
    pub fn into_vec(mut self) -> Vec<u8> {
        self.pool = None;
        std::mem::take(&mut self.buf)
    }
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
    /// Responses serialized for a binding (`Gateway::response_json`).
    pub response: Arc<BufferPool>,
}

impl Buffers {
    /// Both pools, keeping up to `max(initial, 16)` buffers, `initial` prewarmed.
    pub fn new(initial: usize) -> Self {
        let max_idle = initial.max(16);
        Buffers {
            request: BufferPool::new(max_idle, initial, DEFAULT_MAX_KEEP_BYTES),
            response: BufferPool::new(max_idle, initial, DEFAULT_MAX_KEEP_BYTES),
        }
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
}
