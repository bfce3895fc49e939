//! The one place where a core [`Error`] becomes what JavaScript sees.
//!
//! Every error crosses to JS as a small JSON object
//! (`{code, message, provider, status, body, retryAfterMs, path, textSoFar, fallbackErrors}`)
//! that `index.js` turns into a `BifrostError`. Asynchronous outcomes carry
//! it inside their event; synchronous calls throw a napi error whose message
//! is the same object behind the [`MARK`] prefix. No variant of the core
//! error holds a key value, so nothing secret can pass through here.

use bifrost_core::Error;
use serde_json::{Map, Value};

/// Prefix of a thrown napi error's message that carries a serialized error.
pub const MARK: &str = "\u{0}bifrost-error:";

/// The error as the JSON object `index.js` expects.
pub fn to_json(e: &Error) -> Value {
    let mut o = Map::new();
    o.insert("code".into(), e.kind().as_str().into());
    o.insert("message".into(), e.to_string().into());
    if let Some(p) = e.provider() {
        o.insert("provider".into(), p.into());
    }
    if let Some(s) = e.status() {
        o.insert("status".into(), s.into());
    }
    if let Some(b) = e.body() {
        o.insert("body".into(), b.into());
    }
    // A provider's Retry-After, or when an open circuit lets the next probe
    // through (docs/architecture.md §6: every error that knows when to come back says so).
    if let Some(ms) = e.retry_after_ms() {
        o.insert("retryAfterMs".into(), ms.into());
    }
    if let Some(path) = e.config_path() {
        o.insert("path".into(), path.into());
    }
    // What a stream that failed past recovery had sent.
    if let Some(text) = e.text_so_far() {
        o.insert("textSoFar".into(), text.into());
    }
    let fallbacks = e.fallback_errors();
    if !fallbacks.is_empty() {
        let list: Vec<Value> = fallbacks
            .iter()
            .map(|(target, fe)| {
                let mut fv = to_json(fe);
                if let Some(fo) = fv.as_object_mut() {
                    fo.insert("target".into(), target.clone().into());
                }
                fv
            })
            .collect();
        o.insert("fallbackErrors".into(), list.into());
    }
    Value::Object(o)
}

/// A napi error that `index.js` rethrows as a `BifrostError`.
pub fn to_napi(e: &Error) -> napi::Error {
    napi::Error::new(napi::Status::GenericFailure, format!("{MARK}{}", to_json(e)))
}
