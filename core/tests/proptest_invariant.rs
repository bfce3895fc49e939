//! Property test of the accounting invariant (docs/architecture.md §3) under random
//! sequences of submits (both paths, every queue policy), cancels, handle
//! drops, detaches, partial awaits and one shutdown at a random point.
//!
//! After a final shutdown every provider must be idle with
//! `submitted = completed + failed + dropped + rejected + timed_out + cancelled`,
//! `submitted` must match what the caller saw (handles returned, plus
//! rejections and timeouts at submit), every handle must resolve exactly once
//! with a response or a typed error, and each outcome bucket must agree with
//! the outcomes the handles reported.

use std::sync::{Arc, Once};
use std::time::Duration;

use bifrost_core::{Error, ErrorKind, Gateway, Job, MockConfig, Request, Response, TimeoutPhase};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const POLICIES: [&str; 4] = ["block", "error", "drop", "drop_oldest"];

#[derive(Debug, Clone)]
struct PoolCfg {
    concurrency: usize,
    buffer_size: usize,
    policy: &'static str,
    wait_timeout_ms: u64,
    max_retries: u32,
}

#[derive(Debug, Clone)]
struct Mock {
    latency_ms: u64,
    failure_rate: f64,
    panic_rate: f64,
    timeout_ms: Option<u64>,
}

#[derive(Debug, Clone)]
enum Op {
    TrySubmit {
        provider: usize,
        mock: Mock,
    },
    Submit {
        provider: usize,
        mock: Mock,
    },
    Cancel(usize),
    DropHandle(usize),
    Detach(usize),
    /// Await a handle for at most this many ms (it may stay pending).
    Poll(usize, u64),
    Sleep(u64),
}

#[derive(Debug, Clone)]
struct Shutdown {
    /// Position in the op list (taken modulo its length + 1).
    at: usize,
    timeout_ms: u64,
    /// Run it in a spawned task, racing the following ops.
    concurrent: bool,
}

#[derive(Debug, Clone)]
struct Scenario {
    pools: Vec<PoolCfg>,
    ops: Vec<Op>,
    shutdown: Option<Shutdown>,
}

fn pool_cfg() -> impl Strategy<Value = PoolCfg> {
    (1usize..=3, 1usize..=4, prop::sample::select(POLICIES.to_vec()), 0u64..=10, 0u32..=2).prop_map(
        |(concurrency, buffer_size, policy, wait_timeout_ms, max_retries)| PoolCfg {
            concurrency,
            buffer_size,
            policy,
            wait_timeout_ms,
            max_retries,
        },
    )
}

fn mock() -> impl Strategy<Value = Mock> {
    (
        0u64..5,
        prop::sample::select(vec![0.0, 0.5, 1.0]),
        prop::sample::select(vec![0.0, 0.3]),
        prop::option::of(1u64..10),
    )
        .prop_map(|(latency_ms, failure_rate, panic_rate, timeout_ms)| Mock {
            latency_ms,
            failure_rate,
            panic_rate,
            timeout_ms,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..2, mock()).prop_map(|(provider, mock)| Op::TrySubmit { provider, mock }),
        4 => (0usize..2, mock()).prop_map(|(provider, mock)| Op::Submit { provider, mock }),
        2 => any::<usize>().prop_map(Op::Cancel),
        1 => any::<usize>().prop_map(Op::DropHandle),
        1 => any::<usize>().prop_map(Op::Detach),
        1 => (any::<usize>(), 0u64..4).prop_map(|(i, ms)| Op::Poll(i, ms)),
        1 => (0u64..3).prop_map(Op::Sleep),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(pool_cfg(), 1..=2),
        prop::collection::vec(op(), 0..=60),
        prop::option::of((any::<usize>(), 0u64..20, any::<bool>())),
    )
        .prop_map(|(pools, ops, shutdown)| Scenario {
            pools,
            ops,
            shutdown: shutdown.map(|(at, timeout_ms, concurrent)| Shutdown { at, timeout_ms, concurrent }),
        })
}

fn provider_name(i: usize) -> String {
    format!("p{i}")
}

