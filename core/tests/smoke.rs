//! Quick end-to-end checks of the public API on the mock provider.

use std::time::Duration;

use bifrost_core::{ErrorKind, Gateway, Request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_echoes_and_counts() {
    let gw = Gateway::from_json(r#"{"providers": {"local": {"kind": "mock"}}}"#).unwrap();
    let resp = gw.chat(Request::new("local/echo-1", "hello there")).await.unwrap();
    assert_eq!(resp.text(), Some("echo: hello there"));
    assert_eq!(resp.object, "chat.completion");
    assert_eq!(resp.model, "echo-1");
    assert_eq!(resp.usage.prompt_tokens, 2);
    assert_eq!(resp.usage.completion_tokens, 3);
    assert_eq!(resp.extra_fields.provider, "local");
    assert_eq!(resp.extra_fields.attempts, 1);
    let st = gw.stats();
    let jobs = st.providers["local"].jobs;
    assert_eq!(jobs.submitted, 1);
    assert_eq!(jobs.completed, 1);
    assert!(jobs.invariant_holds());
    let report = gw.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report.aborted, 0);
    let err = gw.chat(Request::new("local/echo-1", "late")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Shutdown);
}

#[test]
fn usable_from_sync_code() {
    let gw = Gateway::from_json(r#"{"providers": {"local": {"kind": "mock"}}}"#).unwrap();
    let mut job = gw.try_submit(Request::new("local/m", "sync")).unwrap();
    let resp = job.wait_blocking(Some(Duration::from_secs(5))).unwrap().unwrap();
    assert_eq!(resp.text(), Some("echo: sync"));
}
