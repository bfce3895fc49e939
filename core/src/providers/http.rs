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
//! Streaming responses are read by a [`BodyReader`] that the consumer's own
//! poll drives: it decodes provider events into chunks as the consumer asks
//! for them (backpressure reaches the upstream read; no task or channel
//! between body and consumer, so a chunk costs no task wake-up). Dropping
//! the [`ChunkStream`] drops the body, which drops the connection. A body
//! that ends before its terminal event is an error.
//!
//! Bounds (docs/architecture.md §13, `crate::bounds`): redirects are not followed unless
//! `network_config.follow_redirects`, and then only within the same origin
//! (so no credential header ever reaches another host); an error body is
//! read to at most 16 KiB, a success body to `max_response_bytes`, one
//! stream event to `max_event_bytes`; SSE parsing is linear in the bytes
//! received. Every error that carries upstream text passes through the
//! provider's [`Redactor`] first.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::Body as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;

use crate::bounds::MAX_ERROR_BODY_BYTES as MAX_ERROR_BODY;
use crate::config::{ProviderConfig, ProxyConfig};
use crate::error::{Error, Result, TimeoutPhase};
use crate::objpool::BufferPool;
use crate::providers::{CallCtx, ChunkStream};
use crate::redact::Redactor;
use crate::types::Chunk;

/// A provider pool's HTTP client and endpoint settings.
pub(crate) struct HttpClient {
    pub provider: String,
    client: reqwest::Client,
    pub base_url: String,
    extra_headers: HeaderMap,
    pub stream_idle: Duration,
    request_buffers: Arc<BufferPool>,
    /// Masks this provider's secrets in upstream text.
    pub redactor: Arc<Redactor>,
    max_response_bytes: u64,
    max_event_bytes: usize,
    /// `default_request_timeout_in_seconds`, in ms (for TIMEOUT messages).
    attempt_ms: u64,
}

/// An error and its whole `source()` chain, as one line: reqwest's own
/// top-level messages ("builder error", "error sending request") say
/// nothing about the cause.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

