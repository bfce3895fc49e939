//! The `bifrost-mock` binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn port_zero_prints_the_port() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bifrost-mock"))
        .args(["--port", "0", "--api-key", "bin-key", "--latency-ms", "1", "--workers", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn bifrost-mock");
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("first line is the port alone, got {line:?}"));
    assert_ne!(port, 0);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let r = post_json(addr, "/v1/chat/completions", &[("authorization", "Bearer bin-key")], &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["choices"][0]["message"]["content"], "echo: hi");
    let v = request(addr, "GET", "/_mock/stats", &[], b"").await.json();
    assert_eq!(v["requests"], 1);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn bad_flags_exit_2_with_usage() {
    for args in [&["--bogus", "1"][..], &["--port"], &["--latency-ms", "x"], &["stray"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_bifrost-mock")).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage: bifrost-mock"), "{args:?}");
        assert!(out.stdout.is_empty());
    }
}
