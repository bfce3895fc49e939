//! HTTP plumbing shared by the OpenAI, Anthropic and Bedrock providers.
//!
//! One `reqwest` client per provider pool (rustls with the `ring` provider,
//! no OpenSSL), its idle-connection pool sized to the pool's worker count,
//! HTTP/2 where the server negotiates it, proxies and extra CA certificates
//! from the config. [`HttpClient::post`] sends one attempt and turns every
//! failure into a typed [`Error`]: transport problems are NETWORK (or
//! TIMEOUT), non-2xx answers are PROVIDER with the status, the provider's
//! own error message and its body. Bodies are serialized into pooled
//! buffers and handed to the client without a copy.
//!
//! Streaming responses are read by a task that decodes provider events into
//! chunks and sends them through a bounded channel (backpressure reaches the
//! upstream read); dropping the [`ChunkStream`] aborts the task, which drops
//! the connection. A body that ends before its terminal event is an error.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::{ProviderConfig, ProxyConfig};
use crate::error::{Error, Result, TimeoutPhase};
use crate::objpool::BufferPool;
use crate::providers::ChunkStream;
use crate::types::Chunk;

/// Largest error body kept in a PROVIDER error.
const MAX_ERROR_BODY: usize = 16 * 1024;
/// Chunks buffered between the upstream reader and the consumer.
const STREAM_BUFFER: usize = 32;

/// A provider pool's HTTP client and endpoint settings.
pub(crate) struct HttpClient {
    pub provider: String,
    client: reqwest::Client,
    pub base_url: String,
    extra_headers: HeaderMap,
    pub stream_idle: Duration,
    request_buffers: Arc<BufferPool>,
}

fn install_crypto_provider() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // Fails only if the application installed its own provider first,
        // which is then used instead: either way TLS has a provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn proxy_from(name: &str, p: &ProxyConfig) -> Result<Option<reqwest::Proxy>> {
    let path = format!("providers.{name}.proxy_config");
    let url = match p.kind.as_str() {
        "none" => return Ok(None),
        "environment" => {
            let from_env = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()));
            match from_env {
                Some(u) => u,
                None => return Ok(None),
            }
        }
        "http" | "socks5" => match &p.url {
            Some(u) => u.expose().to_string(),
            None => return Err(Error::config(format!("{path}.url"), "required for proxy type http or socks5")),
        },
        other => {
            return Err(Error::config(
                format!("{path}.type"),
                format!("must be one of none, http, socks5, environment; got {other:?}"),
            ))
        }
    };
    let mut proxy = reqwest::Proxy::all(url.as_str())
        .map_err(|e| Error::config(format!("{path}.url"), format!("not a valid proxy URL: {e}")))?;
    if let (Some(u), Some(pw)) = (&p.username, &p.password) {
        proxy = proxy.basic_auth(u.expose(), pw.expose());
    }
    Ok(Some(proxy))
}