/// True when `a` and `b` have the same scheme, host and port.
fn same_origin(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

/// Redirects of API calls: none by default; with `follow_redirects`, up to
/// 10 within the first URL's origin. A redirect elsewhere stops, and the
/// 3xx becomes a PROVIDER error: headers such as `x-api-key`,
/// `x-amz-security-token` or `extra_headers` (which reqwest does not strip,
/// unlike `Authorization`) never travel to another host.
fn redirect_policy(follow: bool) -> reqwest::redirect::Policy {
    if !follow {
        return reqwest::redirect::Policy::none();
    }
    reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().cloned();
        match first {
            Some(first) if attempt.previous().len() <= 10 && same_origin(&first, attempt.url()) => attempt.follow(),
            _ => attempt.stop(),
        }
    })
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
        // The value is not quoted: it may be a credential in the wrong place.
        _ => return Err(Error::config(format!("{path}.type"), "must be one of none, http, socks5, environment")),
    };
    let mut proxy = reqwest::Proxy::all(url.as_str()).map_err(|e| {
        // The URL may carry credentials: the message never quotes it.
        let why = Redactor::new([url.as_str()]).text(&error_chain(&e));
        Error::config(format!("{path}.url"), format!("not a valid proxy URL: {why}"))
    })?;
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
            .redirect(redirect_policy(net.follow_redirects))
            .user_agent(concat!("bifrost/", env!("CARGO_PKG_VERSION")));
        if net.insecure_skip_verify == Some(true) {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        if let Some(pem) = &net.ca_cert_pem {
            let cert = reqwest::Certificate::from_pem(pem.expose().as_bytes()).map_err(|e| {
                Error::config(
                    format!("providers.{name}.network_config.ca_cert_pem"),
                    format!("not a PEM certificate: {}", error_chain(&e)),
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
        let client = builder.build().map_err(|e| {
            let why = Redactor::for_provider(cfg).text(&error_chain(&e));
            Error::config(format!("providers.{name}"), format!("cannot build the HTTP client: {why}"))
        })?;
        let base_url = net.base_url.clone().unwrap_or(default_base).trim_end_matches('/').to_string();
        Ok(HttpClient {
            provider: name.to_string(),
            client,
            base_url,
            extra_headers,
            stream_idle: Duration::from_secs(net.stream_idle_timeout_in_seconds),
            request_buffers,
            redactor: Arc::new(Redactor::for_provider(cfg)),
            max_response_bytes: net.max_response_bytes,
            max_event_bytes: usize::try_from(net.max_event_bytes).unwrap_or(usize::MAX),
            attempt_ms: net.default_request_timeout_in_seconds.saturating_mul(1000),
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

    /// The URL of `path` under this provider's base URL, parsed now rather
    /// than on every request.
    pub fn endpoint(&self, path: &str) -> Endpoint {
        Endpoint::new(format!("{}{path}", self.base_url))
    }

    /// Sends one POST; a non-2xx answer becomes PROVIDER via `parse_error`
    /// (which extracts the provider's own message from the body). The
    /// response's status and headers are shown to `ctx.on_response` first.
    pub async fn post(
        &self,
        url: &Endpoint,
        headers: HeaderMap,
        body: Bytes,
        parse_error: fn(&str) -> Option<String>,
        ctx: &CallCtx<'_>,
    ) -> Result<reqwest::Response> {
        let mut all = self.extra_headers.clone();
        all.extend(headers);
        all.insert(reqwest::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let post = match url {
            Endpoint::Parsed(u) => self.client.post(u.clone()),
            // reqwest reports why it does not parse, as it did before.
            Endpoint::Unparsed(s) => self.client.post(s.as_str()),
        };
        let send = post.headers(all).body(body).send();
        let sent = match ctx.headers_timeout {
            None => send.await,
            Some(limit) => match tokio::time::timeout(limit, send).await {
                Ok(r) => r,
                // The request future (and its connection) is dropped here.
                Err(_) => {
                    return Err(Error::Timeout {
                        provider: self.provider.clone(),
                        phase: TimeoutPhase::FirstToken,
                        timeout_ms: limit.as_millis() as u64,
                    })
                }
            },
        };
        let resp = sent.map_err(|e| self.transport_error(e))?;
        let status = resp.status();
        if let Some(seen) = ctx.on_response {
            seen(status.as_u16(), resp.headers());
        }
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
        let location = status
            .is_redirection()
            .then(|| resp.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string));
        let (bytes, truncated) = read_prefix(resp, MAX_ERROR_BODY).await;
        let mut body = String::from_utf8_lossy(&bytes).into_owned();
        if truncated {
            body.push_str("…(truncated)");
        }
        let mut message = parse_error(&body).unwrap_or_else(|| {
            status.canonical_reason().map(str::to_string).unwrap_or_else(|| format!("status {}", status.as_u16()))
        });
        if let Some(t) = error_type {
            message = format!("{t}: {message}");
        }
        if let Some(location) = location {
            message = format!(
                "{message}: redirect to {} not followed (redirects of API calls are followed only with \
                 network_config.follow_redirects, and never to another origin)",
                location.as_deref().map(origin_of).unwrap_or_else(|| "an unnamed location".into())
            );
        }
        Err(self.redactor.error(Error::Provider {
            provider: self.provider.clone(),
            status: status.as_u16(),
            message,
            body,
            retry_after_ms,
        }))
    }

    /// Reads a success body, at most `network_config.max_response_bytes`
    /// (a larger one, announced or not, is PROTOCOL).
    pub async fn read_body(&self, mut resp: reqwest::Response) -> Result<Bytes> {
        let limit = self.max_response_bytes;
        let too_large =
            || self.protocol_error(format!("response body is larger than network_config.max_response_bytes={limit}"));
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut out = bytes::BytesMut::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    if (out.len() + c.len()) as u64 > limit {
                        return Err(too_large());
                    }
                    if out.is_empty() && resp.content_length() == Some(c.len() as u64) {
                        return Ok(c); // the whole body in one piece: no copy
                    }
                    out.extend_from_slice(&c);
                }
                Ok(None) => return Ok(out.freeze()),
                Err(e) => return Err(self.network_error(format!("reading the response failed: {}", error_chain(&e)))),
            }
        }
    }

    /// A PROTOCOL error of this provider: it answered, but not in its protocol.
    pub fn protocol_error(&self, message: String) -> Error {
        self.redactor.error(Error::Protocol { provider: self.provider.clone(), message })
    }

    /// A NETWORK error of this provider (the transport failed).
    pub fn network_error(&self, message: String) -> Error {
        self.redactor.error(Error::Network { provider: self.provider.clone(), message })
    }

    fn transport_error(&self, e: reqwest::Error) -> Error {
        if e.is_timeout() {
            return Error::Timeout {
                provider: self.provider.clone(),
                phase: TimeoutPhase::Attempt,
                timeout_ms: self.attempt_ms,
            };
        }
        // The full chain says what failed (DNS, refused, TLS …); reqwest's
        // top-level message alone is "error sending request".
        self.network_error(error_chain(&e))
    }

    /// The chunks of a streaming body, read as the consumer polls.
    /// `deadline`/`timeout_ms` are the request's (for its TIMEOUT error).
    pub fn stream<D: StreamDecoder + Sync>(
        &self,
        resp: reqwest::Response,
        decoder: D,
        deadline: Option<Instant>,
        timeout_ms: Option<u64>,
    ) -> ChunkStream {
        let limits = StreamLimits {
            provider: self.provider.clone(),
            idle: self.stream_idle,
            deadline,
            timeout_ms: timeout_ms.unwrap_or_default(),
            max_event: self.max_event_bytes,
            redactor: self.redactor.clone(),
        };
        ChunkStream::body(Box::new(BodyReader::new(resp, decoder, limits)))
    }
}

/// The first `limit` bytes of a body (and whether there was more); the
/// rest is never read: the connection is dropped instead.
async fn read_prefix(mut resp: reqwest::Response, limit: usize) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    while let Ok(Some(c)) = resp.chunk().await {
        let room = limit - out.len();
        if c.len() > room {
            out.extend_from_slice(&c[..room]);
            return (out, true);
        }
        out.extend_from_slice(&c);
    }
    (out, false)
}

/// `scheme://host[:port]` of a redirect target, without path or query
/// (which may carry tokens).
fn origin_of(location: &str) -> String {
    match reqwest::Url::parse(location) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{}://{h}:{p}", u.scheme()),
            (Some(h), None) => format!("{}://{h}", u.scheme()),
            _ => "a location without a host".into(),
        },
        Err(_) => "a relative location".into(),
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
    Some(at.saturating_sub(now).saturating_mul(1000))
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) to Unix seconds
/// (0 for a date before 1970). A field out of its range (day 1..=31, hour
/// 0..=23, minute 0..=59, second 0..=60, year 0..=9999) is no date: `None`,
/// so every sum below stays far inside `i64`.
fn httpdate(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: i64 = parts[1].parse().ok().filter(|d| (1..=31).contains(d))?;
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .iter()
        .position(|m| *m == parts[2])? as i64
        + 1;
    let year: i64 = parts[3].parse().ok().filter(|y| (0..=9999).contains(y))?;
    let hms: Vec<i64> = parts[4].split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    let [h, m, sec] = hms[..] else { return None };
    if !((0..24).contains(&h) && (0..60).contains(&m) && (0..=60).contains(&sec)) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(u64::try_from(days * 86_400 + h * 3_600 + m * 60 + sec).unwrap_or(0))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm). Callers keep `year` in 0..=9999, `month` in 1..=12 and `day`
/// in 1..=31, so every step stays far inside `i64`.
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let (y, mp) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// What a stream decoder produced from the bytes so far.
#[derive(Debug)]
// A stream item is returned and moved once, straight into the chunk
// channel; boxing the chunk would cost an allocation per chunk.
#[allow(clippy::large_enum_variant)]
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
    /// Bytes held that do not yet form an event (bounded by
    /// `max_event_bytes` by the reader).
    fn buffered(&self) -> usize;
}

