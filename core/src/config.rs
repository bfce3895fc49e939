//! Gateway configuration: the JSON schema of docs/architecture.md §4, parsed and validated.
//!
//! The schema is a superset of the Go Bifrost gateway's `providers` section,
//! so a Bifrost `config.json` provider block loads unchanged. Parsing is
//! strict: an unknown key is a [`Error::Config`] naming its full path, and
//! every number is checked against a documented range whose bounds appear in
//! the message. Key values of the form `env.NAME` are read from the
//! environment at load time and held as [`Secret`]s, which never print.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};

/// A credential. Its `Debug` and `Display` print `***`, never the value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The credential itself, for the provider call that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Secret {
    /// Replaces an `env.NAME` value by the variable's content; a missing or
    /// empty variable is a CONFIG error at `path` naming the variable.
    pub(crate) fn resolve(&mut self, path: &str) -> Result<()> {
        if let Some(var) = self.0.strip_prefix("env.") {
            match std::env::var(var) {
                Ok(v) if !v.is_empty() => self.0 = v,
                _ => return Err(Error::config(path, format!("environment variable {var} is not set (or empty)"))),
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl schemars::JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A credential: the value, or \"env.NAME\" to read it from the environment, or Bifrost's {\"value\", \"env_var\", \"from_env\"}.",
            "anyOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "properties": {
                        "value": {"type": "string"},
                        "env_var": {"type": "string"},
                        "from_env": {"type": "boolean"}
                    },
                    "additionalProperties": false
                }
            ]
        })
    }
}

impl<'de> Deserialize<'de> for Secret {
    /// A string (literal or `env.NAME`), or Bifrost's object form
    /// `{"value": "...", "env_var": "env.NAME", "from_env": true}`.
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct EnvVarObject {
            #[serde(default)]
            value: String,
            #[serde(default)]
            env_var: Option<String>,
            #[serde(default)]
            from_env: bool,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Object(EnvVarObject),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a string (a value or \"env.NAME\") or {\"value\", \"env_var\", \"from_env\"}",
            )
        })? {
            Raw::Text(s) => Ok(Secret(s)),
            Raw::Object(o) => match (o.from_env, o.env_var) {
                (true, Some(var)) => Ok(Secret(if var.starts_with("env.") { var } else { format!("env.{var}") })),
                _ => Ok(Secret(o.value)),
            },
        }
    }
}

/// The whole gateway configuration.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Bifrost's config version, for what a key's `models` means. `["*"]`
    /// is every model and a list is those models in every version. `[]`
    /// and a missing `models` are no model with `version: 2` (Bifrost ≥ 1.5)
    /// and every model with `version: 1` (Bifrost 1.4); without `version`,
    /// `[]` is no model (Bifrost's default) and a key without `models` is
    /// refused: the two Bifrost versions read it oppositely, and a file
    /// that loaded with either reading would route some requests wrongly.
    #[serde(default)]
    pub version: Option<u64>,
    /// A JSON-schema reference (Bifrost's `$schema`); ignored.
    #[serde(default, rename = "$schema")]
    pub schema: Option<String>,
    /// How many buffers each object pool holds ready at start (0..=100000).
    #[serde(default = "defaults::initial_pool_size")]
    pub initial_pool_size: usize,
    /// Providers by name; a request's `model` is `"<name>/<model>"`.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Where the providers' `limits` buckets live: this process (default)
    /// or a Redis server the whole fleet shares (docs/architecture.md §10).
    #[serde(default)]
    pub limits_store: Option<crate::limits::store_config::LimitsStoreConfig>,
}

/// Which wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ProviderKind {
    /// OpenAI, or any OpenAI-compatible server through `network_config.base_url`.
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
    /// AWS Bedrock's Converse API.
    Bedrock,
    /// The in-process mock provider (no network, no keys).
    Mock,
}

impl ProviderKind {
    /// The lowercase name used in config and stats.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Bedrock => "bedrock",
            ProviderKind::Mock => "mock",
        }
    }

    /// A Bifrost `base_provider_type` bifrost speaks.
    fn from_base_type(name: &str) -> Option<Self> {
        match name {
            "openai" => Some(ProviderKind::Openai),
            "anthropic" => Some(ProviderKind::Anthropic),
            "bedrock" => Some(ProviderKind::Bedrock),
            _ => None,
        }
    }

    fn from_provider_name(name: &str) -> Option<Self> {
        match name {
            "openai" => Some(ProviderKind::Openai),
            "anthropic" => Some(ProviderKind::Anthropic),
            "bedrock" => Some(ProviderKind::Bedrock),
            "mock" => Some(ProviderKind::Mock),
            _ => None,
        }
    }
}

/// One provider: its protocol, keys, limits and queue policy.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Protocol; defaults to the provider's name when that is a known kind.
    #[serde(default)]
    pub kind: Option<ProviderKind>,
    /// API keys, chosen by weight among those whose `models` allow the model.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    /// Endpoint, timeouts and retry policy.
    #[serde(default)]
    pub network_config: NetworkConfig,
    /// Worker count and queue capacity.
    #[serde(default)]
    pub concurrency_and_buffer_size: ConcurrencyConfig,
    /// What `submit` does when the queue is full.
    #[serde(default)]
    pub queue: QueueConfig,
    /// Knobs of the in-process mock provider (`kind: "mock"` only).
    #[serde(default)]
    pub mock: Option<MockConfig>,
    /// Circuit breaker; absent means disabled.
    #[serde(default)]
    pub circuit_breaker: Option<CircuitBreakerConfig>,
    /// What each failure class does: retry, fallback or return
    /// (docs/failover.md; defaults when absent).
    #[serde(default)]
    pub failover: Option<crate::failover::FailoverConfig>,
    /// Adaptive worker count; absent means a fixed `concurrency`.
    #[serde(default)]
    pub scaling: Option<ScalingConfig>,
    /// Request and token limits bifrost keeps to before the provider's 429
    /// (docs/architecture.md §10); absent means none.
    #[serde(default)]
    pub limits: Option<crate::limits::plan::LimitsConfig>,
    /// Startup probe: `true` (model from the first key's `models`, or any
    /// model for `mock`) or `{"model": "..."}`. Its result shows in `health()`.
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    /// Outbound proxy (Bifrost's `proxy_config`), used by HTTP providers.
    #[serde(default)]
    pub proxy_config: Option<ProxyConfig>,
    /// Bifrost compatibility: accepted and ignored; bifrost always returns
    /// the normalized OpenAI shape.
    #[serde(default)]
    pub send_back_raw_response: Option<bool>,
    /// Bifrost compatibility: accepted and ignored.
    #[serde(default)]
    pub send_back_raw_request: Option<bool>,
    /// Bifrost compatibility: accepted and ignored.
    #[serde(default)]
    pub store_raw_request_response: Option<bool>,
    /// Bifrost compatibility (`{"disable_store": bool}`): accepted and ignored.
    #[serde(default)]
    pub openai_config: Option<serde_json::Value>,
    /// Bifrost's operator labels (no effect on routing): accepted and ignored.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Bifrost's operator labels (no effect on routing): accepted and ignored.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Bifrost's custom provider: `base_provider_type` (`openai`,
    /// `anthropic`, `bedrock`) sets `kind`; other fields are refused by name.
    #[serde(default)]
    pub custom_provider_config: Option<CustomProviderConfig>,
    /// Bifrost's pre-1.0 provider-level credentials: refused by name
    /// (current Bifrost ignores it; bifrost will not drop credentials silently).
    #[serde(default)]
    #[schemars(skip)]
    pub meta_config: Option<serde::de::IgnoredAny>,
}

