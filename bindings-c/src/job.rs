//! Submitting requests: job handles (`bifrost_job`) and callbacks.
//!
//! A `bifrost_job` is the core's shared job handle ([`SharedJob`], see
//! docs/architecture.md §7): one thread can wait while another cancels,
//! several threads can wait at once, and the job progresses (fallbacks
//! included) whether or not anyone waits. Waiting parks the caller's thread
//! and is refused on a runtime thread, where it would starve the workers it
//! waits for. Once finished, the outcome stays in the handle: later waits
//! and polls return it again (each wait hands out a fresh string).
//!
//! `bifrost_submit_cb` spawns one small task per job on the shared runtime
//! that awaits the job and calls the C callback exactly once.

use std::ffi::{c_char, c_void, CString};
use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bifrost_core::bounds;
use bifrost_core::{runtime, Error, Gateway, Job, Request, Response, SharedJob};

use crate::boundary::{c_string_from_json, check_out, check_ptr, check_str, clear, ffi_boundary, panic_message};
use crate::errors::{fail, message_of, status_of, BifrostStatus};
use crate::gateway::BifrostGateway;

/// `timeout_ms` value for bifrost_job_wait: wait until the job finishes.
pub const BIFROST_WAIT_FOREVER: i64 = -1;

/// A submitted job. Opaque; created by bifrost_submit, released with
/// bifrost_job_free (which cancels it if it has not finished).
pub struct BifrostJob {
    job: SharedJob<Response>,
}

impl BifrostJob {
    /// Writes the outcome to the out-parameters (BIFROST_PENDING if none yet).
    ///
    /// # Safety
    /// `response_json` is a checked out-parameter; `err` is optional.
    unsafe fn deliver(&self, response_json: *mut *mut c_char, err: *mut *mut c_char) -> BifrostStatus {
        let delivered = self.job.with_outcome(|outcome| match outcome {
            Ok(resp) => {
                let mut json = Vec::with_capacity(512);
                bifrost_core::json::write_response(&mut json, resp);
                *response_json = c_string_from_json(json);
                BifrostStatus::BIFROST_OK
            }
            Err(e) => fail(err, e),
        });
        delivered.unwrap_or(BifrostStatus::BIFROST_PENDING)
    }
}

/// Submits honouring the queue policy; from a runtime thread (a callback)
/// it never waits, as a blocking submit there could deadlock.
fn submit_core(gw: &Gateway, request_json: &str) -> Result<Job<Response>, Error> {
    let request = Request::from_json(request_json)?;
    if runtime::on_runtime_thread() {
        return gw.try_submit(request);
    }
    // A submit that need not wait for queue space finishes on its first
    // poll: only a full `block` queue pays for parking this thread.
    let mut submit = std::pin::pin!(gw.submit(request));
    match submit.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(done) => done,
        Poll::Pending => runtime::block_on(submit)?,
    }
}

/// Submits a chat request (docs/architecture.md §5 JSON: `{"model": "provider/model",
/// "messages": [...], "params": {...}, "fallbacks": [...], "timeout_ms": N}`).
///
/// Honours the provider's queue policy: under "block" (default) a full
/// queue makes this call wait for space, up to queue.wait_timeout_ms; called
/// from a bifrost_callback it never waits (a full queue is then
/// BIFROST_QUEUE_FULL).
///
/// - `request_json`: NUL-terminated UTF-8, borrowed for the call.
/// - `job_out`: receives the job on BIFROST_OK (else NULL); the caller owns
///   it and must release it with bifrost_job_free. Under policy "drop" the
///   job may already be finished with BIFROST_DROPPED.
/// - `err`: optional; receives the message on failure.
///
/// Returns BIFROST_OK; BIFROST_INVALID_REQUEST (NULL argument, invalid
/// UTF-8 or JSON, malformed request: the message names the field);
/// BIFROST_UNKNOWN_PROVIDER; BIFROST_QUEUE_FULL; BIFROST_QUEUE_TIMEOUT;
/// BIFROST_SHUTDOWN; BIFROST_INTERNAL. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn bifrost_submit(
    gateway: *const BifrostGateway,
    request_json: *const c_char,
    job_out: *mut *mut BifrostJob,
    err: *mut *mut c_char,
) -> BifrostStatus {
    clear(err);
    ffi_boundary!(err, {
        check_out!(job_out, err, "job_out");
        check_ptr!(gateway, err, "gateway");
        let text = check_str!(request_json, err, "request_json");
        let gw = &(*gateway).gw;
        match submit_core(gw, text) {
            Ok(job) => {
                *job_out = Box::into_raw(Box::new(BifrostJob { job: SharedJob::new(job) }));
                BifrostStatus::BIFROST_OK
            }
            Err(e) => fail(err, &e),
        }
    })
}

