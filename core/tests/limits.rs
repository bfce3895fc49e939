//! A provider's `limits` (docs/architecture.md §10), end to end: jobs wait
//! queued for capacity, a job whose wait would outlast its deadline ends
//! RATE_LIMITED at once, reported usage settles every reservation exactly,
//! and bifrost-mock's own log of arrivals stays within the bound.
//!
//! Timing: nothing here assumes a job is still running "by now". The waits
//! are long (a minute) where a test needs a job to be refused, and the
//! other checks are lower bounds the bucket guarantees (a busy machine can
//! only make them slower) or counts that do not depend on time.

#[path = "support/bound.rs"]
mod bound;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bifrost_core::{ErrorKind, Gateway, Request};
use bifrost_mock::{MockConfig, MockLimits, MockServer};
use serde_json::json;

fn gateway(limits: serde_json::Value) -> Gateway {
    Gateway::from_value(json!({"providers": {"p": {"kind": "mock", "limits": limits,
        "concurrency_and_buffer_size": {"concurrency": 4, "buffer_size": 1000}}}}))
    .unwrap()
}

fn req(text: &str) -> Request {
    Request::new("p/m", text)
}

/// A gateway with one OpenAI provider `o` pointed at `srv` (key
/// `mock-key`), `extra` merged into its config (`network_config` key by key).
fn openai_at(srv: &MockServer, extra: serde_json::Value) -> Gateway {
    let mut p = json!({"kind": "openai", "keys": [{"value": "mock-key", "models": ["*"]}],
        "network_config": {"base_url": format!("{}/v1", srv.url())}});
    for (k, v) in extra.as_object().expect("an object") {
        match (k.as_str(), v) {
            ("network_config", serde_json::Value::Object(net)) => {
                p["network_config"].as_object_mut().unwrap().extend(net.clone());
            }
            _ => p[k] = v.clone(),
        }
    }
    Gateway::from_value(json!({"providers": {"o": p}})).unwrap()
}

