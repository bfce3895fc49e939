//! The one place where core errors become C statuses and messages.
//!
//! `enum bifrost_status` has one value per core [`ErrorKind`] (docs/architecture.md §6),
//! plus `BIFROST_OK = 0` and `BIFROST_PENDING` (a wait that timed out, a
//! poll of an unfinished job). The message is the core error's `Display`:
//! it says what happened and what to change; a PROVIDER error's message
//! names the provider and the HTTP status (`provider 'x' returned HTTP 503:
//! ...`), and the provider's body follows when it adds something.

use std::ffi::c_char;

use bifrost_core::{Error, ErrorKind};

/// The outcome of every bifrost call. `BIFROST_OK` (0) is success; each
/// other value but `BIFROST_PENDING` is one error kind of docs/architecture.md §6, whose
/// name `bifrost_status_name` returns (`"QUEUE_FULL"`, ...).
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BifrostStatus {
    /// Success.
    BIFROST_OK = 0,
    /// The provider's queue is full (policy "error", or a non-waiting submit under "block").
    BIFROST_QUEUE_FULL = 1,
    /// The job was dropped by policy "drop" or "drop_oldest".
    BIFROST_DROPPED = 2,
    /// The job waited longer than queue.wait_timeout_ms (for space, or in the queue).
    BIFROST_QUEUE_TIMEOUT = 3,
    /// The request's timeout_ms deadline passed.
    BIFROST_TIMEOUT = 4,
    /// The job was cancelled (bifrost_job_cancel, or bifrost_job_free before it finished).
    BIFROST_CANCELLED = 5,
    /// The gateway is shutting down or shut down.
    BIFROST_SHUTDOWN = 6,
    /// The provider's circuit breaker is open.
    BIFROST_CIRCUIT_OPEN = 7,
    /// The provider answered with an error status (the message has the HTTP status).
    BIFROST_PROVIDER = 8,
    /// The provider could not be reached, or the connection broke.
    BIFROST_NETWORK = 9,
    /// Bad input: a NULL pointer, invalid UTF-8 or JSON, or a malformed request.
    BIFROST_INVALID_REQUEST = 10,
    /// The request's model names a provider the gateway does not have.
    BIFROST_UNKNOWN_PROVIDER = 11,
    /// The configuration is invalid (the message names the key).
    BIFROST_CONFIG = 12,
    /// A bug or a panic inside bifrost, caught; or a blocking call made on a runtime thread.
    BIFROST_INTERNAL = 13,
    /// Not finished yet: bifrost_job_wait timed out, or bifrost_job_poll of a running job.
    BIFROST_PENDING = 14,
    /// The provider answered, but not in its protocol (invalid JSON, a 200 that is not a completion,
    /// a stream that ends with neither its terminal event nor a finish). Numbered after PENDING so
    /// that every earlier value keeps its number.
    BIFROST_PROTOCOL = 15,
    /// One of the provider's `limits` had no capacity before the job's deadline; the job was never
    /// sent (bifrost's own limit, not the provider's 429). Numbered last, like PROTOCOL.
    BIFROST_RATE_LIMITED = 16,
}

