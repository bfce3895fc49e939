//! `NativeGateway`: the core [`Gateway`] as `protocol.js` / `index.js` drive it.
//!
//! Each asynchronous method takes the call's id and returns at once: it
//! spawns one task on bifrost's shared runtime that parses the request
//! (off the JS thread), runs the core call and appends the outcome to the
//! gateway's [`Hub`]. Nothing here waits on the JS thread.
//!
//! Cancellation (`cancel(id)`, from `job.cancel()` or an `AbortSignal`):
//! - a submitted chat job is a core [`SharedJob`] (docs/architecture.md §7),
//!   held by the task that awaits it and by its [`Ctl`] slot, so `cancel`
//!   reaches the core `Job::cancel` and returns its answer; the job then
//!   ends CANCELLED in the core's own accounting, and that outcome settles
//!   the promise;
//! - a cancel that arrives before the task has submitted (e.g. a signal
//!   aborted right after `chat()` returned) does not skip the submit: the
//!   task still submits (the core's submit finishes on its first poll
//!   unless a `block` queue is full) and cancels the job at once, so the
//!   core counts it (`submitted` and `cancelled`) like any other cancel;
//! - a submit still waiting for space in a full `block` queue is withdrawn
//!   by dropping its future: the job never entered the queue and the core
//!   never counts it; the promise settles CANCELLED;
//! - an embed or a stream being opened is stopped by dropping its future
//!   after it was submitted (a dropped core `Job` is cancelled and counted
//!   `cancelled`); the promise settles CANCELLED;
//! - an open stream is closed by `close(id)`: its task ends and drops the
//!   core `ChunkStream`, which closes the upstream connection (also while
//!   it waits for credit to read further ahead).

use bifrost_core::bounds;
use bifrost_core::{ChunkStream, EmbedRequest, Error, Gateway, Request, Response, SharedJob};
use napi::bindgen_prelude::{Function, Unknown};
use napi::Env;
use napi_derive::napi;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::task::Poll;
use tokio::sync::{mpsc, Notify};

use crate::errors;
use crate::protocol::{Event, Hub};

/// Cancellation state of one cancellable call.
#[derive(Default)]
struct Ctl {
    state: Mutex<CtlState>,
    notify: Notify,
}

#[derive(Default)]
struct CtlState {
    cancelled: bool,
    /// The submitted chat job, while it runs.
    job: Option<SharedJob<Response>>,
}

type Ops = Arc<Mutex<HashMap<u32, Arc<Ctl>>>>;
type Streams = Arc<Mutex<HashMap<u32, mpsc::UnboundedSender<u32>>>>;

/// Most chunks a stream reads ahead of its JS consumer.
pub const MAX_STREAM_WINDOW: u32 = 4096;
/// Most chunks in one "c" event.
const MAX_BATCH: usize = 256;

fn cancelled(model: &str) -> Error {
    Error::Cancelled { provider: model.split('/').next().unwrap_or_default().to_string() }
}

/// Resolves once every sender of `rx` is gone (the stream was closed).
async fn closed(rx: &mut mpsc::UnboundedReceiver<u32>) {
    while rx.recv().await.is_some() {}
}

/// Reads `s` ahead of its consumer until it ends, fails or is closed
/// (every sender of `rx` gone): waits for the next chunk, takes the ones
/// already there too (up to the credit left and [`MAX_BATCH`]) and sends
/// them as one "c" event; the end is a `null` "c" event, an error an error
/// event after the chunks before it. `rx` brings more credit.
async fn read_ahead(s: &mut ChunkStream, rx: &mut mpsc::UnboundedReceiver<u32>, window: u32, id: u32, hub: &Hub) {
    let mut credit = window;
    let mut batch = Vec::new();
    loop {
        while credit == 0 {
            match rx.recv().await {
                Some(n) => credit = credit.saturating_add(n),
                None => return,
            }
        }
        let end = tokio::select! {
            biased;
            grant = rx.recv() => match grant {
                Some(n) => {
                    credit = credit.saturating_add(n);
                    continue;
                }
                None => return,
            },
            // Cancel-safe: it waits only for the first chunk.
            end = s.next_batch(MAX_BATCH.min(credit as usize), &mut batch) => end,
        };
        if !batch.is_empty() {
            credit -= batch.len() as u32;
            hub.ok(id, Event::Chunk, &batch);
            batch.clear();
        }
        match end {
            None => {}
            Some(Ok(())) => return hub.ok(id, Event::Chunk, &serde_json::Value::Null),
            Some(Err(e)) => return hub.err(id, &e),
        }
    }
}

