//! Anthropic messages.

use serde_json::{json, Value};

use crate::common::*;

#[tokio::test]
async fn messages_unary_shape() {
    let s = server().await;
    let body = json!({"model": "claude-3-5-haiku-latest", "max_tokens": 64,
        "system": [{"type": "text", "text": "be nice"}],
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                     {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": "there"}]}]});
    let r = post_json(s.addr(), "/v1/messages", &anthropic_headers(), &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["content"], json!([{"type": "text", "text": "echo: hello there"}]));
    assert_eq!(v["model"], "claude-3-5-haiku-latest");
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    // input: system 2 + 1 + 1 + 2 = 6 words; output 3.
    assert_eq!(v["usage"], json!({"input_tokens": 6, "output_tokens": 3}));
    assert_eq!(s.stats().by_route.anthropic_messages, 1);
}

#[tokio::test]
async fn max_tokens_truncates_and_is_required() {
    let s = server().await;
    let body = json!({"model": "c", "max_tokens": 3, "messages": [{"role": "user", "content": "one two three four"}]});
    let v = post_json(s.addr(), "/v1/messages", &anthropic_headers(), &body).await.json();
    assert_eq!(v["content"][0]["text"], "echo: one two");
    assert_eq!(v["stop_reason"], "max_tokens");
    assert_eq!(v["usage"]["output_tokens"], 3);

    let body = json!({"model": "c", "messages": [{"role": "user", "content": "x"}]});
    let r = post_json(s.addr(), "/v1/messages", &anthropic_headers(), &body).await;
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("max_tokens"));
}

#[tokio::test]
async fn auth_and_version_failures() {
    let s = server().await;
    let body = json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]});
    let r = post_json(s.addr(), "/v1/messages", &[("anthropic-version", "2023-06-01")], &body).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!({"type": "error", "error": {"type": "authentication_error", "message": "x-api-key header is required"}})
    );
    let r =
        post_json(s.addr(), "/v1/messages", &[("x-api-key", "bad"), ("anthropic-version", "2023-06-01")], &body).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    let r = post_json(s.addr(), "/v1/messages", &[("x-api-key", "mock-key")], &body).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert!(r.text().contains("anthropic-version"));
}

#[tokio::test]
async fn stream_events_in_order() {
    let s = server().await;
    let body = json!({"model": "claude", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "hello world"}]});
    let mut h = anthropic_headers();
    h.push(("x-mock", "chunks=3"));
    let r = post_json(s.addr(), "/v1/messages", &h, &body).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/event-stream"));
    let events = parse_sse(&r.body);
    let names: Vec<&str> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let data: Vec<Value> = events.iter().map(|e| serde_json::from_str(&e.data).unwrap()).collect();
    for (n, d) in names.iter().zip(&data) {
        assert_eq!(d["type"], *n, "data.type matches the event name");
    }
    let start = &data[0]["message"];
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["role"], "assistant");
    assert_eq!(start["model"], "claude");
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(start["usage"]["input_tokens"], 2);
    assert_eq!(data[1]["index"], 0);
    assert_eq!(data[1]["content_block"], json!({"type": "text", "text": ""}));
    let text: String = data[3..6]
        .iter()
        .map(|d| {
            assert_eq!(d["index"], 0);
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(text, "echo: hello world");
    assert_eq!(data[6]["index"], 0);
    assert_eq!(data[7]["delta"]["stop_reason"], "end_turn");
    assert_eq!(data[7]["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn injected_errors_use_anthropic_types() {
    let s = server().await;
    for (status, kind) in [(429, "rate_limit_error"), (500, "api_error"), (529, "overloaded_error")] {
        let body = json!({"model": format!("claude~fail_status={status}"), "max_tokens": 5,
                          "messages": [{"role": "user", "content": "x"}]});
        let r = post_json(s.addr(), "/v1/messages", &anthropic_headers(), &body).await;
        assert_eq!(r.status, status);
        assert_eq!(r.json()["type"], "error");
        assert_eq!(r.json()["error"]["type"], kind);
    }
}

#[tokio::test]
async fn mid_stream_error_event() {
    let s = server().await;
    let body = json!({"model": "claude~chunks=4&stream_error_after=2&fail_status=529&fail_rate=0", "max_tokens": 100,
                      "stream": true, "messages": [{"role": "user", "content": "hello world"}]});
    let r = post_json(s.addr(), "/v1/messages", &anthropic_headers(), &body).await;
    assert_eq!(r.status, 200);
    let events = parse_sse(&r.body);
    let names: Vec<&str> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        ["message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta", "error"]
    );
    let err: Value = serde_json::from_str(&events[5].data).unwrap();
    assert_eq!(err["type"], "error");
    assert_eq!(err["error"]["type"], "overloaded_error");
    assert_eq!(s.stats().streams_completed, 1);
}
