//! The public entry point: a [`Gateway`] owns one provider pool per
//! configured provider and routes each request to the pool its `model`
//! names (`"<provider>/<model>"`).
//!
//! A `Gateway` is `Send + Sync` and used through `&self`; share it with an
//! `Arc`. Dropping it without [`Gateway::shutdown`] stops its pools at once:
//! queued and running jobs end with SHUTDOWN (nothing is left hanging).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::failover::{Policy, StreamRecovery};
use crate::objpool::Buffers;
use crate::pool::recover::RecoveryPlan;
use crate::pool::route::{fallback_worthy, plan_for, with_fallbacks, Pools};
use crate::pool::{Admission, Job, JobOutput, PoolShared, Timing, Work};
use crate::providers::ChunkStream;
pub use crate::stats::{Health, ProviderHealth};
use crate::stats::{RuntimeStats, Stats};
use crate::types::{split_model, EmbedRequest, EmbedResponse, Request, Response};

/// What [`Gateway::shutdown`] did, counted over the shutdown itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShutdownReport {
    /// Jobs that completed while draining.
    pub completed: u64,
    /// Jobs that failed while draining, including `aborted`.
    pub failed: u64,
    /// Jobs cancelled while draining.
    pub cancelled: u64,
    /// Jobs still queued or running at the deadline, ended with SHUTDOWN.
    pub aborted: u64,
    /// Time the shutdown took.
    pub elapsed_ms: u64,
}

/// Provider-isolated worker pools behind one routing front.
pub struct Gateway {
    pools: Pools,
    next_id: Arc<crate::ids::JobIds>,
    buffers: Buffers,
    shutdown: tokio::sync::OnceCell<ShutdownReport>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("providers", &self.pools.keys().collect::<Vec<_>>()).finish()
    }
}

impl Gateway {
    /// Starts a gateway: one pool per provider, workers on the shared runtime.
    /// Works from synchronous code and from inside any async runtime.
    pub fn new(config: Config) -> Result<Gateway> {
        // Resolves `env.NAME` secrets of a Config that did not come from
        // `Config::from_json` (a no-op for one that did).
        let config = config.resolved()?;
        let buffers = Buffers::new(config.initial_pool_size);
        // One Redis connection for every provider's limits, if they live there.
        let fleet = match config.limits_store.as_ref().map(|s| s.settings()).transpose()?.flatten() {
            Some(settings) => Some(crate::limits::fleet::FleetStore::start(settings)?),
            None => None,
        };
        // And with it, the fleet's view of provider health.
        let health = fleet.as_ref().map(crate::limits::health::FleetHealth::start).transpose()?;
        let mut pools = BTreeMap::new();
        for (name, p) in &config.providers {
            let kind =
                p.resolved_kind(name).ok_or_else(|| Error::config(format!("providers.{name}.kind"), "missing"))?;
            match PoolShared::start(name, kind, p, buffers.request.clone(), fleet.as_ref(), health.as_ref()) {
                Ok(pool) => {
                    if let Some(h) = &health {
                        h.register(&pool);
                    }
                    pools.insert(name.clone(), pool);
                }
                Err(e) => {
                    for pool in pools.values() {
                        PoolShared::abort_now(pool);
                    }
                    return Err(e);
                }
            }
        }
        Ok(Gateway { pools: Arc::new(pools), next_id: Arc::default(), buffers, shutdown: tokio::sync::OnceCell::new() })
    }

    /// Parses, validates and starts a gateway from JSON text.
    pub fn from_json(text: &str) -> Result<Gateway> {
        Gateway::new(Config::from_json(text)?)
    }

    /// Like [`Gateway::from_json`] from a parsed JSON value.
    pub fn from_value(value: serde_json::Value) -> Result<Gateway> {
        Gateway::new(Config::from_value(value)?)
    }

    /// Configured provider names, sorted.
    pub fn providers(&self) -> Vec<String> {
        self.pools.keys().cloned().collect()
    }

