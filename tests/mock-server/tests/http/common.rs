//! A minimal HTTP/1.1 client over a raw `TcpStream` (no client library, to keep
//! the build small), plus SSE and SigV4-header helpers.

use std::net::SocketAddr;

use bifrost_mock::{MockConfig, MockServer};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub async fn server() -> MockServer {
    MockServer::start(MockConfig::default()).await.expect("start mock server")
}

/// A response whose head has been read; the body is read on demand.
pub struct Streaming {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    reader: BufReader<TcpStream>,
    chunked: bool,
    length: Option<usize>,
    done: bool,
}

impl Streaming {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The next piece of the body (one HTTP chunk when chunked), or `None` at its end.
    pub async fn next_chunk(&mut self) -> Option<Vec<u8>> {
        if self.done {
            return None;
        }
        if self.chunked {
            let mut line = String::new();
            self.reader.read_line(&mut line).await.expect("chunk size line");
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16).expect("chunk size");
            if size == 0 {
                let mut end = String::new();
                self.reader.read_line(&mut end).await.expect("chunked trailer");
                self.done = true;
                return None;
            }
            let mut buf = vec![0; size + 2];
            self.reader.read_exact(&mut buf).await.expect("chunk data");
            buf.truncate(size);
            Some(buf)
        } else {
            self.done = true;
            let mut buf = Vec::new();
            match self.length {
                Some(n) => {
                    buf.resize(n, 0);
                    self.reader.read_exact(&mut buf).await.expect("body");
                }
                None => {
                    self.reader.read_to_end(&mut buf).await.expect("body");
                }
            }
            Some(buf)
        }
    }

    pub async fn body(mut self) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(c) = self.next_chunk().await {
            all.extend_from_slice(&c);
        }
        all
    }
}

pub async fn open(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Streaming {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.expect("write head");
    stream.write_all(body).await.expect("write body");
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).await.expect("status line");
    let status: u16 = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status code");
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.expect("header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').expect("header");
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let chunked = find("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let length = find("content-length").and_then(|v| v.parse().ok());
    Streaming { status, headers, reader, chunked, length, done: false }
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let s = open(addr, method, path, headers, body).await;
    let (status, headers) = (s.status, s.headers.clone());
    Resp { status, headers, body: s.body().await }
}

pub async fn post_json(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &Value) -> Resp {
    request(addr, "POST", path, headers, body.to_string().as_bytes()).await
}

pub const OPENAI_AUTH: (&str, &str) = ("authorization", "Bearer mock-key");

pub fn anthropic_headers() -> Vec<(&'static str, &'static str)> {
    vec![("x-api-key", "mock-key"), ("anthropic-version", "2023-06-01")]
}

pub const AMZ_DATE: &str = "20240501T120000Z";

/// A well-formed SigV4 Authorization header for access key `akid` (the signature is made up).
pub fn sigv4(akid: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={akid}/20240501/us-east-1/bedrock/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date, Signature={}",
        "0123456789abcdef".repeat(4)
    )
}

/// One parsed SSE event: `event:` name (if any) and `data:` text.
#[derive(Debug, Clone)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
}

pub fn parse_sse(body: &[u8]) -> Vec<Event> {
    let text = std::str::from_utf8(body).expect("SSE is UTF-8");
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut ev = Event { event: None, data: String::new() };
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    ev.event = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    ev.data.push_str(v);
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            ev
        })
        .collect()
}

/// Polls the server's stats until `pred` holds (or panics after 5 s).
pub async fn wait_for(server: &MockServer, what: &str, pred: impl Fn(&bifrost_mock::MockStats) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let s = server.stats();
        if pred(&s) {
            return;
        }
        if std::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}; stats: {s:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