fn config_json(pools: &[PoolCfg]) -> String {
    let providers: serde_json::Map<String, serde_json::Value> = pools
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let v = serde_json::json!({
                "kind": "mock",
                "concurrency_and_buffer_size": {"concurrency": p.concurrency, "buffer_size": p.buffer_size},
                "queue": {"policy": p.policy, "wait_timeout_ms": p.wait_timeout_ms},
                "network_config": {"max_retries": p.max_retries, "retry_backoff_initial_ms": 1, "retry_backoff_max_ms": 2},
            });
            (provider_name(i), v)
        })
        .collect();
    serde_json::json!({"initial_pool_size": 4, "providers": providers}).to_string()
}

/// The stats bucket an outcome is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bucket {
    Completed,
    Failed,
    Dropped,
    Rejected,
    TimedOut,
    Cancelled,
}

const BUCKETS: [Bucket; 6] =
    [Bucket::Completed, Bucket::Failed, Bucket::Dropped, Bucket::Rejected, Bucket::TimedOut, Bucket::Cancelled];

/// Per provider: what the caller observed.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// Submits that returned a handle.
    ok_submits: u64,
    /// Submits refused with an error that counts as submitted (QUEUE_FULL, QUEUE_TIMEOUT, TIMEOUT).
    counted_errs: u64,
    /// Submits refused with SHUTDOWN (not counted).
    shutdown_errs: u64,
    /// Handles dropped or detached before they resolved: outcomes we never see.
    unobserved: u64,
    /// Outcomes seen, per bucket (handle results and submit errors).
    buckets: [u64; 6],
    /// INTERNAL outcomes (caught panics) seen.
    panics_seen: u64,
    /// Whether any request to this provider could panic.
    panic_possible: bool,
}

fn bucket_index(b: Bucket) -> usize {
    BUCKETS.iter().position(|x| *x == b).unwrap()
}

/// Classifies a handle's outcome, checking it is one a job may end with.
fn classify(provider: &str, r: &bifrost_core::Result<Response>) -> Result<Bucket, TestCaseError> {
    let e = match r {
        Ok(resp) => {
            prop_assert_eq!(resp.text(), Some("echo: ping"));
            prop_assert_eq!(resp.extra_fields.provider.as_str(), provider);
            return Ok(Bucket::Completed);
        }
        Err(e) => e,
    };
    if let Error::Internal { message } = e {
        // A caught panic carries no provider field; its message names the provider.
        prop_assert!(message.contains(&format!("provider '{provider}' panicked")), "unexpected: {}", message);
        prop_assert!(message.contains("injected a panic"), "unexpected internal error: {}", message);
        return Ok(Bucket::Failed);
    }
    prop_assert_eq!(e.provider(), Some(provider), "error without its provider: {}", e);
    let b = match e {
        Error::Cancelled { .. } => Bucket::Cancelled,
        Error::Dropped { .. } => Bucket::Dropped,
        Error::QueueTimeout { .. } => Bucket::TimedOut,
        Error::Timeout { phase: TimeoutPhase::Queued, .. } => Bucket::TimedOut,
        Error::Timeout { phase: TimeoutPhase::Processing, .. } => Bucket::Failed,
        Error::Provider { status, .. } => {
            prop_assert_eq!(*status, 500);
            Bucket::Failed
        }
        Error::Shutdown { .. } => Bucket::Failed,
        other => {
            return Err(TestCaseError::fail(format!("a job handle resolved with an unexpected error: {other:?}")));
        }
    };
    Ok(b)
}

struct Slot {
    provider: usize,
    job: Option<Job<Response>>,
}

fn pick(slots: &mut [Slot], i: usize) -> Option<&mut Slot> {
    if slots.is_empty() {
        return None;
    }
    let n = slots.len();
    slots.get_mut(i % n).filter(|s| s.job.is_some())
}

fn record_outcome(seen: &mut [Seen], provider: usize, r: &bifrost_core::Result<Response>) -> Result<(), TestCaseError> {
    let b = classify(&provider_name(provider), r)?;
    let s = &mut seen[provider];
    s.buckets[bucket_index(b)] += 1;
    if matches!(r, Err(Error::Internal { .. })) {
        s.panics_seen += 1;
    }
    Ok(())
}

