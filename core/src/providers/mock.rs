//! The embedded mock provider: in-process, no network, no keys.
//!
//! It answers `"echo: <last user message>"` in the OpenAI shape with usage
//! counted in whitespace-separated words, after `latency_ms` plus up to
//! `jitter_ms`, and injects failures (`failure_rate` → PROVIDER error with
//! `failure_status`) and real panics (`panic_rate`) for testing the pool.
//! Every knob can be overridden per request (`"mock": {...}`).
//!
//! Randomness is reproducible: with a provider `seed`, the provider's Nth
//! call that draws anything (each retry is a call) draws the same numbers on
//! every run; with a request `seed`, the same request draws the same numbers
//! whenever it runs. Without a seed it is random.

use std::collections::VecDeque;
use std::time::Duration;

use crate::config::MockConfig;
use crate::error::{Error, Result};
use crate::providers::{CallCtx, ChunkStream};
use crate::types::{
    AssistantMessage, Choice, Chunk, Delta, EmbedRequest, EmbedResponse, EmbedUsage, Embedding, EmbeddingVector,
    ExtraFields, Request, Response, Usage,
};

pub(crate) struct MockProvider {
    name: String,
    base: MockConfig,
    /// Calls so far that drew under the provider seed (numbers them).
    seeded_calls: std::sync::atomic::AtomicU64,
}

/// The random draws of one call, taken up front so that a seed fixes them all.
struct Draw<'a> {
    latency: Duration,
    fail: bool,
    panic: bool,
    cfg: std::borrow::Cow<'a, MockConfig>,
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// `chatcmpl-mock-<job id>`, without the formatting machinery (hot path).
fn completion_id(job_id: u64) -> String {
    const PREFIX: &str = "chatcmpl-mock-";
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(job_id);
    let mut id = String::with_capacity(PREFIX.len() + digits.len());
    id.push_str(PREFIX);
    id.push_str(digits);
    id
}

