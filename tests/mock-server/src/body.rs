//! The streaming response body shared by every provider.
//!
//! A provider renders its whole stream up front as a list of frames (SSE
//! events or event-stream messages), each marked whether it is a content
//! chunk; [`FrameBody`] then hands them to hyper one by one, sleeping
//! `chunk_delay_ms` before each content chunk (and `first_chunk_delay_ms`
//! more before the first); a stalled body then stays open, sending nothing.
//!
//! The body is also the stream's accounting guard: it counts the stream
//! *completed* when it yields its end, and *aborted by client* when it is
//! dropped before that — hyper drops a body only when the connection is gone.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use crate::behave::Shared;

/// Frames of one stream, in order; `true` marks a content chunk (delayed).
pub(crate) type Frames = Vec<(bool, Bytes)>;

/// A stream of pre-rendered frames with per-chunk delay and an accounting guard.
pub(crate) struct FrameBody {
    frames: std::vec::IntoIter<(bool, Bytes)>,
    delay: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    /// The frame waiting for `sleep`.
    held: Option<Bytes>,
    shared: Arc<Shared>,
    finished: bool,
    /// Extra wait before the first content frame (taken when it is used).
    first_delay: Duration,
    /// After the last frame, stay open instead of ending.
    stall: bool,
}

impl FrameBody {
    /// Starts a stream (counted as started now).
    pub(crate) fn new(shared: Arc<Shared>, frames: Frames, delay: Duration) -> FrameBody {
        shared.counters.stream_started();
        FrameBody {
            frames: frames.into_iter(),
            delay,
            sleep: None,
            held: None,
            shared,
            finished: false,
            first_delay: Duration::ZERO,
            stall: false,
        }
    }

    /// Waits `first` more before the first content frame.
    pub(crate) fn first_delay(mut self, first: Duration) -> FrameBody {
        self.first_delay = first;
        self
    }

    /// After the last frame, keeps the body open forever (`stall_after`).
    pub(crate) fn stall(mut self, stall: bool) -> FrameBody {
        self.stall = stall;
        self
    }
}

impl Stream for FrameBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(held) = this.held.take() {
            if let Some(sleep) = this.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    this.held = Some(held);
                    return Poll::Pending;
                }
            }
            return Poll::Ready(Some(Ok(held)));
        }
        match this.frames.next() {
            Some((true, frame)) if !(this.delay + this.first_delay).is_zero() => {
                let deadline = Instant::now() + this.delay + std::mem::take(&mut this.first_delay);
                match this.sleep.as_mut() {
                    Some(s) => s.as_mut().reset(deadline),
                    None => this.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
                }
                this.held = Some(frame);
                if let Some(sleep) = this.sleep.as_mut() {
                    ready!(sleep.as_mut().poll(cx));
                }
                Poll::Ready(this.held.take().map(Ok))
            }
            Some((_, frame)) => Poll::Ready(Some(Ok(frame))),
            // Never woken: the body ends only when hyper drops it (the
            // client went away), counted as aborted by the client.
            None if this.stall => Poll::Pending,
            None => {
                if !this.finished {
                    this.finished = true;
                    this.shared.counters.stream_ended(true);
                }
                Poll::Ready(None)
            }
        }
    }
}

impl Drop for FrameBody {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.counters.stream_ended(false);
        }
    }
}
