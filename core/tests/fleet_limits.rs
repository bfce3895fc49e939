//! `limits_store: redis` (docs/architecture.md §10), against a real
//! `redis-server` each test starts on a free loopback port: gateways share
//! one limit exactly, across OS processes too; Redis going away applies
//! `on_unavailable` without hanging or losing a job, and coming back
//! resumes the shared limits.
//!
//! Timing: the refusals asserted here wait a minute or a day for capacity,
//! so no busy machine makes a job fit that should not; bounds on arrival
//! times allow for a request admitted early reaching the mock late.

#[path = "support/bound.rs"]
mod bound;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bifrost_core::{ErrorKind, Gateway, Request};
use bifrost_mock::{MockConfig, MockLimits, MockServer};
use redis_server::RedisServer;
use serde_json::{json, Value};

/// A gateway whose provider `p` (in-process mock) keeps `limits` in the
/// Redis at `url`, with `store` merged into `limits_store`.
fn gateway(url: &str, limits: Value, store: Value) -> Gateway {
    let mut s = json!({"kind": "redis", "url": url, "fleet_size": 2, "timeout_ms": 1000});
    s.as_object_mut().unwrap().extend(store.as_object().unwrap().clone());
    Gateway::from_value(json!({"limits_store": s, "providers": {"p": {"kind": "mock", "limits": limits,
        "concurrency_and_buffer_size": {"concurrency": 4, "buffer_size": 1000}}}}))
    .unwrap()
}

