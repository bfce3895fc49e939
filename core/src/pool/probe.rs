//! The optional startup probe of a provider (`health_check`).
//!
//! Right after the pool starts, one tiny request (`"ping"`, one token)
//! goes straight to the provider with the pool's first usable key; its
//! result shows in `health()` as `startup_probe` (`pending`, `ok`,
//! `failed` with the error). It does not go through the queue and is not
//! counted in the pool's job stats; a failed probe marks the provider
//! `degraded` but never stops the gateway.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::providers::CallCtx;
use crate::types::Request;

use super::PoolShared;

/// The probe's result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ProbeState {
    Off,
    Pending,
    Ok { latency_ms: u64 },
    Failed { error: String },
}

impl ProbeState {
    pub fn label(&self) -> &'static str {
        match self {
            ProbeState::Off => "off",
            ProbeState::Pending => "pending",
            ProbeState::Ok { .. } => "ok",
            ProbeState::Failed { .. } => "failed",
        }
    }
}

pub(crate) async fn run(pool: Arc<PoolShared>, model: String) {
    let started = Instant::now();
    let mut req = Request::new(format!("{}/{model}", pool.name), "ping");
    req.params.insert("max_tokens".into(), serde_json::json!(1));
    let outcome = match pool.keys.choose(&model, None, None) {
        Err(e) => Err(e),
        Ok(key) => {
            let ctx = CallCtx {
                provider: &pool.name,
                model: &model,
                job_id: 0,
                attempt: 1,
                key: key.map(|i| pool.keys.key(i)),
                key_index: key,
                deadline: None,
                timeout_ms: None,
                on_response: None,
                headers_timeout: None,
            };
            let limit = Duration::from_secs(pool.network.default_request_timeout_in_seconds);
            match tokio::time::timeout(limit, pool.provider.chat(&req, &ctx)).await {
                Ok(r) => r.map(|_| ()),
                Err(_) => Err(crate::error::Error::Timeout {
                    provider: pool.name.clone(),
                    phase: crate::error::TimeoutPhase::Attempt,
                    timeout_ms: limit.as_millis() as u64,
                }),
            }
        }
    };
    *pool.probe.lock() = match outcome {
        Ok(()) => ProbeState::Ok { latency_ms: started.elapsed().as_millis() as u64 },
        Err(e) => ProbeState::Failed { error: e.to_string() },
    };
}
