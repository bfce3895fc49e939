//! A stream that fails after content reached the caller is recovered as
//! its `failover.stream_recovery` says (docs/failover.md "Stream
//! recovery"): `restart` (a marker, then the new answer), `buffer`
//! (invisible), `continue` (an assistant prefill, only the continuation),
//! `off` (an error carrying the text so far). Against bifrost-mock over
//! loopback HTTP; its per-scenario request counts judge the attempts.

use bifrost_core::{Chunk, ChunkStream, Error, ErrorKind, Gateway, Request};
use bifrost_mock::{MockConfig, MockServer};
use serde_json::{json, Value};

fn gateway(srv: &MockServer) -> Gateway {
    let url = srv.url();
    let net = |base: String| json!({"base_url": base, "max_retries": 2, "retry_backoff_initial_ms": 1, "retry_backoff_max_ms": 2});
    Gateway::from_value(json!({"providers": {
        "openai": {"keys": [{"value": "mock-key", "models": ["*"]}], "network_config": net(format!("{url}/v1"))},
        "anthropic": {"keys": [{"value": "mock-key", "models": ["*"]}], "network_config": net(url.clone())},
    }}))
    .expect("gateway")
}

fn seen(srv: &MockServer, scenario: &str) -> u64 {
    srv.stats().by_scenario.get(scenario).copied().unwrap_or(0)
}

fn with_recovery(mut r: Request, mode: &str) -> Request {
    r.failover = Some(serde_json::from_value(json!({"stream_recovery": mode})).unwrap());
    r
}

/// Every item of the stream, to its end.
async fn drain(mut s: ChunkStream) -> Vec<Result<Chunk, Error>> {
    let mut items = Vec::new();
    while let Some(item) = s.next_chunk().await {
        items.push(item);
    }
    items
}

fn content(c: &Chunk) -> String {
    c.choices.iter().filter_map(|ch| ch.delta.content.clone()).collect()
}

fn markers(items: &[Result<Chunk, Error>]) -> Vec<Value> {
    items
        .iter()
        .filter_map(|i| i.as_ref().ok())
        .filter_map(|c| c.extra_fields.as_ref().and_then(|x| x.restart.as_ref()))
        .map(|r| serde_json::to_value(r).unwrap())
        .collect()
}

/// The text after the last restart marker (what an accumulator keeps).
fn final_text(items: &[Result<Chunk, Error>]) -> String {
    let mut text = String::new();
    for c in items.iter().filter_map(|i| i.as_ref().ok()) {
        if c.extra_fields.as_ref().is_some_and(|x| x.restart.is_some()) {
            text.clear();
        }
        text.push_str(&content(c));
    }
    text
}