/// The bounds a stream is read within.
struct StreamLimits {
    provider: String,
    /// Longest wait for the next bytes once the consumer asks for more.
    idle: Duration,
    /// The request's deadline, if it has one.
    deadline: Option<Instant>,
    timeout_ms: u64,
    max_event: usize,
    redactor: Arc<Redactor>,
}

/// Where a [`ChunkStream`] reads chunks from when polled (see [`BodyReader`]).
pub(crate) trait ChunkSource: Send + Sync {
    /// The next chunk, `None` after the last one (and after an error).
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Chunk>>>;
}

/// Decodes a streaming body into chunks when polled: items already
/// decodable first, then more bytes from the body. Every way out but the
/// terminal event (or a complete body, see
/// [`StreamDecoder::complete_at_eof`]) yields one `Err`, after which the body
/// is dropped (the upstream connection goes before the consumer hears of
/// it) and the stream is over.
///
/// Timeouts: while the body has nothing, it may stay silent for `idle`
/// since the last bytes or the last chunk handed out (NETWORK), and never
/// past the request's deadline (TIMEOUT, processing phase). One timer per
/// stream serves both; it is armed at creation and re-armed only when it
/// fires early (the due time only moves later), so a chunk costs no timer
/// operation.
struct BodyReader<D> {
    /// `None` once the stream is over.
    body: Option<reqwest::Body>,
    decoder: D,
    limits: StreamLimits,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// Start of the current silence.
    idle_from: Instant,
    /// Bytes or chunks came since `idle_from` was taken: the silence starts
    /// again at the next moment the body has nothing (one clock read per
    /// wait, not one per chunk).
    progressed: bool,
}

