//! Requests and responses: the OpenAI chat shape plus bifrost's routing fields
//! (docs/architecture.md §5).
//!
//! These types serialize to exactly the JSON the bindings hand their users,
//! so Python, Node and C see the same keys as Rust. `Request::validate`
//! catches malformed requests before they reach a queue, with messages that
//! say what to fix.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::MockConfig;
use crate::error::{Error, Result};

/// A chat request (`{"model": "provider/model", "messages": [...], ...}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ChatRequest")]
pub struct Request {
    /// `"<provider>/<model>"`.
    pub model: String,
    /// The conversation, oldest first.
    pub messages: Vec<Message>,
    /// OpenAI request parameters (`temperature`, `max_tokens`, `tools`, …).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub params: Map<String, Value>,
    /// `"provider/model"` targets tried in order when the primary fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
    /// One end-to-end deadline in ms: queue wait, every attempt and backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The tokens this request will use, prompt and completion, when the
    /// caller counted them (a tokenizer): what the provider's `limits`
    /// reserve instead of bifrost's estimate (docs/architecture.md §10).
    /// Never sent to the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_tokens: Option<u64>,
    /// This request's own failover actions, over its provider's
    /// (docs/failover.md). Never sent to the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<crate::failover::FailoverConfig>,
    /// Per-request overrides for the mock provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mock: Option<MockConfig>,
}

/// One chat message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Message {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text, or a list of content parts (`[{"type": "text", "text": ...}]`).
    #[serde(default)]
    pub content: Content,
    /// Optional participant name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tool calls requested by an assistant message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Value>,
    /// The call a `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Every other field of the message (`refusal`, `audio`, …): sent to
    /// OpenAI-compatible providers unchanged; the others report what they
    /// cannot map in `extra_fields.unmapped_params` (docs/architecture.md §12).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Message {
    /// A message with plain-text content.
    pub fn new(role: impl Into<String>, text: impl Into<String>) -> Self {
        Message { role: role.into(), content: Content::Text(text.into()), ..Default::default() }
    }
}

/// Message content: a string, or OpenAI content parts.
#[derive(Debug, Clone, PartialEq, Serialize, Default, schemars::JsonSchema)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Content {
    Text(String),
    Parts(Vec<Value>),
    #[default]
    Null,
}

/// Deserialized by the JSON type it finds (a derived untagged enum would
/// buffer every message's content and try each variant in turn).
impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Content;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, a list of content parts or null")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Content, E> {
                Ok(Content::Text(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> std::result::Result<Content, E> {
                Ok(Content::Text(v))
            }
            fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<Content, E> {
                Ok(Content::Null)
            }
            fn visit_none<E: serde::de::Error>(self) -> std::result::Result<Content, E> {
                Ok(Content::Null)
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<Content, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Content, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(p) = seq.next_element()? {
                    parts.push(p);
                }
                Ok(Content::Parts(parts))
            }
        }
        d.deserialize_any(Visit)
    }
}

impl Content {
    /// The text of the content: the string, or the `text` parts joined.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Content::Text(s) => std::borrow::Cow::Borrowed(s),
            Content::Parts(parts) => {
                let texts: Vec<&str> = parts
                    .iter()
                    .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect();
                std::borrow::Cow::Owned(texts.join(" "))
            }
            Content::Null => std::borrow::Cow::Borrowed(""),
        }
    }
}

const ROLES: [&str; 5] = ["system", "developer", "user", "assistant", "tool"];

/// Splits `"provider/model"`; the model part may itself contain `/`.
pub(crate) fn split_model(model: &str) -> Result<(&str, &str)> {
    match model.split_once('/') {
        Some((p, m)) if !p.is_empty() && !m.is_empty() => Ok((p, m)),
        _ => Err(Error::invalid(format!(
            "model must be \"<provider>/<model>\" (for example \"openai/gpt-4o-mini\"), got {model:?}"
        ))),
    }
}

pub(crate) fn check_timeout(timeout_ms: Option<u64>) -> Result<()> {
    if let Some(t) = timeout_ms {
        if t == 0 || t > 3_600_000 {
            return Err(Error::invalid(format!("timeout_ms must be 1..=3600000, got {t}")));
        }
    }
    Ok(())
}

impl Request {
    /// A request for `model` with one user message.
    pub fn new(model: impl Into<String>, user_text: impl Into<String>) -> Self {
        Request { model: model.into(), messages: vec![Message::new("user", user_text)], ..Default::default() }
    }

