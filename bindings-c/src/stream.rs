//! Streamed chat: `bifrost_stream` yields `chat.completion.chunk` JSON.
//!
//! Opening waits (on the caller's thread) until the provider has accepted
//! the stream; each `next` waits for one chunk. The stream is a core
//! [`ChunkStream`] behind a mutex, so concurrent `next` calls take turns.
//! Freeing it closes the upstream connection.

use std::ffi::c_char;

use bifrost_core::{runtime, ChunkStream, Error, Request, StreamAccumulator};
use parking_lot::Mutex;

use crate::boundary::{c_string_from_vec, check_out, check_ptr, check_str, clear, ffi_boundary};
use crate::errors::{fail, BifrostStatus};
use crate::gateway::BifrostGateway;

/// An open chat stream. Opaque; created by bifrost_stream_open, released
/// with bifrost_stream_free.
pub struct BifrostStream {
    inner: Mutex<Option<ChunkStream>>,
}

/// Opens a streamed chat for `request_json` (the same JSON as
/// bifrost_submit) and waits until the provider accepted it (queue wait,
/// connection, response headers; fallbacks apply until the first content).
///
/// - `stream_out`: receives the stream on BIFROST_OK (else NULL); the caller
///   owns it: release with bifrost_stream_free.
/// - `err`: optional; receives the message on failure.
///
/// Returns BIFROST_OK; BIFROST_INVALID_REQUEST (NULL argument, invalid
/// UTF-8 or JSON, malformed request); BIFROST_UNKNOWN_PROVIDER; any job
/// error status (BIFROST_PROVIDER, BIFROST_NETWORK, BIFROST_TIMEOUT,
/// BIFROST_QUEUE_FULL, BIFROST_SHUTDOWN, ...); BIFROST_INTERNAL (also when
/// called on a bifrost runtime thread). Blocks; thread-safe.
#[no_mangle]
pub unsafe extern "C" fn bifrost_stream_open(
    gateway: *const BifrostGateway,
    request_json: *const c_char,
    stream_out: *mut *mut BifrostStream,
    err: *mut *mut c_char,
) -> BifrostStatus {
    clear(err);
    ffi_boundary!(err, {
        check_out!(stream_out, err, "stream_out");
        check_ptr!(gateway, err, "gateway");
        let text = check_str!(request_json, err, "request_json");
        let gw = &(*gateway).gw;
        let opened = Request::from_json(text).and_then(|req| runtime::block_on(gw.stream(req))?);
        match opened {
            Ok(s) => {
                let stream = BifrostStream { inner: Mutex::new(Some(s)) };
                *stream_out = Box::into_raw(Box::new(stream));
                BifrostStatus::BIFROST_OK
            }
            Err(e) => fail(err, &e),
        }
    })
}

/// Waits for the next chunk (`chat.completion.chunk` JSON; the last one
/// carries `finish_reason` and `usage`).
///
/// - `chunk_json`: receives the chunk on BIFROST_OK (caller-owned, free with
///   bifrost_string_free), or NULL with BIFROST_OK at the end of the stream
///   (and on every later call).
/// - `err`: optional; receives the message on failure.
///
/// A stream the provider cut off, an in-stream error, an idle stream past
/// `stream_idle_timeout_in_seconds` or the request's `timeout_ms` give an
/// error status (BIFROST_NETWORK, BIFROST_PROVIDER, BIFROST_TIMEOUT, ...),
/// never a silent end; the stream is over after it. BIFROST_INVALID_REQUEST
/// for NULL arguments; BIFROST_INTERNAL on a bifrost runtime thread.
/// Blocks; thread-safe (concurrent calls take turns).
#[no_mangle]
pub unsafe extern "C" fn bifrost_stream_next(
    stream: *const BifrostStream,
    chunk_json: *mut *mut c_char,
    err: *mut *mut c_char,
) -> BifrostStatus {
    clear(err);
    ffi_boundary!(err, {
        check_out!(chunk_json, err, "chunk_json");
        check_ptr!(stream, err, "stream");
        let stream = &*stream;
        let mut guard = stream.inner.lock();
        let Some(s) = guard.as_mut() else { return BifrostStatus::BIFROST_OK };
        let item = match runtime::block_on(s.next_chunk()) {
            Ok(item) => item,
            Err(e) => return fail(err, &e),
        };
        match item {
            Some(Ok(chunk)) => match serde_json::to_vec(&chunk) {
                Ok(buf) => {
                    *chunk_json = c_string_from_vec(buf);
                    BifrostStatus::BIFROST_OK
                }
                Err(e) => fail(err, &Error::Internal { message: format!("serialize chunk: {e}") }),
            },
            None => {
                *guard = None;
                BifrostStatus::BIFROST_OK
            }
            Some(Err(e)) => {
                *guard = None;
                fail(err, &e)
            }
        }
    })
}

/// Reads the rest of the stream and accumulates it into one
/// `chat.completion` object (content joined, tool calls merged; a restart
/// marker of `failover.stream_recovery` starts the answer over, and
/// `extra_fields.restarts` counts them).
///
/// - `response_json`: receives the object (caller-owned, free with
///   bifrost_string_free) on BIFROST_OK, and also on a stream error: then
///   it holds what the stream had sent of the answer so far (the answer
///   after its last restart marker), so nothing received is lost.
/// - `err`: optional; receives the message on failure.
///
/// The stream is over afterwards (later calls give an empty answer).
/// Returns BIFROST_OK, or the stream's error status as bifrost_stream_next
/// would; BIFROST_INVALID_REQUEST for NULL arguments. Blocks; thread-safe.
#[no_mangle]
pub unsafe extern "C" fn bifrost_stream_collect(
    stream: *const BifrostStream,
    response_json: *mut *mut c_char,
    err: *mut *mut c_char,
) -> BifrostStatus {
    clear(err);
    ffi_boundary!(err, {
        check_out!(response_json, err, "response_json");
        check_ptr!(stream, err, "stream");
        let taken = (*stream).inner.lock().take();
        let mut acc = StreamAccumulator::new();
        let mut failure = None;
        if let Some(mut s) = taken {
            let all = runtime::block_on(async {
                while let Some(item) = s.next_chunk().await {
                    match item {
                        Ok(chunk) => acc.push(&chunk),
                        Err(e) => return Some(e),
                    }
                }
                None
            });
            failure = match all {
                Ok(e) => e,
                Err(e) => Some(e),
            };
        }
        match serde_json::to_vec(&acc.message()) {
            Ok(buf) => *response_json = c_string_from_vec(buf),
            Err(e) => return fail(err, &Error::Internal { message: format!("serialize response: {e}") }),
        }
        match failure {
            None => BifrostStatus::BIFROST_OK,
            Some(e) => fail(err, &e),
        }
    })
}

/// Releases a stream (closing the upstream connection if it is still
/// open). NULL is a no-op. No other thread may be using it.
#[no_mangle]
pub unsafe extern "C" fn bifrost_stream_free(stream: *mut BifrostStream) {
    ffi_boundary!({
        if !stream.is_null() {
            drop(Box::from_raw(stream));
        }
    })
}