impl<D: StreamDecoder> BodyReader<D> {
    fn new(resp: reqwest::Response, decoder: D, limits: StreamLimits) -> Self {
        let idle_from = Instant::now();
        let due = Self::due_at(&limits, idle_from);
        BodyReader {
            body: Some(reqwest::Body::from(resp)),
            decoder,
            limits,
            timer: Box::pin(tokio::time::sleep_until(due.into())),
            idle_from,
            progressed: false,
        }
    }

    fn due_at(limits: &StreamLimits, idle_from: Instant) -> Instant {
        let idle = idle_from + limits.idle;
        limits.deadline.map_or(idle, |d| idle.min(d))
    }

    /// Ends the stream with `e` (redacted): the body goes first.
    fn fail(&mut self, e: Error) -> Poll<Option<Result<Chunk>>> {
        self.body = None;
        Poll::Ready(Some(Err(self.limits.redactor.error(e))))
    }

    /// The body has nothing yet: has the silence run out?
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Chunk>>> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            let due = Self::due_at(&self.limits, self.idle_from);
            if now < due {
                // Bytes or chunks came since it was armed.
                self.timer.as_mut().reset(due.into());
                continue;
            }
            let provider = self.limits.provider.clone();
            return self.fail(if self.limits.deadline.is_some_and(|d| now >= d) {
                Error::Timeout { provider, phase: TimeoutPhase::Processing, timeout_ms: self.limits.timeout_ms }
            } else {
                Error::Network {
                    provider,
                    message: format!(
                        "stream idle for {} s (network_config.stream_idle_timeout_in_seconds)",
                        self.limits.idle.as_secs()
                    ),
                }
            });
        }
    }
}

impl<D: StreamDecoder + Sync> ChunkSource for BodyReader<D> {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Chunk>>> {
        loop {
            if self.body.is_none() {
                return Poll::Ready(None);
            }
            match self.decoder.next_item() {
                Err(e) => return self.fail(e),
                Ok(Some(StreamItem::Chunk(c))) => {
                    self.progressed = true;
                    return Poll::Ready(Some(Ok(c)));
                }
                Ok(Some(StreamItem::Done)) => {
                    self.body = None;
                    return Poll::Ready(None);
                }
                Ok(None) => {}
            }
            if self.decoder.buffered() > self.limits.max_event {
                let message =
                    format!("a stream event is larger than network_config.max_event_bytes={}", self.limits.max_event);
                return self.fail(Error::Protocol { provider: self.limits.provider.clone(), message });
            }
            let Some(body) = self.body.as_mut() else { return Poll::Ready(None) };
            match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.decoder.push(&data);
                        self.progressed = true;
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let message = format!("stream broke: {}", error_chain(&e));
                    return self.fail(Error::Network { provider: self.limits.provider.clone(), message });
                }
                Poll::Ready(None) if self.decoder.complete_at_eof() => {
                    self.body = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(None) => {
                    let message = "stream ended with neither its terminal event nor a finish_reason \
                                   (cut off by the provider or a proxy)"
                        .into();
                    return self.fail(Error::Protocol { provider: self.limits.provider.clone(), message });
                }
                Poll::Pending => {
                    if std::mem::take(&mut self.progressed) {
                        self.idle_from = Instant::now();
                    }
                    return self.poll_timer(cx);
                }
            }
        }
    }
}

/// A request URL, parsed once: cloning a parsed URL is cheaper than
/// parsing (and IDNA-mapping) the same text on every request.
#[derive(Clone, Debug)]
pub(crate) enum Endpoint {
    Parsed(reqwest::Url),
    /// Not a URL reqwest takes: sent as text, so reqwest's own error says why.
    Unparsed(String),
}

impl Endpoint {
    /// Parses `url` (kept as text when it does not parse).
    pub fn new(url: String) -> Endpoint {
        match reqwest::Url::parse(&url) {
            Ok(u) => Endpoint::Parsed(u),
            Err(_) => Endpoint::Unparsed(url),
        }
    }
}