impl HttpClient {
    /// Builds the client for one provider pool.
    pub fn new(
        name: &str,
        cfg: &ProviderConfig,
        default_base: String,
        request_buffers: Arc<BufferPool>,
    ) -> Result<HttpClient> {
        install_crypto_provider();
        let net = &cfg.network_config;
        let attempt = Duration::from_secs(net.default_request_timeout_in_seconds);
        let mut builder = reqwest::Client::builder()
            .pool_max_idle_per_host(cfg.concurrency_and_buffer_size.concurrency)
            .pool_idle_timeout(Duration::from_secs(90))
            .connect_timeout(attempt.min(Duration::from_secs(10)))
            .tcp_nodelay(true)
            .user_agent(concat!("bifrost/", env!("CARGO_PKG_VERSION")));
        if net.insecure_skip_verify == Some(true) {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        if let Some(pem) = &net.ca_cert_pem {
            let cert = reqwest::Certificate::from_pem(pem.expose().as_bytes()).map_err(|e| {
                Error::config(
                    format!("providers.{name}.network_config.ca_cert_pem"),
                    format!("not a PEM certificate: {e}"),
                )
            })?;
            builder = builder.tls_certs_merge([cert]);
        }
        if net.enforce_http2 == Some(true) {
            builder = builder.http2_prior_knowledge();
        }
        builder = match cfg.proxy_config.as_ref().map(|p| proxy_from(name, p)).transpose()?.flatten() {
            Some(proxy) => builder.proxy(proxy),
            None => builder.no_proxy(),
        };
        let mut extra_headers = HeaderMap::new();
        for (k, v) in &net.extra_headers {
            let path = format!("providers.{name}.network_config.extra_headers.{k}");
            let hn =
                HeaderName::from_bytes(k.as_bytes()).map_err(|_| Error::config(&path, "not a valid header name"))?;
            let mut hv =
                HeaderValue::from_str(v.expose()).map_err(|_| Error::config(&path, "not a valid header value"))?;
            hv.set_sensitive(true);
            extra_headers.insert(hn, hv);
        }
        let client = builder
            .build()
            .map_err(|e| Error::config(format!("providers.{name}"), format!("cannot build the HTTP client: {e}")))?;
        let base_url = net.base_url.clone().unwrap_or(default_base).trim_end_matches('/').to_string();
        Ok(HttpClient {
            provider: name.to_string(),
            client,
            base_url,
            extra_headers,
            stream_idle: Duration::from_secs(net.stream_idle_timeout_in_seconds),
            request_buffers,
        })
    }

    /// Serializes `body` as JSON into a pooled buffer; the buffer returns to
    /// the pool when the HTTP client drops the body.
    pub fn json_body<T: Serialize>(&self, body: &T) -> Result<Bytes> {
        let mut buf = self.request_buffers.get();
        serde_json::to_writer(&mut *buf, body)
            .map_err(|e| Error::invalid(format!("request cannot be serialized as JSON: {e}")))?;
        Ok(Bytes::from_owner(buf))
    }

    /// Sends one POST; a non-2xx answer becomes PROVIDER via `parse_error`
    /// (which extracts the provider's own message from the body).
    pub async fn post(
        &self,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
        parse_error: fn(&str) -> Option<String>,
    ) -> Result<reqwest::Response> {
        let mut all = self.extra_headers.clone();
        all.extend(headers);
        all.insert(reqwest::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let resp = self.client.post(url).headers(all).body(body).send().await.map_err(|e| self.transport_error(e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let retry_after_ms =
            resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
        let error_type = resp
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(':').next().unwrap_or(s).to_string());
        let bytes = resp.bytes().await.unwrap_or_default();
        let mut body = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_ERROR_BODY)]).into_owned();
        if bytes.len() > MAX_ERROR_BODY {
            body.push_str("…(truncated)");
        }
        let mut message = parse_error(&body).unwrap_or_else(|| {
            status.canonical_reason().map(str::to_string).unwrap_or_else(|| format!("status {}", status.as_u16()))
        });
        if let Some(t) = error_type {
            message = format!("{t}: {message}");
        }
        Err(Error::Provider { provider: self.provider.clone(), status: status.as_u16(), message, body, retry_after_ms })
    }

    /// A NETWORK error of this provider (unreadable or malformed answers).
    pub fn network_error(&self, message: String) -> Error {
        Error::Network { provider: self.provider.clone(), message }
    }

    fn transport_error(&self, e: reqwest::Error) -> Error {
        if e.is_timeout() {
            return Error::Timeout { provider: self.provider.clone(), phase: TimeoutPhase::Processing, timeout_ms: 0 };
        }
        // The full chain says what failed (DNS, refused, TLS …); reqwest's
        // top-level message alone is "error sending request".
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        Error::Network { provider: self.provider.clone(), message }
    }

    /// Starts the task that turns a streaming body into chunks.
    pub fn stream<D: StreamDecoder>(
        &self,
        resp: reqwest::Response,
        decoder: D,
        deadline: Option<Instant>,
    ) -> ChunkStream {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let provider = self.provider.clone();
        let idle = self.stream_idle;
        let task = tokio::spawn(read_stream(resp, decoder, tx, provider, idle, deadline));
        ChunkStream::channel(rx, task)
    }
}

/// `Retry-After` as seconds or an HTTP date, in ms from now.
pub(crate) fn parse_retry_after(v: &str) -> Option<u64> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then_some((secs * 1000.0) as u64);
    }
    let at = httpdate(v)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(at.saturating_sub(now) * 1000)
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) to Unix seconds.
fn httpdate(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: u64 = parts[1].parse().ok()?;
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .iter()
        .position(|m| *m == parts[2])? as u64
        + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<u64> = parts[4].split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    if hms.len() != 3 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as u64;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe as i64 - 719_468;
    u64::try_from(days).ok().map(|d| d * 86_400 + hms[0] * 3_600 + hms[1] * 60 + hms[2])
}

/// What a stream decoder produced from the bytes so far.
#[derive(Debug)]
pub(crate) enum StreamItem {
    Chunk(Chunk),
    /// The provider's terminal event: the stream ended properly.
    Done,
}