/// Bifrost's `custom_provider_config`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomProviderConfig {
    /// The protocol this provider reuses.
    pub base_provider_type: String,
    /// The provider needs no key (requests go without credentials).
    #[serde(default)]
    pub is_key_less: bool,
    /// Which request types are allowed: refused by name (not supported yet).
    #[serde(default)]
    #[schemars(skip)]
    pub allowed_requests: Option<serde::de::IgnoredAny>,
    /// Per-request-type paths: refused by name (not supported yet).
    #[serde(default)]
    #[schemars(skip)]
    pub request_path_overrides: Option<serde::de::IgnoredAny>,
}

/// When a provider's circuit opens and how it recovers.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakerConfig {
    /// Consecutive failures that open the circuit (1..=10000, default 5).
    #[serde(default = "defaults::failure_threshold")]
    pub failure_threshold: u32,
    /// Also open when this share of calls in `window_ms` failed (0..=1).
    #[serde(default)]
    pub error_rate: Option<f64>,
    /// Window for `error_rate` (1..=3600000 ms, default 10000).
    #[serde(default = "defaults::window_ms")]
    pub window_ms: u64,
    /// Calls needed in the window before `error_rate` applies (1..=100000, default 20).
    #[serde(default = "defaults::min_requests")]
    pub min_requests: u64,
    /// How long the circuit stays open (1..=3600000 ms, default 30000).
    #[serde(default = "defaults::open_ms")]
    pub open_ms: u64,
    /// Probe calls allowed when half-open; that many successes close it
    /// (1..=1000, default 1).
    #[serde(default = "defaults::half_open_probes")]
    pub half_open_probes: u32,
}

/// The startup probe setting.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
#[non_exhaustive]
pub enum HealthCheck {
    Enabled(bool),
    Model {
        /// Model the probe asks (one token, prompt "ping").
        model: String,
    },
}

impl ProviderConfig {
    /// The model the startup probe uses, if the probe is on.
    pub fn probe_model(&self, name: &str, kind: ProviderKind) -> Result<Option<String>> {
        match &self.health_check {
            None | Some(HealthCheck::Enabled(false)) => Ok(None),
            Some(HealthCheck::Model { model }) => Ok(Some(model.clone())),
            Some(HealthCheck::Enabled(true)) => {
                if kind == ProviderKind::Mock {
                    return Ok(Some("health-check".into()));
                }
                self.keys
                    .iter()
                    .flat_map(|k| k.models.iter())
                    .find(|m| m.as_str() != "*")
                    .cloned()
                    .map(Some)
                    .ok_or_else(|| {
                        Error::config(
                            format!("providers.{name}.health_check"),
                            "true needs a model to probe: set {\"model\": \"...\"} (no key lists a model)",
                        )
                    })
            }
        }
    }
}

/// Adaptive worker scaling of one pool.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScalingConfig {
    /// Fewest workers (1..=10000); the pool starts at `concurrency` clamped
    /// to `min_workers..=max_workers`.
    pub min_workers: usize,
    /// Most workers (min_workers..=10000).
    pub max_workers: usize,
    /// Scale up when queue depth / capacity reaches this (0..=1, default 0.8).
    #[serde(default = "defaults::scale_up_threshold")]
    pub scale_up_threshold: f64,
    /// Idle workers may retire when queue depth / capacity is at or below
    /// this (0..=1, below the up threshold, default 0.3).
    #[serde(default = "defaults::scale_down_threshold")]
    pub scale_down_threshold: f64,
    /// Also scale up when the recent average processing time exceeds this (ms).
    #[serde(default)]
    pub max_latency_ms: Option<u64>,
    /// How often the controller looks, and the least time between two
    /// scale-ups (10..=600000 ms, default 1000).
    #[serde(default = "defaults::min_scale_interval_ms")]
    pub min_scale_interval_ms: u64,
    /// A worker idle this long retires, down to `min_workers`
    /// (10..=86400000 ms, default 30000).
    #[serde(default = "defaults::idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Workers multiply by this on each scale-up (1..=10, default 2).
    #[serde(default = "defaults::scale_up_factor")]
    pub scale_up_factor: f64,
}

/// Outbound proxy settings (Bifrost's `proxy_config`).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// `none`, `http`, `socks5` or `environment`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Proxy URL (may be `env.NAME`).
    #[serde(default)]
    pub url: Option<Secret>,
    /// Proxy user (may be `env.NAME`).
    #[serde(default)]
    pub username: Option<Secret>,
    /// Proxy password (may be `env.NAME`).
    #[serde(default)]
    pub password: Option<Secret>,
    /// Extra CA certificate for TLS-intercepting proxies.
    #[serde(default)]
    pub ca_cert_pem: Option<Secret>,
}

/// AWS credentials of a Bedrock key (Bifrost's `bedrock_key_config`).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BedrockKeyConfig {
    #[serde(default)]
    pub access_key: Option<Secret>,
    #[serde(default)]
    pub secret_key: Option<Secret>,
    #[serde(default)]
    pub session_token: Option<Secret>,
    /// AWS region, e.g. `us-east-1` (required; may be `env.NAME`).
    #[serde(default)]
    pub region: Secret,
    /// Inference-profile ARN prefix used with `deployments`.
    #[serde(default)]
    pub arn: Option<Secret>,
    /// Model name → inference profile / model id.
    #[serde(default)]
    pub deployments: BTreeMap<String, String>,
    /// STS AssumeRole (Bifrost): refused by name when set (not supported yet).
    #[serde(default)]
    pub role_arn: Option<Secret>,
    #[serde(default)]
    pub external_id: Option<Secret>,
    #[serde(default)]
    pub session_name: Option<Secret>,
    /// Bifrost's batch API buckets: accepted and ignored (no batch API here).
    #[serde(default)]
    #[schemars(skip)]
    pub batch_s3_config: Option<serde::de::IgnoredAny>,
    /// Bifrost's Bedrock Mantle project (no effect on Converse): ignored.
    #[serde(default)]
    pub project_id: Option<Secret>,
}

