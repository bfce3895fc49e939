//! Gateways, process-wide helpers and the string deallocator.
//!
//! A `bifrost_gateway` is a boxed core [`Gateway`]; C holds it by pointer
//! and shares it between threads (every function takes it as `const`).
//! Freeing it stops its pools at once (jobs still queued or running end with
//! SHUTDOWN, and their callbacks fire); `bifrost_gateway_shutdown` drains
//! gracefully first. Jobs and streams own what they need from the gateway,
//! so they stay valid (and must still be freed) after the gateway is freed.

use std::ffi::c_char;
use std::time::Duration;

use bifrost_core::{runtime, Error, Gateway};
use serde::Serialize;

use crate::boundary::{c_string, c_string_from_vec, check_out, check_ptr, clear, ffi_boundary, free_string};
use crate::errors::{fail, invalid, BifrostStatus};

/// A gateway: one worker pool per configured provider. Opaque; create with
/// bifrost_gateway_new, release with bifrost_gateway_free.
pub struct BifrostGateway {
    pub(crate) gw: Gateway,
}

/// Serializes `value` into a caller-owned JSON C string (one buffer, handed
/// over as the string without a copy).
pub(crate) fn json_out<T: Serialize>(
    _gw: &Gateway,
    value: &T,
    out: *mut *mut c_char,
    err: *mut *mut c_char,
) -> BifrostStatus {
    match serde_json::to_vec(value) {
        Ok(buf) => {
            // SAFETY: `out` was checked non-NULL by the caller's check_out!.
            unsafe { *out = c_string_from_vec(buf) };
            BifrostStatus::BIFROST_OK
        }
        // SAFETY: `err` is the caller's optional out-parameter.
        Err(e) => unsafe { fail(err, &Error::Internal { message: format!("serialize: {e}") }) },
    }
}

/// Creates a gateway from a configuration in JSON text (docs/architecture.md §4; the
/// same JSON as every other language).
///
/// - `config_json`: NUL-terminated UTF-8, borrowed for the call.
/// - `gateway_out`: receives the new gateway on BIFROST_OK (else NULL). The
///   caller owns it: release with bifrost_gateway_free (after
///   bifrost_gateway_shutdown for a graceful drain).
/// - `err`: optional; receives a message on failure (free with bifrost_string_free).
///
/// Returns BIFROST_OK; BIFROST_INVALID_REQUEST for NULL arguments;
/// BIFROST_CONFIG for text that is not UTF-8 or not exactly one JSON
/// value (trailing text, a duplicate key at any depth, nesting deeper than
/// 100) or a configuration that is invalid (unknown key, value out of
/// range, missing `env.NAME` variable; the message names the key and the
/// allowed range, and never quotes a value);
/// BIFROST_INTERNAL if the runtime cannot start (or in a fork()ed child of a
/// process that already started bifrost).
///
/// Thread-safe. Starts the shared runtime on first use.
#[no_mangle]
pub unsafe extern "C" fn bifrost_gateway_new(
    config_json: *const c_char,
    gateway_out: *mut *mut BifrostGateway,
    err: *mut *mut c_char,
) -> BifrostStatus {
    clear(err);
    ffi_boundary!(err, {
        check_out!(gateway_out, err, "gateway_out");
        check_ptr!(config_json, err, "config_json");
        // Config text that is not UTF-8 is a CONFIG error, as in Python and Node.
        let text = match std::ffi::CStr::from_ptr(config_json).to_str() {
            Ok(text) => text,
            Err(e) => {
                let e = Error::Config { path: String::new(), message: format!("config_json is not valid UTF-8: {e}") };
                return fail(err, &e);
            }
        };
        // Strict (docs/architecture.md §13): trailing text, duplicate keys (two providers
        // of one name) and deep nesting are CONFIG errors, as in every
        // language.
        match Gateway::from_json(text) {
            Ok(gw) => {
                *gateway_out = Box::into_raw(Box::new(BifrostGateway { gw }));
                BifrostStatus::BIFROST_OK
            }
            Err(e) => fail(err, &e),
        }
    })
}

/// Graceful shutdown: new submits fail with BIFROST_SHUTDOWN at once; queued
/// and running jobs drain for up to `timeout_ms`; whatever remains then ends
/// with BIFROST_SHUTDOWN. Blocks the calling thread until done.
///
/// - `report_json`: optional (may be NULL); receives the report
///   `{"completed","failed","cancelled","aborted","elapsed_ms"}`, owned by
///   the caller (free with bifrost_string_free).
///
/// Idempotent: a second (or concurrent) call returns the first call's
/// report. The gateway stays allocated: free it with bifrost_gateway_free.
///
/// Returns BIFROST_OK; BIFROST_INVALID_REQUEST if `gateway` is NULL;
/// BIFROST_INTERNAL when called on a bifrost runtime thread (inside a
/// bifrost_callback), where waiting would deadlock.
#[no_mangle]
pub unsafe extern "C" fn bifrost_gateway_shutdown(
    gateway: *const BifrostGateway,
    timeout_ms: u64,
    report_json: *mut *mut c_char,
) -> BifrostStatus {
    clear(report_json);
    ffi_boundary!({
        check_ptr!(gateway, std::ptr::null_mut(), "gateway");
        let gw = &(*gateway).gw;
        match runtime::block_on(gw.shutdown(Duration::from_millis(timeout_ms))) {
            Ok(report) => {
                if !report_json.is_null() {
                    return json_out(gw, &report, report_json, std::ptr::null_mut());
                }
                BifrostStatus::BIFROST_OK
            }
            Err(e) => crate::errors::status_of(&e),
        }
    })
}

