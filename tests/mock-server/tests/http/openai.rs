//! OpenAI chat completions and embeddings.

use serde_json::{json, Value};

use crate::common::*;

#[tokio::test]
async fn chat_unary_shape() {
    let s = server().await;
    let body = json!({"model": "gpt-4o", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": null},
        {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": "world"}]}
    ]});
    let r = post_json(s.addr(), "/v1/chat/completions", &[OPENAI_AUTH], &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("content-type").unwrap().starts_with("application/json"));
    let v = r.json();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(v["model"], "gpt-4o");
    assert_eq!(v["choices"][0]["index"], 0);
    assert_eq!(v["choices"][0]["message"], json!({"role": "assistant", "content": "echo: hello world"}));
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    // prompt: "be brief" (2) + "first question" (2) + "hello world" (2); reply: 3 words.
    assert_eq!(v["usage"], json!({"prompt_tokens": 6, "completion_tokens": 3, "total_tokens": 9}));
    // Same route without the /v1 prefix.
    let r = post_json(s.addr(), "/chat/completions", &[OPENAI_AUTH], &body).await;
    assert_eq!(r.status, 200);
    assert_eq!(s.stats().by_route.openai_chat, 2);
    assert_eq!(s.stats().requests, 2);
}

#[tokio::test]
async fn chat_max_tokens_cuts_with_length() {
    let s = server().await;
    let body = json!({"model": "m", "max_tokens": 2, "messages": [{"role": "user", "content": "a b c d"}]});
    let v = post_json(s.addr(), "/v1/chat/completions", &[OPENAI_AUTH], &body).await.json();
    assert_eq!(v["choices"][0]["message"]["content"], "echo: a");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 2);
}

fn chunks_of(events: &[Event]) -> Vec<Value> {
    events.iter().filter(|e| e.data != "[DONE]").map(|e| serde_json::from_str(&e.data).unwrap()).collect()
}

#[tokio::test]
async fn chat_stream_order_and_done() {
    let s = server().await;
    let body = json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hello"}]});
    let r = post_json(s.addr(), "/v1/chat/completions", &[OPENAI_AUTH, ("x-mock", "chunks=4")], &body).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/event-stream"));
    let events = parse_sse(&r.body);
    assert!(events.iter().all(|e| e.event.is_none()));
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks = chunks_of(&events);
    assert_eq!(chunks.len(), 5, "4 content chunks + the finish chunk: {events:?}");
    let mut text = String::new();
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["model"], "gpt-4o");
        assert_eq!(c["id"], chunks[0]["id"]);
        assert!(c.get("usage").is_none(), "no usage without include_usage");
        let delta = &c["choices"][0]["delta"];
        assert_eq!(delta.get("role").is_some(), i == 0, "only the first delta has the role");
        if i == 0 {
            assert_eq!(delta["role"], "assistant");
        }
        if i < 4 {
            assert_eq!(c["choices"][0]["finish_reason"], Value::Null);
            text.push_str(delta["content"].as_str().unwrap());
        }
    }
    assert_eq!(text, "echo: hello");
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[4]["choices"][0]["delta"], json!({}));
    let st = s.stats();
    assert_eq!((st.streams_started, st.streams_completed, st.active_streams), (1, 1, 0));
}

#[tokio::test]
async fn chat_stream_include_usage() {
    let s = server().await;
    let body = json!({"model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true},
                      "messages": [{"role": "user", "content": "one two"}]});
    let r = post_json(s.addr(), "/v1/chat/completions", &[OPENAI_AUTH], &body).await;
    let events = parse_sse(&r.body);
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks = chunks_of(&events);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"], json!({"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}));
    assert!(chunks[..chunks.len() - 1].iter().all(|c| c["usage"].is_null()));
    assert_eq!(chunks[chunks.len() - 2]["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn auth_failures() {
    let s = server().await;
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
    let r = post_json(s.addr(), "/v1/chat/completions", &[], &body).await;
    assert_eq!(r.status, 401);
    let v = r.json();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["param"], Value::Null);
    assert_eq!(v["error"]["code"], Value::Null);
    assert!(v["error"]["message"].as_str().unwrap().contains("API key"));

    let r = post_json(s.addr(), "/v1/chat/completions", &[("authorization", "Bearer wrong-key-123456")], &body).await;
    assert_eq!(r.status, 401);
    let v = r.json();
    assert_eq!(v["error"]["code"], "invalid_api_key");
    assert!(!v["error"]["message"].as_str().unwrap().contains("wrong-key-123456"), "key is masked");
    let r = post_json(
        s.addr(),
        "/v1/embeddings",
        &[("authorization", "Bearer nope")],
        &json!({"model": "e", "input": "x"}),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(s.stats().requests, 3);
}

#[tokio::test]
async fn bad_body_is_400() {
    let s = server().await;
    let r = request(s.addr(), "POST", "/v1/chat/completions", &[OPENAI_AUTH], b"{not json").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    let r = post_json(s.addr(), "/v1/chat/completions", &[OPENAI_AUTH], &json!({"model": "m"})).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("messages"));
}

#[tokio::test]
async fn embeddings_shape_and_determinism() {
    let s = server().await;
    let body = json!({"model": "text-embedding-3-small", "input": ["hello world", "bye"], "dimensions": 8});
    let r = post_json(s.addr(), "/v1/embeddings", &[OPENAI_AUTH], &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "text-embedding-3-small");
    assert_eq!(v["usage"], json!({"prompt_tokens": 3, "total_tokens": 3}));
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for (i, d) in data.iter().enumerate() {
        assert_eq!(d["object"], "embedding");
        assert_eq!(d["index"], i);
        let e: Vec<f64> = d["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert_eq!(e.len(), 8);
        let norm = e.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "unit vector, got norm {norm}");
    }
    // A single string input, default dimensions, same vector for the same text.
    let one =
        post_json(s.addr(), "/embeddings", &[OPENAI_AUTH], &json!({"model": "e", "input": "bye", "dimensions": 8}))
            .await
            .json();
    assert_eq!(one["data"][0]["embedding"], data[1]["embedding"]);
    let dflt =
        post_json(s.addr(), "/v1/embeddings", &[OPENAI_AUTH], &json!({"model": "e", "input": "bye"})).await.json();
    assert_eq!(dflt["data"][0]["embedding"].as_array().unwrap().len(), 16);
    let b64 = post_json(
        s.addr(),
        "/v1/embeddings",
        &[OPENAI_AUTH],
        &json!({"model": "e", "input": "bye", "dimensions": 3, "encoding_format": "base64"}),
    )
    .await
    .json();
    assert_eq!(b64["data"][0]["embedding"].as_str().unwrap().len(), 16, "12 bytes → 16 base64 chars");
    let bad =
        post_json(s.addr(), "/v1/embeddings", &[OPENAI_AUTH], &json!({"model": "e", "input": "x", "dimensions": 0}))
            .await;
    assert_eq!(bad.status, 400);
    assert_eq!(s.stats().by_route.openai_embeddings, 5);
}
