//! A mock LLM provider server that speaks the real wire protocols of OpenAI,
//! Anthropic and AWS Bedrock over loopback HTTP, so bifrost's HTTP providers
//! can be tested and benchmarked without the internet.
//!
//! Every route answers `"echo: <text of the last user message>"` with usage
//! counted in whitespace-separated words, like bifrost's in-process mock:
//!
//! | route | protocol |
//! |---|---|
//! | `POST /v1/chat/completions`, `/chat/completions` | OpenAI chat, unary or SSE (`data: [DONE]`) |
//! | `POST /v1/embeddings`, `/embeddings` | OpenAI embeddings (deterministic unit vectors) |
//! | `POST /v1/messages` | Anthropic messages, unary or named SSE events |
//! | `POST /model/{modelId}/converse` | Bedrock Converse (JSON) |
//! | `POST /model/{modelId}/converse-stream` | Bedrock ConverseStream (AWS event-stream frames) |
//! | `GET /_mock/stats`, `POST /_mock/reset` | counters for tests ([`MockStats`]) |
//! | `GET /_mock/admissions` | the rate limits' log of admitted requests (`[{at_ns, tokens}]`) |
//! | `GET /_mock/requests` | the requests sent with `record=1`, as they arrived ([`RecordedRequest`]) |
//!
//! Misbehaviour (latency, failures, slow/cut/failing streams, hangs) is asked
//! for per request with [`Directives`], in the `x-mock` header or after a `~`
//! in the model name: `gpt-4o~fail_status=503&fail_first=2&scenario=s1`.
//!
//! Rate limits ([`MockLimits`]: requests and tokens per minute) are enforced
//! like the real APIs' when configured: 429 with `Retry-After`, and the
//! providers' `x-ratelimit-*` / `anthropic-ratelimit-*` headers on every
//! chat response; [`MockServer::admissions`] lists what was admitted when.
//!
//! Use it in-process with [`MockServer::start`], or run the `bifrost-mock`
//! binary, which prints its port alone on its first line.

mod anthropic;
mod bedrock;
mod behave;
mod body;
pub mod directives;
mod fixture;
pub mod limits;
mod openai;
mod record;
mod server;
mod stats;
mod text;

pub use directives::{DirectiveError, Directives};
pub use limits::{Admission, MockLimits};
pub use record::RecordedRequest;
pub use server::{MockConfig, MockServer};
pub use stats::{MockStats, RouteCounts};