    /// Parses the §5 JSON, with the failing key's path in the message.
    pub fn from_json(text: &str) -> Result<Request> {
        crate::bounds::parse_strict(text).map_err(|e| Error::invalid(e.joined()))
    }

    /// Like [`Request::from_json`] from a parsed value.
    pub fn from_value(v: Value) -> Result<Request> {
        Request::deserialize(&v).or_else(|_| serde_path_to_error::deserialize(&v).map_err(request_error))
    }

    /// Checks the request's shape; the message says what to fix.
    pub fn validate(&self) -> Result<()> {
        split_model(&self.model)?;
        if self.messages.is_empty() {
            return Err(Error::invalid("messages must contain at least one message"));
        }
        for (i, m) in self.messages.iter().enumerate() {
            if !ROLES.contains(&m.role.as_str()) {
                return Err(Error::invalid(format!(
                    "messages[{i}].role must be one of system, developer, user, assistant, tool; got {:?}",
                    m.role
                )));
            }
        }
        for (i, f) in self.fallbacks.iter().enumerate() {
            split_model(f)
                .map_err(|_| Error::invalid(format!("fallbacks[{i}] must be \"<provider>/<model>\", got {f:?}")))?;
        }
        check_timeout(self.timeout_ms)?;
        if let Some(f) = &self.failover {
            f.check_request()?;
        }
        if let Some(n) = self.estimated_tokens {
            if n == 0 || n > crate::limits::plan::MAX_ESTIMATED_TOKENS {
                return Err(Error::invalid(format!(
                    "estimated_tokens must be 1..={}, got {n}",
                    crate::limits::plan::MAX_ESTIMATED_TOKENS
                )));
            }
        }
        if let Some(m) = &self.mock {
            m.validate("mock").map_err(|e| match e {
                Error::Config { path, message } => Error::invalid(format!("{path} {message}")),
                other => other,
            })?;
        }
        Ok(())
    }

    /// Text of the last `user` message (what the mock provider echoes).
    pub fn last_user_text(&self) -> std::borrow::Cow<'_, str> {
        self.messages.iter().rev().find(|m| m.role == "user").map(|m| m.content.text()).unwrap_or_default()
    }
}

pub(crate) fn request_error(e: serde_path_to_error::Error<serde_json::Error>) -> Error {
    Error::invalid(crate::bounds::JsonError::from_path(e).joined())
}

/// Token counts of one call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    /// Everything else the provider reported (`prompt_tokens_details`,
    /// `completion_tokens_details`, …), unchanged.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Usage {
    /// Prompt and completion counts, with their total.
    pub fn counts(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            other: Map::new(),
        }
    }
}

/// Where and how a response was produced (bifrost's additions to the shape).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExtraFields {
    /// Provider name that served the request.
    pub provider: String,
    /// Model name without the provider prefix.
    pub model: String,
    /// Submit-to-outcome latency, ms.
    pub latency_ms: u64,
    /// Time the job waited in the queue, µs.
    pub queue_wait_us: u64,
    /// Attempts made (1 + retries).
    pub attempts: u32,
    /// 0 for the primary, i + 1 for `fallbacks[i]`.
    pub fallback_index: u32,
    /// Stable non-secret id of the key used (`openai#0`), if any.
    pub key_id: Option<String>,
    /// What of the request the provider has no equivalent for and was not
    /// sent (`frequency_penalty`, `messages[2].name`, …); absent when
    /// everything was sent (docs/architecture.md §12).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmapped_params: Vec<String>,
}

/// `Option<Option<T>>` from a field that may be absent (`None`), `null`
/// (`Some(None)`) or set: how a wire type tells an explicit `null` apart.
fn nullable<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A field omitted when `None`: an explicit `null` from the provider is
/// kept in `other`, so it is written back as it came.
fn unnull<T>(field: Option<Option<T>>, key: &str, other: &mut Map<String, Value>) -> Option<T> {
    match field {
        Some(Some(v)) => Some(v),
        Some(None) => {
            other.insert(key.to_string(), Value::Null);
            None
        }
        None => None,
    }
}