/// Bifrost's built-in provider names that bifrost does not speak yet (a
/// provider of one of these names without `kind` is refused by name).
const BIFROST_KINDS_NOT_SUPPORTED: &[&str] = &[
    "azure",
    "vertex",
    "bedrock_mantle",
    "cohere",
    "mistral",
    "ollama",
    "groq",
    "gemini",
    "opencode-go",
    "opencode-zen",
    "openrouter",
    "sgl",
    "parasail",
    "perplexity",
    "replicate",
    "elevenlabs",
    "deepgram",
    "cerebras",
    "deepseek",
    "vllm",
    "huggingface",
    "fireworks",
    "nebius",
    "xai",
    "runway",
    "runware",
    "sarvam",
    "wafer",
    "together",
    "sapaicore",
];

fn not_supported(path: impl Into<String>, what: impl fmt::Display) -> Error {
    Error::config(path, format!("{what} is not supported yet"))
}

impl ProviderConfig {
    /// Refuses, by name, the Bifrost fields bifrost reads but cannot honour
    /// (so no Bifrost file loads and then routes differently).
    fn check_bifrost_fields(&self, name: &str, base: &str) -> Result<()> {
        if self.meta_config.is_some() {
            return Err(Error::config(
                format!("{base}.meta_config"),
                "is Bifrost's pre-1.0 credentials block and is not supported (current Bifrost ignores it): \
                 move the credentials to keys[].value or keys[].bedrock_key_config",
            ));
        }
        if let Some(c) = &self.custom_provider_config {
            let cp = format!("{base}.custom_provider_config");
            let Some(kind) = ProviderKind::from_base_type(&c.base_provider_type) else {
                return Err(not_supported(
                    format!("{cp}.base_provider_type"),
                    // A provider type, not a secret: safe to quote (bounded).
                    format_args!(
                        "base provider type '{}' (bifrost speaks openai, anthropic, bedrock)",
                        c.base_provider_type.chars().take(64).collect::<String>()
                    ),
                ));
            };
            if self.kind.is_some_and(|k| k != kind) {
                return Err(Error::config(
                    format!("{base}.kind"),
                    format!("disagrees with custom_provider_config.base_provider_type '{}'", kind.as_str()),
                ));
            }
            if c.allowed_requests.is_some() {
                return Err(not_supported(format!("{cp}.allowed_requests"), "restricting request types"));
            }
            if c.request_path_overrides.is_some() {
                return Err(not_supported(format!("{cp}.request_path_overrides"), "overriding request paths"));
            }
            if c.is_key_less && kind == ProviderKind::Bedrock {
                return Err(Error::config(format!("{cp}.is_key_less"), "a bedrock provider needs credentials"));
            }
        } else if self.kind.is_none() && BIFROST_KINDS_NOT_SUPPORTED.contains(&name) {
            return Err(Error::config(
                format!("{base}.kind"),
                format!(
                    "provider kind '{name}' is not supported yet (for an OpenAI-compatible server set \
                     \"kind\": \"openai\" and network_config.base_url)"
                ),
            ));
        }
        if let Some(t) = &self.tags {
            if t.len() > 50 || t.iter().any(|x| x.is_empty() || x.len() > 64) {
                return Err(Error::config(format!("{base}.tags"), "at most 50 tags of 1..=64 characters"));
            }
        }
        if let Some(m) = &self.metadata {
            if m.len() > 50 || m.iter().any(|(k, v)| k.is_empty() || k.len() > 256 || v.len() > 512) {
                return Err(Error::config(
                    format!("{base}.metadata"),
                    "at most 50 entries, keys of 1..=256 and values of ..=512 characters",
                ));
            }
        }
        let np = format!("{base}.network_config");
        if !self.network_config.beta_header_overrides.is_empty() {
            return Err(not_supported(format!("{np}.beta_header_overrides"), "rewriting anthropic-beta headers"));
        }
        if self.network_config.allow_private_network == Some(false) {
            return Err(not_supported(
                format!("{np}.allow_private_network"),
                "false (refusing private base_url addresses; bifrost does not filter addresses, which is true)",
            ));
        }
        for (i, k) in self.keys.iter().enumerate() {
            let kp = format!("{base}.keys[{i}]");
            for (field, kind, set) in [
                ("azure_key_config", "azure", k.azure_key_config.is_some()),
                ("vertex_key_config", "vertex", k.vertex_key_config.is_some()),
                ("vllm_key_config", "vllm", k.vllm_key_config.is_some()),
                ("ollama_key_config", "ollama", k.ollama_key_config.is_some()),
                ("sgl_key_config", "sgl", k.sgl_key_config.is_some()),
                ("replicate_key_config", "replicate", k.replicate_key_config.is_some()),
                ("bedrock_mantle_key_config", "bedrock_mantle", k.bedrock_mantle_key_config.is_some()),
                ("huggingface_key_config", "huggingface", k.huggingface_key_config.is_some()),
            ] {
                if set {
                    return Err(not_supported(format!("{kp}.{field}"), format_args!("provider kind '{kind}'")));
                }
            }
            if let Some(b) = &k.bedrock_key_config {
                for (field, v) in
                    [("role_arn", &b.role_arn), ("external_id", &b.external_id), ("session_name", &b.session_name)]
                {
                    if v.as_ref().is_some_and(|v| !v.expose().is_empty()) {
                        return Err(not_supported(
                            format!("{kp}.bedrock_key_config.{field}"),
                            "STS AssumeRole (role_arn, external_id, session_name)",
                        ));
                    }
                }
            }
            for (a, alias) in &k.aliases {
                if a.trim().is_empty() || a.trim() != a || alias.model_id.trim().is_empty() {
                    return Err(Error::config(
                        format!("{kp}.aliases"),
                        "alias names and model ids must be non-empty without surrounding spaces",
                    ));
                }
            }
            let mut names: Vec<&String> = k.aliases.keys().collect();
            names.sort_by_key(|n| n.to_lowercase());
            if names.windows(2).any(|w| same_model(w[0], w[1])) {
                return Err(Error::config(format!("{kp}.aliases"), "duplicate alias (names compare ignoring case)"));
            }
            let bl = &k.blacklisted_models;
            if bl.len() > 1 && bl.iter().any(|m| m == "*") {
                return Err(Error::config(
                    format!("{kp}.blacklisted_models"),
                    "\"*\" must be the only entry when present",
                ));
            }
        }
        Ok(())
    }

    /// The protocol, after defaulting from the provider name.
    pub fn resolved_kind(&self, name: &str) -> Option<ProviderKind> {
        let custom =
            self.custom_provider_config.as_ref().and_then(|c| ProviderKind::from_base_type(&c.base_provider_type));
        self.kind.or(custom).or_else(|| ProviderKind::from_provider_name(name))
    }
}

