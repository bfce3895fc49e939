//! Counters that tests read back: requests per route and per scenario, and
//! the life of every stream.
//!
//! Synchronisation rule: every counter is an atomic updated with relaxed
//! ordering, except the scenario map, which sits behind a mutex and is only
//! touched by requests that name a scenario. A snapshot is therefore not one
//! atomic instant; read it when the server is idle for exact sums.
//!
//! Stream accounting: a stream is *started* when its response is handed to
//! the HTTP layer, *completed* when the server has sent its last byte (whether
//! that is a terminal event, an injected error or a deliberate truncation), and
//! *aborted by client* when its body is dropped before that — the only way
//! that happens is the connection going away. So at every moment
//! `streams_started = streams_completed + streams_aborted_by_client + active_streams`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The provider route a request hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    OpenAiChat,
    OpenAiEmbeddings,
    AnthropicMessages,
    BedrockConverse,
    BedrockConverseStream,
}

/// Requests per route (keys as in `/_mock/stats`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteCounts {
    /// `POST /v1/chat/completions`.
    #[serde(rename = "openai.chat")]
    pub openai_chat: u64,
    /// `POST /v1/embeddings`.
    #[serde(rename = "openai.embeddings")]
    pub openai_embeddings: u64,
    /// `POST /v1/messages`.
    #[serde(rename = "anthropic.messages")]
    pub anthropic_messages: u64,
    /// `POST /model/{id}/converse`.
    #[serde(rename = "bedrock.converse")]
    pub bedrock_converse: u64,
    /// `POST /model/{id}/converse-stream`.
    #[serde(rename = "bedrock.converse_stream")]
    pub bedrock_converse_stream: u64,
}

/// A snapshot of the server's counters; serializes to the `/_mock/stats` JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MockStats {
    /// Requests to provider routes (any outcome).
    pub requests: u64,
    /// Requests per route.
    pub by_route: RouteCounts,
    /// Requests per `scenario` directive.
    pub by_scenario: BTreeMap<String, u64>,
    /// Streaming responses handed to the HTTP layer.
    pub streams_started: u64,
    /// Streams whose last byte the server sent.
    pub streams_completed: u64,
    /// Streams whose body the client dropped before the server finished.
    pub streams_aborted_by_client: u64,
    /// Streams in flight.
    pub active_streams: u64,
    /// Requests whose handler is still working on its response (a request
    /// that hangs stays open).
    #[serde(default)]
    pub open_requests: u64,
    /// The most requests open at once so far (what `max_in_flight` tests
    /// compare with).
    #[serde(default)]
    pub max_open_requests: u64,
}

/// A request being handled (see [`Counters::open`]).
pub(crate) struct Open<'a>(&'a Counters);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    routes: [AtomicU64; 5],
    /// Per scenario: requests so far and when the first one came.
    scenarios: Mutex<HashMap<String, (u64, std::time::Instant)>>,
    started: AtomicU64,
    completed: AtomicU64,
    aborted: AtomicU64,
    open: AtomicU64,
    max_open: AtomicU64,
}

impl Counters {
    /// Opens one request until the guard drops.
    pub(crate) fn open(&self) -> Open<'_> {
        let now = self.open.fetch_add(1, Relaxed) + 1;
        self.max_open.fetch_max(now, Relaxed);
        Open(self)
    }

    /// Counts one request to `route`.
    pub(crate) fn record(&self, route: Route) {
        self.requests.fetch_add(1, Relaxed);
        self.routes[route as usize].fetch_add(1, Relaxed);
    }

    /// Counts one request of scenario `s`; returns the count including
    /// this one and the time since the scenario's first request.
    pub(crate) fn scenario_hit(&self, s: &str) -> (u64, std::time::Duration) {
        let mut map = self.scenarios.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(s.to_string()).or_insert((0, std::time::Instant::now()));
        entry.0 += 1;
        (entry.0, entry.1.elapsed())
    }

    pub(crate) fn stream_started(&self) {
        self.started.fetch_add(1, Relaxed);
    }

    /// Records a stream's end: `completed` if the server sent its last byte.
    pub(crate) fn stream_ended(&self, completed: bool) {
        if completed {
            self.completed.fetch_add(1, Relaxed);
        } else {
            self.aborted.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> MockStats {
        let r = |i: usize| self.routes[i].load(Relaxed);
        let by_scenario = {
            let map = self.scenarios.lock().unwrap_or_else(|p| p.into_inner());
            map.iter().map(|(k, v)| (k.clone(), v.0)).collect()
        };
        let started = self.started.load(Relaxed);
        let completed = self.completed.load(Relaxed);
        let aborted = self.aborted.load(Relaxed);
        MockStats {
            requests: self.requests.load(Relaxed),
            by_route: RouteCounts {
                openai_chat: r(Route::OpenAiChat as usize),
                openai_embeddings: r(Route::OpenAiEmbeddings as usize),
                anthropic_messages: r(Route::AnthropicMessages as usize),
                bedrock_converse: r(Route::BedrockConverse as usize),
                bedrock_converse_stream: r(Route::BedrockConverseStream as usize),
            },
            by_scenario,
            streams_started: started,
            streams_completed: completed,
            streams_aborted_by_client: aborted,
            active_streams: started.saturating_sub(completed + aborted),
            open_requests: self.open.load(Relaxed),
            max_open_requests: self.max_open.load(Relaxed),
        }
    }

    /// Zeroes every counter. Streams in flight when this runs will still
    /// report their end, so reset while idle for exact numbers afterwards.
    pub(crate) fn reset(&self) {
        self.requests.store(0, Relaxed);
        self.routes.iter().for_each(|c| c.store(0, Relaxed));
        self.scenarios.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.started.store(0, Relaxed);
        self.completed.store(0, Relaxed);
        self.aborted.store(0, Relaxed);
        self.max_open.store(self.open.load(Relaxed), Relaxed);
    }
}
