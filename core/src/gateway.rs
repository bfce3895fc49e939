//! The public entry point: a [`Gateway`] owns one provider pool per
//! configured provider and routes each request to the pool its `model`
//! names (`"<provider>/<model>"`).
//!
//! A `Gateway` is `Send + Sync` and used through `&self`; share it with an
//! `Arc`. Dropping it without [`Gateway::shutdown`] stops its pools at once:
//! queued and running jobs end with SHUTDOWN (nothing is left hanging).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::objpool::Buffers;
use crate::pool::route::{fallback_worthy, plan_for, with_fallbacks, Pools};
use crate::pool::{Admission, Job, JobInner, JobOutput, PoolShared, Work};
use crate::providers::ChunkStream;
use crate::stats::{RuntimeStats, Stats};
use crate::types::{split_model, EmbedRequest, EmbedResponse, Request, Response};

/// What [`Gateway::shutdown`] did, counted over the shutdown itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// Health of one provider pool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderHealth {
    /// `ok`; `degraded` when the circuit is not closed, no key is usable,
    /// the queue is ≥ 90 % full or workers are missing; `shutdown`.
    pub status: String,
    /// Circuit breaker state (`disabled`, `closed`, `open`, `half_open`).
    pub circuit: String,
    /// Queue depth / capacity.
    pub queue_utilization: f64,
    /// Live worker tasks.
    pub workers: u64,
    /// Keys usable now (not cooling down after a 401/403; disabled ones excluded).
    pub live_keys: u64,
    /// Configured keys.
    pub keys: u64,
    /// Last job that completed, Unix ms (0: none yet).
    pub last_success_unix_ms: u64,
    /// Last job that failed, Unix ms (0: none yet), and its error.
    pub last_error_unix_ms: u64,
    pub last_error: Option<String>,
    /// The `health_check` probe: `off`, `pending`, `ok` or `failed`.
    pub startup_probe: String,
    /// The probe's error, when it failed.
    pub startup_probe_error: Option<String>,
    /// Workers busy past their job's deadline plus grace (see `jobs.stalled`).
    pub stalled_workers: u64,
}

/// Health of the gateway: `ok` when every provider is `ok`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub providers: BTreeMap<String, ProviderHealth>,
}