/// bifrost-mock enforcing (and logging) `limits`.
async fn mock_with(limits: MockLimits) -> MockServer {
    MockServer::start(MockConfig { limits, ..Default::default() }).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_wait_outlasts_its_deadline_is_rate_limited_at_once() {
    let gw = gateway(json!({"requests_per_minute": 1}));
    gw.chat(req("first")).await.expect("the bucket starts full");
    let mut second = req("second");
    second.timeout_ms = Some(5_000);
    let started = Instant::now();
    let e = gw.chat(second).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    // Refused when examined, not after waiting out its 5 s.
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let after = e.retry_after_ms().expect("says when");
    assert!(after > 50_000 && after <= 60_000, "{after}");
    assert!(e.to_string().contains("requests_per_minute"), "{e}");
    let s = gw.stats().providers["p"].clone();
    assert_eq!((s.jobs.submitted, s.jobs.completed, s.jobs.rate_limited), (2, 1, 1), "{:?}", s.jobs);
    assert!(s.jobs.invariant_holds());
    let bucket = &s.limits["requests"];
    assert_eq!((bucket.limit, bucket.period_ms, bucket.burst, bucket.remaining), (1, 60_000, 1, 0));
    assert_eq!(bucket.rate_limited, 1);
    // A job asking for more tokens than the bucket ever holds is refused too.
    let gw = gateway(json!({"tokens_per_minute": 100}));
    let mut big = req("x");
    big.params.insert("max_tokens".into(), json!(500));
    let e = gw.chat(big).await.unwrap_err();
    assert_eq!((e.kind(), e.retry_after_ms()), (ErrorKind::RateLimited, None), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_jobs_stay_queued_and_start_when_the_bucket_allows() {
    // 4 per second, 1 at a time: 9 jobs take at least 2 s whatever the load.
    let gw = Arc::new(gateway(json!({"requests_per_second": 4, "burst": {"requests": 1}})));
    let started = Instant::now();
    let jobs: Vec<_> = (0..9).map(|i| gw.try_submit(req(&format!("job {i}"))).unwrap()).collect();
    for j in jobs {
        j.await.expect("every job runs once capacity comes");
    }
    assert!(started.elapsed() >= Duration::from_millis(1990), "{:?}", started.elapsed());
    let s = gw.stats().providers["p"].clone();
    assert_eq!((s.jobs.completed, s.jobs.rate_limited), (9, 0));
    assert!(s.limits["requests"].waits >= 1, "{:?}", s.limits);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_usage_settles_every_reservation_exactly() {
    // One token a day refills nothing during the test: the bucket's level
    // is exactly what the jobs used. Through bifrost-mock over HTTP, so the
    // test sees when a request has reached the provider.
    let srv = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = openai_at(
        &srv,
        json!({"limits": {"tokens_per_day": 1, "burst": {"tokens": 1000000}, "default_completion_tokens": 5000},
            "concurrency_and_buffer_size": {"concurrency": 1, "buffer_size": 10}}),
    );
    let mut used = 0;
    for i in 0..20 {
        let text = "word ".repeat(i + 1);
        let r = gw.chat(Request::new("o/gpt-4o", &text)).await.unwrap();
        used += r.usage.total_tokens;
    }
    // One cancelled while its request is out keeps its reservation (the
    // provider may have counted it): 12 bytes of prompt (3 tokens) + 5000
    // completion. One cancelled while queued behind it (concurrency 1)
    // never reached the provider: it gives back everything.
    let out = gw.submit(Request::new("o/gpt-4o~hang=true", "in flight...")).await.unwrap();
    let queued = gw.submit(Request::new("o/gpt-4o", "never sent")).await.unwrap();
    for _ in 0..6000 {
        if srv.stats().requests == 21 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(srv.stats().requests, 21, "the hanging request reached the mock");
    assert!(queued.cancel() && out.cancel());
    assert_eq!(queued.await.unwrap_err().kind(), ErrorKind::Cancelled);
    assert_eq!(out.await.unwrap_err().kind(), ErrorKind::Cancelled);
    let s = gw.stats().providers["o"].clone();
    assert_eq!(s.limits["tokens"].remaining, 1_000_000 - used - 5003, "{:?}", s.limits);
    assert_eq!(srv.stats().requests, 21, "the queued job never went out");
}

/// 150 jobs from 16 submitters, some cancelled, through an HTTP provider:
/// in bifrost-mock's log of arrivals, no interval holds more than
/// `burst + rate·(t + 250 ms)` requests, and the mock never answered 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mocks_log_of_arrivals_stays_within_the_bound() {
    let srv = mock_with(MockLimits { requests_per_minute: Some(100_000), ..Default::default() }).await;
    let gw = Arc::new(openai_at(
        &srv,
        json!({"limits": {"requests_per_second": 60, "burst": {"requests": 6}},
            "concurrency_and_buffer_size": {"concurrency": 8, "buffer_size": 1000}}),
    ));
    let mut tasks = Vec::new();
    for s in 0..16 {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for i in 0..10 {
                let job = gw.submit(Request::new("o/gpt-4o-mini", "hi")).await.unwrap();
                if (s + i) % 7 == 0 {
                    job.cancel();
                    let _ = job.await;
                } else if job.await.is_ok() {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    assert!(ok > 100, "{ok}");
    assert_eq!(srv.rate_limited(), 0);
    let log = srv.admissions();
    // As in the 10k-job test below: `t + 250 ms` allows for a request
    // admitted early reaching the mock late on a busy machine.
    bound::requests_within(&log, 60, 1_000_000_000, 6, 250_000_000);
    let j = gw.stats().providers["o"].jobs;
    assert!(j.invariant_holds(), "{j:?}");
}

/// Every request the provider sees is counted: a job that needed three
/// attempts took three requests from the bucket; a retry that would have
/// to wait past the deadline is not sent (the job ends with its last error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_retry_takes_a_request_from_the_bucket() {
    let srv = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = openai_at(
        &srv,
        json!({"network_config": {"max_retries": 5, "retry_backoff_initial_ms": 1, "retry_backoff_max_ms": 2},
        "limits": {"requests_per_day": 1, "burst": {"requests": 4}}}),
    );
    let r = gw.chat(Request::new("o/gpt-4o~fail_status=503&fail_first=2&scenario=a", "hi")).await.unwrap();
    assert_eq!(r.extra_fields.attempts, 3);
    assert_eq!(gw.stats().providers["o"].limits["requests"].remaining, 1);
    // One request left: the first attempt takes it, its retry would wait a
    // day, so the job ends with the 503 after one request.
    let mut second = Request::new("o/gpt-4o~fail_status=503&fail_first=5&scenario=b", "hi");
    second.timeout_ms = Some(60_000);
    let e = gw.chat(second).await.unwrap_err();
    assert_eq!(e.status(), Some(503), "{e}");
    assert_eq!(srv.stats().requests, 4, "3 + 1 requests reached the provider");
    let s = gw.stats().providers["o"].clone();
    assert_eq!(s.limits["requests"].remaining, 0);
    assert_eq!((s.jobs.completed, s.jobs.failed, s.jobs.rate_limited), (1, 1, 0), "{:?}", s.jobs);
}

/// bifrost-mock allows 4 requests per second (a sliding window) while
/// bifrost is configured for 50: with `learn_from_headers`, the mock's
/// `x-ratelimit-remaining/reset` and its 429's `Retry-After` lower the
/// bucket, so 429s stay at most one per window that passed (plus one),
/// and every job completes. (Without learning, the same run sees about
/// 16 429s in 5 windows.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learning_from_headers_keeps_429s_to_one_per_window() {
    let srv = mock_with(MockLimits { requests_per_minute: Some(4), window_ms: Some(1000), ..Default::default() }).await;
    let gw = Arc::new(openai_at(
        &srv,
        json!({"network_config": {"max_retries": 20, "retry_backoff_initial_ms": 10, "retry_backoff_max_ms": 100},
        "limits": {"requests_per_second": 50, "learn_from_headers": true},
        "concurrency_and_buffer_size": {"concurrency": 4, "buffer_size": 100}}),
    ));
    let started = Instant::now();
    let jobs: Vec<_> = (0..20).map(|i| gw.try_submit(Request::new("o/gpt-4o", format!("job {i}"))).unwrap()).collect();
    for j in jobs {
        j.await.expect("every job completes");
    }
    let windows = started.elapsed().as_millis().div_ceil(1000) as u64;
    let refused = srv.rate_limited();
    assert!(refused <= windows + 1, "{refused} 429s in {windows} windows");
    assert_eq!(srv.admissions().len(), 20);
    let s = gw.stats().providers["o"].clone();
    assert_eq!(s.jobs.completed, 20);
    assert!(s.limits["requests"].waits > 0, "the learned level made jobs wait: {:?}", s.limits);
}

/// The bound under load: 10 000 jobs from 16 submitters with random
/// prompts and `max_tokens`, random deadlines, cancellations (queued and
/// in flight) and a shutdown midway, through bifrost-mock over HTTP, with
/// `max_in_flight` 8 (every slot is back at the end).
///
/// Judge: bifrost-mock's own log of arrivals (time, and tokens as it
/// counts them: prompt words + `max_tokens`, which is also the usage it
/// reports, as every prompt has more words than `max_tokens`). Over every
/// interval between two arrivals, requests and tokens stay within
/// `burst + rate·(t + D)`, where `D` = 250 ms allows for a request that
/// was admitted early reaching the mock late on a busy machine; over the
/// whole run, where `D` hardly matters, that is a tight check of the rate.
/// Every handle resolves exactly once, and the stats agree with the
/// outcomes the handles saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bound_holds_for_10k_jobs_with_cancellations_and_a_shutdown_midway() {
    const JOBS_PER_SUBMITTER: usize = 625;
    const SUBMITTERS: usize = 16;
    let (rps, burst_r, tps, burst_t) = (400u128, 20u128, 15_000u128, 2_000u128);
    let srv = mock_with(MockLimits {
        requests_per_minute: Some(1_000_000_000),
        tokens_per_minute: Some(1_000_000_000_000),
        ..Default::default()
    })
    .await;
    let gw = Arc::new(openai_at(
        &srv,
        json!({"network_config": {"max_retries": 0},
        "limits": {"requests_per_second": rps as u64, "tokens_per_second": tps as u64,
            "burst": {"requests": burst_r as u64, "tokens": burst_t as u64}, "max_in_flight": 8},
        "concurrency_and_buffer_size": {"concurrency": 16, "buffer_size": 10000}}),
    ));
    let mut submitters = Vec::new();
    for s in 0..SUBMITTERS {
        let gw = gw.clone();
        submitters.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(0xb1f0 + s as u64);
            let mut waits = Vec::new();
            for _ in 0..JOBS_PER_SUBMITTER {
                let words = rng.u64(16..=64);
                // 8 bytes a word: bifrost's estimate (2 a word) is above the mock's count.
                let text = "abcdefg ".repeat(words as usize);
                let mut r = Request::new("o/gpt-4o~latency_ms=20", text.trim_end());
                r.params.insert("max_tokens".into(), json!(rng.u64(1..=16)));
                match rng.u8(0..100) {
                    // More than the token bucket ever holds: RATE_LIMITED
                    // when it reaches the front.
                    0 => r.estimated_tokens = Some(burst_t as u64 + 1),
                    1..=30 => r.timeout_ms = Some(rng.u64(50..=500)),
                    _ => {}
                }
                let job = match gw.try_submit(r) {
                    Ok(job) => job,
                    Err(e) => {
                        assert_eq!(e.kind(), ErrorKind::Shutdown, "{e}");
                        waits.push(tokio::spawn(async move { Err::<(), _>(e.kind()) }));
                        continue;
                    }
                };
                let cancel = rng.u8(0..100);
                waits.push(tokio::spawn(async move {
                    if cancel < 5 {
                        job.cancel();
                    } else if cancel < 15 {
                        tokio::time::sleep(Duration::from_millis(cancel as u64 * 3)).await;
                        job.cancel();
                    }
                    job.await.map(|_| ()).map_err(|e| e.kind())
                }));
                if rng.u8(0..4) == 0 {
                    tokio::task::yield_now().await;
                }
            }
            let mut outcomes = Vec::new();
            for w in waits {
                outcomes.push(w.await.unwrap());
            }
            outcomes
        }));
    }
    // Shut down once the mock has seen 1500 requests (a count, not a time).
    for _ in 0..12_000 {
        if srv.admissions().len() >= 1500 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(srv.admissions().len() >= 1500, "the run made progress");
    gw.shutdown(Duration::from_millis(100)).await;
    let mut by_kind = std::collections::BTreeMap::<String, u64>::new();
    let mut ok = 0u64;
    for s in submitters {
        for outcome in s.await.unwrap() {
            match outcome {
                Ok(()) => ok += 1,
                Err(kind) => *by_kind.entry(format!("{kind:?}")).or_default() += 1,
            }
        }
    }
    let total = ok + by_kind.values().sum::<u64>();
    assert_eq!(total, (SUBMITTERS * JOBS_PER_SUBMITTER) as u64, "every handle resolved once");
    let j = gw.stats().providers["o"].jobs;
    assert!(j.invariant_holds(), "{j:?}");
    assert_eq!((j.queued, j.running), (0, 0), "{j:?}");
    assert_eq!(j.completed, ok, "{j:?} {by_kind:?}");
    assert_eq!(j.cancelled, by_kind.get("Cancelled").copied().unwrap_or(0), "{j:?} {by_kind:?}");
    assert_eq!(j.rate_limited, by_kind.get("RateLimited").copied().unwrap_or(0), "{j:?} {by_kind:?}");
    assert!(j.rate_limited > 0 && j.cancelled > 0, "the run had refusals and cancels: {j:?}");
    let slots = gw.stats().providers["o"].limits["in_flight"];
    assert_eq!(slots.remaining, 8, "every in-flight slot was given back: {slots:?}");

    let log = srv.admissions();
    assert_eq!(srv.rate_limited(), 0);
    let d_ns = 250_000_000u128;
    let sec = 1_000_000_000u128;
    let mut tokens_before = vec![0u128; log.len() + 1];
    for (i, a) in log.iter().enumerate() {
        tokens_before[i + 1] = tokens_before[i] + a.tokens as u128;
    }
    for i in 0..log.len() {
        for k in i..log.len() {
            let t = (log[k].at_ns - log[i].at_ns) as u128 + d_ns;
            let n = (k - i + 1) as u128;
            let tokens = tokens_before[k + 1] - tokens_before[i];
            assert!(n * sec <= burst_r * sec + rps * t, "{n} requests in {} ms", t / 1_000_000);
            assert!(tokens * sec <= burst_t * sec + tps * t, "{tokens} tokens in {} ms", t / 1_000_000);
        }
    }
    let span = (log[log.len() - 1].at_ns - log[0].at_ns) as u128;
    eprintln!(
        "{} requests, {} tokens in {} ms (bound: {} requests, {} tokens); outcomes: {ok} ok, {by_kind:?}",
        log.len(),
        tokens_before[log.len()],
        span / 1_000_000,
        burst_r + rps * span / sec,
        burst_t + tps * span / sec
    );
}

/// A stream's reservation is settled when the chunk with its usage goes
/// by; a stream dropped before then keeps its estimate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_settles_with_the_usage_at_its_end() {
    let srv = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = openai_at(
        &srv,
        json!({"limits": {"tokens_per_day": 1, "burst": {"tokens": 1000000}, "default_completion_tokens": 5000}}),
    );
    let remaining = || gw.stats().providers["o"].limits["tokens"].remaining;
    let mut s = gw.stream(Request::new("o/gpt-4o~chunks=4", "one two three")).await.unwrap();
    let mut usage = None;
    while let Some(c) = s.next_chunk().await {
        if let Some(u) = c.unwrap().usage {
            usage = Some(u.total_tokens);
        }
    }
    let used = usage.expect("the mock reports usage on the last chunk");
    assert_eq!(remaining(), 1_000_000 - used);
    // Dropped after its first chunk: the reservation (13 bytes: 4 tokens,
    // + 5000) stands.
    let mut s = gw.stream(Request::new("o/gpt-4o~chunks=4", "one two three")).await.unwrap();
    s.next_chunk().await.unwrap().unwrap();
    drop(s);
    assert_eq!(remaining(), 1_000_000 - used - 5004);
}

/// `max_in_flight: 2`, 8 workers: bifrost-mock never has more than two
/// requests at once. Each takes at least 200 ms there, and a third can
/// only go once one of two has come back, so any three consecutive
/// arrivals span at least 200 ms (a busy machine can only spread them).
/// A stream holds its slot until it ends or is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_in_flight_bounds_the_requests_at_the_provider() {
    let srv = mock_with(MockLimits { requests_per_minute: Some(1_000_000), ..Default::default() }).await;
    let gw = Arc::new(openai_at(
        &srv,
        json!({"limits": {"max_in_flight": 2}, "concurrency_and_buffer_size": {"concurrency": 8, "buffer_size": 100}}),
    ));
    let jobs: Vec<_> =
        (0..10).map(|i| gw.try_submit(Request::new("o/gpt-4o~latency_ms=200", format!("job {i}"))).unwrap()).collect();
    for j in jobs {
        j.await.expect("every job completes");
    }
    let log = srv.admissions();
    assert_eq!(log.len(), 10);
    for w in log.windows(3) {
        assert!(w[2].at_ns - w[0].at_ns >= 200_000_000, "three requests within 200 ms: {log:?}");
    }
    let s = gw.stats().providers["o"].clone();
    let slots = &s.limits["in_flight"];
    assert_eq!((slots.limit, slots.remaining), (2, 2), "{slots:?}");
    assert!(slots.waits > 0, "{slots:?}");

    // Two open streams hold both slots: a third request does not go out
    // until one of them is dropped.
    srv.reset();
    let mut a = gw.stream(Request::new("o/gpt-4o~chunks=3", "a")).await.unwrap();
    let b = gw.stream(Request::new("o/gpt-4o~chunks=3", "b")).await.unwrap();
    a.next_chunk().await.unwrap().unwrap();
    let third = gw.try_submit(Request::new("o/gpt-4o", "c")).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(srv.stats().requests, 2, "the third request waits for a slot");
    assert_eq!(gw.stats().providers["o"].limits["in_flight"].remaining, 0);
    drop(b);
    third.await.expect("runs once a stream is dropped");
    // Reading a stream to its end gives its slot back too.
    while let Some(c) = a.next_chunk().await {
        c.unwrap();
    }
    assert_eq!(gw.stats().providers["o"].limits["in_flight"].remaining, 2);
}

