//! Fallbacks: when a job's primary provider fails in a way another provider
//! might not, the request is tried on `fallbacks` in order.
//!
//! A fallback is not a retry: the primary pool has already counted its job
//! as failed (or rejected, dropped, timed out), and each fallback is a new
//! job submitted to the fallback provider's own pool, with that pool's
//! queue, policy and workers. The chain runs in the task that awaits the
//! caller's handle — never in a worker, so no worker waits on another pool.
//! The first success wins (`extra_fields.fallback_index` = 1 + its index);
//! if all fail, the caller gets the primary's error with the fallbacks'
//! errors attached ([`Error::WithFallbacks`]). The request's `timeout_ms`
//! stays one end-to-end deadline across the whole chain.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures_util::task::AtomicWaker;

use crate::error::{Error, Result, TimeoutPhase};
use crate::types::{split_model, Request};

use super::attempts::retryable;
use super::job::JobOutput;
use super::PoolShared;

/// The gateway's pools by provider name, shared with fallback chains.
pub(crate) type Pools = Arc<BTreeMap<String, Arc<PoolShared>>>;

/// Errors after which the next fallback is tried.
pub(crate) fn fallback_worthy(e: &Error) -> bool {
    retryable(e)
        || matches!(
            e,
            Error::QueueFull { .. }
                | Error::Dropped { .. }
                | Error::QueueTimeout { .. }
                | Error::CircuitOpen { .. }
                | Error::Timeout { .. }
                | Error::Protocol { .. }
        )
        || matches!(e, Error::Provider { status: 401 | 403, .. })
}

/// Everything a handle needs to run its fallback chain.
pub(crate) struct FallbackPlan {
    pub pools: Pools,
    pub next_id: Arc<crate::ids::JobIds>,
    pub targets: Vec<String>,
    /// The request, without its `fallbacks`.
    pub request: Request,
    /// The request's end-to-end deadline.
    pub deadline: Option<Instant>,
}

/// Lets `Job::cancel` stop a chain that another task is polling.
#[derive(Default)]
pub(crate) struct ChainCancel {
    pub requested: AtomicBool,
    pub waker: AtomicWaker,
}

/// Tries each fallback in order after `primary` failed.
pub(crate) async fn run_chain<T: JobOutput>(plan: FallbackPlan, primary: Error) -> Result<T> {
    let mut failures = Vec::new();
    for (i, target) in plan.targets.iter().enumerate() {
        let remaining_ms = match plan.deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now()).as_millis() as u64;
                if left == 0 {
                    let provider = primary.provider().unwrap_or_default().to_string();
                    let timeout_ms = plan.request.timeout_ms.unwrap_or_default();
                    failures
                        .push((target.clone(), Error::Timeout { provider, phase: TimeoutPhase::Queued, timeout_ms }));
                    break;
                }
                Some(left)
            }
            None => None,
        };
        let (provider, _) = split_model(target)?;
        let Some(pool) = plan.pools.get(provider) else {
            let known = plan.pools.keys().cloned().collect();
            failures.push((target.clone(), Error::UnknownProvider { provider: provider.to_string(), known }));
            continue;
        };
        let mut req = plan.request.clone();
        req.model = target.clone();
        req.timeout_ms = remaining_ms;
        let Some(work) = T::work_for(req) else { break };
        let id = plan.next_id.next();
        let outcome = match pool.submit::<T>(id, work, remaining_ms, true).await {
            Ok(job) => match job.await {
                Ok(out) => out.confirm().await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match outcome {
            Ok(mut out) => {
                out.set_fallback_index(i as u32 + 1);
                pool.counters.fallbacks_served.fetch_add(1, Ordering::Relaxed);
                return Ok(out);
            }
            Err(e @ Error::Cancelled { .. }) => return Err(e),
            Err(e) => failures.push((target.clone(), e)),
        }
    }
    Err(Error::WithFallbacks { primary: Box::new(primary), fallbacks: failures })
}

/// Builds a plan for `req` if it has fallbacks; checks every target names
/// a configured provider. (The clock is read only for a request with both
/// fallbacks and a timeout.)
pub(crate) fn plan_for(
    pools: &Pools,
    next_id: &Arc<crate::ids::JobIds>,
    req: &Request,
) -> Result<Option<Box<FallbackPlan>>> {
    if req.fallbacks.is_empty() {
        return Ok(None);
    }
    for (i, target) in req.fallbacks.iter().enumerate() {
        let (provider, _) = split_model(target)?;
        if !pools.contains_key(provider) {
            return Err(Error::invalid(format!(
                "fallbacks[{i}] names provider '{provider}', which is not configured (configured: {})",
                pools.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let mut request = req.clone();
    let targets = std::mem::take(&mut request.fallbacks);
    Ok(Some(Box::new(FallbackPlan {
        pools: pools.clone(),
        next_id: next_id.clone(),
        targets,
        deadline: req.timeout_ms.map(|t| Instant::now() + std::time::Duration::from_millis(t)),
        request,
    })))
}