    fn route(&self, model: &str) -> Result<&Arc<PoolShared>> {
        let (provider, _) = split_model(model)?;
        match self.pools.get(provider) {
            Some(pool) => Ok(pool),
            None => Err(Error::UnknownProvider { provider: provider.to_string(), known: self.providers() }),
        }
    }

    /// Submits `work` to `pool` under a fresh job id (see [`PoolShared::admit`]).
    fn admit_to<T: JobOutput>(&self, pool: &Arc<PoolShared>, work: Work, timing: Timing, wait: bool) -> Admission<T> {
        pool.admit(self.next_id.next(), work, timing, wait)
    }

    /// Submits a request (chat or stream) with its fallbacks attached: a
    /// primary refused at submit (QUEUE_FULL, QUEUE_TIMEOUT …) still yields a
    /// job, which goes straight to the fallbacks when awaited. Everything up
    /// to a full `block` queue runs synchronously.
    async fn submit_routed<T: JobOutput>(&self, request: Request, wait: bool) -> Result<Job<T>> {
        let timing = Timing::start(request.timeout_ms);
        self.submit_routed_at(request, wait, timing).await
    }

    /// [`Gateway::submit_routed`] with the request's clock already started.
    async fn submit_routed_at<T: JobOutput>(&self, request: Request, wait: bool, timing: Timing) -> Result<Job<T>> {
        crate::runtime::check_not_forked()?;
        request.validate()?;
        let plan = plan_for(&self.pools, &self.next_id, &request, timing.deadline)?;
        let admitted = match self.route(&request.model) {
            Err(e) => Admission::Done(Err(e)),
            Ok(pool) => {
                let Some(work) = T::work_for(request) else {
                    return Err(Error::Internal { message: "output kind without a work item".into() });
                };
                self.admit_to::<T>(pool, work, timing, wait)
            }
        };
        match admitted.resolve().await {
            Ok(job) => with_fallbacks(job, plan),
            // A refusal at submit (a full queue, an open breaker) has no
            // failure class: every policy sends it on.
            Err(e) if plan.is_some() && fallback_worthy(&e, &crate::failover::Policy::DEFAULT) => {
                with_fallbacks(Job::finished(0, Err(e)), plan)
            }
            Err(e) => Err(e),
        }
    }