/// What routing plus [`PoolShared::admit`] did with a job.
enum Admitted<T: JobOutput> {
    Done(Result<Job<T>>),
    /// Policy `block`, queue full: the pool and the job that waits for space.
    Full(Arc<PoolShared>, Arc<JobInner>),
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
        let mut pools = BTreeMap::new();
        for (name, p) in &config.providers {
            let kind =
                p.resolved_kind(name).ok_or_else(|| Error::config(format!("providers.{name}.kind"), "missing"))?;
            match PoolShared::start(name, kind, p, buffers.request.clone()) {
                Ok(pool) => {
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

    /// Submits `work` to `pool` without waiting; `Full` is a `block`-policy
    /// job waiting for queue space.
    fn admit_to<T: JobOutput>(
        &self,
        pool: &Arc<PoolShared>,
        work: Work,
        timeout_ms: Option<u64>,
        wait: bool,
    ) -> Admitted<T> {
        let id = self.next_id.next();
        match pool.admit(id, work, timeout_ms, wait) {
            Admission::Done(done) => Admitted::Done(done),
            Admission::Full(inner) => Admitted::Full(pool.clone(), inner),
        }
    }

    /// Waits out an admission (only a full `block` queue waits; that slow
    /// path is boxed so its state stays out of every submit's future).
    async fn admitted<T: JobOutput>(admitted: Admitted<T>) -> Result<Job<T>> {
        match admitted {
            Admitted::Done(done) => done,
            Admitted::Full(pool, inner) => Box::pin(async move { pool.wait_for_space(inner).await }).await,
        }
    }

    /// Submits a request (chat or stream) with its fallbacks attached: a
    /// primary refused at submit (QUEUE_FULL, QUEUE_TIMEOUT …) still yields a
    /// job, which goes straight to the fallbacks when awaited. Everything up
    /// to a full `block` queue runs synchronously.
    async fn submit_routed<T: JobOutput>(&self, request: Request, wait: bool) -> Result<Job<T>> {
        crate::runtime::check_not_forked()?;
        request.validate()?;
        let plan = plan_for(&self.pools, &self.next_id, &request)?;
        let admitted = match self.route(&request.model) {
            Err(e) => Admitted::Done(Err(e)),
            Ok(pool) => {
                let t = request.timeout_ms;
                let Some(work) = T::work_for(request) else {
                    return Err(Error::Internal { message: "output kind without a work item".into() });
                };
                self.admit_to::<T>(pool, work, t, wait)
            }
        };
        match Self::admitted(admitted).await {
            Ok(job) => with_fallbacks(job, plan),
            Err(e) if plan.is_some() && fallback_worthy(&e) => with_fallbacks(Job::finished(0, Err(e)), plan),
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
    pub async fn stream(&self, request: Request) -> Result<ChunkStream> {
        let job: Job<ChunkStream> = self.submit_routed(request, true).await?;
        job.await
    }

    /// Computes embeddings (OpenAI embeddings shape).
    pub async fn embed(&self, request: EmbedRequest) -> Result<EmbedResponse> {
        crate::runtime::check_not_forked()?;
        request.validate()?;
        let pool = self.route(&request.model)?;
        let t = request.timeout_ms;
        let job: Job<EmbedResponse> =
            Self::admitted(self.admit_to(pool, Work::Embed(Box::new(request)), t, true)).await?;
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
        let hists: Vec<_> =
            self.pools.iter().map(|(n, p)| (n.as_str(), &p.counters.queue_wait, &p.counters.processing)).collect();
        crate::stats::render_prometheus(&stats, &hists)
    }

    /// Per-provider health and an overall status.
    pub fn health(&self) -> Health {
        let mut providers = BTreeMap::new();
        for (name, p) in self.pools.iter() {
            let util = p.queue.depth() as f64 / p.queue.capacity as f64;
            let workers = p.workers_alive.load(Ordering::Relaxed) as u64;
            let circuit = p.breaker.state();
            let keys = p.keys.len() as u64;
            let live_keys = p.keys.live_count() as u64;
            let (last_error_unix_ms, last_error) = p.last_error();
            let probe = p.probe.lock().clone();
            let stalled_workers = p.counters.stalled.load(Ordering::Relaxed);
            let status = if p.queue.is_closed() {
                "shutdown"
            } else if util >= 0.9
                || workers < p.min_workers as u64
                || matches!(circuit, "open" | "half_open")
                || (keys > 0 && live_keys == 0)
                || matches!(probe, crate::pool::probe::ProbeState::Failed { .. })
                || stalled_workers > 0
            {
                "degraded"
            } else {
                "ok"
            };
            providers.insert(
                name.clone(),
                ProviderHealth {
                    status: status.into(),
                    circuit: circuit.into(),
                    queue_utilization: util,
                    workers,
                    live_keys,
                    keys,
                    last_success_unix_ms: p.last_success_unix_ms(),
                    last_error_unix_ms,
                    last_error,
                    startup_probe: probe.label().into(),
                    startup_probe_error: match probe {
                        crate::pool::probe::ProbeState::Failed { error } => Some(error),
                        _ => None,
                    },
                    stalled_workers,
                },
            );
        }
        let status = if providers.values().all(|p| p.status == "ok") {
            "ok"
        } else if providers.values().all(|p| p.status == "shutdown") {
            "shutdown"
        } else {
            "degraded"
        };
        Health { status: status.into(), providers }
    }

    /// The gateway's buffer pools (providers serialize request bodies into
    /// `request`).
    pub fn buffers(&self) -> &Buffers {
        &self.buffers
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
                let jobs = p.ledger.snapshot();
                acc[0] += jobs.completed;
                acc[1] += jobs.failed;
                acc[2] += jobs.cancelled;
                acc[3] += p.counters.aborted.load(Ordering::Relaxed);
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