#[napi]
pub struct NativeGateway {
    gw: Arc<Gateway>,
    hub: Arc<Hub>,
    ops: Ops,
    streams: Streams,
    rt: tokio::runtime::Handle,
}

impl NativeGateway {
    /// Runs a call's task on the runtime. A panic in it (a bug: the core
    /// catches provider panics itself) settles call `id` with INTERNAL, so
    /// no promise is left pending forever and no panic crosses into Node.
    fn spawn_settled(&self, id: u32, task: impl Future<Output = ()> + Send + 'static) {
        let hub = self.hub.clone();
        self.rt.spawn(async move {
            let mut task = std::pin::pin!(task);
            let caught = poll_fn(|cx| match catch_unwind(AssertUnwindSafe(|| task.as_mut().poll(cx))) {
                Ok(Poll::Ready(())) => Poll::Ready(None),
                Ok(Poll::Pending) => Poll::Pending,
                Err(panic) => Poll::Ready(Some(panic)),
            })
            .await;
            if let Some(panic) = caught {
                let what = bifrost_core::error::panic_text(&*panic);
                hub.err(id, &Error::Internal { message: format!("bifrost's Node binding panicked: {what}") });
            }
        });
    }
}

#[napi]
impl NativeGateway {
    /// `config`: JSON text. `wake`: called (on the JS thread) when events
    /// are ready to `drain()`.
    #[napi(constructor)]
    pub fn new(config: String, wake: Function<'_, (), Unknown<'static>>) -> napi::Result<Self> {
        let rt = bifrost_core::runtime::handle().map_err(|e| errors::to_napi(&e))?.clone();
        let wake = wake
            .build_threadsafe_function::<()>()
            .callee_handled::<false>()
            .weak::<true>()
            .build_callback(|_ctx| Ok(()))?;
        let gw = Gateway::from_json(&config).map_err(|e| errors::to_napi(&e))?;
        Ok(NativeGateway {
            gw: Arc::new(gw),
            hub: Arc::new(Hub::new(wake)),
            ops: Arc::default(),
            streams: Arc::default(),
            rt,
        })
    }

    /// Configured provider names, sorted.
    #[napi]
    pub fn providers(&self) -> Vec<String> {
        self.gw.providers()
    }

    /// Every event since the last drain, as JSON array text.
    #[napi]
    pub fn drain(&self) -> String {
        self.hub.drain()
    }

    /// Keeps the event loop alive (`true`) while calls are pending.
    #[napi]
    pub fn keep_alive(&self, env: Env, on: bool) {
        let raw = self.hub.wake_fn().raw();
        // SAFETY: called on the JS thread that owns the function (a napi
        // method), with a live threadsafe function held by `hub`.
        unsafe {
            if on {
                napi::sys::napi_ref_threadsafe_function(env.raw(), raw);
            } else {
                napi::sys::napi_unref_threadsafe_function(env.raw(), raw);
            }
        }
    }