/// One API key.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The key itself, or `env.NAME` to read it from the environment.
    #[serde(default)]
    pub value: Secret,
    /// Relative share of requests (> 0).
    #[serde(default = "defaults::weight")]
    pub weight: f64,
    /// Models this key may serve, as written (see [`Config::version`] for
    /// what absent and `[]` mean); read through [`KeyConfig::allows`].
    #[serde(default, rename = "models")]
    pub models_given: Option<Vec<String>>,
    /// The allow-list after `version` is applied (empty with `allow_all`).
    #[serde(skip)]
    pub models: Vec<String>,
    #[serde(skip)]
    allow_all: bool,
    /// Models this key never serves (Bifrost's `blacklisted_models`; wins
    /// over `models`; `["*"]` blocks all). Compared ignoring case.
    #[serde(default)]
    pub blacklisted_models: Vec<String>,
    /// Model name a request uses → model id sent upstream (Bifrost's
    /// `aliases`; a string or `{"model_id": ...}`), applied after the key is
    /// chosen; exact match first, then ignoring case.
    #[serde(default)]
    pub aliases: BTreeMap<String, Alias>,
    /// Bifrost compatibility: an optional key id; bifrost's stats use `<provider>#<index>`.
    #[serde(default)]
    pub id: Option<String>,
    /// Bifrost compatibility: an optional human-readable key name.
    #[serde(default)]
    pub name: Option<String>,
    /// A disabled key is never chosen (default true).
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
    /// How long a key the provider rejected (401/403) is skipped
    /// (0..=86400000 ms, default 60000).
    #[serde(default = "defaults::cooldown_ms")]
    pub cooldown_ms: u64,
    /// Bifrost compatibility: accepted and ignored.
    #[serde(default)]
    pub description: Option<String>,
    /// Bifrost compatibility: accepted and ignored (no batch API here).
    #[serde(default)]
    pub use_for_batch_api: Option<bool>,
    /// AWS credentials, for `kind: "bedrock"` keys.
    #[serde(default)]
    pub bedrock_key_config: Option<BedrockKeyConfig>,
    /// Bifrost's key configs of provider kinds bifrost does not speak yet:
    /// refused by name (`provider kind 'azure' is not supported yet`).
    #[serde(default)]
    #[schemars(skip)]
    pub azure_key_config: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[schemars(skip)]
    pub vertex_key_config: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[schemars(skip)]
    pub vllm_key_config: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[schemars(skip)]
    pub ollama_key_config: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[schemars(skip)]
    pub sgl_key_config: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[schemars(skip)]
    pub replicate_key_config: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[schemars(skip)]
    pub bedrock_mantle_key_config: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[schemars(skip)]
    pub huggingface_key_config: Option<serde::de::IgnoredAny>,
}

/// One `aliases` entry: Bifrost's string form, or its object form of which
/// `model_id` (and the labels `model_name`, `model_family`, `description`)
/// are read; an override field (region, project, endpoint, ...) is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    /// The model id sent upstream.
    pub model_id: String,
}

impl schemars::JsonSchema for Alias {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AliasConfig".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A model id sent upstream, or Bifrost's object form (only model_id is used; the others are labels).",
            "anyOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "properties": {
                        "model_id": {"type": "string"},
                        "model_name": {"type": "string"},
                        "model_family": {"type": "string"},
                        "description": {"type": "string"}
                    },
                    "required": ["model_id"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

impl<'de> Deserialize<'de> for Alias {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Object {
            model_id: String,
            #[serde(default)]
            model_name: Option<String>,
            #[serde(default)]
            model_family: Option<String>,
            #[serde(default)]
            description: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Object(Object),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a model id string or {\"model_id\": ...} (with optional model_name, model_family, \
                 description); per-alias overrides (region, project_id, endpoint, ...) are not supported yet",
            )
        })? {
            Raw::Text(model_id) => Ok(Alias { model_id }),
            Raw::Object(o) => {
                let _ = (o.model_name, o.model_family, o.description);
                Ok(Alias { model_id: o.model_id })
            }
        }
    }
}

/// Model names compare as Bifrost's do: ignoring case.
fn same_model(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || (!(a.is_ascii() && b.is_ascii()) && a.to_lowercase() == b.to_lowercase())
}

impl KeyConfig {
    /// True when this key may serve `model`: enabled, allowed by `models`
    /// and not blocked by `blacklisted_models` (which wins).
    pub fn allows(&self, model: &str) -> bool {
        self.enabled
            && !self.blacklisted_models.iter().any(|m| m == "*" || same_model(m, model))
            && (self.allow_all || self.models.iter().any(|m| same_model(m, model)))
    }

    /// The model id sent upstream for `model` (its alias, if any).
    pub fn upstream_model<'a>(&'a self, model: &'a str) -> &'a str {
        if let Some(a) = self.aliases.get(model) {
            return &a.model_id;
        }
        self.aliases.iter().find(|(name, _)| same_model(name, model)).map_or(model, |(_, a)| &a.model_id)
    }

    /// Applies `version` to `models` (see [`Config::version`]).
    fn resolve_models(&mut self, version: Option<u64>, path: &str) -> Result<()> {
        let given = self.models_given.clone();
        let list = match (version, given) {
            (None, None) => {
                return Err(Error::config(
                    path,
                    "missing: Bifrost >= 1.5 reads a key without \"models\" as serving no model and \
                     Bifrost 1.4 as serving every model; list its models, or [\"*\"] for every model \
                     (or set the top-level \"version\" to 1 or 2)",
                ))
            }
            (Some(1), None) => {
                self.allow_all = true;
                return Ok(());
            }
            (_, None) => Vec::new(),
            (Some(1), Some(l)) if l.is_empty() => {
                self.allow_all = true;
                return Ok(());
            }
            (_, Some(l)) => l,
        };
        for (i, m) in list.iter().enumerate() {
            if m == "*" && list.len() > 1 {
                return Err(Error::config(path, "\"*\" must be the only entry when present"));
            }
            if list[..i].iter().any(|o| same_model(o, m)) {
                return Err(Error::config(format!("{path}[{i}]"), "duplicate model (names compare ignoring case)"));
            }
        }
        self.allow_all = list.len() == 1 && list[0] == "*";
        self.models = if self.allow_all { Vec::new() } else { list };
        Ok(())
    }
}

