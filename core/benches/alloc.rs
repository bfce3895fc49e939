//! Bytes and allocations per job through the pool (submit → await on the
//! zero-latency mock provider, 64 submitters), counted by a global
//! allocator wrapper. Run with `cargo bench -p bifrost-core --bench alloc`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use bifrost_core::Gateway;

#[path = "support/submit_loop.rs"]
mod submit_loop;
use serde_json::json;

struct Counting;
static BYTES: AtomicU64 = AtomicU64::new(0);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        ALLOCS.fetch_add(1, Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        BYTES.fetch_add(new_size.saturating_sub(layout.size()) as u64, Relaxed);
        ALLOCS.fetch_add(1, Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    const SUBMITTERS: u64 = 64;
    const PER: u64 = 4_000;
    let gw = Arc::new(
        Gateway::from_value(json!({"providers": {"mock": {
            "kind": "mock", "concurrency_and_buffer_size": {"concurrency": 64, "buffer_size": 4096}}}}))
        .expect("config"),
    );
    let run = |gw: Arc<Gateway>| submit_loop::submit_await(&gw, SUBMITTERS, PER);
    run(gw.clone()); // warm up
    let (b0, a0) = (BYTES.load(Relaxed), ALLOCS.load(Relaxed));
    let start = Instant::now();
    run(gw.clone());
    let secs = start.elapsed().as_secs_f64();
    let jobs = (SUBMITTERS * PER) as f64;
    let bytes = (BYTES.load(Relaxed) - b0) as f64 / jobs;
    let allocs = (ALLOCS.load(Relaxed) - a0) as f64 / jobs;
    println!(
        "submit→await, 64 submitters, zero-latency mock: {:.0} jobs/s, {bytes:.0} bytes and {allocs:.1} allocations per job \
         (including the caller's request clone)",
        jobs / secs
    );
}