/// The assistant message of a choice.
///
/// Like every response type, it keeps the fields bifrost does not name
/// (`refusal`, `annotations`, …) as they came, so an OpenAI-compatible
/// answer comes back whole (docs/architecture.md §12).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(from = "AssistantMessageWire")]
pub struct AssistantMessage {
    /// `assistant` (borrowed when it is the well-known value: no allocation).
    #[serde(default)]
    pub role: Cow<'static, str>,
    /// The text; always written, `null` when there is none.
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Value>,
    /// The model's reasoning text, where the provider reports it
    /// (Anthropic thinking, Bedrock reasoning, DeepSeek-style servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Every other field (`refusal`, `annotations`, `audio`, …), unchanged.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The wire form of [`AssistantMessage`] (its schema is the same).
#[derive(Deserialize, schemars::JsonSchema)]
#[schemars(rename = "AssistantMessage")]
struct AssistantMessageWire {
    #[serde(default)]
    role: Cow<'static, str>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    tool_calls: Option<Option<Value>>,
    #[serde(default, deserialize_with = "nullable")]
    reasoning_content: Option<Option<String>>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

impl From<AssistantMessageWire> for AssistantMessage {
    fn from(w: AssistantMessageWire) -> Self {
        let mut other = w.other;
        let tool_calls = unnull(w.tool_calls, "tool_calls", &mut other);
        let reasoning_content = unnull(w.reasoning_content, "reasoning_content", &mut other);
        AssistantMessage { role: w.role, content: w.content, tool_calls, reasoning_content, other }
    }
}

/// One completion choice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Choice {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub message: AssistantMessage,
    /// `stop`, `length`, `tool_calls`, `content_filter` (borrowed when well known).
    #[serde(default)]
    pub finish_reason: Option<Cow<'static, str>>,
    /// Every other field (`logprobs`, …), unchanged.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// An OpenAI `chat.completion` object plus `extra_fields`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(rename = "ChatResponse")]
pub struct Response {
    #[serde(default)]
    pub id: String,
    /// `chat.completion` (borrowed: no allocation per response).
    #[serde(default)]
    pub object: Cow<'static, str>,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<Choice>,
    #[serde(default)]
    pub usage: Usage,
    /// Every other field the provider sent (`system_fingerprint`,
    /// `service_tier`, …), unchanged.
    #[serde(flatten)]
    pub other: Map<String, Value>,
    #[serde(default)]
    pub extra_fields: ExtraFields,
}

impl Response {
    /// Content of the first choice, if any.
    pub fn text(&self) -> Option<&str> {
        self.choices.first().and_then(|c| c.message.content.as_deref())
    }
}

/// The incremental message of a streamed choice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(from = "DeltaWire")]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Cow<'static, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Value>,
    /// A piece of the model's reasoning text (see [`AssistantMessage::reasoning_content`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Every other field (`refusal`, an explicit `"content": null`, …), unchanged.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The wire form of [`Delta`] (its schema is the same).
#[derive(Deserialize, schemars::JsonSchema)]
#[schemars(rename = "Delta")]
struct DeltaWire {
    #[serde(default, deserialize_with = "nullable")]
    role: Option<Option<Cow<'static, str>>>,
    #[serde(default, deserialize_with = "nullable")]
    content: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    tool_calls: Option<Option<Value>>,
    #[serde(default, deserialize_with = "nullable")]
    reasoning_content: Option<Option<String>>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

impl From<DeltaWire> for Delta {
    fn from(w: DeltaWire) -> Self {
        let mut other = w.other;
        Delta {
            role: unnull(w.role, "role", &mut other),
            content: unnull(w.content, "content", &mut other),
            tool_calls: unnull(w.tool_calls, "tool_calls", &mut other),
            reasoning_content: unnull(w.reasoning_content, "reasoning_content", &mut other),
            other,
        }
    }
}

impl Delta {
    /// A delta carrying one piece of text.
    pub fn text(content: String) -> Delta {
        Delta { content: Some(content), ..Delta::default() }
    }