/// Waits for a job's outcome, up to `timeout_ms` milliseconds
/// (BIFROST_WAIT_FOREVER = -1: no limit; 0: do not wait).
///
/// - `response_json`: receives the response (OpenAI `chat.completion` JSON
///   plus `extra_fields`) on BIFROST_OK, else NULL; caller-owned, free with
///   bifrost_string_free.
/// - `err`: optional; receives the job's error message when it failed.
///
/// The outcome stays with the job: waiting again (or from several threads
/// at once) returns it again. Another thread may bifrost_job_cancel the job
/// meanwhile.
///
/// Returns BIFROST_OK (response delivered); BIFROST_PENDING (the timeout
/// passed first; the job keeps going); BIFROST_INVALID_REQUEST (NULL
/// argument); the job's error status (BIFROST_PROVIDER, BIFROST_TIMEOUT,
/// BIFROST_CANCELLED, BIFROST_SHUTDOWN, BIFROST_DROPPED, BIFROST_QUEUE_TIMEOUT,
/// BIFROST_CIRCUIT_OPEN, BIFROST_NETWORK, BIFROST_INTERNAL for a caught panic,
/// ...); BIFROST_INTERNAL also when called on a bifrost runtime thread (from a
/// callback) with a non-zero timeout, where it would deadlock.
#[no_mangle]
pub unsafe extern "C" fn bifrost_job_wait(
    job: *const BifrostJob,
    timeout_ms: i64,
    response_json: *mut *mut c_char,
    err: *mut *mut c_char,
) -> BifrostStatus {
    clear(err);
    ffi_boundary!(err, {
        check_out!(response_json, err, "response_json");
        check_ptr!(job, err, "job");
        let job = &*job;
        // Any negative value waits forever; past a year is a year (bounds::MAX_WAIT).
        let timeout =
            if timeout_ms < 0 { None } else { Some(Duration::from_millis(timeout_ms as u64).min(bounds::MAX_WAIT)) };
        match job.job.wait_done_blocking(timeout) {
            Ok(true) => job.deliver(response_json, err),
            Ok(false) => BifrostStatus::BIFROST_PENDING,
            Err(e) => fail(err, &e),
        }
    })
}

/// Checks a job without waiting: BIFROST_PENDING while it runs, else the
/// status its outcome has (BIFROST_OK or its error status); fetch the
/// outcome with bifrost_job_wait (timeout 0 is enough). Never blocks; safe on
/// any thread, including runtime threads. BIFROST_INVALID_REQUEST for NULL.
#[no_mangle]
pub unsafe extern "C" fn bifrost_job_poll(job: *const BifrostJob) -> BifrostStatus {
    ffi_boundary!({
        check_ptr!(job, std::ptr::null_mut(), "job");
        let status = (*job).job.with_outcome(|outcome| match outcome {
            Ok(_) => BifrostStatus::BIFROST_OK,
            Err(e) => status_of(e),
        });
        status.unwrap_or(BifrostStatus::BIFROST_PENDING)
    })
}

/// Asks a job to stop: a queued job ends BIFROST_CANCELLED at once; a
/// running one as soon as its worker notices (unless it finishes first).
/// The handle stays valid (wait for the outcome, then free it).
///
/// - `cancelled`: optional (may be NULL); set to true if the job had not
///   finished and was asked to stop, false if it had already finished.
///
/// Returns BIFROST_OK, or BIFROST_INVALID_REQUEST if `job` is NULL. Never
/// blocks; thread-safe (may be called while another thread waits).
#[no_mangle]
pub unsafe extern "C" fn bifrost_job_cancel(job: *const BifrostJob, cancelled: *mut bool) -> BifrostStatus {
    ffi_boundary!({
        if !cancelled.is_null() {
            *cancelled = false;
        }
        check_ptr!(job, std::ptr::null_mut(), "job");
        let did = (*job).job.cancel();
        if !cancelled.is_null() {
            *cancelled = did;
        }
        BifrostStatus::BIFROST_OK
    })
}

/// The job's id (unique within its gateway), or 0 for NULL. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn bifrost_job_id(job: *const BifrostJob) -> u64 {
    ffi_boundary!({
        if job.is_null() {
            return 0;
        }
        (*job).job.id()
    })
}

/// Releases a job handle. Safe at any time: a job that has not finished is
/// cancelled (counted `cancelled` in stats). Safe after the gateway was shut
/// down or freed. NULL is a no-op. No other thread may be using the handle.
#[no_mangle]
pub unsafe extern "C" fn bifrost_job_free(job: *mut BifrostJob) {
    ffi_boundary!({
        if !job.is_null() {
            drop(Box::from_raw(job));
        }
    })
}