    /// Submits a chat request, honouring the provider's queue policy (under
    /// `block` this waits for queue space up to `queue.wait_timeout_ms`).
    /// The request's `fallbacks` run, in order, as the job is awaited.
    pub fn submit(&self, request: Request) -> impl std::future::Future<Output = Result<Job<Response>>> + Send + '_ {
        self.submit_routed(request, true)
    }

    /// Submits without ever waiting: a full queue is QUEUE_FULL under
    /// `block` and `error`, and handled by `drop`/`drop_oldest` as usual.
    pub fn try_submit(&self, request: Request) -> Result<Job<Response>> {
        // With `wait = false` the submit future never awaits: poll it once.
        futures_util::FutureExt::now_or_never(self.submit_routed(request, false))
            .unwrap_or_else(|| Err(Error::Internal { message: "non-waiting submit unexpectedly waited".into() }))
    }

    /// Submits and awaits a chat request.
    pub async fn chat(&self, request: Request) -> Result<Response> {
        self.submit(request).await?.await
    }

    /// Starts a streamed chat; the job completes when the stream is
    /// established, and chunks then flow without holding a worker.
    /// A failure after the first content is handled by the request's
    /// `failover.stream_recovery` (`pool::recover`).
    pub async fn stream(&self, request: Request) -> Result<ChunkStream> {
        let timing = Timing::start(request.timeout_ms);
        let policy = match self.route(&request.model) {
            Ok(pool) => Policy::of(pool.failover.as_ref(), request.failover.as_ref()),
            Err(_) => Policy::DEFAULT,
        };
        // The request is kept only when it may run again (`off` keeps
        // only the text so far, for the error).
        let keep = match policy.recovery {
            StreamRecovery::Off => Request::default(),
            _ => request.clone(),
        };
        let job: Job<ChunkStream> = self.submit_routed_at(request, true, timing).await?;
        let stream = job.await?;
        let plan = RecoveryPlan {
            pools: self.pools.clone(),
            next_id: self.next_id.clone(),
            request: keep,
            deadline: timing.deadline,
            mode: policy.recovery,
            commit_after_chars: policy.commit_after_chars,
        };
        Ok(ChunkStream::recovering(stream, plan))
    }

    /// Computes embeddings (OpenAI embeddings shape).
    pub async fn embed(&self, request: EmbedRequest) -> Result<EmbedResponse> {
        crate::runtime::check_not_forked()?;
        request.validate()?;
        let pool = self.route(&request.model)?;
        let timing = Timing::start(request.timeout_ms);
        let job: Job<EmbedResponse> =
            self.admit_to(pool, Work::Embed(Box::new(request)), timing, true).resolve().await?;
        job.await
    }

    /// A snapshot of every pool, object pool and the runtime (docs/architecture.md §8).
    pub fn stats(&self) -> Stats {
        Stats {
            providers: self.pools.iter().map(|(n, p)| (n.clone(), p.snapshot())).collect(),
            object_pools: BTreeMap::from([("request_buffer".to_string(), self.buffers.request.stats())]),
            runtime: RuntimeStats { worker_threads: crate::runtime::worker_threads() as u64 },
        }
    }

    /// The same numbers as [`Gateway::stats`], as Prometheus text.
    pub fn prometheus(&self) -> String {
        let stats = self.stats();
        let hists: Vec<_> = self
            .pools
            .iter()
            .map(|(n, p)| {
                let (queue_wait, processing) = p.histograms();
                (n.as_str(), queue_wait, processing)
            })
            .collect();
        crate::stats::render_prometheus(&stats, &hists)
    }

    /// Per-provider health and an overall status.
    pub fn health(&self) -> Health {
        let providers: BTreeMap<String, ProviderHealth> =
            self.pools.iter().map(|(name, p)| (name.clone(), p.health())).collect();
        let status = if providers.values().all(|p| p.status == "ok") {
            "ok"
        } else if providers.values().all(|p| p.status == "shutdown") {
            "shutdown"
        } else {
            "degraded"
        };
        Health { status: status.into(), providers }
    }

    /// Graceful shutdown: new submits fail with SHUTDOWN at once; queued and
    /// running jobs drain until `timeout`; what remains then ends with
    /// SHUTDOWN. Idempotent: later and concurrent calls return the first
    /// call's report. A `timeout` past `bounds::MAX_WAIT` (a year) is a year.
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        self.shutdown.get_or_init(|| self.drain(timeout)).await.clone()
    }

    async fn drain(&self, timeout: Duration) -> ShutdownReport {
        let start = Instant::now();
        // Any timeout is accepted: past bounds::MAX_WAIT it is MAX_WAIT (an
        // Instant cannot hold every Duration).
        let deadline = start + timeout.min(crate::bounds::MAX_WAIT);
        let totals = |pools: &Pools| {
            pools.values().fold([0u64; 4], |mut acc, p| {
                for (sum, n) in acc.iter_mut().zip(p.totals()) {
                    *sum += n;
                }
                acc
            })
        };
        let before = totals(&self.pools);
        for pool in self.pools.values() {
            pool.close();
        }
        for pool in self.pools.values() {
            if !pool.wait_workers(deadline).await {
                pool.abort_now();
            }
        }
        // Aborted workers exit at their next poll; give them a moment.
        for pool in self.pools.values() {
            pool.wait_workers(Instant::now() + Duration::from_secs(5)).await;
        }
        let after = totals(&self.pools);
        ShutdownReport {
            completed: after[0] - before[0],
            failed: after[1] - before[1],
            cancelled: after[2] - before[2],
            aborted: after[3] - before[3],
            elapsed_ms: start.elapsed().as_millis() as u64,
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        for pool in self.pools.values() {
            pool.abort_now();
        }
        // Aborted tasks end at their next poll; give them a moment so a
        // process exiting right after this finds nothing still running.
        for pool in self.pools.values() {
            pool.wait_tasks_blocking(Duration::from_millis(250));
        }
    }
}
