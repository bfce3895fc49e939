//! Requests kept for tests to read back (`record=1`).
//!
//! A request whose directives say `record=1` is kept as it arrived:
//! method, path (percent-encoded, as sent), every header and the body. The
//! fidelity tests read them from `GET /_mock/requests` (or
//! [`MockServer::requests`](crate::MockServer::requests)) to judge what a
//! client sent with an official validator, such as botocore's SigV4 signer
//! and its Converse request schema. Only the last [`KEPT`] are kept.

use std::collections::VecDeque;
use std::sync::Mutex;

use axum::http::HeaderMap;
use serde::Serialize;

/// How many recorded requests are kept (the oldest goes first).
pub const KEPT: usize = 64;

/// One request as it arrived.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `POST`.
    pub method: String,
    /// The path as sent, percent-encoding kept (`/model/a%3Ab/converse`).
    pub path: String,
    /// Every header, names lower-case, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body (UTF-8; invalid bytes replaced).
    pub body: String,
}

/// The kept requests.
#[derive(Default)]
pub(crate) struct Recorder {
    kept: Mutex<VecDeque<RecordedRequest>>,
}

impl Recorder {
    pub(crate) fn record(&self, path: &str, headers: &HeaderMap, body: &[u8]) {
        let r = RecordedRequest {
            method: "POST".into(),
            path: path.to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect(),
            body: String::from_utf8_lossy(body).into_owned(),
        };
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() == KEPT {
            kept.pop_front();
        }
        kept.push_back(r);
    }

    pub(crate) fn snapshot(&self) -> Vec<RecordedRequest> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }
}
