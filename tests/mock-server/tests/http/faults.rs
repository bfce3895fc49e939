//! The fault directives that failure-policy tests are built on: outages,
//! slow first tokens, stalls, invalid events, missing terminators, and
//! assistant prefill (accepted as a continuation, or refused).

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "one two three four"}]})
}

fn openai_text(body: &[u8]) -> String {
    parse_sse(body)
        .iter()
        .filter(|e| e.data != "[DONE]")
        .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn outage_fails_the_scenario_until_it_is_over_then_heals() {
    let s = server().await;
    let model = "gpt~outage_ms=300&scenario=out";
    let r = post_json(s.addr(), "/v1/chat/completions", &[OPENAI_AUTH], &chat(model, false)).await;
    assert_eq!(r.status, 503, "inside the outage");
    assert!(r.text().contains("out for 300 ms"), "{}", r.text());
    // Past the outage (measured from the scenario's first request).
    tokio::time::sleep(Duration::from_millis(350)).await;
    let r = post_json(s.addr(), "/v1/chat/completions", &[OPENAI_AUTH], &chat(model, false)).await;
    assert_eq!(r.status, 200);
    assert_eq!(s.stats().by_scenario.get("out"), Some(&2));
}

#[tokio::test]
async fn fail_first_gates_stream_faults_too() {
    let s = server().await;
    let model = "gpt~chunks=4&truncate_after=1&fail_first=1&scenario=cut";
    let r = post_json(s.addr(), "/v1/chat/completions", &[OPENAI_AUTH], &chat(model, true)).await;
    assert_eq!(r.status, 200, "a stream fault, not a status");
    assert_eq!(parse_sse(&r.body).len(), 1, "cut after one chunk");
    let r = post_json(s.addr(), "/v1/chat/completions", &[OPENAI_AUTH], &chat(model, true)).await;
    assert_eq!(openai_text(&r.body), "echo: one two three four", "the second request is healthy");
    assert_eq!(parse_sse(&r.body).last().map(|e| e.data.as_str()), Some("[DONE]"));
}

#[tokio::test]
async fn invalid_event_and_missing_terminator() {
    let s = server().await;
    let r = post_json(s.addr(), "/v1/chat/completions", &[OPENAI_AUTH], &chat("gpt~chunks=4&invalid_event_at=2", true))
        .await;
    let events = parse_sse(&r.body);
    assert_eq!(events.len(), 3);
    assert!(serde_json::from_str::<Value>(&events[2].data).is_err(), "{:?}", events[2].data);
    // terminator=0: the finish comes, [DONE] does not.
    let r = post_json(s.addr(), "/v1/chat/completions", &[OPENAI_AUTH], &chat("gpt~terminator=0", true)).await;
    let events = parse_sse(&r.body);
    assert!(events.iter().all(|e| e.data != "[DONE]"));
    assert!(events.last().unwrap().data.contains("\"finish_reason\":\"stop\""));
    let r = post_json(s.addr(), "/v1/messages", &anthropic_headers(),
        &json!({"model": "c~terminator=0", "max_tokens": 50, "stream": true, "messages": [{"role": "user", "content": "x"}]})).await;
    let names: Vec<String> = parse_sse(&r.body).into_iter().filter_map(|e| e.event).collect();
    assert_eq!(names.last().map(String::as_str), Some("message_delta"), "{names:?}");
}

#[tokio::test]
async fn stall_keeps_the_connection_open_and_slow_first_chunk_waits() {
    let s = server().await;
    let body = chat("gpt~chunks=4&stall_after=2", true).to_string();
    let mut st = open(
        s.addr(),
        "POST",
        "/v1/chat/completions",
        &[OPENAI_AUTH, ("content-type", "application/json")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(st.status, 200);
    let mut got = Vec::new();
    while parse_sse(&got).len() < 2 {
        got.extend(st.next_chunk().await.expect("two chunks come"));
    }
    // Nothing more comes (the connection stays open).
    assert!(tokio::time::timeout(Duration::from_millis(300), st.next_chunk()).await.is_err());
    drop(st);
    wait_for(&s, "the stalled stream to count as aborted", |st| st.streams_aborted_by_client == 1).await;

    let started = std::time::Instant::now();
    let r =
        post_json(s.addr(), "/v1/chat/completions", &[OPENAI_AUTH], &chat("gpt~first_chunk_delay_ms=200", true)).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(openai_text(&r.body), "echo: one two three four");
}

#[tokio::test]
async fn assistant_prefill_is_continued_or_refused() {
    let s = server().await;
    let prefill = |model: &str| {
        json!({"model": model, "stream": true, "max_tokens": 50, "messages": [
            {"role": "user", "content": "one two three four"},
            {"role": "assistant", "content": "echo: one tw"}]})
    };
    let r = post_json(s.addr(), "/v1/chat/completions", &[OPENAI_AUTH], &prefill("gpt")).await;
    assert_eq!(openai_text(&r.body), "o three four", "only the continuation");
    let r = post_json(s.addr(), "/v1/messages", &anthropic_headers(), &prefill("claude")).await;
    let text: String = parse_sse(&r.body)
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
        .filter_map(|v| v["delta"]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, "o three four");
    let r = post_json(s.addr(), "/v1/chat/completions", &[OPENAI_AUTH], &prefill("gpt~reject_prefill=1")).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("prefill"), "{}", r.text());
    // A conversation that ends with the user is fine on that route.
    let r = post_json(s.addr(), "/v1/chat/completions", &[OPENAI_AUTH], &chat("gpt~reject_prefill=1", true)).await;
    assert_eq!(r.status, 200);
}