/// Runs `n` jobs on `gw` (each may wait up to `timeout_ms`): (completed, rate limited).
async fn run(gw: &Gateway, n: usize, timeout_ms: u64) -> (usize, usize) {
    let mut jobs = Vec::new();
    for i in 0..n {
        let mut r = Request::new("p/m", format!("job {i}"));
        r.timeout_ms = Some(timeout_ms);
        jobs.push(gw.try_submit(r).unwrap());
    }
    let (mut ok, mut limited) = (0, 0);
    for j in jobs {
        match j.await {
            Ok(_) => ok += 1,
            Err(e) if e.kind() == ErrorKind::RateLimited => limited += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    (ok, limited)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_limit_exactly() {
    let Some(redis) = RedisServer::start() else { return };
    let limits = json!({"requests_per_minute": 7, "tokens_per_day": 1000000});
    let a = gateway(&redis.url(), limits.clone(), json!({}));
    let b = gateway(&redis.url(), limits, json!({}));
    // 7 a minute between them: whichever asks first, 7 run and the rest
    // (whose wait for the next one is ~8.6 s, past their 2 s) are refused.
    let (ra, rb) = tokio::join!(run(&a, 6, 2_000), run(&b, 6, 2_000));
    assert_eq!((ra.0 + rb.0, ra.1 + rb.1), (7, 5), "{ra:?} {rb:?}");
    for (gw, (ok, limited)) in [(&a, ra), (&b, rb)] {
        let s = gw.stats().providers["p"].clone();
        assert!(s.jobs.invariant_holds(), "{:?}", s.jobs);
        let store = s.limits_store.clone().expect("store stats");
        assert_eq!((store.kind.as_str(), store.up, store.errors, store.fallback_active), ("redis", true, 0, false));
        // The bucket as the store last answered this gateway: after its
        // own jobs at least; empty if it was refused (its last answer).
        let left = s.limits["requests"].remaining;
        assert!(left <= 7 - ok as u64, "{left} left after {ok} of this gateway's: {:?}", s.limits);
        if limited > 0 {
            assert_eq!(left, 0, "the fleet's bucket is empty: {:?}", s.limits);
        }
        assert_eq!(s.limits["requests"].limit, 7);
    }
    // The keys share one hash tag (one Cluster slot), under the prefix.
    assert_eq!(redis.command(&["EXISTS", "{bifrost:p}:requests"]).as_deref(), Some(":1"));
    // Reported usage settles the shared token bucket: each mock response
    // reports its usage, and the reservation is replaced by it.
    let s = a.stats().providers["p"].clone();
    assert!(s.limits["tokens"].remaining < 1_000_000, "{:?}", s.limits);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_applies_on_unavailable_and_coming_back_resumes_the_shared_limit() {
    let Some(mut redis) = RedisServer::start() else { return };
    let limits = json!({"requests_per_day": 10});
    // local_share with fleet_size 2: this process enforces 5 a day alone.
    let gw = gateway(&redis.url(), limits.clone(), json!({"timeout_ms": 200}));
    assert_eq!(run(&gw, 3, 60_000).await, (3, 0));
    redis.kill();
    let started = Instant::now();
    // The store does not answer: its 5-a-day share admits 5, then the rest
    // wait a day, past their deadline. No job hangs on the dead store.
    assert_eq!(run(&gw, 8, 60_000).await, (5, 3));
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    let s = gw.stats().providers["p"].clone();
    let store = s.limits_store.clone().unwrap();
    assert!(!store.up && store.fallback_active && store.errors >= 1, "{store:?}");
    assert_eq!(s.limits["requests"].limit, 5, "the local share shows: {:?}", s.limits);
    assert!(s.jobs.invariant_holds(), "{:?}", s.jobs);
    // fail_closed refuses at once; fail_open admits without limits.
    let closed = gateway(&redis.url(), limits.clone(), json!({"on_unavailable": "fail_closed"}));
    let e = closed.chat(Request::new("p/m", "x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert!(e.to_string().contains("limits_store"), "{e}");
    let open = gateway(&redis.url(), json!({"requests_per_day": 1}), json!({"on_unavailable": "fail_open"}));
    assert_eq!(run(&open, 4, 60_000).await, (4, 0));
    // Back, empty (no persistence): the next calls find it (one probe a
    // second) and the shared bucket, full again, decides.
    redis.restart();
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let r = gw.chat(Request::new("p/m", "probe")).await;
        if gw.stats().providers["p"].limits_store.as_ref().unwrap().up {
            break;
        }
        // Refused by the local share (spent) until the store answers.
        assert_eq!(r.unwrap_err().kind(), ErrorKind::RateLimited);
        assert!(Instant::now() < until, "bifrost never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = gw.stats().providers["p"].clone();
    assert_eq!(s.limits["requests"].limit, 10, "{:?}", s.limits);
    assert!(s.jobs.invariant_holds(), "{:?}", s.jobs);
    assert_eq!(redis.command(&["EXISTS", "{bifrost:p}:requests"]).as_deref(), Some(":1"), "written again");
}

/// The child side of the multi-process test: one process, one gateway,
/// `BIFROST_FLEET_CHILD` = `{"redis", "mock", "jobs"}`; prints
/// `{"ok": n, "limited": n}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of every_process_of_a_fleet_shares_the_limit"]
async fn fleet_child() {
    let Ok(spec) = std::env::var("BIFROST_FLEET_CHILD") else { return };
    let spec: Value = serde_json::from_str(&spec).unwrap();
    let gw = Gateway::from_value(json!({
        "limits_store": {"kind": "redis", "url": spec["redis"], "fleet_size": 4, "timeout_ms": 2000},
        "providers": {"o": {"kind": "openai", "keys": [{"value": "mock-key", "models": ["*"]}],
            "network_config": {"base_url": spec["mock"]},
            "limits": {"requests_per_second": 40, "burst": {"requests": 5}, "max_in_flight": 3},
            "queue": {"wait_timeout_ms": 120000},
            "concurrency_and_buffer_size": {"concurrency": 8, "buffer_size": 1000}}}}))
    .unwrap();
    let n = spec["jobs"].as_u64().unwrap() as usize;
    // 30 ms at the mock: a burst of 5 would have 5 open at once.
    let jobs: Vec<_> =
        (0..n).map(|i| gw.try_submit(Request::new("o/gpt-4o-mini~latency_ms=30", format!("{i}"))).unwrap()).collect();
    let mut ok = 0;
    for j in jobs {
        j.await.expect("every job runs: a minute of wait is allowed");
        ok += 1;
    }
    let s = gw.stats().providers["o"].clone();
    assert!(s.jobs.invariant_holds());
    assert!(s.limits_store.as_ref().unwrap().up);
    println!("FLEET-CHILD {}", json!({"ok": ok}));
}

/// Four OS processes, each with its own gateway, share 40 requests a
/// second (burst 5) and 3 in flight through Redis against one
/// bifrost-mock: over every interval of the mock's log of arrivals, the
/// fleet stays within `burst + rate·(t + D)` (D = 250 ms for a request
/// admitted early reaching the mock late), over the whole run that is the
/// rate, and the mock never had more than 3 requests open at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_of_a_fleet_shares_the_limit() {
    let Some(redis) = RedisServer::start() else { return };
    let srv = MockServer::start(MockConfig {
        limits: MockLimits { requests_per_minute: Some(1_000_000), ..Default::default() },
        ..Default::default()
    })
    .await
    .unwrap();
    const PROCESSES: usize = 4;
    const JOBS: usize = 60;
    let spec = json!({"redis": redis.url(), "mock": format!("{}/v1", srv.url()), "jobs": JOBS}).to_string();
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(&exe)
                .args(["fleet_child", "--exact", "--ignored", "--nocapture", "--test-threads", "1"])
                .env("BIFROST_FLEET_CHILD", &spec)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = tokio::task::spawn_blocking(move || {
        children.into_iter().map(|c| c.wait_with_output().unwrap()).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let mut ok = 0;
    for out in &outputs {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "child failed: {text}\n{}", String::from_utf8_lossy(&out.stderr));
        let line = text.lines().find_map(|l| l.split_once("FLEET-CHILD ").map(|p| p.1)).expect("the child's counts");
        ok += serde_json::from_str::<Value>(line).unwrap()["ok"].as_u64().unwrap() as usize;
    }
    assert_eq!(ok, PROCESSES * JOBS);
    let log = srv.admissions();
    assert_eq!(log.len(), PROCESSES * JOBS, "every request reached the mock once");
    bound::requests_within(&log, 40, 1_000_000_000, 5, 250_000_000);
    let mock = srv.stats();
    assert!(mock.max_open_requests <= 3, "{} open at once at the mock", mock.max_open_requests);
    assert!(mock.max_open_requests >= 2, "the in-flight limit was reached: {}", mock.max_open_requests);
    // 240 requests at 40 a second: at least (240 - 5) / 40 s, whatever the load.
    assert!(started.elapsed() >= Duration::from_millis(5_800), "{:?}", started.elapsed());
}

/// The child that holds leases: sends `BIFROST_LEASE_CHILD` = `{"redis",
/// "mock"}` three requests that hang at the mock, then waits forever
/// (until the parent kills it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of a_killed_process_loses_its_leases_within_one_ttl"]
async fn lease_child() {
    let Ok(spec) = std::env::var("BIFROST_LEASE_CHILD") else { return };
    let spec: Value = serde_json::from_str(&spec).unwrap();
    let gw = lease_gateway(&spec);
    let jobs: Vec<_> = (0..3).map(|_| gw.try_submit(Request::new("o/gpt-4o~hang=true", "hold")).unwrap()).collect();
    for j in jobs {
        let _ = j.await;
    }
}

fn lease_gateway(spec: &Value) -> Gateway {
    Gateway::from_value(json!({
        "limits_store": {"kind": "redis", "url": spec["redis"], "fleet_size": 2, "timeout_ms": 2000,
            "lease_ttl_ms": LEASE_TTL_MS},
        "providers": {"o": {"kind": "openai", "keys": [{"value": "mock-key", "models": ["*"]}],
            "network_config": {"base_url": spec["mock"], "default_request_timeout_in_seconds": 3600},
            "limits": {"max_in_flight": 3},
            "queue": {"wait_timeout_ms": 120000},
            "concurrency_and_buffer_size": {"concurrency": 8, "buffer_size": 100}}}}))
    .unwrap()
}

/// Renewed every 2 s: only a process stalled for 4 s loses its leases.
const LEASE_TTL_MS: u64 = 6_000;

/// `max_in_flight` across processes is leases in Redis: while a live
/// process holds all three, another process's job gets none (it waits,
/// and ends at its deadline); once that process is SIGKILLed, its leases
/// expire within one TTL and the other's jobs run. The mock never had
/// more than three requests open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_loses_its_leases_within_one_ttl() {
    let Some(redis) = RedisServer::start() else { return };
    let srv = MockServer::start(MockConfig::default()).await.unwrap();
    let spec = json!({"redis": redis.url(), "mock": format!("{}/v1", srv.url())});
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["lease_child", "--exact", "--ignored", "--nocapture", "--test-threads", "1"])
        .env("BIFROST_LEASE_CHILD", spec.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    while srv.stats().open_requests < 3 {
        assert!(Instant::now() < until, "the child never sent its three requests");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let gw = lease_gateway(&spec);
    let mut r = Request::new("o/gpt-4o", "no lease for me");
    r.timeout_ms = Some(1_000);
    let e = gw.chat(r).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "waits for a lease, never sent: {e}");
    assert_eq!(srv.stats().requests, 3, "nothing but the child's three reached the mock");
    let s = gw.stats().providers["o"].clone();
    assert_eq!(s.limits["in_flight"].remaining, 0, "{:?}", s.limits);
    child.kill().unwrap(); // SIGKILL: no release, no goodbye
    child.wait().unwrap();
    let killed = Instant::now();
    let jobs: Vec<_> = (0..3).map(|i| gw.try_submit(Request::new("o/gpt-4o", format!("after {i}"))).unwrap()).collect();
    for j in jobs {
        j.await.expect("the dead process's leases expire");
    }
    // Within one TTL of the kill (plus a busy machine's slack), never forever.
    assert!(killed.elapsed() < Duration::from_millis(LEASE_TTL_MS + 20_000), "{:?}", killed.elapsed());
    let mock = srv.stats();
    assert!(mock.max_open_requests <= 3, "{} open at once", mock.max_open_requests);
    let s = gw.stats().providers["o"].clone();
    let store = s.limits_store.clone().unwrap();
    assert_eq!((store.leases_held, store.leases_lost), (0, 0), "{store:?}");
    assert!(s.jobs.invariant_holds(), "{:?}", s.jobs);
}

/// A gateway of the health test: provider `o` at `mock` with a bad key
/// (drawn first, nearly always) and a good one, a breaker that opens on
/// one failure for 3 s, and the shared store.
fn health_gateway(redis: &str, mock: &str) -> Gateway {
    Gateway::from_value(json!({
        "limits_store": {"kind": "redis", "url": redis, "on_unavailable": "fail_open", "timeout_ms": 2000},
        "providers": {"o": {"kind": "openai",
            "keys": [{"value": "bad", "weight": 1000.0, "models": ["*"], "cooldown_ms": 600000},
                     {"value": "mock-key", "weight": 1.0, "models": ["*"]}],
            "network_config": {"base_url": mock, "max_retries": 0},
            "circuit_breaker": {"failure_threshold": 1, "open_ms": 3000, "half_open_probes": 1},
            "limits": {"requests_per_second": 1000},
            "concurrency_and_buffer_size": {"concurrency": 16, "buffer_size": 100}}}}))
    .unwrap()
}

/// Waits (bounded) until `ready` says the fleet's change has reached a
/// gateway: an explicit gate, not a guess at how long delivery takes.
async fn until(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Process A of the shared-health test (`BIFROST_HEALTH_CHILD` =
/// `{"redis", "mock"}`), driven line by line on stdin by the parent (B):
/// it meets the bad key (`KEY`), trips its breaker (`OPEN`), then sends
/// its half of the probe wave and prints how it went.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of the_fleet_shares_key_cooldowns_breakers_and_one_probe"]
async fn health_child() {
    let Ok(spec) = std::env::var("BIFROST_HEALTH_CHILD") else { return };
    let spec: Value = serde_json::from_str(&spec).unwrap();
    let a = health_gateway(spec["redis"].as_str().unwrap(), spec["mock"].as_str().unwrap());
    let mut lines = std::io::stdin().lines();
    let mut next = move || lines.next().and_then(|l| l.ok()).unwrap_or_default();
    for _ in 0..50 {
        a.chat(Request::new("o/gpt-4o", "hi")).await.unwrap();
        if a.stats().providers["o"].keys[0].state == "cooldown" {
            break;
        }
    }
    assert_eq!(a.stats().providers["o"].keys[0].state, "cooldown");
    println!("KEY");
    assert_eq!(next(), "TRIP");
    let e = a.chat(Request::new("o/gpt-4o~fail_status=503&fail_first=1&scenario=down", "hi")).await.unwrap_err();
    assert_eq!(e.status(), Some(503), "{e}");
    assert_eq!(a.stats().providers["o"].circuit.state, "open");
    println!("OPEN");
    assert_eq!(next(), "WAVE");
    println!("WAVE {}", json!(wave(&a, "a").await));
    assert_eq!(next(), "CLOSED?");
    until("A's breaker closes", || a.stats().providers["o"].circuit.state == "closed").await;
    a.chat(Request::new("o/gpt-4o", "after")).await.unwrap();
    println!("DONE");
}

/// Ten calls at once whose probe would be held 5 s at the mock: (ok,
/// CIRCUIT_OPEN).
async fn wave(gw: &Gateway, who: &str) -> (u32, u32) {
    let jobs: Vec<_> = (0..10)
        .map(|i| gw.try_submit(Request::new("o/gpt-4o~latency_ms=5000", format!("{who} {i}"))).unwrap())
        .collect();
    let (mut ok, mut open) = (0, 0);
    for j in jobs {
        match j.await {
            Ok(_) => ok += 1,
            Err(e) if e.kind() == ErrorKind::CircuitOpen => open += 1,
            Err(e) => panic!("{e}"),
        }
    }
    (ok, open)
}

/// Shared health across OS processes: a key that returns 401 in process
/// A is skipped by process B without B ever sending to it; a breaker that
/// opened in A fails fast in B; when the open period ends, exactly one
/// probe goes out across both; its success closes both breakers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_shares_key_cooldowns_breakers_and_one_probe() {
    use std::io::{BufRead, Write};
    let Some(redis) = RedisServer::start() else { return };
    let srv = MockServer::start(MockConfig::default()).await.unwrap();
    let mock = format!("{}/v1", srv.url());
    let spec = json!({"redis": redis.url(), "mock": mock});
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["health_child", "--exact", "--ignored", "--nocapture", "--test-threads", "1"])
        .env("BIFROST_HEALTH_CHILD", spec.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut to_a = child.stdin.take().unwrap();
    let (tx, mut from_a) = tokio::sync::mpsc::unbounded_channel();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            // (The test harness may print around the child's lines.)
            for word in ["KEY", "OPEN", "WAVE", "DONE"] {
                if let Some(i) = line.find(word) {
                    let _ = tx.send(line[i..].to_string());
                }
            }
        }
    });
    let said = |to: &mut std::process::ChildStdin, w: &str| writeln!(to, "{w}").unwrap();
    let b = health_gateway(&redis.url(), &mock);
    let key_state = |gw: &Gateway| gw.stats().providers["o"].keys[0].state.clone();
    let breaker = |gw: &Gateway| gw.stats().providers["o"].circuit.state.clone();
    assert_eq!(from_a.recv().await.as_deref(), Some("KEY"), "A met the bad key");
    until("B hears of the bad key", || key_state(&b) == "cooldown").await;
    let before = srv.stats().requests;
    for _ in 0..5 {
        let r = b.chat(Request::new("o/gpt-4o", "hi")).await.unwrap();
        assert_eq!(r.extra_fields.key_id.as_deref(), Some("o#1"));
        assert_eq!(r.extra_fields.attempts, 1, "B never sent on the bad key");
    }
    assert_eq!(srv.stats().requests, before + 5);
    said(&mut to_a, "TRIP");
    assert_eq!(from_a.recv().await.as_deref(), Some("OPEN"), "A's breaker opened");
    until("B hears the breaker opened", || breaker(&b) == "open").await;
    let before = srv.stats().requests;
    let e = b.chat(Request::new("o/gpt-4o", "hi")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CircuitOpen, "{e}");
    assert_eq!(srv.stats().requests, before, "B failed fast without sending");
    // Past the open period (3 s; waiting longer only helps), both would
    // probe: 10 calls from each process at once, the probe held 5 s.
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    let before = srv.stats().requests;
    said(&mut to_a, "WAVE");
    let (b_ok, b_open) = wave(&b, "b").await;
    let line = from_a.recv().await.expect("A's wave");
    let (a_ok, a_open): (u32, u32) = serde_json::from_str(line.trim_start_matches("WAVE ")).unwrap();
    assert_eq!(
        (a_ok + b_ok, a_open + b_open),
        (1, 19),
        "one probe across the fleet: A {a_ok}/{a_open}, B {b_ok}/{b_open}"
    );
    assert_eq!(srv.stats().requests, before + 1);
    until("B's breaker closes", || breaker(&b) == "closed").await;
    b.chat(Request::new("o/gpt-4o", "after")).await.unwrap();
    said(&mut to_a, "CLOSED?");
    assert_eq!(from_a.recv().await.as_deref(), Some("DONE"), "A's breaker closed too");
    assert!(tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap().success());
}

/// A key refused (401) while Redis was away is not forgotten by the fleet:
/// once the store is back, the process that met it publishes it again and
/// the other process stops using the key without ever sending on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_cooldown_met_while_redis_was_away_reaches_the_fleet_when_it_is_back() {
    let Some(mut redis) = RedisServer::start() else { return };
    let srv = MockServer::start(MockConfig::default()).await.unwrap();
    let mock = format!("{}/v1", srv.url());
    let a = health_gateway(&redis.url(), &mock);
    let b = health_gateway(&redis.url(), &mock);
    let key_state = |gw: &Gateway| gw.stats().providers["o"].keys[0].state.clone();
    // No call before Redis goes: neither process has met the bad key.
    assert_eq!((key_state(&a), key_state(&b)), ("alive".to_string(), "alive".to_string()));
    redis.kill();
    // A meets the bad key while the store is away (fail_open: calls go on).
    for _ in 0..50 {
        a.chat(Request::new("o/gpt-4o", "hi")).await.unwrap();
        if key_state(&a) == "cooldown" {
            break;
        }
    }
    assert_eq!(key_state(&a), "cooldown");
    redis.restart();
    until("B hears of the key A met while Redis was away", || key_state(&b) == "cooldown").await;
    let before = srv.stats().requests;
    for _ in 0..5 {
        let r = b.chat(Request::new("o/gpt-4o", "hi")).await.unwrap();
        assert_eq!((r.extra_fields.key_id.as_deref(), r.extra_fields.attempts), (Some("o#1"), 1));
    }
    assert_eq!(srv.stats().requests, before + 5, "B never sent on the refused key");
}

/// On a 3-node Redis Cluster: two gateways share 7 a minute exactly (a
/// job's keys share one hash tag, so one script takes them in one slot);
/// moving that slot to another node between jobs keeps the state (the
/// keys move with it) and admission follows it; killing the node that
/// owns it makes every job resolve through `on_unavailable`, none hangs,
/// and once it is back the shared limit resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_shares_the_limit_through_a_slot_migration_and_a_node_restart() {
    let Some(mut cluster) = redis_server::RedisCluster::start() else { return };
    let seed = cluster.nodes[0].url();
    let limits = json!({"requests_per_minute": 7});
    let store = json!({"cluster": true});
    let a = gateway(&seed, limits.clone(), store.clone());
    let b = gateway(&seed, limits, store);
    let (ra, rb) = tokio::join!(run(&a, 3, 2_000), run(&b, 3, 2_000));
    assert_eq!((ra.0 + rb.0, ra.1 + rb.1), (6, 0), "{ra:?} {rb:?}");
    // The slot moves; the bucket (one request left) moves with it.
    let key = "{bifrost:p}:requests";
    let owner = cluster.owner_of(key);
    cluster.migrate_slot_of(key, (owner + 1) % 3);
    let (ra, rb) = tokio::join!(run(&a, 2, 2_000), run(&b, 2, 2_000));
    assert_eq!((ra.0 + rb.0, ra.1 + rb.1), (1, 3), "exact after the move: {ra:?} {rb:?}");
    for gw in [&a, &b] {
        let s = gw.stats().providers["p"].clone();
        assert!(s.limits_store.as_ref().unwrap().up, "{:?}", s.limits_store);
        assert!(s.jobs.invariant_holds(), "{:?}", s.jobs);
    }
    // The owner dies: every job still resolves (the local share: 3 a
    // minute each), none waits on the dead node.
    let owner = cluster.owner_of(key);
    cluster.nodes[owner].kill();
    let started = Instant::now();
    let (ra, rb) = tokio::join!(run(&a, 4, 60_000), run(&b, 4, 60_000));
    assert_eq!(ra.0 + ra.1 + rb.0 + rb.1, 8, "{ra:?} {rb:?}");
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
    assert!(!a.stats().providers["p"].limits_store.as_ref().unwrap().up);
    cluster.nodes[owner].restart();
    cluster.wait_ok();
    let until = Instant::now() + Duration::from_secs(60);
    while !a.stats().providers["p"].limits_store.as_ref().unwrap().up {
        let _ = a.chat(Request::new("p/m", "probe")).await;
        assert!(Instant::now() < until, "never reconnected to the cluster");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = a.stats().providers["p"].clone();
    assert!(s.jobs.invariant_holds(), "{:?}", s.jobs);
}

/// Redis dies while jobs wait in the queue for its capacity and while
/// others run: every handle still resolves exactly once (completed,
/// RATE_LIMITED or QUEUE_TIMEOUT, never hung), and the accounting
/// invariant holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_dying_under_queued_and_running_jobs_loses_none() {
    let Some(mut redis) = RedisServer::start() else { return };
    // 20 a second, one at a time: 200 jobs queue for ~10 s.
    let gw = Gateway::from_value(json!({
        "limits_store": {"kind": "redis", "url": redis.url(), "fleet_size": 2, "timeout_ms": 200},
        "providers": {"p": {"kind": "mock", "limits": {"requests_per_second": 20, "burst": {"requests": 1}},
            "queue": {"wait_timeout_ms": 4000},
            "concurrency_and_buffer_size": {"concurrency": 4, "buffer_size": 1000}}}}))
    .unwrap();
    let jobs: Vec<_> =
        (0..200).map(|i| gw.try_submit(Request::new("p/m~latency_ms=20", format!("job {i}"))).unwrap()).collect();
    until("some jobs ran through the store", || gw.stats().providers["p"].jobs.completed >= 5).await;
    redis.kill();
    let started = Instant::now();
    let (mut ok, mut refused) = (0, 0);
    for j in jobs {
        match tokio::time::timeout(Duration::from_secs(60), j).await.expect("no job hangs") {
            Ok(_) => ok += 1,
            Err(e) if matches!(e.kind(), ErrorKind::RateLimited | ErrorKind::QueueTimeout) => refused += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(ok + refused, 200);
    assert!(ok >= 5 && refused > 0, "{ok} completed, {refused} refused");
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
    let s = gw.stats().providers["p"].clone();
    assert!(s.jobs.invariant_holds(), "{:?}", s.jobs);
    assert_eq!((s.jobs.queued, s.jobs.running), (0, 0));
    assert!(!s.limits_store.as_ref().unwrap().up);
}