/// Endpoint, timeouts and retries (Bifrost's `network_config`).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Overrides the provider's default endpoint.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Headers added to every upstream request (values may be `env.NAME`;
    /// they never print, as they often carry credentials).
    #[serde(default)]
    pub extra_headers: BTreeMap<String, Secret>,
    /// Bound on one attempt (1..=3600 s).
    #[serde(default = "defaults::request_timeout_s")]
    pub default_request_timeout_in_seconds: u64,
    /// Extra attempts after a retryable failure (0..=10).
    #[serde(default)]
    pub max_retries: u32,
    /// First backoff (0..=1000000 ms); doubles each retry up to the max.
    #[serde(default = "defaults::backoff_initial_ms", deserialize_with = "millis")]
    #[schemars(with = "DurationInput")]
    pub retry_backoff_initial_ms: u64,
    /// Backoff ceiling (>= initial, ..=1000000 ms).
    #[serde(default = "defaults::backoff_max_ms", deserialize_with = "millis")]
    #[schemars(with = "DurationInput")]
    pub retry_backoff_max_ms: u64,
    /// Bifrost's spelling of `retry_backoff_initial_ms`, with its meaning:
    /// ms or a duration string (`"2m"`), and 0 or less keeps the default.
    #[serde(default, deserialize_with = "bifrost_millis")]
    #[schemars(with = "Option<DurationInput>")]
    pub retry_backoff_initial: Option<u64>,
    /// Bifrost's spelling of `retry_backoff_max_ms` (as above).
    #[serde(default, deserialize_with = "bifrost_millis")]
    #[schemars(with = "Option<DurationInput>")]
    pub retry_backoff_max: Option<u64>,
    /// A stream with no event for this long is an error (1..=3600 s).
    #[serde(default = "defaults::stream_idle_s")]
    pub stream_idle_timeout_in_seconds: u64,
    /// Bifrost compatibility: connection-pool bound per host (1..=10000).
    #[serde(default)]
    pub max_conns_per_host: Option<u64>,
    /// Bifrost compatibility: disables TLS certificate checks when true.
    #[serde(default)]
    pub insecure_skip_verify: Option<bool>,
    /// Bifrost compatibility: extra CA certificate (PEM) to trust.
    #[serde(default)]
    pub ca_cert_pem: Option<Secret>,
    /// Bifrost compatibility: force HTTP/2.
    #[serde(default)]
    pub enforce_http2: Option<bool>,
    /// Bifrost compatibility: idle keep-alive of pooled connections
    /// (1..=3600 s): accepted and ignored (the HTTP client keeps its own).
    #[serde(default)]
    pub keep_alive_timeout_in_seconds: Option<u64>,
    /// Bifrost's `anthropic-beta` header rewrites: refused by name when
    /// non-empty (not supported yet).
    #[serde(default)]
    pub beta_header_overrides: BTreeMap<String, bool>,
    /// Bifrost's private-address guard for `base_url`. bifrost does not
    /// filter addresses, which is Bifrost's `true`; `false` is refused by
    /// name (not supported yet).
    #[serde(default)]
    pub allow_private_network: Option<bool>,
    /// Follow HTTP redirects of API calls (default false: a 3xx is a
    /// PROVIDER error). Even when set, a redirect to another origin
    /// (scheme, host or port) is never followed, so credentials never
    /// leave for another host.
    #[serde(default)]
    pub follow_redirects: bool,
    /// Largest success body read (1 KiB..=1 GiB, default 64 MiB); a larger
    /// one is a PROTOCOL error (docs/architecture.md §13).
    #[serde(default = "defaults::max_response_bytes")]
    pub max_response_bytes: u64,
    /// Largest single SSE event or line of a stream (1 KiB..=256 MiB,
    /// default 8 MiB); a larger one is a PROTOCOL error.
    #[serde(default = "defaults::max_event_bytes")]
    pub max_event_bytes: u64,
}

/// The schema of a duration field: integer milliseconds or a Go duration
/// string (`"500ms"`, `"5s"`, `"2m"`), as [`read_millis`] reads it.
#[derive(schemars::JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum DurationInput {
    Ms(i64),
    Text(String),
}

/// A duration as written: integer milliseconds (any sign, so Bifrost's
/// "0 or less = default" can be read) or a Go duration string; `None` for
/// JSON null. One reader for [`millis`] and [`bifrost_millis`].
/// `expected` is the message for a value of the wrong type, `example` a
/// duration string to suggest.
fn read_millis<'de, D: Deserializer<'de>>(
    d: D,
    expected: &'static str,
    example: &str,
) -> std::result::Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(i64),
        Big(u64),
        Text(String),
        Null(()),
    }
    let raw = Raw::deserialize(d).map_err(|_| serde::de::Error::custom(expected))?;
    match raw {
        Raw::Int(n) => Ok(Some(n)),
        Raw::Big(n) => Ok(Some(i64::try_from(n).unwrap_or(i64::MAX))),
        Raw::Null(()) => Ok(None),
        Raw::Text(s) => match parse_duration_ms(&s) {
            Some(ms) => Ok(Some(i64::try_from(ms).unwrap_or(i64::MAX))),
            // The text is not quoted: it may be a credential in the wrong place.
            None => Err(serde::de::Error::custom(format!(
                "cannot read this duration (a string of {} characters); use e.g. \"500ms\", \"5s\", \"{example}\"",
                s.chars().count()
            ))),
        },
    }
}

/// Milliseconds: a non-negative integer or a duration string.
fn millis<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    const EXPECTED: &str =
        "expected milliseconds as a non-negative integer or a duration string like \"500ms\" or \"5s\"";
    match read_millis(d, EXPECTED, "1m")? {
        Some(n) if n >= 0 => Ok(n as u64),
        _ => Err(serde::de::Error::custom(EXPECTED)),
    }
}

/// Bifrost's backoff value: like [`millis`], but 0, a negative number or
/// null means "the default" (`None`), as in Bifrost.
fn bifrost_millis<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u64>, D::Error> {
    const EXPECTED: &str = "expected milliseconds as an integer or a duration string like \"500ms\" or \"2m\"";
    Ok(read_millis(d, EXPECTED, "2m")?.filter(|&n| n > 0).map(|n| n as u64))
}

/// Parses a Go duration (`"500ms"`, `"1m30s"`, `"1.5h"`, `"100us"`) to ms.
pub(crate) fn parse_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "0" {
        return Some(0);
    }
    let mut rest = s;
    let mut total_ms = 0.0f64;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "ns" => 1e-6,
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            _ => return None,
        };
        total_ms += n * factor;
        rest = &rest[unit_end..];
    }
    (total_ms.is_finite() && total_ms >= 0.0).then_some(total_ms.round() as u64)
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            base_url: None,
            extra_headers: BTreeMap::new(),
            default_request_timeout_in_seconds: defaults::request_timeout_s(),
            max_retries: 0,
            retry_backoff_initial_ms: defaults::backoff_initial_ms(),
            retry_backoff_max_ms: defaults::backoff_max_ms(),
            retry_backoff_initial: None,
            retry_backoff_max: None,
            stream_idle_timeout_in_seconds: defaults::stream_idle_s(),
            max_conns_per_host: None,
            insecure_skip_verify: None,
            ca_cert_pem: None,
            enforce_http2: None,
            keep_alive_timeout_in_seconds: None,
            beta_header_overrides: BTreeMap::new(),
            allow_private_network: None,
            follow_redirects: false,
            max_response_bytes: defaults::max_response_bytes(),
            max_event_bytes: defaults::max_event_bytes(),
        }
    }
}

