//! The C ABI of bifrost: `libbifrost.so` / `libbifrost.a`, declared by the
//! generated `include/bifrost.h` (cbindgen 0.29.4).
//!
//! A thin layer over `bifrost_core`: every function converts C values (NUL-
//! terminated UTF-8 JSON in, caller-owned JSON strings out), maps core
//! errors to `enum bifrost_status` and a message ([`errors`]), and runs
//! inside the panic boundary ([`boundary`]). Nothing here routes, retries or
//! counts: that is the core's job.
//!
//! - [`gateway`]: create / shut down / free a gateway; stats, health,
//!   Prometheus; sizing; version; `bifrost_string_free`.
//! - [`job`]: `bifrost_submit` + wait / poll / cancel / free, and
//!   `bifrost_submit_cb` (callback exactly once, on a runtime thread).
//! - [`stream`]: streamed chat.
//!
//! Errors travel through out-parameters only (no global "last error"), so
//! every function is thread-safe.

#![allow(clippy::missing_safety_doc)] // the safety contract is in each function's header doc

mod boundary;
pub mod errors;
pub mod gateway;
pub mod job;
pub mod stream;

#[cfg(test)]
mod header_tests {
    /// The checked-in header must equal the one cbindgen generated in this
    /// build; `BIFROST_BLESS=1 cargo test -p bifrost-c` rewrites it.
    #[test]
    fn header_is_fresh() {
        let generated = include_str!(concat!(env!("OUT_DIR"), "/bifrost.h"));
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../include/bifrost.h");
        if std::env::var_os("BIFROST_BLESS").is_some() {
            std::fs::write(path, generated).expect("write include/bifrost.h");
            return;
        }
        let checked_in = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "include/bifrost.h is stale: regenerate it with `BIFROST_BLESS=1 cargo test -p bifrost-c --lib` and commit it"
        );
    }
}