impl BifrostStatus {
    /// The status for a core error kind.
    pub(crate) fn from_kind(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::QueueFull => BifrostStatus::BIFROST_QUEUE_FULL,
            ErrorKind::Dropped => BifrostStatus::BIFROST_DROPPED,
            ErrorKind::QueueTimeout => BifrostStatus::BIFROST_QUEUE_TIMEOUT,
            ErrorKind::Timeout => BifrostStatus::BIFROST_TIMEOUT,
            ErrorKind::Cancelled => BifrostStatus::BIFROST_CANCELLED,
            ErrorKind::Shutdown => BifrostStatus::BIFROST_SHUTDOWN,
            ErrorKind::CircuitOpen => BifrostStatus::BIFROST_CIRCUIT_OPEN,
            ErrorKind::Provider => BifrostStatus::BIFROST_PROVIDER,
            ErrorKind::Network => BifrostStatus::BIFROST_NETWORK,
            ErrorKind::Protocol => BifrostStatus::BIFROST_PROTOCOL,
            ErrorKind::InvalidRequest => BifrostStatus::BIFROST_INVALID_REQUEST,
            ErrorKind::UnknownProvider => BifrostStatus::BIFROST_UNKNOWN_PROVIDER,
            ErrorKind::Config => BifrostStatus::BIFROST_CONFIG,
            ErrorKind::Internal => BifrostStatus::BIFROST_INTERNAL,
            ErrorKind::RateLimited => BifrostStatus::BIFROST_RATE_LIMITED,
            // A kind newer than this binding (ErrorKind is non-exhaustive);
            // the test below checks every kind has its own status.
            _ => BifrostStatus::BIFROST_INTERNAL,
        }
    }

    /// The stable name (`"QUEUE_FULL"`, `"OK"`, `"PENDING"`), NUL-terminated.
    pub(crate) fn name_cstr(code: i32) -> &'static [u8] {
        match code {
            0 => b"OK\0",
            1 => b"QUEUE_FULL\0",
            2 => b"DROPPED\0",
            3 => b"QUEUE_TIMEOUT\0",
            4 => b"TIMEOUT\0",
            5 => b"CANCELLED\0",
            6 => b"SHUTDOWN\0",
            7 => b"CIRCUIT_OPEN\0",
            8 => b"PROVIDER\0",
            9 => b"NETWORK\0",
            10 => b"INVALID_REQUEST\0",
            11 => b"UNKNOWN_PROVIDER\0",
            12 => b"CONFIG\0",
            13 => b"INTERNAL\0",
            14 => b"PENDING\0",
            15 => b"PROTOCOL\0",
            16 => b"RATE_LIMITED\0",
            _ => b"UNKNOWN_STATUS\0",
        }
    }
}

/// The status of a core error.
pub(crate) fn status_of(e: &Error) -> BifrostStatus {
    BifrostStatus::from_kind(e.kind())
}

/// The message of a core error: its `Display`, plus the provider's body
/// for PROVIDER errors when the body says more than the message.
pub(crate) fn message_of(e: &Error) -> String {
    let mut msg = e.to_string();
    if let (Some(_), Some(body)) = (e.status(), e.body()) {
        let body = body.trim();
        if !body.is_empty() && !msg.contains(body) {
            let cut: String = body.chars().take(2048).collect();
            msg.push_str(" (body: ");
            msg.push_str(&cut);
            msg.push(')');
        }
    }
    msg
}

/// Writes `e`'s message to the optional `err` out-parameter and returns its status.
///
/// # Safety
/// `err` is NULL or a valid out-parameter of the current call.
pub(crate) unsafe fn fail(err: *mut *mut c_char, e: &Error) -> BifrostStatus {
    crate::boundary::set_string(err, message_of(e));
    status_of(e)
}

/// Writes `message` to `err` and returns `BIFROST_INVALID_REQUEST`.
///
/// # Safety
/// As [`fail`].
pub(crate) unsafe fn invalid(err: *mut *mut c_char, message: String) -> BifrostStatus {
    crate::boundary::set_string(err, message);
    BifrostStatus::BIFROST_INVALID_REQUEST
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_status_and_name() {
        let mut seen = std::collections::HashSet::new();
        for kind in ErrorKind::ALL {
            let st = BifrostStatus::from_kind(kind);
            assert!(seen.insert(st as i32));
            let name = BifrostStatus::name_cstr(st as i32);
            assert_eq!(&name[..name.len() - 1], kind.as_str().as_bytes());
        }
        assert_eq!(BifrostStatus::BIFROST_OK as i32, 0);
    }

    #[test]
    fn provider_message_has_status_and_body() {
        let e = Error::Provider {
            provider: "p".into(),
            status: 503,
            message: "busy".into(),
            body: "{\"error\":\"overloaded\"}".into(),
            retry_after_ms: None,
        };
        let m = message_of(&e);
        assert!(m.contains("503") && m.contains("overloaded"), "{m}");
    }
}