fn record_submit(
    seen: &mut [Seen],
    slots: &mut Vec<Slot>,
    provider: usize,
    r: bifrost_core::Result<Job<Response>>,
) -> Result<(), TestCaseError> {
    let name = provider_name(provider);
    let s = &mut seen[provider];
    match r {
        Ok(job) => {
            s.ok_submits += 1;
            slots.push(Slot { provider, job: Some(job) });
        }
        Err(e) => {
            prop_assert_eq!(e.provider(), Some(name.as_str()), "submit error without its provider: {}", e);
            let bucket = match &e {
                Error::QueueFull { .. } => Bucket::Rejected,
                Error::QueueTimeout { .. } => Bucket::TimedOut,
                Error::Timeout { phase: TimeoutPhase::Queued, .. } => Bucket::TimedOut,
                Error::Shutdown { .. } => {
                    s.shutdown_errs += 1;
                    return Ok(());
                }
                other => return Err(TestCaseError::fail(format!("unexpected submit error: {other:?}"))),
            };
            s.counted_errs += 1;
            s.buckets[bucket_index(bucket)] += 1;
        }
    }
    Ok(())
}

fn request(provider: usize, m: &Mock) -> Request {
    let mut r = Request::new(format!("{}/echo", provider_name(provider)), "ping");
    r.timeout_ms = m.timeout_ms;
    r.mock = Some(MockConfig {
        latency_ms: Some(m.latency_ms),
        failure_rate: Some(m.failure_rate),
        panic_rate: Some(m.panic_rate),
        ..Default::default()
    });
    r
}