/// Incremental parser of `text/event-stream` bodies (WHATWG HTML §9.2.5).
///
/// Lines end in CRLF, LF or a lone CR, mixed freely; an empty line ends an
/// event. A CR may be the last byte of a push with its LF still to come, so
/// a CR ends its line at once and a LF right after it (in this push or the
/// next) is skipped as part of the same line end (`skip_lf`).
///
/// Linear time: each line is searched for its end once (`scan` resumes
/// where the last search stopped) and parsed once into the event being
/// built (`pending`); parsed bytes are dropped once they are at least half
/// of the buffer, so each byte is copied O(1) times. An event may span any
/// number of pushes.
#[derive(Default)]
pub(crate) struct SseParser {
    buf: Vec<u8>,
    /// Start of the first line not parsed yet.
    pos: usize,
    /// Where the search for that line's end resumes (≥ `pos`).
    scan: usize,
    /// The last line ended in a CR: a LF at `pos` belongs to it.
    skip_lf: bool,
    /// The fields of the event whose lines have been parsed so far.
    pending: SseEvent,
    has_data: bool,
    /// Bytes of `pending`'s lines (with their line ends).
    pending_bytes: usize,
}

/// One server-sent event.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.scan -= self.pos;
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received since the last empty line (the event not complete
    /// yet), whether parsed into fields already or not.
    pub fn buffered(&self) -> usize {
        self.pending_bytes + (self.buf.len() - self.pos)
    }

    /// The next complete event (ended by an empty line), if any.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            if self.skip_lf && self.pos < self.buf.len() {
                self.skip_lf = false;
                if self.buf[self.pos] == b'\n' {
                    self.pos += 1;
                    self.scan = self.scan.max(self.pos);
                    // The LF of a CRLF that ended a field line is part of
                    // the pending event; one that ended an empty line is not.
                    if self.pending_bytes > 0 {
                        self.pending_bytes += 1;
                    }
                }
            }
            let Some(off) = memchr2(b'\n', b'\r', &self.buf[self.scan..]) else {
                self.scan = self.buf.len();
                return None;
            };
            let end = self.scan + off;
            self.skip_lf = self.buf[end] == b'\r';
            let start = std::mem::replace(&mut self.pos, end + 1);
            self.scan = self.pos;
            if end == start {
                // An empty line: the event is complete.
                self.pending_bytes = 0;
                let has_data = std::mem::take(&mut self.has_data);
                let ev = std::mem::take(&mut self.pending);
                if has_data || ev.event.is_some() {
                    return Some(ev);
                }
                continue;
            }
            self.pending_bytes += end + 1 - start;
            let bytes = &self.buf[start..end];
            // Valid UTF-8 (every line of a well-behaved stream) is checked
            // in one pass; only an invalid line pays for the lossy copy.
            let line = match std::str::from_utf8(bytes) {
                Ok(s) => std::borrow::Cow::Borrowed(s),
                Err(_) => String::from_utf8_lossy(bytes),
            };
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (&*line, ""),
            };
            match field {
                "event" => self.pending.event = Some(value.to_string()),
                "data" => {
                    if self.has_data {
                        self.pending.data.push('\n');
                    }
                    self.pending.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
    }
}

/// The first `a` or `b` in `hay` (the loop compiles to a fast scan).
fn memchr2(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&c| c == a || c == b)
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
    fn sse_search_resumes_where_it_stopped() {
        // A 4 MiB event in 1 KiB pieces: each push searches only the new
        // bytes, never the event again; the old parser rescanned it on
        // every push (quadratic).
        let mut p = SseParser::default();
        p.push(b"data: ");
        let piece = [b'x'; 1024];
        for _ in 0..4096 {
            p.push(&piece);
            assert_eq!(p.next_event(), None);
            assert_eq!(p.scan, p.buf.len());
        }
        assert_eq!(p.buffered(), 6 + 4096 * 1024);
        // CRLF then a lone CR: the empty line is complete at the CR.
        p.push(b"\r\n\r");
        assert_eq!(p.next_event().map(|e| e.data.len()), Some(4096 * 1024));
        assert_eq!(p.buffered(), 0);
        // The LF that may follow belongs to that CR.
        p.push(b"\n");
        assert_eq!(p.next_event(), None);
        assert_eq!(p.buffered(), 0);
        // Separators split across pushes, byte by byte.
        for b in b"data: a\n\ndata: b\r\n\r\n".iter() {
            p.push(&[*b]);
        }
        assert_eq!(p.next_event().map(|e| e.data), Some("a".into()));
        assert_eq!(p.next_event().map(|e| e.data), Some("b".into()));
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("2"), Some(2000));
        assert_eq!(parse_retry_after("0.5"), Some(500));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), Some(0), "a past date means now");
        assert_eq!(httpdate("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("1e30"), Some(u64::MAX), "saturates, never overflows");
        assert_eq!(parse_retry_after("-1"), None);
        assert!(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT").is_some());
    }
}
