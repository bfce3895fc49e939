//! The FFI boundary: where C meets Rust, and nothing unwinds across.
//!
//! Every exported function body runs inside [`ffi_boundary!`], which wraps
//! it in `catch_unwind`. What a panicking call returns is decided by the
//! [`OnPanic`] trait of its return type (`BIFROST_INTERNAL` for a status,
//! NULL for a pointer, 0 for a number); when the function has an `err`
//! out-parameter, the panic's message is written there too.
//!
//! Arguments are checked by a small family of macros that return
//! `BIFROST_INVALID_REQUEST` with a message naming the argument:
//! [`check_ptr!`] (NULL), [`check_out!`] (NULL out-parameter, else it is
//! cleared to NULL), [`check_str!`] (NULL or invalid UTF-8).
//!
//! Strings handed to C are `CString` allocations released by
//! `bifrost_string_free` (the one deallocator of this library).

use std::any::Any;
use std::ffi::{c_char, CStr, CString};

use crate::errors::BifrostStatus;

/// The value an exported function returns when its body panicked.
pub(crate) trait OnPanic {
    fn on_panic() -> Self;
}

impl OnPanic for BifrostStatus {
    fn on_panic() -> Self {
        BifrostStatus::BIFROST_INTERNAL
    }
}

impl OnPanic for () {
    fn on_panic() -> Self {}
}

impl OnPanic for u64 {
    fn on_panic() -> Self {
        0
    }
}

impl<T> OnPanic for *const T {
    fn on_panic() -> Self {
        std::ptr::null()
    }
}

/// The text of a caught panic.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    let what = bifrost_core::error::panic_text(payload);
    format!("internal error: a panic was caught at the bifrost C boundary: {what}")
}

/// Runs an exported function's body inside `catch_unwind`.
///
/// `ffi_boundary!(err, { ... })` also writes the panic's message to the
/// `err` out-parameter (a `*mut *mut c_char`, possibly NULL);
/// `ffi_boundary!({ ... })` is for functions without one.
macro_rules! ffi_boundary {
    ($err:expr, $body:block) => {{
        let err_out: *mut *mut ::std::ffi::c_char = $err;
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(v) => v,
            Err(payload) => {
                // SAFETY: `err_out` is the caller's out-parameter (or NULL).
                unsafe { $crate::boundary::set_string(err_out, $crate::boundary::panic_message(&*payload)) };
                <_ as $crate::boundary::OnPanic>::on_panic()
            }
        }
    }};
    ($body:block) => {{
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(v) => v,
            Err(_) => <_ as $crate::boundary::OnPanic>::on_panic(),
        }
    }};
}

/// Returns `BIFROST_INVALID_REQUEST` (message in `err`) if `$ptr` is NULL.
macro_rules! check_ptr {
    ($ptr:expr, $err:expr, $name:literal) => {
        if $ptr.is_null() {
            // SAFETY: `$err` is the caller's out-parameter (or NULL).
            unsafe { $crate::boundary::set_string($err, concat!("invalid argument: ", $name, " is NULL").to_string()) };
            return $crate::errors::BifrostStatus::BIFROST_INVALID_REQUEST;
        }
    };
}

/// Checks an out-parameter like [`check_ptr!`], then clears `*$out` to NULL
/// so the caller sees NULL whenever nothing is produced.
macro_rules! check_out {
    ($out:expr, $err:expr, $name:literal) => {
        check_ptr!($out, $err, $name);
        // SAFETY: non-NULL, and the caller promises it points to writable storage.
        unsafe { *$out = ::std::ptr::null_mut() };
    };
}

/// Borrows a NUL-terminated UTF-8 argument as `&str`, or returns
/// `BIFROST_INVALID_REQUEST` (NULL, or invalid UTF-8 with the byte offset).
macro_rules! check_str {
    ($ptr:expr, $err:expr, $name:literal) => {{
        check_ptr!($ptr, $err, $name);
        // SAFETY: non-NULL; the caller promises a NUL-terminated string that
        // outlives this call.
        match unsafe { ::std::ffi::CStr::from_ptr($ptr) }.to_str() {
            Ok(s) => s,
            Err(e) => {
                unsafe {
                    $crate::boundary::set_string(
                        $err,
                        format!(concat!("invalid request: ", $name, " is not valid UTF-8 ({})"), e),
                    )
                };
                return $crate::errors::BifrostStatus::BIFROST_INVALID_REQUEST;
            }
        }
    }};
}

pub(crate) use {check_out, check_ptr, check_str, ffi_boundary};

/// Clears an optional `err` out-parameter at entry.
///
/// # Safety
/// `err` is NULL or points to writable storage for a pointer.
pub(crate) unsafe fn clear(err: *mut *mut c_char) {
    if !err.is_null() {
        *err = std::ptr::null_mut();
    }
}

/// A caller-owned C string (interior NULs, which JSON and our messages
/// never contain, are dropped rather than truncating).
pub(crate) fn c_string(s: String) -> *mut c_char {
    let c = CString::new(s).unwrap_or_else(|e| {
        let mut v = e.into_vec();
        v.retain(|&b| b != 0);
        CString::new(v).expect("NULs removed")
    });
    c.into_raw()
}

/// `bytes` (UTF-8 without NULs, e.g. JSON) as a caller-owned C string,
/// reusing the vector's allocation (no copy).
pub(crate) fn c_string_from_vec(bytes: Vec<u8>) -> *mut c_char {
    match CString::new(bytes) {
        Ok(c) => c.into_raw(),
        Err(e) => c_string(String::from_utf8_lossy(&e.into_vec()).into_owned()),
    }
}

/// Stores a new caller-owned string in `*out` (if `out` is not NULL),
/// freeing a string this call stored there before.
///
/// # Safety
/// `out` is NULL or points to a pointer that is NULL or was stored by this
/// library during the current call.
pub(crate) unsafe fn set_string(out: *mut *mut c_char, s: String) {
    if out.is_null() {
        return;
    }
    free_string(*out);
    *out = c_string(s);
}

/// A caller-owned C string that takes over `json`, text written by
/// `bifrost_core::json` (which never writes a NUL byte: U+0000 inside a
/// string is escaped as `\u0000`), without copying or scanning it.
pub(crate) fn c_string_from_json(mut json: Vec<u8>) -> *mut c_char {
    debug_assert!(!json.contains(&0), "JSON text with a NUL byte");
    json.push(0);
    // SAFETY: `json` ends with its only NUL byte (see above).
    unsafe { CString::from_vec_with_nul_unchecked(json) }.into_raw()
}

/// Releases a string made by [`c_string`] / [`c_string_from_bytes`] /
/// [`c_string_from_json`].
///
/// # Safety
/// `s` is NULL or came from this library and was not freed yet.
pub(crate) unsafe fn free_string(s: *mut c_char) {
    if !s.is_null() {
        drop(CString::from_raw(s));
    }
}

/// Reads a borrowed C string for messages (lossy), for tests and callbacks.
#[allow(dead_code)]
pub(crate) fn lossy(s: *const c_char) -> String {
    if s.is_null() {
        return String::new();
    }
    // SAFETY: non-NULL, NUL-terminated by contract.
    unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
}
