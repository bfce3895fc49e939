//! Bedrock Converse and ConverseStream.

use aws_smithy_eventstream::frame::read_message_from;
use aws_smithy_types::event_stream::Message;
use bytes::{Buf, Bytes};
use serde_json::{json, Value};

use crate::common::*;

const MODEL_PATH: &str = "/model/anthropic.claude-3-haiku-20240307-v1%3A0";

fn headers(auth: &str) -> Vec<(&'static str, String)> {
    vec![
        ("authorization", auth.to_string()),
        ("x-amz-date", AMZ_DATE.to_string()),
        ("content-type", "application/json".to_string()),
    ]
}

async fn call(s: &bifrost_mock::MockServer, path: &str, h: &[(&'static str, String)], body: &Value) -> Resp {
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    post_json(s.addr(), path, &h, body).await
}

fn body() -> Value {
    json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}, {"role": "assistant", "content": [{"text": "yo"}]},
                        {"role": "user", "content": [{"text": "hello"}, {"text": "there"}]}],
           "system": [{"text": "be brief"}],
           "inferenceConfig": {"maxTokens": 100, "temperature": 0.2}})
}

/// Decodes every frame, checking prelude and message CRCs.
fn frames(body: &[u8]) -> Vec<Message> {
    let mut buf = Bytes::copy_from_slice(body);
    let mut out = Vec::new();
    while buf.has_remaining() {
        out.push(read_message_from(&mut buf).expect("a valid event-stream frame"));
    }
    out
}

fn header(m: &Message, name: &str) -> String {
    let h = m.headers().iter().find(|h| h.name().as_str() == name).unwrap_or_else(|| panic!("no header {name}"));
    h.value().as_string().expect("string header").as_str().to_string()
}

fn payload(m: &Message) -> Value {
    serde_json::from_slice(m.payload()).expect("JSON payload")
}

#[tokio::test]
async fn converse_unary_shape() {
    let s = server().await;
    let r = call(&s, &format!("{MODEL_PATH}/converse"), &headers(&sigv4("mock-key")), &body()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["output"]["message"], json!({"role": "assistant", "content": [{"text": "echo: hello there"}]}));
    assert_eq!(v["stopReason"], "end_turn");
    // input: "be brief" 2 + 1 + 1 + 2 = 6; output 3.
    assert_eq!(v["usage"], json!({"inputTokens": 6, "outputTokens": 3, "totalTokens": 9}));
    assert!(v["metrics"]["latencyMs"].is_u64());
    assert_eq!(s.stats().by_route.bedrock_converse, 1);
}

#[tokio::test]
async fn converse_max_tokens() {
    let s = server().await;
    let mut b = body();
    b["inferenceConfig"]["maxTokens"] = json!(2);
    let v = call(&s, &format!("{MODEL_PATH}/converse"), &headers(&sigv4("mock-key")), &b).await.json();
    assert_eq!(v["output"]["message"]["content"][0]["text"], "echo: hello");
    assert_eq!(v["stopReason"], "max_tokens");
}