const PROMPT: &str = "alpha beta gamma delta epsilon";
const ANSWER: &str = "echo: alpha beta gamma delta epsilon";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_yields_a_marker_then_the_fallbacks_whole_answer() {
    let srv = MockServer::start(MockConfig::default()).await.expect("mock");
    let gw = gateway(&srv);
    let mut r = Request::new("openai/m~chunks=6&truncate_after=2&scenario=cut", PROMPT);
    r.fallbacks = vec!["anthropic/claude~scenario=cut-fallback".into()];
    let s = gw.stream(r).await.expect("stream");
    assert_eq!(s.fallback_index(), 0, "the primary serves the first content");
    let items = drain(s).await;
    assert!(items.iter().all(Result::is_ok), "recovered: {items:?}");
    let m = markers(&items);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!((m[0]["attempt"].clone(), m[0]["provider"].clone()), (json!(2), json!("anthropic")));
    assert!(m[0]["reason"].as_str().unwrap().contains("stream ended"), "{m:?}");
    // The marker is a chunk with no choices, serialized as the contract says.
    let marker = items.iter().flatten().find(|c| c.extra_fields.as_ref().is_some_and(|x| x.restart.is_some())).unwrap();
    let v = serde_json::to_value(marker).unwrap();
    assert_eq!(v["object"], "chat.completion.chunk");
    assert_eq!(v["choices"], json!([]));
    assert!(v["extra_fields"].get("unmapped_params").is_none(), "{v}");
    // Before the marker: the primary's two pieces; after it: the whole answer.
    let before: String = items.iter().flatten().take_while(|c| c.extra_fields.is_none()).map(content).collect();
    assert!(!before.is_empty() && ANSWER.starts_with(&before) && before.len() < ANSWER.len(), "{before:?}");
    assert_eq!(final_text(&items), ANSWER);
    assert_eq!((seen(&srv, "cut"), seen(&srv, "cut-fallback")), (1, 1));
    assert_eq!(gw.stats().providers["anthropic"].jobs.fallbacks_served, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_retries_the_same_route_for_a_server_error() {
    let srv = MockServer::start(MockConfig::default()).await.expect("mock");
    let gw = gateway(&srv);
    // An in-stream 500 after two chunks, once: server_error → retry here.
    let r = Request::new("openai/m~chunks=6&stream_error_after=2&fail_first=1&scenario=again", PROMPT);
    let items = drain(gw.stream(r).await.expect("stream")).await;
    assert!(items.iter().all(Result::is_ok), "{items:?}");
    let m = markers(&items);
    assert_eq!(m.len(), 1);
    assert_eq!((m[0]["attempt"].clone(), m[0]["provider"].clone()), (json!(2), json!("openai")));
    assert_eq!(final_text(&items), ANSWER);
    assert_eq!(seen(&srv, "again"), 2);
    assert_eq!(gw.stats().providers["openai"].jobs.retries, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_are_bounded_by_max_retries_then_the_error_carries_the_text() {
    let srv = MockServer::start(MockConfig::default()).await.expect("mock");
    let gw = gateway(&srv);
    // Every answer breaks after two chunks: 1 + max_retries (2) answers.
    let r = Request::new("openai/m~chunks=6&stream_error_after=2&scenario=always", PROMPT);
    let items = drain(gw.stream(r).await.expect("stream")).await;
    assert_eq!(markers(&items).len(), 2);
    let (last, rest) = items.split_last().unwrap();
    assert!(rest.iter().all(Result::is_ok));
    let e = last.as_ref().expect_err("ends with the error");
    assert_eq!(e.kind(), ErrorKind::Provider);
    assert_eq!(e.status(), Some(500));
    assert_eq!(e.text_so_far(), Some(final_text(&items).as_str()));
    assert!(!final_text(&items).is_empty());
    assert_eq!(seen(&srv, "always"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_ends_with_a_typed_error_carrying_the_text_so_far() {
    let srv = MockServer::start(MockConfig::default()).await.expect("mock");
    let gw = gateway(&srv);
    // A stream the fallback serves says so under `off` too.
    let mut r = with_recovery(Request::new("openai/m~truncate_after=0&scenario=off0", PROMPT), "off");
    r.fallbacks = vec!["anthropic/claude".into()];
    assert_eq!(gw.stream(r).await.expect("the fallback streams").fallback_index(), 1);
    let mut r = with_recovery(Request::new("openai/m~chunks=6&truncate_after=2&scenario=off", PROMPT), "off");
    r.fallbacks = vec!["anthropic/claude~scenario=off-fallback".into()];
    let items = drain(gw.stream(r).await.expect("stream")).await;
    let (last, rest) = items.split_last().unwrap();
    let e = last.as_ref().expect_err("ends with the error");
    assert_eq!(e.kind(), ErrorKind::Protocol);
    let got: String = rest.iter().flatten().map(content).collect();
    assert_eq!(e.text_so_far(), Some(got.as_str()));
    assert!(e.to_string().contains("characters of the answer"), "{e}");
    assert_eq!((seen(&srv, "off"), seen(&srv, "off-fallback")), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffer_recovers_invisibly_and_commit_after_chars_lets_chunks_flow() {
    let srv = MockServer::start(MockConfig::default()).await.expect("mock");
    let gw = gateway(&srv);
    let mut r = with_recovery(Request::new("openai/m~chunks=6&truncate_after=3&scenario=buf", PROMPT), "buffer");
    r.fallbacks = vec!["anthropic/claude~scenario=buf-fallback".into()];
    let items = drain(gw.stream(r).await.expect("stream")).await;
    assert!(items.iter().all(Result::is_ok), "{items:?}");
    assert!(markers(&items).is_empty(), "invisible");
    let text: String = items.iter().flatten().map(content).collect();
    assert_eq!(text, ANSWER, "only the complete answer");
    assert_eq!((seen(&srv, "buf"), seen(&srv, "buf-fallback")), (1, 1));
    // Committed after 5 characters: the failure after that is a visible restart.
    let mut r = Request::new("openai/m~chunks=6&truncate_after=3&scenario=buf2", PROMPT);
    r.failover = Some(serde_json::from_value(json!({"stream_recovery": "buffer", "commit_after_chars": 5})).unwrap());
    r.fallbacks = vec!["anthropic/claude~scenario=buf2-fallback".into()];
    let items = drain(gw.stream(r).await.expect("stream")).await;
    assert_eq!(markers(&items).len(), 1);
    assert_eq!(final_text(&items), ANSWER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_emits_only_the_continuation() {
    let srv = MockServer::start(MockConfig::default()).await.expect("mock");
    let gw = gateway(&srv);
    for model in ["anthropic/claude", "openai/m"] {
        let scenario = format!("cont-{}", &model[..6]);
        let r = Request::new(format!("{model}~chunks=6&stream_error_after=2&fail_first=1&scenario={scenario}"), PROMPT);
        let items = drain(gw.stream(with_recovery(r, "continue")).await.expect("stream")).await;
        assert!(items.iter().all(Result::is_ok), "{model}: {items:?}");
        assert!(markers(&items).is_empty(), "{model}: no restart");
        let text: String = items.iter().flatten().map(content).collect();
        assert_eq!(text, ANSWER, "{model}: no duplicated text");
        assert_eq!(seen(&srv, &scenario), 2, "{model}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_on_a_route_that_refuses_prefill_restarts_instead() {
    let srv = MockServer::start(MockConfig::default()).await.expect("mock");
    let gw = gateway(&srv);
    let r = Request::new("openai/m~chunks=6&stream_error_after=2&fail_first=1&reject_prefill=1&scenario=rp", PROMPT);
    let items = drain(gw.stream(with_recovery(r, "continue")).await.expect("stream")).await;
    assert!(items.iter().all(Result::is_ok), "the prefill's 400 is never the final error: {items:?}");
    let m = markers(&items);
    assert_eq!(m.len(), 1);
    assert!(m[0]["reason"].as_str().unwrap().contains("refused the assistant prefill"), "{m:?}");
    assert_eq!(final_text(&items), ANSWER);
    assert_eq!(seen(&srv, "rp"), 3, "the answer, the refused continuation, the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_stream_while_it_recovers_cancels_the_new_answer() {
    let srv = MockServer::start(MockConfig::default()).await.expect("mock");
    let gw = gateway(&srv);
    // Cut after two chunks; the fallback that would take over never answers.
    let mut r = Request::new("openai/m~chunks=6&truncate_after=2&scenario=drop", PROMPT);
    r.fallbacks = vec!["anthropic/claude~hang=1&scenario=drop-fallback".into()];
    let mut s = gw.stream(r).await.expect("stream");
    for _ in 0..2 {
        s.next_chunk().await.expect("a chunk").expect("content");
    }
    // The next item waits for the fallback: poll it until the fallback got the request.
    tokio::select! {
        item = s.next_chunk() => panic!("the fallback hangs, nothing can come: {item:?}"),
        _ = async {
            while seen(&srv, "drop-fallback") == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        } => {}
    }
    drop(s);
    // The hanging fallback was cancelled with the stream.
    let report = gw.shutdown(std::time::Duration::from_secs(30)).await;
    let st = gw.stats();
    let jobs = &st.providers["anthropic"].jobs;
    assert!(jobs.invariant_holds(), "{jobs:?}");
    assert_eq!((jobs.submitted, jobs.cancelled), (1, 1), "{jobs:?} {report:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while srv.stats().open_requests > 0 {
        assert!(std::time::Instant::now() < deadline, "the fallback's request stayed open: {:?}", srv.stats());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A thousand streams at once, every recovery mode, faults at random
/// points, some dropped midway, the gateway shut down while half are still
/// running: every stream ends exactly once, either with the complete
/// answer (after its last restart marker) or with an error — never a
/// truncated success — and every pool's books balance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_recovering_streams_with_faults_drops_and_a_shutdown_midway() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let srv = MockServer::start(MockConfig::default()).await.expect("mock");
    let url = srv.url();
    let net = |base: String| json!({"base_url": base, "max_retries": 1, "retry_backoff_initial_ms": 1, "retry_backoff_max_ms": 2});
    let cap = json!({"concurrency": 32, "buffer_size": 2000});
    let gw = Arc::new(
        Gateway::from_value(json!({"providers": {
            "openai": {"keys": [{"value": "mock-key", "models": ["*"]}], "network_config": net(format!("{url}/v1")),
                       "concurrency_and_buffer_size": cap},
            "anthropic": {"keys": [{"value": "mock-key", "models": ["*"]}], "network_config": net(url.clone()),
                          "concurrency_and_buffer_size": cap},
        }}))
        .expect("gateway"),
    );
    const N: usize = 1000;
    let finished = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(N);
    for i in 0..N {
        let (gw, finished) = (gw.clone(), finished.clone());
        tasks.push(tokio::spawn(async move {
            let mode = ["restart", "buffer", "continue", "off"][i % 4];
            let fault = match i % 5 {
                0 => String::new(),
                1 => format!("&truncate_after={}", i % 4),
                2 => format!("&stream_error_after={}", i % 5),
                3 => format!("&invalid_event_at={}", 1 + i % 3),
                _ => format!("&stream_error_after=2&fail_first=1&scenario=f{i}"),
            };
            let primary = if i % 2 == 0 { "openai/m" } else { "anthropic/claude" };
            let mut r =
                with_recovery(Request::new(format!("{primary}~chunks=6&chunk_delay_ms=1{fault}"), PROMPT), mode);
            if i % 3 != 0 {
                r.fallbacks = vec![if i % 2 == 0 { "anthropic/claude".into() } else { "openai/m".into() }];
            }
            let outcome = match gw.stream(r).await {
                Err(e) => Err(e),
                Ok(mut s) if i % 7 == 0 => {
                    // Dropped after its first item.
                    let _ = s.next_chunk().await;
                    drop(s);
                    finished.fetch_add(1, Ordering::SeqCst);
                    return None;
                }
                Ok(s) => {
                    let items = drain(s).await;
                    match items.iter().position(Result::is_err) {
                        Some(p) => {
                            assert_eq!(p, items.len() - 1, "stream {i}: nothing after its error");
                            Err(items.into_iter().last().unwrap().unwrap_err())
                        }
                        None => Ok(final_text(&items)),
                    }
                }
            };
            finished.fetch_add(1, Ordering::SeqCst);
            Some(outcome)
        }));
    }
    while finished.load(Ordering::SeqCst) < N / 2 {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let report = gw.shutdown(std::time::Duration::from_secs(30)).await;
    let (mut ok, mut failed, mut dropped) = (0, 0, 0);
    for (i, t) in tasks.into_iter().enumerate() {
        match tokio::time::timeout(std::time::Duration::from_secs(60), t)
            .await
            .expect("no stream hangs")
            .expect("no panic")
        {
            None => dropped += 1,
            Some(Ok(text)) => {
                assert_eq!(text, ANSWER, "stream {i}: a success is the complete answer");
                ok += 1;
            }
            Some(Err(e)) => {
                assert!(e.text_so_far().is_none_or(|t| ANSWER.starts_with(t)), "stream {i}: {e}");
                failed += 1;
            }
        }
    }
    assert_eq!(ok + failed + dropped, N);
    assert!(ok > 0 && failed > 0, "ok {ok}, failed {failed}");
    for (name, p) in &gw.stats().providers {
        assert!(p.jobs.invariant_holds(), "{name}: {:?} {report:?}", p.jobs);
        assert_eq!(p.jobs.running + p.jobs.queued, 0, "{name}: {:?}", p.jobs);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while srv.stats().active_streams > 0 || srv.stats().open_requests > 0 {
        assert!(std::time::Instant::now() < deadline, "upstream left open: {:?}", srv.stats());
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