/// Turns a provider's streaming body into chunks, incrementally.
pub(crate) trait StreamDecoder: Send + 'static {
    /// Adds received bytes.
    fn push(&mut self, bytes: &[u8]);
    /// The next item decodable from the bytes so far, or `None` for "need
    /// more bytes"; an in-stream provider error is an `Err`.
    fn next_item(&mut self) -> Result<Option<StreamItem>>;
    /// True if the body may end here without its terminal event.
    fn complete_at_eof(&self) -> bool {
        false
    }
}

async fn read_stream<D: StreamDecoder>(
    mut resp: reqwest::Response,
    mut decoder: D,
    tx: mpsc::Sender<Result<Chunk>>,
    provider: String,
    idle: Duration,
    deadline: Option<Instant>,
) {
    loop {
        let wait = match deadline {
            Some(d) => idle.min(d.saturating_duration_since(Instant::now())),
            None => idle,
        };
        let next = tokio::time::timeout(wait, resp.chunk()).await;
        let bytes = match next {
            Err(_) => {
                let past_deadline = deadline.is_some_and(|d| Instant::now() >= d);
                let err = if past_deadline {
                    Error::Timeout { provider: provider.clone(), phase: TimeoutPhase::Processing, timeout_ms: 0 }
                } else {
                    Error::Network {
                        provider: provider.clone(),
                        message: format!(
                            "stream idle for {} s (network_config.stream_idle_timeout_in_seconds)",
                            idle.as_secs()
                        ),
                    }
                };
                let _ = tx.send(Err(err)).await;
                return;
            }
            Ok(Err(e)) => {
                let _ = tx
                    .send(Err(Error::Network { provider: provider.clone(), message: format!("stream broke: {e}") }))
                    .await;
                return;
            }
            Ok(Ok(None)) if decoder.complete_at_eof() => return,
            Ok(Ok(None)) => {
                let _ = tx
                    .send(Err(Error::Network {
                        provider: provider.clone(),
                        message: "stream ended before its terminal event (truncated by the provider or the network)"
                            .into(),
                    }))
                    .await;
                return;
            }
            Ok(Ok(Some(bytes))) => bytes,
        };
        decoder.push(&bytes);
        loop {
            match decoder.next_item() {
                Ok(None) => break,
                Ok(Some(StreamItem::Chunk(c))) => {
                    if tx.send(Ok(c)).await.is_err() {
                        return; // consumer gone
                    }
                }
                Ok(Some(StreamItem::Done)) => return,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
    }
}

/// Incremental parser of `text/event-stream` bodies.
#[derive(Default)]
pub(crate) struct SseParser {
    buf: Vec<u8>,
    pos: usize,
}

/// One server-sent event.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event (terminated by a blank line), if any.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            let rest = &self.buf[self.pos..];
            let (end, sep) = find_blank_line(rest)?;
            let block = String::from_utf8_lossy(&rest[..end]).into_owned();
            self.pos += end + sep;
            if self.pos > 64 * 1024 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            let mut ev = SseEvent::default();
            let mut has_data = false;
            for line in block.lines() {
                if line.starts_with(':') {
                    continue;
                }
                let (field, value) = match line.split_once(':') {
                    Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                    None => (line, ""),
                };
                match field {
                    "event" => ev.event = Some(value.to_string()),
                    "data" => {
                        if has_data {
                            ev.data.push('\n');
                        }
                        ev.data.push_str(value);
                        has_data = true;
                    }
                    _ => {}
                }
            }
            if has_data || ev.event.is_some() {
                return Some(ev);
            }
        }
    }
}

/// Position and length of the first blank-line separator.
fn find_blank_line(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'\n' && b[i + 1] == b'\n' {
            return Some((i, 2));
        }
        if b[i] == b'\r' && i + 3 < b.len() && &b[i..i + 4] == b"\r\n\r\n" {
            return Some((i, 4));
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_across_pushes() {
        let mut p = SseParser::default();
        p.push(b"event: a\ndata: {\"x\"");
        assert_eq!(p.next_event(), None);
        p.push(b":1}\n\n: comment\n\ndata: l1\ndata: l2\r\n\r\ndata: [DONE]\n\n");
        assert_eq!(p.next_event(), Some(SseEvent { event: Some("a".into()), data: "{\"x\":1}".into() }));
        assert_eq!(p.next_event(), Some(SseEvent { event: None, data: "l1\nl2".into() }));
        assert_eq!(p.next_event().unwrap().data, "[DONE]");
        assert_eq!(p.next_event(), None);
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("2"), Some(2000));
        assert_eq!(parse_retry_after("0.5"), Some(500));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), Some(0), "a past date means now");
        assert_eq!(httpdate("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