#[tokio::test]
async fn converse_stream_frames() {
    let s = server().await;
    let mut h = headers(&sigv4("mock-key"));
    h.push(("x-mock", "chunks=3".to_string()));
    let r = call(&s, &format!("{MODEL_PATH}/converse-stream"), &h, &body()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/vnd.amazon.eventstream"));
    let fs = frames(&r.body);
    let types: Vec<String> = fs.iter().map(|m| header(m, ":event-type")).collect();
    assert_eq!(
        types,
        [
            "messageStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    for m in &fs {
        assert_eq!(header(m, ":message-type"), "event");
        assert_eq!(header(m, ":content-type"), "application/json");
    }
    assert_eq!(payload(&fs[0]), json!({"role": "assistant"}));
    let text: String = fs[1..4]
        .iter()
        .map(|m| {
            let p = payload(m);
            assert_eq!(p["contentBlockIndex"], 0);
            p["delta"]["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(text, "echo: hello there");
    assert_eq!(payload(&fs[4]), json!({"contentBlockIndex": 0}));
    assert_eq!(payload(&fs[5]), json!({"stopReason": "end_turn"}));
    let meta = payload(&fs[6]);
    assert_eq!(meta["usage"], json!({"inputTokens": 6, "outputTokens": 3, "totalTokens": 9}));
    assert!(meta["metrics"]["latencyMs"].is_u64());
    let st = s.stats();
    assert_eq!((st.by_route.bedrock_converse_stream, st.streams_started, st.streams_completed), (1, 1, 1));
}

#[tokio::test]
async fn auth_failures() {
    let s = server().await;
    let path = format!("{MODEL_PATH}/converse");
    // Unknown access key id.
    let r = call(&s, &path, &headers(&sigv4("AKIAOTHER")), &body()).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("x-amzn-errortype"), Some("UnrecognizedClientException"));
    assert!(r.json()["message"].is_string());
    // Malformed: short signature, wrong service, no x-amz-date, bad algorithm.
    let bad_sig = sigv4("mock-key").replace(&"0123456789abcdef".repeat(4), "abc");
    let wrong_service = sigv4("mock-key").replace("/bedrock/", "/s3/");
    for auth in [bad_sig.as_str(), wrong_service.as_str(), "AWS4-HMAC-SHA1 Credential=x", "Basic abc"] {
        let r = call(&s, &path, &headers(auth), &body()).await;
        assert_eq!(r.status, 403, "{auth}");
        assert_eq!(r.header("x-amzn-errortype"), Some("InvalidSignatureException"), "{auth}");
        assert!(r.json()["message"].is_string());
    }
    let no_date = vec![("authorization", sigv4("mock-key").replace("content-type;", ""))];
    let r = call(&s, &path, &no_date, &body()).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("x-amzn-errortype"), Some("InvalidSignatureException"));
    let r = call(&s, &path, &[], &body()).await;
    assert_eq!(r.status, 403);
    // A Bedrock API key as a bearer token is accepted.
    let r = call(&s, &path, &[("authorization", "Bearer mock-key".to_string())], &body()).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn injected_errors() {
    let s = server().await;
    let auth = headers(&sigv4("mock-key"));
    for (status, kind) in
        [(429, "ThrottlingException"), (500, "InternalServerException"), (503, "ServiceUnavailableException")]
    {
        // Directives in the URL-encoded model id.
        let path = format!("/model/m1~fail_status%3D{status}%26retry_after%3D7/converse");
        let r = call(&s, &path, &auth, &body()).await;
        assert_eq!(r.status, status);
        assert_eq!(r.header("x-amzn-errortype"), Some(kind));
        assert!(r.json()["message"].is_string());
        assert_eq!(r.header("retry-after"), if status == 429 { Some("7") } else { None });
    }
}

#[tokio::test]
async fn mid_stream_exception_frame() {
    let s = server().await;
    let mut h = headers(&sigv4("mock-key"));
    h.push(("x-mock", "chunks=4&stream_error_after=1&fail_status=429&fail_rate=0".to_string()));
    let r = call(&s, &format!("{MODEL_PATH}/converse-stream"), &h, &body()).await;
    assert_eq!(r.status, 200);
    let fs = frames(&r.body);
    assert_eq!(fs.len(), 3);
    assert_eq!(header(&fs[1], ":event-type"), "contentBlockDelta");
    assert_eq!(header(&fs[2], ":message-type"), "exception");
    assert_eq!(header(&fs[2], ":exception-type"), "throttlingException");
    assert!(payload(&fs[2])["message"].is_string());
}

#[tokio::test]
async fn truncated_stream_has_no_stop() {
    let s = server().await;
    let mut h = headers(&sigv4("mock-key"));
    h.push(("x-mock", "chunks=4&truncate_after=2".to_string()));
    let r = call(&s, &format!("{MODEL_PATH}/converse-stream"), &h, &body()).await;
    let types: Vec<String> = frames(&r.body).iter().map(|m| header(m, ":event-type")).collect();
    assert_eq!(types, ["messageStart", "contentBlockDelta", "contentBlockDelta"]);
}