    /// Chat: settles `id` with a `chat.completion` ("r"). With
    /// `cancellable`, `cancel(id)` reaches the core job.
    #[napi]
    pub fn chat(&self, id: u32, request: String, cancellable: bool) {
        let (gw, hub) = (self.gw.clone(), self.hub.clone());
        if !cancellable {
            self.spawn_settled(id, async move {
                let out = match Request::from_json(&request) {
                    Ok(r) => gw.chat(r).await,
                    Err(e) => Err(e),
                };
                match out {
                    Ok(resp) => hub.response(id, &resp),
                    Err(e) => hub.err(id, &e),
                }
            });
            return;
        }
        self.run_job(id, request, false);
    }

    /// Submit: settles `id` first with the job id ("s"), then with the
    /// response ("r"); errors before submission settle it once.
    #[napi]
    pub fn submit(&self, id: u32, request: String) {
        self.run_job(id, request, true);
    }

    fn register(&self, id: u32) -> Arc<Ctl> {
        let ctl = Arc::new(Ctl::default());
        self.ops.lock().insert(id, ctl.clone());
        ctl
    }

    fn run_job(&self, id: u32, request: String, announce: bool) {
        let ctl = self.register(id);
        let (gw, hub, ops) = (self.gw.clone(), self.hub.clone(), self.ops.clone());
        self.spawn_settled(id, async move {
            // The job id, once a job exists and the caller has not been told yet.
            let mut untold: Option<u64> = None;
            let out = async {
                let r = Request::from_json(&request)?;
                let model = r.model.clone();
                // `biased`: the submit is polled first, so a cancel that is
                // already here still lets a submit that needs no waiting
                // happen (and the job is cancelled just below); only a submit
                // waiting for space in a full `block` queue is withdrawn.
                let job = tokio::select! {
                    biased;
                    j = gw.submit(r) => j?,
                    _ = ctl.notify.notified() => return Err(cancelled(&model)),
                };
                let job = SharedJob::new(job);
                let job_id = job.id();
                let cancelled_early = {
                    let mut st = ctl.state.lock();
                    let early = st.cancelled && job.cancel();
                    st.job = Some(job.clone());
                    early
                };
                if announce {
                    if cancelled_early {
                        // Cancelled before the caller had a Job: the call
                        // settles once, with the job's (CANCELLED) outcome.
                        untold = Some(job_id);
                    } else {
                        hub.ok(id, Event::Submitted, &job_id);
                    }
                }
                job.wait().await
            }
            .await;
            ops.lock().remove(&id);
            // The finished job handle is dropped here, outside every lock.
            let finished = ctl.state.lock().job.take();
            drop(finished);
            match out {
                Ok(resp) => {
                    // A cancel that came too late: the job finished anyway,
                    // so the caller gets its Job after all.
                    if let Some(job_id) = untold {
                        hub.ok(id, Event::Submitted, &job_id);
                    }
                    hub.response(id, &resp)
                }
                Err(e) => hub.err(id, &e),
            }
        });
    }

    /// Embeddings: settles `id` with an embeddings list ("r").
    #[napi]
    pub fn embed(&self, id: u32, request: String, cancellable: bool) {
        let ctl = if cancellable { Some(self.register(id)) } else { None };
        let (gw, hub, ops) = (self.gw.clone(), self.hub.clone(), self.ops.clone());
        self.spawn_settled(id, async move {
            let out = async {
                let r = EmbedRequest::from_json(&request)?;
                let model = r.model.clone();
                match &ctl {
                    None => gw.embed(r).await,
                    // `biased`: as in `run_job`, an early cancel still lets
                    // the job be submitted (then dropped, counted cancelled).
                    Some(ctl) => tokio::select! {
                        biased;
                        out = gw.embed(r) => out,
                        _ = ctl.notify.notified() => Err(cancelled(&model)),
                    },
                }
            }
            .await;
            if ctl.is_some() {
                ops.lock().remove(&id);
            }
            match out {
                Ok(resp) => hub.ok(id, Event::Response, &resp),
                Err(e) => hub.err(id, &e),
            }
        });
    }