/// Called exactly once per successful bifrost_submit_cb, on a bifrost
/// runtime thread, with the job's outcome:
///
/// - `user_data`: the pointer given to bifrost_submit_cb;
/// - `status`: BIFROST_OK or the job's error status;
/// - `response_json`: the response JSON when `status` is BIFROST_OK, else NULL;
/// - `error`: the error message otherwise, else NULL.
///
/// Both strings are borrowed: valid only until the callback returns (copy
/// what you keep; never free them). The callback must return quickly and
/// must not block: it runs on a runtime worker shared by every gateway. It
/// must not call blocking bifrost functions (bifrost_job_wait with a
/// timeout, bifrost_stream_open/next, bifrost_gateway_shutdown: they return
/// BIFROST_INTERNAL there); bifrost_submit_cb, bifrost_submit (never waits
/// there), bifrost_job_poll/cancel/free, stats and string functions are fine.
pub type BifrostCallback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        status: BifrostStatus,
        response_json: *const c_char,
        error: *const c_char,
    ),
>;

/// `user_data` crosses to a runtime thread; the C caller vouches for it.
struct UserData(*mut c_void);
// SAFETY: bifrost never dereferences it; the caller documents its thread-safety.
unsafe impl Send for UserData {}

/// Submits a request and has `callback(user_data, status, response_json,
/// error)` called exactly once with its outcome, on a bifrost runtime thread
/// (see bifrost_callback for its rules). No handle to free.
///
/// If this returns BIFROST_OK, the callback will be called exactly once
/// (possibly before this function returns); if it returns an error, the
/// callback is never called. Freeing or shutting down the gateway does not
/// lose callbacks: unfinished jobs end BIFROST_SHUTDOWN and their callbacks
/// fire. Queue policy as bifrost_submit (never waits when called from a
/// callback).
///
/// Returns BIFROST_OK; BIFROST_INVALID_REQUEST (NULL gateway, request or
/// callback; invalid UTF-8 or JSON; malformed request); BIFROST_UNKNOWN_PROVIDER;
/// BIFROST_QUEUE_FULL; BIFROST_QUEUE_TIMEOUT; BIFROST_SHUTDOWN;
/// BIFROST_INTERNAL. `err` is optional. Thread-safe. `user_data` may be NULL.
#[no_mangle]
pub unsafe extern "C" fn bifrost_submit_cb(
    gateway: *const BifrostGateway,
    request_json: *const c_char,
    callback: BifrostCallback,
    user_data: *mut c_void,
    err: *mut *mut c_char,
) -> BifrostStatus {
    clear(err);
    ffi_boundary!(err, {
        check_ptr!(gateway, err, "gateway");
        let text = check_str!(request_json, err, "request_json");
        let Some(callback) = callback else {
            return crate::errors::invalid(err, "invalid argument: callback is NULL".into());
        };
        let gw = &(*gateway).gw;
        let handle = match runtime::handle() {
            Ok(h) => h,
            Err(e) => return fail(err, &e),
        };
        match submit_core(gw, text) {
            Ok(job) => {
                let user_data = UserData(user_data);
                handle.spawn(async move {
                    let outcome = job.await;
                    notify(callback, user_data, outcome);
                });
                BifrostStatus::BIFROST_OK
            }
            Err(e) => fail(err, &e),
        }
    })
}

/// Calls the C callback once with `outcome` (a panic while preparing it
/// becomes BIFROST_INTERNAL; the callback is still called once).
fn notify(
    callback: unsafe extern "C" fn(*mut c_void, BifrostStatus, *const c_char, *const c_char),
    user_data: UserData,
    outcome: Result<Response, Error>,
) {
    let prepared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match outcome {
        Ok(resp) => {
            let mut buf = Vec::with_capacity(1024);
            bifrost_core::json::write_response(&mut buf, &resp);
            buf.push(0);
            (BifrostStatus::BIFROST_OK, Some(buf), None)
        }
        Err(e) => (status_of(&e), None, Some(cstring(message_of(&e)))),
    }));
    let (status, json, msg) =
        prepared.unwrap_or_else(|p| (BifrostStatus::BIFROST_INTERNAL, None, Some(cstring(panic_message(&*p)))));
    let json_ptr = json.as_ref().map_or(std::ptr::null(), |b| b.as_ptr().cast());
    let msg_ptr = msg.as_ref().map_or(std::ptr::null(), |m| m.as_ptr());
    // SAFETY: the caller gave us this function pointer for exactly this call;
    // both strings stay alive until it returns.
    unsafe { callback(user_data.0, status, json_ptr, msg_ptr) };
}

fn cstring(s: String) -> CString {
    CString::new(s).unwrap_or_else(|e| {
        let mut v = e.into_vec();
        v.retain(|&b| b != 0);
        CString::new(v).expect("NULs removed")
    })
}
