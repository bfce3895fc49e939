//! The call protocol between `bindings-node/protocol.js` and the addon, on
//! the Rust side: the event kinds ([`Event`]) and their batched delivery
//! ([`Hub`]). `protocol.js` is the JS side and reads the kinds from
//! [`event_kinds`], so neither side spells them by hand.
//!
//! Every asynchronous call made from JS carries an id. The task that runs
//! it on bifrost's runtime serializes its outcome as one JSON event
//! (`{"i": id, "k": kind, "v": value}` or `{"i": id, "e": error}`) and
//! appends it to the gateway's [`Hub`]. The first event appended after a
//! drain wakes the JS thread through one threadsafe function; the JS side
//! then calls `drain()`, gets every event since the last drain as one JSON
//! array and settles all of them. So a burst of N completions costs one
//! wake-up and one `JSON.parse`, not N.
//!
//! Synchronisation: `pending` (the serialized events) is guarded by its
//! mutex; `scheduled` is true from the wake-up call until the drain starts.
//! A producer appends, then schedules if `scheduled` was false; the drain
//! clears `scheduled` before taking the events, so no event is ever left
//! without a wake-up to come.
//!
//! The threadsafe function is created weak (it does not keep the event loop
//! alive). `protocol.js` refs it while any call is pending and unrefs it when
//! none is, so the process exits by itself once nothing is in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use napi::bindgen_prelude::Unknown;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use parking_lot::Mutex;
use serde::Serialize;

/// What a success event carries; an error event has no kind (`"e"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A call's final value: a chat response, an embedding list, a
    /// shutdown report.
    Response,
    /// `submit`: the job is queued; the value is its id (a "r" or error
    /// event follows).
    Submitted,
    /// `stream`: the stream is open; the value is its fallback index.
    Opened,
    /// `stream`: the chunks read ahead (an array), or `null` at the end.
    Chunk,
}

impl Event {
    pub const ALL: [Event; 4] = [Event::Response, Event::Submitted, Event::Opened, Event::Chunk];

    /// The one-letter code on the wire (short: one per event per request).
    pub const fn code(self) -> &'static str {
        match self {
            Event::Response => "r",
            Event::Submitted => "s",
            Event::Opened => "o",
            Event::Chunk => "c",
        }
    }

    /// The name `protocol.js` knows the kind by.
    pub const fn name(self) -> &'static str {
        match self {
            Event::Response => "response",
            Event::Submitted => "submitted",
            Event::Opened => "opened",
            Event::Chunk => "chunk",
        }
    }
}

/// `{name: code}` for every event kind: `protocol.js`'s `KIND` table.
#[napi]
pub fn event_kinds() -> HashMap<&'static str, &'static str> {
    Event::ALL.iter().map(|e| (e.name(), e.code())).collect()
}

pub type Wake = ThreadsafeFunction<(), Unknown<'static>, (), napi::Status, false, true, 0>;

pub struct Hub {
    /// Serialized events, comma-separated (always UTF-8: JSON text).
    pending: Mutex<Vec<u8>>,
    scheduled: AtomicBool,
    wake: Wake,
}

/// `{"i":ID,"k":"KIND","v":` — the start of a result event, written into `p`.
fn event_head(p: &mut Vec<u8>, id: u32, kind: Event) {
    p.extend_from_slice(b"{\"i\":");
    p.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
    p.extend_from_slice(b",\"k\":\"");
    p.extend_from_slice(kind.code().as_bytes());
    p.extend_from_slice(b"\",\"v\":");
}

impl Hub {
    pub fn new(wake: Wake) -> Self {
        Hub { pending: Mutex::new(Vec::with_capacity(4096)), scheduled: AtomicBool::new(false), wake }
    }

    pub fn wake_fn(&self) -> &Wake {
        &self.wake
    }

    /// Appends one event, written by `write` into the pending buffer.
    fn push_with(&self, write: impl FnOnce(&mut Vec<u8>)) {
        {
            let mut p = self.pending.lock();
            if !p.is_empty() {
                p.push(b',');
            }
            write(&mut p);
        }
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            // A closed function (its thread is gone) has nobody to settle.
            let _ = self.wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    fn push_raw(&self, event: &str) {
        self.push_with(|p| p.extend_from_slice(event.as_bytes()));
    }

    /// Appends a success event of `kind` carrying `value`.
    pub fn ok<T: Serialize + ?Sized>(&self, id: u32, kind: Event, value: &T) {
        self.push_with(|p| {
            let start = p.len();
            event_head(p, id, kind);
            if serde_json::to_writer(&mut *p, value).is_ok() {
                p.push(b'}');
            } else {
                // Never leave half an event behind.
                p.truncate(start);
                let e = bifrost_core::Error::Internal { message: "a result could not be serialized".into() };
                p.extend_from_slice(format!("{{\"i\":{id},\"e\":{}}}", crate::errors::to_json(&e)).as_bytes());
            }
        });
    }

    /// Appends a chat response event ([`Event::Response`]), written straight into the
    /// pending buffer (the per-request hot path: no intermediate strings).
    pub fn response(&self, id: u32, resp: &bifrost_core::Response) {
        self.push_with(|p| {
            event_head(p, id, Event::Response);
            bifrost_core::json::write_response(p, resp);
            p.push(b'}');
        });
    }

    /// Appends an error event.
    pub fn err(&self, id: u32, e: &bifrost_core::Error) {
        self.push_raw(&format!("{{\"i\":{id},\"e\":{}}}", crate::errors::to_json(e)));
    }

    /// Every event since the last drain, as a JSON array text.
    pub fn drain(&self) -> String {
        self.scheduled.store(false, Ordering::Release);
        let body = std::mem::take(&mut *self.pending.lock());
        let mut out = Vec::with_capacity(body.len() + 2);
        out.push(b'[');
        out.extend_from_slice(&body);
        out.push(b']');
        // Every event is JSON text written from `&str`s and JSON writers.
        String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}