/// SplitMix64: mixes a seed with job and attempt numbers.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl MockProvider {
    pub fn new(name: &str, base: MockConfig) -> Self {
        MockProvider { name: name.to_string(), base, seeded_calls: Default::default() }
    }

    fn draw(&self, over: Option<&MockConfig>, ctx: &CallCtx<'_>) -> Draw<'_> {
        let cfg = match over {
            Some(o) => std::borrow::Cow::Owned(self.base.overlay(o)),
            None => std::borrow::Cow::Borrowed(&self.base),
        };
        let random = cfg.jitter_ms.unwrap_or(0) > 0
            || cfg.panic_rate.unwrap_or(0.0) > 0.0
            || cfg.failure_rate.unwrap_or(0.0) > 0.0;
        if !random {
            // Nothing to draw (and nothing a seed would change).
            let latency = Duration::from_millis(cfg.latency_ms.unwrap_or(0));
            return Draw { latency, panic: false, fail: false, cfg };
        }
        let request_seed = over.and_then(|o| o.seed);
        let mut rng = match (request_seed, self.base.seed) {
            (Some(s), _) => fastrand::Rng::with_seed(mix(s ^ mix(ctx.attempt as u64))),
            (None, Some(s)) => {
                let call = self.seeded_calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                fastrand::Rng::with_seed(mix(s ^ mix(call)))
            }
            (None, None) => fastrand::Rng::new(),
        };
        let jitter = match cfg.jitter_ms.unwrap_or(0) {
            0 => 0,
            j => rng.u64(0..=j),
        };
        let latency = Duration::from_millis(cfg.latency_ms.unwrap_or(0) + jitter);
        let panic_roll = rng.f64();
        let fail_roll = rng.f64();
        Draw {
            latency,
            panic: panic_roll < cfg.panic_rate.unwrap_or(0.0),
            fail: fail_roll < cfg.failure_rate.unwrap_or(0.0),
            cfg,
        }
    }

    /// Waits the drawn latency, then panics or fails if the draw says so.
    async fn behave(&self, d: &Draw<'_>) -> Result<()> {
        if let Some(ms) = d.cfg.stall_ms.filter(|ms| *ms > 0) {
            // Deliberately blocks the thread: a broken provider, for the stall detector.
            std::thread::sleep(Duration::from_millis(ms));
        }
        if !d.latency.is_zero() {
            tokio::time::sleep(d.latency).await;
        }
        if d.panic {
            panic!("mock provider '{}' injected a panic (panic_rate={})", self.name, d.cfg.panic_rate.unwrap_or(0.0));
        }
        if d.fail {
            let status = d.cfg.failure_status.unwrap_or(500);
            return Err(Error::Provider {
                provider: self.name.clone(),
                status,
                message: format!("mock failure (failure_rate={})", d.cfg.failure_rate.unwrap_or(0.0)),
                body: format!(
                    "{{\"error\":{{\"message\":\"mock failure\",\"type\":\"mock_error\",\"code\":{status}}}}}"
                ),
                retry_after_ms: None,
            });
        }
        Ok(())
    }

    fn reply(req: &Request) -> (String, Usage) {
        let last = req.last_user_text();
        let mut content = String::with_capacity(6 + last.len());
        content.push_str("echo: ");
        content.push_str(&last);
        let prompt: u64 = req.messages.iter().map(|m| words(&m.content.text())).sum();
        let completion = 1 + words(&last);
        (content, Usage::counts(prompt, completion))
    }

    pub async fn chat(&self, req: &Request, ctx: &CallCtx<'_>) -> Result<Response> {
        let d = self.draw(req.mock.as_ref(), ctx);
        self.behave(&d).await?;
        let (content, usage) = Self::reply(req);
        Ok(Response {
            id: completion_id(ctx.job_id),
            object: "chat.completion".into(),
            created: super::unix_now_s(),
            model: ctx.model.to_string(),
            choices: vec![Choice {
                index: 0,
                message: AssistantMessage { role: "assistant".into(), content: Some(content), ..Default::default() },
                finish_reason: Some("stop".into()),
                other: Default::default(),
            }],
            usage,
            other: Default::default(),
            extra_fields: ExtraFields::default(),
        })
    }

    /// Waits the latency (time to first byte), then returns every chunk.
    pub async fn stream(&self, req: &Request, ctx: &CallCtx<'_>) -> Result<ChunkStream> {
        let d = self.draw(req.mock.as_ref(), ctx);
        self.behave(&d).await?;
        let (content, usage) = Self::reply(req);
        let n = d.cfg.stream_chunks.unwrap_or(4).max(1) as usize;
        let chars: Vec<char> = content.chars().collect();
        let per = chars.len().div_ceil(n).max(1);
        let id = completion_id(ctx.job_id);
        let created = super::unix_now_s();
        let mut chunks = VecDeque::with_capacity(n + 1);
        let pieces: Vec<String> = chars.chunks(per).map(|c| c.iter().collect()).collect();
        let mk = |delta: Delta, finish: Option<std::borrow::Cow<'static, str>>, usage: Option<Usage>| {
            Chunk::of(&id, created, ctx.model, delta, finish, usage)
        };
        for (i, piece) in pieces.into_iter().enumerate() {
            let role = (i == 0).then_some(std::borrow::Cow::Borrowed("assistant"));
            chunks.push_back(Ok(mk(Delta { role, ..Delta::text(piece) }, None, None)));
        }
        chunks.push_back(Ok(mk(Delta::default(), Some("stop".into()), Some(usage))));
        Ok(ChunkStream::ready(chunks))
    }

    /// Deterministic unit vectors derived from each input's text.
    pub async fn embed(&self, req: &EmbedRequest, ctx: &CallCtx<'_>) -> Result<EmbedResponse> {
        let d = self.draw(req.mock.as_ref(), ctx);
        self.behave(&d).await?;
        let dims = match req.params.get("dimensions") {
            None => 16,
            Some(v) => match v.as_u64() {
                Some(n @ 1..=4096) => n as usize,
                _ => return Err(Error::invalid(format!("params.dimensions must be an integer 1..=4096, got {v}"))),
            },
        };
        let mut data = Vec::new();
        let mut tokens = 0;
        for (i, text) in req.input.texts().into_iter().enumerate() {
            tokens += words(text);
            let seed = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut v: Vec<f64> = (0..dims).map(|_| rng.f64() * 2.0 - 1.0).collect();
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(f64::EPSILON);
            v.iter_mut().for_each(|x| *x /= norm);
            data.push(Embedding {
                object: "embedding".into(),
                index: i as u32,
                embedding: EmbeddingVector::Floats(v),
                other: Default::default(),
            });
        }
        Ok(EmbedResponse {
            object: "list".into(),
            data,
            model: ctx.model.to_string(),
            usage: EmbedUsage { prompt_tokens: tokens, total_tokens: tokens, other: Default::default() },
            other: Default::default(),
            extra_fields: ExtraFields::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_ids_match_the_formatted_ones() {
        for id in [0, 7, 10, 99, 1_234_567_890, u64::MAX] {
            assert_eq!(completion_id(id), format!("chatcmpl-mock-{id}"));
        }
    }

    #[test]
    fn reply_echoes_and_counts_words() {
        let (content, usage) = MockProvider::reply(&Request::new("mock/m", "hello big world"));
        assert_eq!(content, "echo: hello big world");
        assert_eq!((usage.prompt_tokens, usage.completion_tokens, usage.total_tokens), (3, 4, 7));
        let (content, usage) = MockProvider::reply(&Request::new("mock/m", ""));
        assert_eq!(content, "echo: ");
        assert_eq!(usage.completion_tokens, 1);
    }
}