/// Worker count and queue capacity (Bifrost's `concurrency_and_buffer_size`).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyConfig {
    /// Worker tasks, i.e. jobs running at once (1..=10000).
    #[serde(default = "defaults::concurrency")]
    pub concurrency: usize,
    /// Jobs that may wait in the queue (1..=1000000).
    #[serde(default = "defaults::buffer_size")]
    pub buffer_size: usize,
}

impl Default for ConcurrencyConfig {
    fn default() -> Self {
        ConcurrencyConfig { concurrency: defaults::concurrency(), buffer_size: defaults::buffer_size() }
    }
}

/// What `submit` does when the queue is full (docs/architecture.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum QueuePolicy {
    /// Wait for space up to `wait_timeout_ms`, then QUEUE_TIMEOUT.
    #[default]
    Block,
    /// Fail at once with QUEUE_FULL.
    Error,
    /// Return a job already finished with DROPPED.
    Drop,
    /// Finish the oldest queued job with DROPPED and queue the new one.
    DropOldest,
}

impl QueuePolicy {
    /// The config spelling (`"drop_oldest"`).
    pub fn as_str(self) -> &'static str {
        match self {
            QueuePolicy::Block => "block",
            QueuePolicy::Error => "error",
            QueuePolicy::Drop => "drop",
            QueuePolicy::DropOldest => "drop_oldest",
        }
    }
}

/// Queue policy and the longest a job may wait.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Full-queue behaviour.
    #[serde(default)]
    pub policy: QueuePolicy,
    /// Longest wait for queue space (policy `block`) and for a worker, in
    /// milliseconds (0..=3600000). A job queued longer is not started.
    #[serde(default = "defaults::wait_timeout_ms")]
    pub wait_timeout_ms: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig { policy: QueuePolicy::Block, wait_timeout_ms: defaults::wait_timeout_ms() }
    }
}

/// Behaviour of the in-process mock provider; every field can be overridden
/// per request by a request field `"mock": {...}` with the same keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MockConfig {
    /// Base latency of each call, ms (0..=600000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Uniform random extra latency in `[0, jitter_ms]`, ms (0..=600000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u64>,
    /// Share of calls that fail with `failure_status` (0..=1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_rate: Option<f64>,
    /// HTTP status of injected failures (100..=599, default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_status: Option<u16>,
    /// Share of calls that panic inside the worker (0..=1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panic_rate: Option<f64>,
    /// Chunks a streamed reply is split into (1..=10000, default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_chunks: Option<u32>,
    /// Blocks the worker's thread this long (ms) without yielding, like a
    /// broken provider would: for exercising the stall detector (0..=60000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_ms: Option<u64>,
    /// Makes the random choices reproducible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl MockConfig {
    /// Fields set in `over` replace those of `self`.
    pub fn overlay(&self, over: &MockConfig) -> MockConfig {
        MockConfig {
            latency_ms: over.latency_ms.or(self.latency_ms),
            jitter_ms: over.jitter_ms.or(self.jitter_ms),
            failure_rate: over.failure_rate.or(self.failure_rate),
            failure_status: over.failure_status.or(self.failure_status),
            panic_rate: over.panic_rate.or(self.panic_rate),
            stream_chunks: over.stream_chunks.or(self.stream_chunks),
            stall_ms: over.stall_ms.or(self.stall_ms),
            seed: over.seed.or(self.seed),
        }
    }

    /// Checks every set field against its range; `path` prefixes messages.
    pub fn validate(&self, path: &str) -> Result<()> {
        if let Some(v) = self.latency_ms {
            check_range(&format!("{path}.latency_ms"), v, 0, 600_000)?;
        }
        if let Some(v) = self.jitter_ms {
            check_range(&format!("{path}.jitter_ms"), v, 0, 600_000)?;
        }
        if let Some(v) = self.failure_rate {
            check_rate(&format!("{path}.failure_rate"), v)?;
        }
        if let Some(v) = self.panic_rate {
            check_rate(&format!("{path}.panic_rate"), v)?;
        }
        if let Some(v) = self.failure_status {
            check_range(&format!("{path}.failure_status"), v as u64, 100, 599)?;
        }
        if let Some(v) = self.stream_chunks {
            check_range(&format!("{path}.stream_chunks"), v as u64, 1, 10_000)?;
        }
        if let Some(v) = self.stall_ms {
            check_range(&format!("{path}.stall_ms"), v, 0, 60_000)?;
        }
        Ok(())
    }
}

mod defaults {
    pub fn initial_pool_size() -> usize {
        64
    }
    pub fn weight() -> f64 {
        1.0
    }
    pub fn enabled() -> bool {
        true
    }
    pub fn cooldown_ms() -> u64 {
        60_000
    }
    pub fn failure_threshold() -> u32 {
        5
    }
    pub fn window_ms() -> u64 {
        10_000
    }
    pub fn min_requests() -> u64 {
        20
    }
    pub fn open_ms() -> u64 {
        30_000
    }
    pub fn half_open_probes() -> u32 {
        1
    }
    pub fn scale_up_threshold() -> f64 {
        0.8
    }
    pub fn scale_down_threshold() -> f64 {
        0.3
    }
    pub fn min_scale_interval_ms() -> u64 {
        1_000
    }
    pub fn idle_timeout_ms() -> u64 {
        30_000
    }
    pub fn scale_up_factor() -> f64 {
        2.0
    }
    pub fn request_timeout_s() -> u64 {
        30
    }
    pub fn backoff_initial_ms() -> u64 {
        500
    }
    pub fn backoff_max_ms() -> u64 {
        5_000
    }
    pub fn stream_idle_s() -> u64 {
        60
    }
    pub fn concurrency() -> usize {
        100
    }
    pub fn buffer_size() -> usize {
        1_000
    }
    pub fn wait_timeout_ms() -> u64 {
        5_000
    }
    pub fn max_response_bytes() -> u64 {
        crate::bounds::DEFAULT_MAX_RESPONSE_BYTES
    }
    pub fn max_event_bytes() -> u64 {
        crate::bounds::DEFAULT_MAX_EVENT_BYTES
    }
}

impl Config {
    /// Parses JSON text, resolves `env.NAME` keys and validates every field.
    pub fn from_json(text: &str) -> Result<Config> {
        // Strict text (docs/architecture.md §13): no trailing characters, no duplicate
        // keys (two providers of one name), bounded nesting.
        let parsed: Config = crate::bounds::parse_strict(text).map_err(|e| config_error(e.path, e.message))?;
        parsed.finish()
    }