    /// Whether the delta carries anything of the answer: text, reasoning,
    /// a refusal, audio or a tool call (not just a role or empty strings).
    pub fn has_content(&self) -> bool {
        let text = |s: &Option<String>| s.as_deref().is_some_and(|t| !t.is_empty());
        text(&self.content)
            || text(&self.reasoning_content)
            || self.tool_calls.is_some()
            || self.other.get("refusal").and_then(Value::as_str).is_some_and(|t| !t.is_empty())
            || self.other.get("audio").is_some_and(|a| !a.is_null())
    }
}

/// One streamed choice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChunkChoice {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub delta: Delta,
    #[serde(default)]
    pub finish_reason: Option<Cow<'static, str>>,
    /// Every other field (`logprobs`, …), unchanged.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// An OpenAI `chat.completion.chunk` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(from = "ChunkWire")]
pub struct Chunk {
    #[serde(default)]
    pub id: String,
    /// `chat.completion.chunk` (borrowed: no allocation per chunk).
    #[serde(default)]
    pub object: Cow<'static, str>,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    /// Present on the final chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Every other field (`system_fingerprint`, `"usage": null`, …), unchanged.
    #[serde(flatten)]
    pub other: Map<String, Value>,
    /// bifrost's addition, when there is something to say: on a stream's
    /// first chunk, what of the request the provider had no equivalent for
    /// (a stream has no response to carry it); on a restart marker, the
    /// restart (docs/failover.md).
    // Boxed: almost every chunk has none, and a chunk moves through
    // several hands (a box keeps it 96 bytes smaller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_fields: Option<Box<ChunkExtraFields>>,
}

/// What a stream's first chunk adds to OpenAI's shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChunkExtraFields {
    /// As [`ExtraFields::unmapped_params`] (on a stream's first chunk).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmapped_params: Vec<String>,
    /// On a restart marker only: the stream failed after content reached
    /// the caller and a new answer starts after this chunk (whose
    /// `choices` is empty; docs/failover.md "Stream recovery").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<StreamRestart>,
}

/// What a restart marker says: a stream's answer number `attempt` (the
/// first answer is 1) starts now, from `provider`/`model`, because the
/// previous one failed with `reason`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StreamRestart {
    pub attempt: u32,
    pub provider: String,
    pub model: String,
    pub reason: String,
}

/// The wire form of [`Chunk`] (its schema is the same).
#[derive(Deserialize, schemars::JsonSchema)]
#[schemars(rename = "Chunk")]
struct ChunkWire {
    #[serde(default)]
    id: String,
    #[serde(default)]
    object: Cow<'static, str>,
    #[serde(default)]
    created: u64,
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default, deserialize_with = "nullable")]
    usage: Option<Option<Usage>>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

impl From<ChunkWire> for Chunk {
    fn from(w: ChunkWire) -> Self {
        let mut other = w.other;
        let usage = unnull(w.usage, "usage", &mut other);
        // A chunk bifrost wrote (a binding hands it back, e.g. to an
        // accumulator) has its `extra_fields` read back; any other
        // `extra_fields` stays in `other`, unchanged.
        let extra_fields = match other.get("extra_fields") {
            Some(v @ Value::Object(_)) => match ChunkExtraFields::deserialize(v) {
                Ok(x) => {
                    other.remove("extra_fields");
                    Some(Box::new(x))
                }
                Err(_) => None,
            },
            _ => None,
        };
        Chunk {
            id: w.id,
            object: w.object,
            created: w.created,
            model: w.model,
            choices: w.choices,
            usage,
            other,
            extra_fields,
        }
    }
}

impl Chunk {
    /// A `chat.completion.chunk` with one choice; a chunk that only carries
    /// usage (no delta, no finish reason) has no choices, as OpenAI sends it.
    pub(crate) fn of(
        id: &str,
        created: u64,
        model: &str,
        delta: Delta,
        finish_reason: Option<Cow<'static, str>>,
        usage: Option<Usage>,
    ) -> Chunk {
        let usage_only = usage.is_some() && finish_reason.is_none() && delta == Delta::default();
        Chunk {
            id: id.to_string(),
            object: Cow::Borrowed("chat.completion.chunk"),
            created,
            model: model.to_string(),
            choices: if usage_only {
                Vec::new()
            } else {
                vec![ChunkChoice { index: 0, delta, finish_reason, other: Map::new() }]
            },
            usage,
            other: Map::new(),
            extra_fields: None,
        }
    }
}

/// An embeddings request in the OpenAI shape, routed by `model`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedRequest {
    /// `"<provider>/<model>"`.
    pub model: String,
    /// One text or several.
    pub input: EmbedInput,
    /// Extra OpenAI parameters (`dimensions`, `encoding_format`, …).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub params: Map<String, Value>,
    /// End-to-end deadline, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Per-request overrides for the mock provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mock: Option<MockConfig>,
}

/// Embedding input: one string or many.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
#[non_exhaustive]
pub enum EmbedInput {
    One(String),
    Many(Vec<String>),
}

impl Default for EmbedInput {
    fn default() -> Self {
        EmbedInput::Many(Vec::new())
    }
}

