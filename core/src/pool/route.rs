//! Routing a request across providers: when a job's primary provider fails
//! in a way another provider might not ([`fallback_worthy`]), the request
//! is tried on its `fallbacks` in order.
//!
//! A fallback is not a retry: the primary pool has already counted its job
//! as failed (or rejected, dropped, timed out), and each fallback is a new
//! job submitted to the fallback provider's own pool, with that pool's
//! queue, policy and workers. A request with fallbacks gets its own *route
//! task* on the runtime, spawned at submit: it awaits the primary, runs the
//! chain, and fills the handle's [`RouteCell`]. So a route advances whether
//! or not anyone polls the handle (a C caller may be busy elsewhere), and no
//! worker ever waits on another pool. The first success wins
//! (`extra_fields.fallback_index` = 1 + its index); if all fail, the caller
//! gets the primary's error with the fallbacks' errors attached
//! ([`Error::WithFallbacks`]). The request's `timeout_ms` stays one
//! end-to-end deadline across the whole chain. Cancelling the handle (or
//! dropping it) cancels the primary at once and stops the chain.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::clock::{self, Nanos};
use crate::error::{Error, Result, TimeoutPhase};
use crate::failover::Policy;
use crate::types::{split_model, Request};

pub(crate) use super::classify::fallback_worthy;
use super::job::{Job, JobOutput, RouteCell, Timing};
use super::PoolShared;

/// The gateway's pools by provider name, shared with fallback chains.
pub(crate) type Pools = Arc<BTreeMap<String, Arc<PoolShared>>>;

/// Everything a route task needs to run the fallback chain.
pub(crate) struct FallbackPlan {
    pub pools: Pools,
    pub next_id: Arc<crate::ids::JobIds>,
    pub targets: Vec<String>,
    /// The request, without its `fallbacks`.
    pub request: Request,
    /// The request's end-to-end deadline: the primary job's, to the nanosecond.
    pub deadline: Option<Nanos>,
}

/// Attaches `plan` to `primary`: with fallbacks, spawns the route task and
/// returns a handle on its outcome; without, returns `primary` as it is.
pub(crate) fn with_fallbacks<T: JobOutput>(primary: Job<T>, plan: Option<Box<FallbackPlan>>) -> Result<Job<T>> {
    let Some(plan) = plan else { return Ok(primary) };
    let handle = crate::runtime::handle()?;
    let cell = RouteCell::new(primary.pool_parts());
    let id = primary.id();
    handle.spawn(drive(cell.clone(), primary, *plan));
    Ok(Job::routed(id, cell))
}

/// The route task: the primary, then the chain if it failed (or, for a
/// stream, failed before its first content), unless cancelled first.
async fn drive<T: JobOutput>(cell: Arc<RouteCell<T>>, primary: Job<T>, plan: FallbackPlan) {
    let provider = split_model(&plan.request.model).map(|(p, _)| p.to_string()).unwrap_or_default();
    // The primary's policy decides whether its failure moves on.
    let policy =
        Policy::of(plan.pools.get(&provider).and_then(|p| p.failover.as_ref()), plan.request.failover.as_ref());
    // (A stream's job resolves only after its first content: a failure
    // before it is the job's error.)
    let run = async move {
        match primary.await {
            Err(e) if fallback_worthy(&e, &policy) => run_chain::<T>(plan, e).await,
            other => other,
        }
    };
    let outcome = tokio::select! {
        biased;
        // Dropping `run` drops the job it awaits, which cancels it.
        _ = cell.cancelled() => Err(Error::Cancelled { provider }),
        r = run => r,
    };
    cell.set(outcome);
}

/// Tries each fallback in order after `primary` failed.
pub(crate) async fn run_chain<T: JobOutput>(plan: FallbackPlan, primary: Error) -> Result<T> {
    let mut failures = Vec::new();
    for (i, target) in plan.targets.iter().enumerate() {
        let now = clock::now();
        let remaining_ms = match plan.deadline {
            Some(d) => {
                let left = d.saturating_sub(now) / clock::MS;
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
        // What comes after this target (only read to arm first-token
        // bounds: the chain itself is this loop).
        req.fallbacks = plan.targets[i + 1..].to_vec();
        let Some(work) = T::work_for(req) else { break };
        let id = plan.next_id.next();
        let timing = Timing { submitted: now, deadline: plan.deadline, timeout_ms: plan.request.timeout_ms };
        let outcome = match pool.submit::<T>(id, work, timing, true).await {
            Ok(job) => job.await,
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
/// a configured provider; `deadline` is the primary job's.
pub(crate) fn plan_for(
    pools: &Pools,
    next_id: &Arc<crate::ids::JobIds>,
    req: &Request,
    deadline: Option<Nanos>,
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
    Ok(Some(Box::new(FallbackPlan { pools: pools.clone(), next_id: next_id.clone(), targets, deadline, request })))
}
