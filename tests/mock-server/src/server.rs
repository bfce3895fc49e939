//! The HTTP server: the route table, the accept loop and [`MockServer`].
//!
//! Each accepted connection (with `TCP_NODELAY`, so small stream chunks leave
//! at once) is served by hyper's HTTP/1.1 connection driver on its own task.
//! Every connection task also watches one shutdown signal; dropping the
//! [`MockServer`] fires it, which stops the accept loop and drops every
//! connection — including requests told to `hang` — so the port is released
//! without waiting for clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::watch;

use crate::behave::{json, respond, Shared};
use crate::directives::Directives;
use crate::limits::{Admission, MockLimits};
use crate::stats::MockStats;
use crate::{anthropic, bedrock, openai};

/// Largest accepted request body.
const BODY_LIMIT: usize = 64 << 20;

/// What a server accepts and how it behaves by default.
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// Accepted API keys (OpenAI bearer keys, Anthropic `x-api-key`, Bedrock access key ids).
    pub api_keys: Vec<String>,
    /// Directives every request starts from (a request's own directives override them).
    pub defaults: Directives,
    /// Rate limits the server enforces on chat routes (none by default).
    pub limits: MockLimits,
}

impl Default for MockConfig {
    /// Accepts exactly `mock-key`, no latency, no failures, 4 stream chunks.
    fn default() -> Self {
        MockConfig {
            api_keys: vec!["mock-key".to_string()],
            defaults: Directives::default(),
            limits: MockLimits::default(),
        }
    }
}

/// A running mock provider server; dropping it stops the server.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// let server = bifrost_mock::MockServer::start(bifrost_mock::MockConfig::default()).await?;
/// let base_url = format!("{}/v1", server.url()); // point an OpenAI client here, key "mock-key"
/// # let _ = base_url;
/// assert_eq!(server.stats().requests, 0);
/// # Ok(()) }
/// ```
pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

/// Accept-queue length: benchmarks open a thousand connections at once, and
/// tokio's default (1024) would drop some SYNs, which clients retry only
/// after a second.
const BACKLOG: u32 = 4096;

/// Binds the first address of `addr` that works, with [`BACKLOG`].
async fn listen(addr: impl ToSocketAddrs) -> std::io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        match socket.bind(a) {
            Ok(()) => return socket.listen(BACKLOG),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to bind")))
}

impl MockServer {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime.
    pub async fn start(config: MockConfig) -> std::io::Result<MockServer> {
        MockServer::bind("127.0.0.1:0", config).await
    }

    /// Binds `addr` and serves on the current tokio runtime.
    pub async fn bind(addr: impl ToSocketAddrs, config: MockConfig) -> std::io::Result<MockServer> {
        let listener = listen(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config.api_keys, config.defaults, config.limits));
        let (shutdown, rx) = watch::channel(false);
        tokio::spawn(accept_loop(listener, router(shared.clone()), rx));
        Ok(MockServer { addr, shared, shutdown })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A snapshot of the counters (the `/_mock/stats` JSON).
    pub fn stats(&self) -> MockStats {
        self.shared.counters.snapshot()
    }

    /// Zeroes the counters and the rate-limit window (like `POST /_mock/reset`).
    pub fn reset(&self) {
        self.shared.counters.reset();
        self.shared.limiter.reset();
    }

    /// Every request the rate limits admitted, in time order (empty
    /// without limits).
    pub fn admissions(&self) -> Vec<Admission> {
        self.shared.limiter.admissions()
    }

    /// The requests sent with `record=1`, as they arrived, oldest first.
    pub fn requests(&self) -> Vec<crate::RecordedRequest> {
        self.shared.recorder.snapshot()
    }

    /// Requests the rate limits refused with 429.
    pub fn rate_limited(&self) -> u64 {
        self.shared.limiter.refused()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl std::fmt::Debug for MockServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai::chat))
        .route("/chat/completions", post(openai::chat))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/embeddings", post(openai::embeddings))
        .route("/v1/messages", post(anthropic::messages))
        .route("/model/{model_id}/converse", post(bedrock::converse))
        .route("/model/{model_id}/converse-stream", post(bedrock::converse_stream))
        .route("/_mock/stats", get(stats))
        .route("/_mock/admissions", get(admissions))
        .route("/_mock/requests", get(requests))
        .route("/_mock/reset", post(reset))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    json(200, &shared.counters.snapshot())
}

/// The rate limits' log of admitted requests (`[{at_ns, tokens}]`, in
/// time order), for fleet tests whose processes are not this one.
async fn admissions(State(shared): State<Arc<Shared>>) -> Response {
    json(200, &shared.limiter.admissions())
}

/// The requests sent with `record=1`, oldest first.
async fn requests(State(shared): State<Arc<Shared>>) -> Response {
    json(200, &shared.recorder.snapshot())
}

async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    shared.counters.reset();
    shared.limiter.reset();
    json(200, &shared.counters.snapshot())
}

async fn not_found() -> Response {
    respond(404, "application/json", r#"{"message":"mock: no such route"}"#)
}

async fn accept_loop(listener: TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // Out of file descriptors or a connection reset while queued: back off briefly.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = stop.changed() => {}
            }
        });
    }
}
