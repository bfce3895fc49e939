//! An idle pool costs no CPU: its workers park on the queue's notifier.
//! Alone in its own test binary so no other test's work is measured.

use std::time::Duration;

use bifrost_core::Gateway;
use serde_json::json;

fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = after.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the comm field.
    Duration::from_millis((f[11] + f[12]) * 1000 / 100)
}

#[test]
fn idle_pools_park() {
    let gw = Gateway::from_value(json!({"providers": {"p": {
        "kind": "mock", "concurrency_and_buffer_size": {"concurrency": 1000, "buffer_size": 1000}}}}))
    .unwrap();
    // One job wakes the runtime and proves the workers are live.
    let mut job = gw.try_submit(bifrost_core::Request::new("p/m", "x")).unwrap();
    job.wait_blocking(Some(Duration::from_secs(5))).unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let before = cpu_time();
    std::thread::sleep(Duration::from_millis(500));
    let used = cpu_time() - before;
    assert!(used < Duration::from_millis(100), "1000 idle workers used {used:?} of CPU in 500 ms");
    drop(gw);
}