/// `scope: "key"`: each key has its own buckets, and a job goes to a key
/// with capacity now. Key 0 weighs 1000 times key 1, yet with 3 requests a
/// minute each, six jobs complete at once, three on each key (without the
/// preference for capacity, the heavy key's jobs would wait 20 s each);
/// the seventh, with a 5 s deadline, is RATE_LIMITED at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_scope_key_jobs_go_to_a_key_with_capacity() {
    let srv =
        MockServer::start(MockConfig { api_keys: vec!["k0".into(), "k1".into()], ..Default::default() }).await.unwrap();
    let gw = Gateway::from_value(json!({"providers": {"o": {"kind": "openai",
        "keys": [{"value": "k0", "models": ["*"], "weight": 1000.0}, {"value": "k1", "models": ["*"], "weight": 1.0}],
        "network_config": {"base_url": format!("{}/v1", srv.url())},
        "limits": {"requests_per_minute": 3, "scope": "key"}}}}))
    .unwrap();
    let mut on = std::collections::BTreeMap::<String, u32>::new();
    for i in 0..6 {
        let mut r = Request::new("o/gpt-4o", format!("job {i}"));
        r.timeout_ms = Some(60_000);
        let resp = gw.chat(r).await.expect("a key has capacity");
        *on.entry(resp.extra_fields.key_id.unwrap()).or_default() += 1;
    }
    assert_eq!(on, [("o#0".to_string(), 3), ("o#1".to_string(), 3)].into());
    let s = gw.stats().providers["o"].clone();
    assert_eq!((s.limits["o#0:requests"].waits, s.limits["o#1:requests"].waits), (0, 0), "no job waited for a refill");
    let mut late = Request::new("o/gpt-4o", "late");
    late.timeout_ms = Some(5_000);
    let e = gw.chat(late).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert!(e.to_string().contains("of key o#"), "{e}");
    let s = gw.stats().providers["o"].clone();
    assert_eq!((s.limits["o#0:requests"].remaining, s.limits["o#1:requests"].remaining), (0, 0), "{:?}", s.limits);
    assert!(s.jobs.invariant_holds());
}
