//! The one place where a core [`Error`] becomes what JavaScript sees.
//!
//! Every error crosses to JS as a small JSON object
//! (`{code, message, provider, status, body, retryAfterMs, fallbackErrors}`)
//! that `index.js` turns into a `BifrostError`. Asynchronous outcomes carry
//! it inside their event; synchronous calls throw a napi error whose message
//! is the same object behind the [`MARK`] prefix. No variant of the core
//! error holds a key value, so nothing secret can pass through here.

use bifrost_core::Error;
use serde_json::{json, Value};

/// Prefix of a thrown napi error's message that carries a serialized error.
pub const MARK: &str = "\u{0}bifrost-error:";

/// The error as the JSON object `index.js` expects.
pub fn to_json(e: &Error) -> Value {
    let mut v = json!({
        "code": e.kind().as_str(),
        "message": e.to_string(),
    });
    let o = v.as_object_mut().expect("object");
    if let Some(p) = e.provider() {
        o.insert("provider".into(), p.into());
    }
    if let Some(s) = e.status() {
        o.insert("status".into(), s.into());
    }
    if let Some(b) = e.body() {
        o.insert("body".into(), b.into());
    }
    if let Error::Provider { retry_after_ms: Some(ms), .. } = e.primary() {
        o.insert("retryAfterMs".into(), (*ms).into());
    }
    if let Error::Config { path, .. } = e.primary() {
        o.insert("path".into(), path.clone().into());
    }
    let fallbacks = e.fallback_errors();
    if !fallbacks.is_empty() {
        let list: Vec<Value> = fallbacks
            .iter()
            .map(|(target, fe)| {
                let mut fv = to_json(fe);
                fv.as_object_mut().expect("object").insert("target".into(), target.clone().into());
                fv
            })
            .collect();
        o.insert("fallbackErrors".into(), list.into());
    }
    v
}

/// A napi error that `index.js` rethrows as a `BifrostError`.
pub fn to_napi(e: &Error) -> napi::Error {
    napi::Error::new(napi::Status::GenericFailure, format!("{MARK}{}", to_json(e)))
}
