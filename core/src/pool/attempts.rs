//! One job's provider calls: key choice, the circuit breaker, retries with
//! backoff, key rotation.
//!
//! Retryable failures (classes `rate_limit`, `server_error`, `network`,
//! `timeout` of `pool::classify`: network errors, attempt timeouts, HTTP
//! 408, 429, 500, 502, 503, 504, 529) get up to `max_retries` more attempts after a pause
//! of `min(initial·2^n, max)` ±20 %, or the provider's `Retry-After` when it
//! sent one (bounded: never past the deadline, and at most
//! `retry_backoff_max_ms` × 10 without one); a pause that would pass the
//! request deadline ends the job with the last error instead. A PROTOCOL
//! error (the provider answered 200, but not with a completion) is not
//! retried: the request was served. A failed attempt's connection is closed
//! before the pause, not when the next attempt starts. A 429 makes the next attempt prefer another key.
//! While the provider is clearly down (`failover.suspend_retries_after`
//! unhealthy attempts in a row, `pool::outage`), failures are not retried.
//! A 401/403 puts the key in cooldown and retries at once on another key
//! (bounded by the number of keys, not by `max_retries`); with none left the
//! job fails "credentials exhausted". Every attempt asks the breaker first.
//! With `limits`, a retry is one more request: it takes from the request
//! buckets before it goes out, waiting for them inside the deadline; with
//! `learn_from_headers`, every response's rate-limit headers lower them.
//! Cancellation and the deadline are enforced around this whole function by
//! the worker, so backoff sleeps end with them.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::clock::{self, Nanos};
use crate::error::{Error, Result, TimeoutPhase};
use crate::limits::gate::LimitKey;
use crate::providers::{CallCtx, OnResponse};
use crate::types::ExtraFields;
use reqwest::header::HeaderMap;

use crate::failover::{FailoverAction, Policy};

use super::breaker::Admit;
use super::classify::{class_of, retryable, unhealthy, FailureClass};
use super::job::{JobInner, Output, Work};
use super::PoolShared;

/// `min(initial·2^n, max)` ±20 %, never above max.
pub(crate) fn backoff(initial_ms: u64, max_ms: u64, retry: u32) -> Duration {
    let base = initial_ms.saturating_mul(1u64 << retry.min(30)).min(max_ms);
    let jittered = (base as f64 * (0.8 + fastrand::f64() * 0.4)) as u64;
    Duration::from_millis(jittered.min(max_ms))
}