async fn run(sc: Scenario) -> Result<(), TestCaseError> {
    let npools = sc.pools.len();
    let gw = Arc::new(Gateway::from_json(&config_json(&sc.pools)).map_err(|e| TestCaseError::fail(e.to_string()))?);
    let mut seen = vec![Seen::default(); npools];
    let mut slots: Vec<Slot> = Vec::new();
    let shutdown_at = sc.shutdown.as_ref().map(|s| s.at % (sc.ops.len() + 1));
    let mut background = None;

    for (i, op) in sc.ops.iter().enumerate() {
        if shutdown_at == Some(i) {
            let s = sc.shutdown.as_ref().unwrap();
            let timeout = Duration::from_millis(s.timeout_ms);
            if s.concurrent {
                let gw = gw.clone();
                background = Some(tokio::spawn(async move { gw.shutdown(timeout).await }));
            } else {
                gw.shutdown(timeout).await;
            }
        }
        match op {
            Op::TrySubmit { provider, mock } => {
                let p = provider % npools;
                seen[p].panic_possible |= mock.panic_rate > 0.0;
                let r = gw.try_submit(request(p, mock));
                record_submit(&mut seen, &mut slots, p, r)?;
            }
            Op::Submit { provider, mock } => {
                let p = provider % npools;
                seen[p].panic_possible |= mock.panic_rate > 0.0;
                let r = tokio::time::timeout(Duration::from_secs(10), gw.submit(request(p, mock))).await;
                let r = r.map_err(|_| TestCaseError::fail("submit did not return within 10 s"))?;
                record_submit(&mut seen, &mut slots, p, r)?;
            }
            Op::Cancel(i) => {
                if let Some(slot) = pick(&mut slots, *i) {
                    let job = slot.job.as_ref().unwrap();
                    // `cancel` refuses only jobs that already have their outcome.
                    if !job.cancel() {
                        prop_assert!(job.is_done(), "cancel() returned false for unfinished job {}", job.id());
                    }
                }
            }
            Op::DropHandle(i) => {
                if let Some(slot) = pick(&mut slots, *i) {
                    drop(slot.job.take());
                    seen[slot.provider].unobserved += 1;
                }
            }
            Op::Detach(i) => {
                if let Some(slot) = pick(&mut slots, *i) {
                    slot.job.take().unwrap().detach();
                    seen[slot.provider].unobserved += 1;
                }
            }
            Op::Poll(i, ms) => {
                if let Some(slot) = pick(&mut slots, *i) {
                    let job = slot.job.as_mut().unwrap();
                    if let Ok(r) = tokio::time::timeout(Duration::from_millis(*ms), job).await {
                        slot.job = None;
                        record_outcome(&mut seen, slot.provider, &r)?;
                    }
                }
            }
            Op::Sleep(ms) => tokio::time::sleep(Duration::from_millis(*ms)).await,
        }
    }
    if shutdown_at == Some(sc.ops.len()) {
        gw.shutdown(Duration::from_millis(sc.shutdown.as_ref().unwrap().timeout_ms)).await;
    }

    // Final shutdown; it returns the first shutdown's report if one already ran.
    let report = tokio::time::timeout(Duration::from_secs(10), gw.shutdown(Duration::from_secs(1)))
        .await
        .map_err(|_| TestCaseError::fail("shutdown did not return within 10 s"))?;
    if let Some(bg) = background {
        let bg_report = bg.await.map_err(|e| TestCaseError::fail(format!("shutdown task failed: {e}")))?;
        prop_assert_eq!(&bg_report, &report, "concurrent shutdowns must share one report");
    }
    prop_assert!(report.failed >= report.aborted, "report: {:?}", report);
    // Once shutdown returned, every pool is idle: each outcome is already counted,
    // before any handle is awaited (an unawaited, detached job included).
    for (name, st) in &gw.stats().providers {
        prop_assert!(st.jobs.invariant_holds(), "{} right after shutdown: {:?}", name, st.jobs);
        prop_assert_eq!((st.jobs.queued, st.jobs.running), (0, 0), "{} right after shutdown", name);
    }
    prop_assert_eq!(gw.health().status, "shutdown");

    // Every remaining handle has an outcome now, and resolves exactly once.
    for slot in slots.iter_mut() {
        let Some(job) = slot.job.take() else { continue };
        prop_assert!(job.is_done(), "job {} still pending after shutdown", job.id());
        let r = tokio::time::timeout(Duration::from_secs(10), job)
            .await
            .map_err(|_| TestCaseError::fail("a job handle did not resolve within 10 s"))?;
        record_outcome(&mut seen, slot.provider, &r)?;
    }

    // Submits after shutdown are refused with SHUTDOWN and not counted.
    let before = gw.stats();
    let late = gw.try_submit(request(0, &Mock { latency_ms: 0, failure_rate: 0.0, panic_rate: 0.0, timeout_ms: None }));
    prop_assert!(matches!(&late, Err(e) if e.kind() == ErrorKind::Shutdown), "late submit: {:?}", late);
    prop_assert_eq!(gw.stats().providers["p0"].jobs, before.providers["p0"].jobs);

    let stats = gw.stats();
    for (p, s) in seen.iter().enumerate() {
        let name = provider_name(p);
        let st = &stats.providers[&name];
        let j = st.jobs;
        prop_assert!(j.invariant_holds(), "{}: invariant broken: {:?} (seen {:?})", name, j, s);
        prop_assert_eq!(j.queued, 0, "{}: {:?}", name, j);
        prop_assert_eq!(j.running, 0, "{}: {:?}", name, j);
        prop_assert_eq!(st.queue.depth, 0);
        prop_assert_eq!(j.submitted, s.ok_submits + s.counted_errs, "{}: {:?} vs seen {:?}", name, j, s);
        let counted = [j.completed, j.failed, j.dropped, j.rejected, j.timed_out, j.cancelled];
        for (k, b) in BUCKETS.iter().enumerate() {
            prop_assert!(
                s.buckets[k] <= counted[k] && counted[k] <= s.buckets[k] + s.unobserved,
                "{}: bucket {:?}: seen {} (+{} unobserved), counted {}; stats {:?}",
                name,
                b,
                s.buckets[k],
                s.unobserved,
                counted[k],
                j
            );
        }
        prop_assert_eq!(counted.iter().sum::<u64>(), s.buckets.iter().sum::<u64>() + s.unobserved);
        // Ok outcomes seen by handles never exceed `completed`.
        prop_assert!(s.buckets[bucket_index(Bucket::Completed)] <= j.completed);
        // Caught panics: each one seen is counted, and none appear without panic injection.
        prop_assert!(s.panics_seen <= j.panics && j.panics <= s.panics_seen + s.unobserved, "{}: {:?}", name, j);
        prop_assert!(j.panics <= j.failed);
        if !s.panic_possible {
            prop_assert_eq!(j.panics, 0);
        }
        if sc.pools[p].max_retries == 0 {
            prop_assert_eq!(j.retries, 0);
        }
        // The pool kept its workers through panics until shutdown; all are gone now.
        prop_assert_eq!(st.workers.total, 0, "{}: workers still alive after shutdown", name);
    }
    Ok(())
}

/// Injected mock panics are expected; keep them off stderr, report any other panic.
fn quiet_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let text = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !(text.starts_with("mock provider '") && text.contains("injected a panic")) {
                default(info);
            }
        }));
    });
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(64) })]

    #[test]
    fn accounting_invariant_under_random_operations(sc in scenario()) {
        quiet_injected_panics();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(run(sc))?;
    }
}