/// Releases a gateway. Safe whether or not it was shut down; without a
/// shutdown its pools stop at once: queued and running jobs end with
/// BIFROST_SHUTDOWN (their callbacks still fire, exactly once). Jobs and
/// streams opened on it stay valid and must still be freed. NULL is a
/// no-op. The pointer is invalid afterwards; no other thread may be using it.
#[no_mangle]
pub unsafe extern "C" fn bifrost_gateway_free(gateway: *mut BifrostGateway) {
    ffi_boundary!({
        if !gateway.is_null() {
            drop(Box::from_raw(gateway));
        }
    })
}

/// A snapshot of every pool's stats (docs/architecture.md §8 schema: workers, queue,
/// jobs, latency_us, throughput_per_s, circuit, keys; object_pools;
/// runtime) as JSON. `stats_json` receives a string the caller owns (free
/// with bifrost_string_free). Never blocks; thread-safe.
///
/// Returns BIFROST_OK, or BIFROST_INVALID_REQUEST for a NULL argument.
#[no_mangle]
pub unsafe extern "C" fn bifrost_stats_json(
    gateway: *const BifrostGateway,
    stats_json: *mut *mut c_char,
) -> BifrostStatus {
    ffi_boundary!({
        check_out!(stats_json, std::ptr::null_mut(), "stats_json");
        check_ptr!(gateway, std::ptr::null_mut(), "gateway");
        let gw = &(*gateway).gw;
        json_out(gw, &gw.stats(), stats_json, std::ptr::null_mut())
    })
}

/// Per-provider health (`status` ok/degraded/shutdown, circuit, live keys,
/// last error, queue utilization, workers, startup probe) as JSON.
/// `health_json` receives a string the caller owns (free with
/// bifrost_string_free). Never blocks; thread-safe.
///
/// Returns BIFROST_OK, or BIFROST_INVALID_REQUEST for a NULL argument.
#[no_mangle]
pub unsafe extern "C" fn bifrost_health_json(
    gateway: *const BifrostGateway,
    health_json: *mut *mut c_char,
) -> BifrostStatus {
    ffi_boundary!({
        check_out!(health_json, std::ptr::null_mut(), "health_json");
        check_ptr!(gateway, std::ptr::null_mut(), "gateway");
        let gw = &(*gateway).gw;
        json_out(gw, &gw.health(), health_json, std::ptr::null_mut())
    })
}

/// The stats as Prometheus text exposition (`bifrost_*` metrics).
/// `text_out` receives a string the caller owns (free with
/// bifrost_string_free). Never blocks; thread-safe.
///
/// Returns BIFROST_OK, or BIFROST_INVALID_REQUEST for a NULL argument.
#[no_mangle]
pub unsafe extern "C" fn bifrost_prometheus(
    gateway: *const BifrostGateway,
    text_out: *mut *mut c_char,
) -> BifrostStatus {
    ffi_boundary!({
        check_out!(text_out, std::ptr::null_mut(), "text_out");
        check_ptr!(gateway, std::ptr::null_mut(), "gateway");
        *text_out = c_string((*gateway).gw.prometheus());
        BifrostStatus::BIFROST_OK
    })
}

/// Suggested pool sizing by Little's law for a provider allowing
/// `rate_limit_rps` requests/s at `avg_latency_s` seconds each with
/// `error_rate` (0 <= rate < 1) failures: `sizing_json` receives
/// `{"concurrency","buffer_size","timeout_ms"}` (caller-owned, free with
/// bifrost_string_free).
///
/// Returns BIFROST_OK; BIFROST_INVALID_REQUEST for a NULL `sizing_json` or
/// an out-of-range number (message in `err`, optional). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn bifrost_optimal_concurrency(
    rate_limit_rps: f64,
    avg_latency_s: f64,
    error_rate: f64,
    sizing_json: *mut *mut c_char,
    err: *mut *mut c_char,
) -> BifrostStatus {
    clear(err);
    ffi_boundary!(err, {
        check_out!(sizing_json, err, "sizing_json");
        match bifrost_core::optimal_concurrency(rate_limit_rps, avg_latency_s, error_rate) {
            Ok(s) => match serde_json::to_vec(&s) {
                Ok(v) => {
                    *sizing_json = c_string_from_vec(v);
                    BifrostStatus::BIFROST_OK
                }
                Err(e) => invalid(err, format!("serialize: {e}")),
            },
            Err(e) => fail(err, &e),
        }
    })
}

/// Releases a string returned by any bifrost function (JSON, text or error
/// message). NULL is a no-op. Each string must be freed exactly once, and
/// only with this function (never free()).
#[no_mangle]
pub unsafe extern "C" fn bifrost_string_free(s: *mut c_char) {
    ffi_boundary!({ free_string(s) })
}

/// The library version ("0.1.0"): a static string, never freed.
#[no_mangle]
pub extern "C" fn bifrost_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The stable name of a status ("OK", "QUEUE_FULL", ..., "PENDING"; the
/// error kind names of docs/architecture.md §6), or "UNKNOWN_STATUS" for a value that is
/// not a bifrost_status. A static string, never freed. Thread-safe.
#[no_mangle]
pub extern "C" fn bifrost_status_name(status: i32) -> *const c_char {
    BifrostStatus::name_cstr(status).as_ptr().cast()
}
