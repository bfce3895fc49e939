//! A provider's `limits` (docs/architecture.md §10), end to end: jobs wait
//! queued for capacity, a job whose wait would outlast its deadline ends
//! RATE_LIMITED at once, reported usage settles every reservation exactly,
//! and bifrost-mock's own log of arrivals stays within the bound.
//!
//! Timing: nothing here assumes a job is still running "by now". The waits
//! are long (a minute) where a test needs a job to be refused, and the
//! other checks are lower bounds the bucket guarantees (a busy machine can
//! only make them slower) or counts that do not depend on time.

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
    let gw = Gateway::from_value(json!({"providers": {"o": {"kind": "openai",
        "keys": [{"value": "mock-key", "models": ["*"]}],
        "network_config": {"base_url": format!("{}/v1", srv.url())},
        "limits": {"tokens_per_day": 1, "burst": {"tokens": 1000000}, "default_completion_tokens": 5000},
        "concurrency_and_buffer_size": {"concurrency": 1, "buffer_size": 10}}}}))
    .unwrap();
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
/// `burst + rate·t` requests (plus one for the loopback's reordering of
/// requests sent within microseconds), and the mock never answered 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mocks_log_of_arrivals_stays_within_the_bound() {
    let srv = MockServer::start(MockConfig {
        limits: MockLimits { requests_per_minute: Some(100_000), ..Default::default() },
        ..Default::default()
    })
    .await
    .unwrap();
    let gw = Arc::new(
        Gateway::from_value(json!({"providers": {"o": {"kind": "openai",
            "keys": [{"value": "mock-key", "models": ["*"]}],
            "network_config": {"base_url": format!("{}/v1", srv.url())},
            "limits": {"requests_per_second": 60, "burst": {"requests": 6}},
            "concurrency_and_buffer_size": {"concurrency": 8, "buffer_size": 1000}}}}))
        .unwrap(),
    );
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
    let (rate, per_ns, burst) = (60u128, 1_000_000_000u128, 6u128);
    for i in 0..log.len() {
        for j in i..log.len() {
            let n = (j - i + 1) as u128;
            let t = (log[j].at_ns - log[i].at_ns) as u128;
            assert!(n * per_ns <= (burst + 1) * per_ns + rate * t, "{n} requests in {t} ns");
        }
    }
    let j = gw.stats().providers["o"].jobs;
    assert!(j.invariant_holds(), "{j:?}");
}

/// Every request the provider sees is counted: a job that needed three
/// attempts took three requests from the bucket; a retry that would have
/// to wait past the deadline is not sent (the job ends with its last error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_retry_takes_a_request_from_the_bucket() {
    let srv = MockServer::start(MockConfig::default()).await.unwrap();
    let gw = Gateway::from_value(json!({"providers": {"o": {"kind": "openai",
        "keys": [{"value": "mock-key", "models": ["*"]}],
        "network_config": {"base_url": format!("{}/v1", srv.url()), "max_retries": 5,
            "retry_backoff_initial_ms": 1, "retry_backoff_max_ms": 2},
        "limits": {"requests_per_day": 1, "burst": {"requests": 4}}}}}))
    .unwrap();
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
    let srv = MockServer::start(MockConfig {
        limits: MockLimits { requests_per_minute: Some(4), window_ms: Some(1000), ..Default::default() },
        ..Default::default()
    })
    .await
    .unwrap();
    let gw = Arc::new(
        Gateway::from_value(json!({"providers": {"o": {"kind": "openai",
            "keys": [{"value": "mock-key", "models": ["*"]}],
            "network_config": {"base_url": format!("{}/v1", srv.url()), "max_retries": 20,
                "retry_backoff_initial_ms": 10, "retry_backoff_max_ms": 100},
            "limits": {"requests_per_second": 50, "learn_from_headers": true},
            "concurrency_and_buffer_size": {"concurrency": 4, "buffer_size": 100}}}}))
        .unwrap(),
    );
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