    /// Opens a stream: settles `id` with "o" (the fallback index) once it
    /// is established, then reads ahead of the consumer: each "c" event
    /// carries every chunk that was ready (an array; `null` after the
    /// last) or an error. At most `window` chunks (≤ [`MAX_STREAM_WINDOW`])
    /// are read before the JS side has consumed them; `pull(id, n)` gives
    /// back `n` more. So a chunk costs no napi call, and chunks that arrive
    /// together cross together.
    #[napi]
    pub fn stream(&self, id: u32, request: String, window: u32) {
        let (tx, mut rx) = mpsc::unbounded_channel::<u32>();
        self.streams.lock().insert(id, tx);
        let (gw, hub, streams) = (self.gw.clone(), self.hub.clone(), self.streams.clone());
        self.spawn_settled(id, async move {
            let opened = match Request::from_json(&request) {
                Err(e) => Err(e),
                Ok(r) => {
                    let model = r.model.clone();
                    tokio::select! {
                        biased;
                        s = gw.stream(r) => s,
                        _ = closed(&mut rx) => Err(cancelled(&model)),
                    }
                }
            };
            let mut s = match opened {
                Ok(s) => s,
                Err(e) => {
                    streams.lock().remove(&id);
                    hub.err(id, &e);
                    return;
                }
            };
            hub.ok(id, Event::Opened, &s.fallback_index());
            read_ahead(&mut s, &mut rx, window.clamp(1, MAX_STREAM_WINDOW), id, &hub).await;
            streams.lock().remove(&id);
            // Dropping `s` here closes the upstream connection.
            drop(s);
        });
    }

    /// Gives an open stream `credit` more chunks to read ahead (what the
    /// consumer took since the last grant). False if it is over.
    #[napi]
    pub fn pull(&self, id: u32, credit: u32) -> bool {
        self.streams.lock().get(&id).is_some_and(|tx| tx.send(credit).is_ok())
    }

    /// Closes a stream (opening or open); its upstream request stops.
    #[napi]
    pub fn close(&self, id: u32) -> bool {
        self.streams.lock().remove(&id).is_some()
    }

    /// Cancels call `id`. For a submitted job, the core `Job::cancel`
    /// answer (false if the job had already finished).
    #[napi]
    pub fn cancel(&self, id: u32) -> bool {
        let Some(ctl) = self.ops.lock().get(&id).cloned() else {
            return false;
        };
        let answer = {
            let mut st = ctl.state.lock();
            st.cancelled = true;
            match &st.job {
                Some(job) => job.cancel(),
                None => true,
            }
        };
        ctl.notify.notify_one();
        answer
    }

    /// Graceful shutdown; settles `id` with the shutdown report ("r").
    /// `timeout_ms`: any finite value >= 0 (clamped to
    /// `bifrost_core::bounds::MAX_WAIT`); NaN, infinities and negatives
    /// settle `id` with INVALID_REQUEST and shut nothing down.
    #[napi]
    pub fn shutdown(&self, id: u32, timeout_ms: f64) {
        let (gw, hub) = (self.gw.clone(), self.hub.clone());
        let timeout = match bounds::millis(timeout_ms, "timeoutMs") {
            Ok(t) => t,
            Err(e) => {
                hub.err(id, &e);
                return;
            }
        };
        self.spawn_settled(id, async move {
            let report = gw.shutdown(timeout).await;
            hub.ok(id, Event::Response, &report);
        });
    }

    /// Stats (docs/architecture.md §8) as JSON text.
    #[napi]
    pub fn stats(&self) -> napi::Result<String> {
        serde_json::to_string(&self.gw.stats()).map_err(|e| napi::Error::from_reason(e.to_string()))
    }

    /// Health as JSON text.
    #[napi]
    pub fn health(&self) -> napi::Result<String> {
        serde_json::to_string(&self.gw.health()).map_err(|e| napi::Error::from_reason(e.to_string()))
    }

    /// Prometheus text.
    #[napi]
    pub fn prometheus(&self) -> String {
        self.gw.prometheus()
    }
}