    /// Like [`Config::from_json`], from an already-parsed JSON value.
    pub fn from_value(value: serde_json::Value) -> Result<Config> {
        let parsed: Config = serde_path_to_error::deserialize(value).map_err(path_error)?;
        parsed.finish()
    }

    fn finish(mut self) -> Result<Config> {
        if let Some(v) = self.version {
            if !(1..=2).contains(&v) {
                return Err(Error::config("version", format!("must be 1 or 2 (Bifrost's config versions), got {v}")));
            }
        }
        let version = self.version;
        for (name, p) in self.providers.iter_mut() {
            for (i, k) in p.keys.iter_mut().enumerate() {
                k.resolve_models(version, &format!("providers.{name}.keys[{i}].models"))?;
            }
        }
        self.validate()?;
        for p in self.providers.values_mut() {
            let n = &mut p.network_config;
            if let Some(v) = n.retry_backoff_initial {
                n.retry_backoff_initial_ms = v;
            }
            if let Some(v) = n.retry_backoff_max {
                n.retry_backoff_max_ms = v;
            }
        }
        self.resolve_env()?;
        self.validate_resolved()?;
        Ok(self)
    }

    /// Checks that need `env.NAME` values read: a Bedrock region becomes
    /// part of a host name, so it must look like one (`us-east-1`); the
    /// message never quotes the value (it may be a secret put there).
    fn validate_resolved(&self) -> Result<()> {
        // The store URL, now that an `env.NAME` one is read.
        if let Some(s) = &self.limits_store {
            s.settings()?;
        }
        for (name, p) in &self.providers {
            for (i, k) in p.keys.iter().enumerate() {
                let Some(b) = &k.bedrock_key_config else { continue };
                let region = b.region.expose();
                let valid = !region.is_empty()
                    && region.len() <= 32
                    && region.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
                if !valid {
                    return Err(Error::config(
                        format!("providers.{name}.keys[{i}].bedrock_key_config.region"),
                        "must be an AWS region name such as \"us-east-1\" (lowercase letters, digits, '-')",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Validates and reads `env.NAME` values (done by `from_json`/`from_value`;
    /// needed for a `Config` built or deserialized another way).
    pub fn resolved(self) -> Result<Config> {
        self.finish()
    }

    /// Checks ranges and cross-field rules; every message names its key path.
    pub fn validate(&self) -> Result<()> {
        check_range("initial_pool_size", self.initial_pool_size as u64, 0, 100_000)?;
        if self.providers.is_empty() {
            return Err(Error::config("providers", "configure at least one provider"));
        }
        let redis = match &self.limits_store {
            Some(s) => s.settings()?.is_some(),
            None => false,
        };
        for (name, p) in &self.providers {
            let base = format!("providers.{name}");
            if name.is_empty() || name.contains('/') || name.chars().any(char::is_whitespace) {
                return Err(Error::config(base, "provider names must be non-empty and contain no '/' or whitespace"));
            }
            p.check_bifrost_fields(name, &base)?;
            let Some(kind) = p.resolved_kind(name) else {
                return Err(Error::config(
                    format!("{base}.kind"),
                    "missing: set kind to one of openai, anthropic, bedrock, mock \
                     (it defaults to the provider name only when that name is a known kind)",
                ));
            };
            if let Some(l) = &p.limits {
                let limits = crate::limits::plan::Limits::from_config(l, &format!("{base}.limits"))?;
                if redis {
                    limits.check_redis(&format!("{base}.limits"))?;
                }
            }
            let cb = &p.concurrency_and_buffer_size;
            check_range(&format!("{base}.concurrency_and_buffer_size.concurrency"), cb.concurrency as u64, 1, 10_000)?;
            check_range(
                &format!("{base}.concurrency_and_buffer_size.buffer_size"),
                cb.buffer_size as u64,
                1,
                1_000_000,
            )?;
            check_range(&format!("{base}.queue.wait_timeout_ms"), p.queue.wait_timeout_ms, 0, 3_600_000)?;
            let n = &p.network_config;
            let np = format!("{base}.network_config");
            check_range(
                &format!("{np}.default_request_timeout_in_seconds"),
                n.default_request_timeout_in_seconds,
                1,
                3_600,
            )?;
            check_range(&format!("{np}.max_retries"), n.max_retries as u64, 0, 100)?;
            // Errors name the spelling the file used.
            let (initial_key, initial) = match n.retry_backoff_initial {
                Some(v) => ("retry_backoff_initial", v),
                None => ("retry_backoff_initial_ms", n.retry_backoff_initial_ms),
            };
            let (max_key, max) = match n.retry_backoff_max {
                Some(v) => ("retry_backoff_max", v),
                None => ("retry_backoff_max_ms", n.retry_backoff_max_ms),
            };
            check_range(&format!("{np}.{initial_key}"), initial, 0, 1_000_000)?;
            if max < initial {
                return Err(Error::config(
                    format!("{np}.{max_key}"),
                    format!("must be at least {initial_key} ({initial} ms), got {max} ms"),
                ));
            }
            check_range(&format!("{np}.{max_key}"), max, 0, 1_000_000)?;
            if let Some(k) = n.keep_alive_timeout_in_seconds {
                check_range(&format!("{np}.keep_alive_timeout_in_seconds"), k, 0, 86_400)?;
            }
            check_range(&format!("{np}.stream_idle_timeout_in_seconds"), n.stream_idle_timeout_in_seconds, 1, 3_600)?;
            check_range(&format!("{np}.max_response_bytes"), n.max_response_bytes, 1024, 1 << 30)?;
            check_range(&format!("{np}.max_event_bytes"), n.max_event_bytes, 1024, 256 << 20)?;
            if let Some(c) = n.max_conns_per_host {
                check_range(&format!("{np}.max_conns_per_host"), c, 1, 10_000)?;
            }
            if let Some(url) = &n.base_url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(Error::config(
                        format!("{np}.base_url"),
                        // Not quoted: a value that is no URL may be a credential.
                        "must start with http:// or https://",
                    ));
                }
            }
            if let Some(f) = &p.failover {
                f.check(&format!("{base}.failover")).map_err(|(path, message)| Error::config(path, message))?;
            }
            if let Some(cb) = &p.circuit_breaker {
                let cp = format!("{base}.circuit_breaker");
                check_range(&format!("{cp}.failure_threshold"), cb.failure_threshold as u64, 1, 10_000)?;
                if let Some(r) = cb.error_rate {
                    check_rate(&format!("{cp}.error_rate"), r)?;
                }
                check_range(&format!("{cp}.window_ms"), cb.window_ms, 1, 3_600_000)?;
                check_range(&format!("{cp}.min_requests"), cb.min_requests, 1, 100_000)?;
                check_range(&format!("{cp}.open_ms"), cb.open_ms, 1, 3_600_000)?;
                check_range(&format!("{cp}.half_open_probes"), cb.half_open_probes as u64, 1, 1_000)?;
            }
            p.probe_model(name, kind)?;
            if let Some(sc) = &p.scaling {
                let sp = format!("{base}.scaling");
                check_range(&format!("{sp}.min_workers"), sc.min_workers as u64, 1, 10_000)?;
                check_range(&format!("{sp}.max_workers"), sc.max_workers as u64, sc.min_workers as u64, 10_000)?;
                check_rate(&format!("{sp}.scale_up_threshold"), sc.scale_up_threshold)?;
                check_rate(&format!("{sp}.scale_down_threshold"), sc.scale_down_threshold)?;
                if sc.scale_down_threshold >= sc.scale_up_threshold {
                    return Err(Error::config(
                        format!("{sp}.scale_down_threshold"),
                        format!(
                            "must be below scale_up_threshold ({}), got {}",
                            sc.scale_up_threshold, sc.scale_down_threshold
                        ),
                    ));
                }
                if let Some(l) = sc.max_latency_ms {
                    check_range(&format!("{sp}.max_latency_ms"), l, 1, 3_600_000)?;
                }
                check_range(&format!("{sp}.min_scale_interval_ms"), sc.min_scale_interval_ms, 10, 600_000)?;
                check_range(&format!("{sp}.idle_timeout_ms"), sc.idle_timeout_ms, 10, 86_400_000)?;
                if !(1.0..=10.0).contains(&sc.scale_up_factor) || sc.scale_up_factor.is_nan() {
                    return Err(Error::config(
                        format!("{sp}.scale_up_factor"),
                        format!("must be 1..=10, got {}", sc.scale_up_factor),
                    ));
                }
            }
            for (i, k) in p.keys.iter().enumerate() {
                let kp = format!("{base}.keys[{i}]");
                check_range(&format!("{kp}.cooldown_ms"), k.cooldown_ms, 0, 86_400_000)?;
                if !(k.weight.is_finite() && k.weight >= 0.0) {
                    return Err(Error::config(
                        format!("{kp}.weight"),
                        format!("must be a finite number >= 0, got {}", k.weight),
                    ));
                }
            }
            match (kind, &p.mock) {
                (ProviderKind::Mock, Some(m)) => m.validate(&format!("{base}.mock"))?,
                (ProviderKind::Mock, None) => {}
                (_, Some(_)) => {
                    return Err(Error::config(
                        format!("{base}.mock"),
                        "only providers of kind 'mock' take a mock section",
                    ));
                }
                (_, None) => {
                    let key_less = p.custom_provider_config.as_ref().is_some_and(|c| c.is_key_less);
                    if p.keys.is_empty() && !key_less {
                        return Err(Error::config(
                            format!("{base}.keys"),
                            format!("provider of kind '{}' needs at least one key", kind.as_str()),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Replaces every `env.NAME` secret by the variable's value.
    fn resolve_env(&mut self) -> Result<()> {
        if let Some(s) = &mut self.limits_store {
            s.resolve_env()?;
        }
        for (name, p) in self.providers.iter_mut() {
            let base = format!("providers.{name}");
            for (i, k) in p.keys.iter_mut().enumerate() {
                let kp = format!("{base}.keys[{i}]");
                k.value.resolve(&format!("{kp}.value"))?;
                if let Some(b) = &mut k.bedrock_key_config {
                    let bp = format!("{kp}.bedrock_key_config");
                    b.region.resolve(&format!("{bp}.region"))?;
                    for (field, s) in [
                        ("access_key", &mut b.access_key),
                        ("secret_key", &mut b.secret_key),
                        ("session_token", &mut b.session_token),
                        ("arn", &mut b.arn),
                    ] {
                        if let Some(s) = s {
                            s.resolve(&format!("{bp}.{field}"))?;
                        }
                    }
                }
            }
            if let Some(px) = &mut p.proxy_config {
                for (field, s) in [
                    ("url", &mut px.url),
                    ("username", &mut px.username),
                    ("password", &mut px.password),
                    ("ca_cert_pem", &mut px.ca_cert_pem),
                ] {
                    if let Some(s) = s {
                        s.resolve(&format!("{base}.proxy_config.{field}"))?;
                    }
                }
            }
            for (h, v) in p.network_config.extra_headers.iter_mut() {
                v.resolve(&format!("{base}.network_config.extra_headers.{h}"))?;
            }
            if let Some(ca) = &mut p.network_config.ca_cert_pem {
                ca.resolve(&format!("{base}.network_config.ca_cert_pem"))?;
            }
        }
        Ok(())
    }
}

fn path_error(e: serde_path_to_error::Error<serde_json::Error>) -> Error {
    let e = crate::bounds::JsonError::from_path(e);
    config_error(e.path, e.message)
}

/// Settings of Bifrost's `providers` entries, keys and network configs
/// that bifrost does not read yet.
const BIFROST_SETTINGS_NOT_SUPPORTED: &[&str] = &[
    "prompt_cache",
    "pricing_overrides",
    "config_hash",
    "status",
    "use_anthropic_endpoints",
    "use_openai_endpoints",
    "raw_request_passthrough",
];

/// A parse error, where an unknown field that is one of Bifrost's says so:
/// a top-level section other than `providers`/`version` (`client`,
/// `governance`, `mcp`, ...) or a setting in [`BIFROST_SETTINGS_NOT_SUPPORTED`]
/// is "not supported", not a typo.
fn config_error(path: String, message: String) -> Error {
    let field =
        message.strip_prefix("unknown field `").and_then(|rest| rest.split_once('`')).map(|(f, _)| f.to_string());
    match field {
        Some(f) if !path.contains('.') && !path.contains('[') => Error::config(
            path,
            format!(
                "unknown field `{f}`: it is not supported: bifrost reads `providers` and `version` of a Bifrost config.json \
                 (plus its own `initial_pool_size`); Bifrost's other sections (client, governance, mcp, \
                 logs_store, ...) would change what a request does, so bifrost refuses them instead of ignoring them"
            ),
        ),
        Some(f) if BIFROST_SETTINGS_NOT_SUPPORTED.contains(&f.as_str()) => {
            Error::config(path, format!("`{f}` (a Bifrost setting) is not supported yet"))
        }
        _ => Error::config(path, message),
    }
}

pub(crate) fn check_range(path: &str, v: u64, lo: u64, hi: u64) -> Result<()> {
    if v < lo || v > hi {
        return Err(Error::config(path, format!("must be {lo}..={hi}, got {v}")));
    }
    Ok(())
}

pub(crate) fn check_rate(path: &str, v: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&v) {
        return Err(Error::config(path, format!("must be 0..=1, got {v}")));
    }
    Ok(())
}