impl EmbedInput {
    /// The inputs as a slice-like list.
    pub fn texts(&self) -> Vec<&str> {
        match self {
            EmbedInput::One(s) => vec![s.as_str()],
            EmbedInput::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

impl EmbedRequest {
    /// Parses the JSON shape, with the failing key's path in the message.
    pub fn from_value(v: Value) -> Result<EmbedRequest> {
        EmbedRequest::deserialize(&v).or_else(|_| serde_path_to_error::deserialize(&v).map_err(request_error))
    }

    /// Like [`EmbedRequest::from_value`] from JSON text.
    pub fn from_json(text: &str) -> Result<EmbedRequest> {
        crate::bounds::parse_strict(text).map_err(|e| Error::invalid(e.joined()))
    }

    /// Checks the request's shape.
    pub fn validate(&self) -> Result<()> {
        split_model(&self.model)?;
        if self.input.texts().is_empty() {
            return Err(Error::invalid("input must be a string or a non-empty list of strings"));
        }
        check_timeout(self.timeout_ms)?;
        if let Some(m) = &self.mock {
            m.validate("mock").map_err(|e| match e {
                Error::Config { path, message } => Error::invalid(format!("{path} {message}")),
                other => other,
            })?;
        }
        Ok(())
    }
}

/// One embedding vector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Embedding {
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub index: u32,
    pub embedding: EmbeddingVector,
    /// Every other field, unchanged.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// An embedding as the provider sent it: numbers (kept as f64, so every
/// value comes back exactly) or, with `encoding_format: "base64"`, the
/// base64 text of little-endian f32s.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
#[non_exhaustive]
pub enum EmbeddingVector {
    Floats(Vec<f64>),
    Base64(String),
}

impl Default for EmbeddingVector {
    fn default() -> Self {
        EmbeddingVector::Floats(Vec::new())
    }
}

impl EmbeddingVector {
    /// The numbers, unless the provider sent base64.
    pub fn as_floats(&self) -> Option<&[f64]> {
        match self {
            EmbeddingVector::Floats(v) => Some(v),
            EmbeddingVector::Base64(_) => None,
        }
    }
}

/// Read by the JSON type it finds: a list of numbers or a string.
impl<'de> Deserialize<'de> for EmbeddingVector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = EmbeddingVector;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of numbers or a base64 string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<EmbeddingVector, E> {
                Ok(EmbeddingVector::Base64(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> std::result::Result<EmbeddingVector, E> {
                Ok(EmbeddingVector::Base64(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<EmbeddingVector, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(x) = seq.next_element::<f64>()? {
                    v.push(x);
                }
                Ok(EmbeddingVector::Floats(v))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// An OpenAI embeddings response (`object: "list"`) plus `extra_fields`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EmbedResponse {
    #[serde(default)]
    pub object: String,
    pub data: Vec<Embedding>,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub usage: EmbedUsage,
    /// Every other field the provider sent, unchanged.
    #[serde(flatten)]
    pub other: Map<String, Value>,
    #[serde(default)]
    pub extra_fields: ExtraFields,
}

/// Token counts of an embeddings call (OpenAI's shape: no completion).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EmbedUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    /// Everything else the provider reported, unchanged.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `s` as a `Cow`, borrowed (no allocation) when it is one of the values
/// responses repeat on every call: roles and finish reasons.
pub(crate) fn well_known(s: &str) -> Cow<'static, str> {
    const KNOWN: [&str; 7] = ["assistant", "stop", "length", "tool_calls", "content_filter", "user", "function_call"];
    match KNOWN.iter().find(|k| **k == s) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(s.to_string()),
    }
}

#[cfg(test)]
mod content_tests {
    use super::*;

    fn content_of(json: &str) -> Result<Content> {
        let text = format!(r#"{{"model": "p/m", "messages": [{{"role": "user", "content": {json}}}]}}"#);
        Request::from_json(&text).map(|r| r.messages[0].content.clone())
    }

    #[test]
    fn content_is_text_parts_or_null() {
        assert_eq!(content_of(r#""hi \"there\"""#).unwrap(), Content::Text("hi \"there\"".into()));
        let parts = content_of(r#"[{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]"#).unwrap();
        assert_eq!(parts.text(), "a b");
        assert_eq!(content_of("null").unwrap(), Content::Null);
        let missing = Request::from_json(r#"{"model": "p/m", "messages": [{"role": "user"}]}"#).unwrap();
        assert_eq!(missing.messages[0].content, Content::Null);
        let err = content_of("5").unwrap_err().to_string();
        assert!(
            err.contains("messages[0].content") && err.contains("a string, a list of content parts or null"),
            "{err}"
        );
        // The same from an already parsed value (Python and Node hand those in).
        let v = serde_json::json!({"model": "p/m", "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]});
        assert_eq!(Request::from_value(v).unwrap().messages[0].content.text(), "x");
    }
}