/// Runs the provider call with retries; fills `extra_fields`.
pub(crate) async fn execute(pool: &PoolShared, job: &JobInner, work: Work, queue_wait_us: u64) -> Result<Output> {
    let net = &pool.network;
    let model = work.model();
    let attempt_limit = Duration::from_secs(net.default_request_timeout_in_seconds);
    let policy = Policy::of(pool.failover.as_ref(), work.failover());
    let mut attempt = 0u32;
    let mut retries_used = 0u32;
    let mut avoid = None;
    let mut last_err: Option<Error> = None;
    // With `limits` `scope: "key"`, the first attempt goes out on the key
    // whose buckets admitted the job (if it is still usable).
    let gate = pool.gate.as_deref();
    let scoped = gate.is_some_and(|g| g.scoped());
    let admitted = job.limit_key();
    let preferred = gate.and_then(|g| g.preferred_key(admitted));
    loop {
        attempt += 1;
        let mut admit = pool.breaker.admit();
        // Half-open: one probe across the fleet (with a Redis store).
        if let (Admit::Probe, Some(h)) = (admit, &pool.fleet_health) {
            if !h.take_probe(&pool.name, attempt_limit.as_millis() as u64 + 1_000).await {
                pool.breaker.release(admit);
                admit = Admit::Reject { retry_in_ms: 0 };
            }
        }
        if let Admit::Reject { retry_in_ms } = admit {
            return Err(last_err.unwrap_or(Error::CircuitOpen { provider: pool.name.clone(), retry_in_ms }));
        }
        let prefer = preferred.filter(|_| attempt == 1);
        let key = match pool.keys.choose(model, avoid, prefer) {
            Ok(k) => k,
            Err(e) => {
                pool.breaker.release(admit);
                return Err(e);
            }
        };
        // Whose buckets this request counts against.
        let limit_key = if scoped { key.map_or(0, |i| i as LimitKey) } else { 0 };
        if attempt > 1 || limit_key != crate::limits::gate::key_index(admitted) {
            if let Err(e) = wait_for_request_capacity(pool, job, limit_key).await {
                pool.breaker.release(admit);
                // A retry ends with the failed attempt's error.
                return Err(last_err.unwrap_or(e));
            }
        }
        // `learn_from_headers`: every response lowers the job's buckets to
        // what the provider says is left (the other requests still out
        // come off that).
        let learn = gate.filter(|g| g.learns()).map(|gate| {
            move |status: u16, headers: &HeaderMap| {
                gate.learn(model, limit_key, status, headers, pool.ledger.running_estimate().saturating_sub(1))
            }
        });
        let on_response = learn.as_ref().map(|f| f as &OnResponse<'_>);
        if let Some(i) = key {
            pool.keys.record_request(i);
        }
        let chosen = key.map(|i| pool.keys.key(i));
        // The first-token bound, when its action has somewhere to go.
        let retry_left = retries_used < net.max_retries && pool.retry_gate.allows_retry(policy.suspend_retries_after);
        let first_token = first_token_limit(&policy, &work, retry_left);
        let ctx = CallCtx {
            provider: &pool.name,
            // The key's alias for the model, if it has one (Bifrost's `aliases`).
            model: chosen.map_or(model, |k| k.upstream_model(model)),
            job_id: job.id,
            attempt,
            key: chosen,
            key_index: key,
            deadline: job.deadline_instant(),
            timeout_ms: job.timeout_ms,
            on_response,
            headers_timeout: first_token.filter(|_| !matches!(work, Work::Stream(_))),
        };
        job.set_sent();
        let call = async {
            match &work {
                Work::Chat(r) => pool.provider.chat(r, &ctx).await.map(|r| Output::Chat(Box::new(r))),
                // A stream's attempt lasts until its first content: a
                // failure before it is handled here, invisibly to the caller.
                Work::Stream(r) => {
                    let mut stream = pool.provider.stream(r, &ctx).await?;
                    stream.peek_first_content().await?;
                    Ok(Output::Stream(stream))
                }
                Work::Embed(r) => pool.provider.embed(r, &ctx).await.map(|r| Output::Embed(Box::new(r))),
            }
        };
        // A stream's first-token bound, when shorter, ends the attempt first.
        let (limit, phase) = match first_token {
            Some(ft) if ft < attempt_limit && matches!(work, Work::Stream(_)) => (ft, TimeoutPhase::FirstToken),
            _ => (attempt_limit, TimeoutPhase::Attempt),
        };
        // The attempt timer is armed only if the call does not finish on its
        // first poll (an in-process provider usually does). The call (and
        // with it a timed-out attempt's connection) is dropped at the end of
        // this block, before any backoff.
        let result = {
            let mut call = std::pin::pin!(call);
            match futures_util::FutureExt::now_or_never(call.as_mut()) {
                Some(r) => r,
                None => match tokio::time::timeout(limit, call).await {
                    Ok(r) => r,
                    Err(_) => {
                        Err(Error::Timeout { provider: pool.name.clone(), phase, timeout_ms: limit.as_millis() as u64 })
                    }
                },
            }
        };
        let e = match result {
            Ok(mut out) => {
                pool.publish(pool.breaker.record(admit, true));
                pool.retry_gate.succeeded();
                // What the provider reported it could not send stays.
                let unmapped_params = match &mut out {
                    Output::Chat(r) => std::mem::take(&mut r.extra_fields.unmapped_params),
                    Output::Embed(r) => std::mem::take(&mut r.extra_fields.unmapped_params),
                    Output::Stream(_) => Vec::new(),
                };
                let extra = ExtraFields {
                    provider: pool.name.clone(),
                    model: model.to_string(),
                    latency_ms: 0, // set by the worker when the job finishes
                    queue_wait_us,
                    attempts: attempt,
                    fallback_index: 0,
                    key_id: key.map(|i| pool.keys.id(i).to_string()),
                    unmapped_params,
                };
                match &mut out {
                    Output::Chat(r) => r.extra_fields = extra,
                    Output::Embed(r) => r.extra_fields = extra,
                    Output::Stream(_) => {}
                }
                return Ok(out);
            }
            Err(e) => e,
        };
        pool.publish(pool.breaker.record(admit, !unhealthy(&e)));
        pool.retry_gate.failed(&e);
        if let Some(i) = key {
            pool.keys.record_error(i);
            // A refused key (not a 403 content filter: that is no key's fault).
            if class_of(&e) == Some(FailureClass::Auth) {
                pool.keys.mark_rejected(i);
                if let Some(h) = &pool.fleet_health {
                    h.key_rejected(&pool.name, i, pool.keys.key(i).cooldown_ms);
                }
                if pool.keys.has_alternative(model, i) {
                    pool.counters.retries.fetch_add(1, Ordering::Relaxed);
                    last_err = Some(e);
                    continue;
                }
                // Every key for this model is cooling down now.
                return Err(match e {
                    Error::Provider { provider, status, message, body, .. } => Error::Provider {
                        message: format!(
                            "credentials exhausted: every key of provider '{provider}' for model '{}' was \
                             rejected and is cooling down; the provider said: {message}",
                            model
                        ),
                        provider,
                        status,
                        body,
                        retry_after_ms: None,
                    },
                    other => other,
                });
            }
            if e.status() == Some(429) {
                avoid = Some(i);
            }
        }
        // A provider that is clearly down gets no retries (pool::outage).
        if retries_used >= net.max_retries
            || !retryable(&e, &policy)
            || !pool.retry_gate.allows_retry(policy.suspend_retries_after)
        {
            return Err(e);
        }
        let pause = match &e {
            Error::Provider { retry_after_ms: Some(ms), .. } => {
                let remaining = job.deadline.map(|d| Duration::from_nanos(d.saturating_sub(clock::now())));
                crate::bounds::retry_after_pause(*ms, net.retry_backoff_max_ms, remaining)
            }
            _ => backoff(net.retry_backoff_initial_ms, net.retry_backoff_max_ms, retries_used),
        };
        if job.deadline.is_some_and(|d| clock::now().saturating_add(clock::nanos_of(pause)) >= d) {
            return Err(e);
        }
        retries_used += 1;
        pool.counters.retries.fetch_add(1, Ordering::Relaxed);
        last_err = Some(e);
        tokio::time::sleep(pause).await;
    }
}

/// `failover.first_token_timeout_ms` (streams) or `headers_timeout_ms`
/// (unary calls), armed only when a first-token timeout would lead
/// somewhere: `retry` with a retry left, or `fallback` with a fallback
/// after this route. Otherwise cutting the attempt would only turn a slow
/// answer into an error, and the attempt limit alone bounds the wait.
fn first_token_limit(policy: &Policy, work: &Work, retry_left: bool) -> Option<Duration> {
    let ms = match work {
        Work::Stream(_) => policy.first_token_ms?,
        Work::Chat(_) | Work::Embed(_) => policy.headers_ms?,
    };
    let useful = match policy.first_token_timeout {
        FailoverAction::Retry => retry_left,
        FailoverAction::Fallback => work.has_fallback(),
        FailoverAction::Return => true,
    };
    useful.then(|| Duration::from_millis(ms))
}

/// A retry is one more request at the provider (and so is a first request
/// on another key than the one admitted, with `scope: "key"`): it takes
/// from `key`'s request buckets first, waiting until they allow it. `Err`
/// (RATE_LIMITED) when that wait would outlast the job's deadline.
async fn wait_for_request_capacity(pool: &PoolShared, job: &JobInner, key: LimitKey) -> Result<()> {
    let (Some(gate), Some(claims)) = (&pool.gate, job.claims()) else { return Ok(()) };
    loop {
        let now = clock::now();
        let Some(wait) = gate.take_retry(claims, key, now).await else { return Ok(()) };
        if job.deadline.is_some_and(|d| now.saturating_add(wait) > d) || wait == Nanos::MAX {
            return Err(gate.request_refusal(claims, key, (wait != Nanos::MAX).then_some(wait)));
        }
        tokio::time::sleep(Duration::from_nanos(wait)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_within_jitter_bounds_and_below_max() {
        for retry in 0..12 {
            for _ in 0..200 {
                let d = backoff(100, 2_000, retry).as_millis() as u64;
                let base = (100u64 << retry).min(2_000);
                assert!(d >= base * 8 / 10 && d <= (base * 12 / 10).min(2_000), "retry {retry}: {d} for base {base}");
            }
        }
    }
}
