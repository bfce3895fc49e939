"""Generated from the serde types of bifrost-core by core/tests/schema_types.rs
(BIFROST_BLESS=1 cargo test -p bifrost-core --test schema_types); do not edit."""

from __future__ import annotations

from typing import Any, Dict, List, Literal, TypedDict, Union

from typing_extensions import NotRequired


AliasConfig = Union[str, AliasConfigObject]
"""A model id sent upstream, or Bifrost's object form (only model_id is used; the others are labels)."""


class AliasConfigObject(TypedDict):
    description: NotRequired[str]
    model_family: NotRequired[str]
    model_id: str
    model_name: NotRequired[str]


class AssistantMessage(TypedDict):
    """The assistant message of a choice.
    
    Like every response type, it keeps the fields bifrost does not name
    (`refusal`, `annotations`, …) as they came, so an OpenAI-compatible
    answer comes back whole (docs/architecture.md §12)."""

    # The text; always written, `null` when there is none.
    content: Union[str, None]
    # The model's reasoning text, where the provider reports it
    # (Anthropic thinking, Bedrock reasoning, DeepSeek-style servers).
    reasoning_content: NotRequired[Union[str, None]]
    # `assistant` (borrowed when it is the well-known value: no allocation).
    role: str
    tool_calls: NotRequired[Any]


class BedrockKeyConfig(TypedDict):
    """AWS credentials of a Bedrock key (Bifrost's `bedrock_key_config`)."""

    access_key: NotRequired[Union[Secret, None]]
    # Inference-profile ARN prefix used with `deployments`.
    arn: NotRequired[Union[Secret, None]]
    # Model name → inference profile / model id.
    deployments: NotRequired[Dict[str, str]]
    external_id: NotRequired[Union[Secret, None]]
    # Bifrost's Bedrock Mantle project (no effect on Converse): ignored.
    project_id: NotRequired[Union[Secret, None]]
    # AWS region, e.g. `us-east-1` (required; may be `env.NAME`).
    region: NotRequired[Secret]
    # STS AssumeRole (Bifrost): refused by name when set (not supported yet).
    role_arn: NotRequired[Union[Secret, None]]
    secret_key: NotRequired[Union[Secret, None]]
    session_name: NotRequired[Union[Secret, None]]
    session_token: NotRequired[Union[Secret, None]]


class BurstConfig(TypedDict):
    """Bucket capacities, when not one period's worth."""

    # Requests a full bucket holds (1..=1000000000).
    requests: NotRequired[Union[int, None]]
    # Tokens a full bucket holds (1..=1000000000000).
    tokens: NotRequired[Union[int, None]]


class ChatRequest(TypedDict):
    """A chat request (`{"model": "provider/model", "messages": [...], ...}`)."""

    # The tokens this request will use, prompt and completion, when the
    # caller counted them (a tokenizer): what the provider's `limits`
    # reserve instead of bifrost's estimate (docs/architecture.md §10).
    # Never sent to the provider.
    estimated_tokens: NotRequired[Union[int, None]]
    # This request's own failover actions, over its provider's
    # (docs/failover.md). Never sent to the provider.
    failover: NotRequired[Union[FailoverConfig, None]]
    # `"provider/model"` targets tried in order when the primary fails.
    fallbacks: NotRequired[List[str]]
    # The conversation, oldest first.
    messages: List[Message]
    # Per-request overrides for the mock provider.
    mock: NotRequired[Union[MockConfig, None]]
    # `"<provider>/<model>"`.
    model: str
    # OpenAI request parameters (`temperature`, `max_tokens`, `tools`, …).
    params: NotRequired[Dict[str, Any]]
    # One end-to-end deadline in ms: queue wait, every attempt and backoff.
    timeout_ms: NotRequired[Union[int, None]]


class ChatResponse(TypedDict):
    """An OpenAI `chat.completion` object plus `extra_fields`."""

    choices: List[Choice]
    created: int
    extra_fields: ExtraFields
    id: str
    model: str
    # `chat.completion` (borrowed: no allocation per response).
    object: str
    usage: Usage


class Choice(TypedDict):
    """One completion choice."""

    # `stop`, `length`, `tool_calls`, `content_filter` (borrowed when well known).
    finish_reason: Union[str, None]
    index: int
    message: AssistantMessage


class Chunk(TypedDict):
    """An OpenAI `chat.completion.chunk` object."""

    choices: List[ChunkChoice]
    created: int
    # bifrost's addition, when there is something to say: on a stream's
    # first chunk, what of the request the provider had no equivalent for
    # (a stream has no response to carry it); on a restart marker, the
    # restart (docs/failover.md).
    extra_fields: NotRequired[Union[ChunkExtraFields, None]]
    id: str
    model: str
    # `chat.completion.chunk` (borrowed: no allocation per chunk).
    object: str
    # Present on the final chunk.
    usage: NotRequired[Union[Usage, None]]


class ChunkChoice(TypedDict):
    """One streamed choice."""

    delta: Delta
    finish_reason: Union[str, None]
    index: int


class ChunkExtraFields(TypedDict):
    """What a stream's first chunk adds to OpenAI's shape."""

    # On a restart marker only: the stream failed after content reached
    # the caller and a new answer starts after this chunk (whose
    # `choices` is empty; docs/failover.md "Stream recovery").
    restart: NotRequired[Union[StreamRestart, None]]
    # As [`ExtraFields::unmapped_params`] (on a stream's first chunk).
    unmapped_params: NotRequired[List[str]]


class CircuitBreakerConfig(TypedDict):
    """When a provider's circuit opens and how it recovers."""

    # Also open when this share of calls in `window_ms` failed (0..=1).
    error_rate: NotRequired[Union[float, None]]
    # Consecutive failures that open the circuit (1..=10000, default 5).
    failure_threshold: NotRequired[int]
    # Probe calls allowed when half-open; that many successes close it
    # (1..=1000, default 1).
    half_open_probes: NotRequired[int]
    # Calls needed in the window before `error_rate` applies (1..=100000, default 20).
    min_requests: NotRequired[int]
    # How long the circuit stays open (1..=3600000 ms, default 30000).
    open_ms: NotRequired[int]
    # Window for `error_rate` (1..=3600000 ms, default 10000).
    window_ms: NotRequired[int]


class CircuitStats(TypedDict):
    """Circuit breaker state (`disabled` until breakers exist for the pool)."""

    opened_total: int
    state: str


class ConcurrencyConfig(TypedDict):
    """Worker count and queue capacity (Bifrost's `concurrency_and_buffer_size`)."""

    # Jobs that may wait in the queue (1..=1000000).
    buffer_size: NotRequired[int]
    # Worker tasks, i.e. jobs running at once (1..=10000).
    concurrency: NotRequired[int]


Config = TypedDict("Config", {
    "$schema": NotRequired[Union[str, None]],
    "initial_pool_size": NotRequired[int],
    "limits_store": NotRequired[Union[LimitsStoreConfig, None]],
    "providers": NotRequired[Dict[str, ProviderConfig]],
    "version": NotRequired[Union[int, None]],
})
"""The whole gateway configuration."""


Content = Union[str, List[Any], None]
"""Message content: a string, or OpenAI content parts."""


class CustomProviderConfig(TypedDict):
    """Bifrost's `custom_provider_config`."""

    # The protocol this provider reuses.
    base_provider_type: str
    # The provider needs no key (requests go without credentials).
    is_key_less: NotRequired[bool]


class Delta(TypedDict):
    """The incremental message of a streamed choice."""

    content: NotRequired[Union[str, None]]
    # A piece of the model's reasoning text (see [`AssistantMessage::reasoning_content`]).
    reasoning_content: NotRequired[Union[str, None]]
    role: NotRequired[Union[str, None]]
    tool_calls: NotRequired[Any]


DurationInput = Union[int, str]
"""The schema of a duration field: integer milliseconds or a Go duration
string (`"500ms"`, `"5s"`, `"2m"`), as [`read_millis`] reads it."""


EmbedInput = Union[str, List[str]]
"""Embedding input: one string or many."""


class EmbedRequest(TypedDict):
    """An embeddings request in the OpenAI shape, routed by `model`."""

    # One text or several.
    input: EmbedInput
    # Per-request overrides for the mock provider.
    mock: NotRequired[Union[MockConfig, None]]
    # `"<provider>/<model>"`.
    model: str
    # Extra OpenAI parameters (`dimensions`, `encoding_format`, …).
    params: NotRequired[Dict[str, Any]]
    # End-to-end deadline, ms.
    timeout_ms: NotRequired[Union[int, None]]


class EmbedResponse(TypedDict):
    """An OpenAI embeddings response (`object: "list"`) plus `extra_fields`."""

    data: List[Embedding]
    extra_fields: ExtraFields
    model: str
    object: str
    usage: EmbedUsage


class EmbedUsage(TypedDict):
    """Token counts of an embeddings call (OpenAI's shape: no completion)."""

    prompt_tokens: int
    total_tokens: int


class Embedding(TypedDict):
    """One embedding vector."""

    embedding: EmbeddingVector
    index: int
    object: str


EmbeddingVector = Union[List[float], str]
"""An embedding as the provider sent it: numbers (kept as f64, so every
value comes back exactly) or, with `encoding_format: "base64"`, the
base64 text of little-endian f32s."""


class ExtraFields(TypedDict):
    """Where and how a response was produced (bifrost's additions to the shape)."""

    # Attempts made (1 + retries).
    attempts: int
    # 0 for the primary, i + 1 for `fallbacks[i]`.
    fallback_index: int
    # Stable non-secret id of the key used (`openai#0`), if any.
    key_id: Union[str, None]
    # Submit-to-outcome latency, ms.
    latency_ms: int
    # Model name without the provider prefix.
    model: str
    # Provider name that served the request.
    provider: str
    # Time the job waited in the queue, µs.
    queue_wait_us: int
    # What of the request the provider has no equivalent for and was not
    # sent (`frequency_penalty`, `messages[2].name`, …); absent when
    # everything was sent (docs/architecture.md §12).
    unmapped_params: NotRequired[List[str]]


FailoverAction = Union[Literal["retry"], Literal["fallback"], Literal["return"]]
"""What a failure class does."""


class FailoverConfig(TypedDict):
    """Per-class actions; a key left out keeps its default (shown per field)."""

    # `buffer`: chunks flow to the caller once this many characters of
    # content are held (default and most 1048576: a buffer is bounded).
    commit_after_chars: NotRequired[Union[int, None]]
    # Streams: the longest wait from an attempt's start to its first
    # content chunk (default 15000; 0 = none). Armed only when its action
    # can do something: `retry` with a retry left, or `fallback` with a
    # fallback to go to; else the attempt limit alone bounds the wait.
    first_token_timeout_ms: NotRequired[Union[int, None]]
    # Unary calls: the longest wait for the response head (default none:
    # a non-streamed answer's head comes only when the whole answer is
    # ready, so only a caller who knows its model's latency sets this).
    headers_timeout_ms: NotRequired[Union[int, None]]
    # The provider refused the content (default `return`; `retry` is refused).
    on_content_policy: NotRequired[Union[FailoverAction, None]]
    # The prompt does not fit the model (default `fallback`; `retry` is refused).
    on_context_length: NotRequired[Union[FailoverAction, None]]
    # A stream's first content (or a unary call's response head, with
    # `headers_timeout_ms`) did not come in time (default `fallback`).
    on_first_token_timeout: NotRequired[Union[FailoverAction, None]]
    # Connect, reset, TLS, a cut body (default `retry`).
    on_network: NotRequired[Union[FailoverAction, None]]
    # 429 / throttling (default `retry`, waiting `Retry-After` when it fits).
    on_rate_limit: NotRequired[Union[FailoverAction, None]]
    # 5xx, 529, 408 (default `retry`).
    on_server_error: NotRequired[Union[FailoverAction, None]]
    # No answer within the attempt limit (default `fallback`: a route
    # that went silent is not waited for again).
    on_timeout: NotRequired[Union[FailoverAction, None]]
    # What a stream does when it fails after its first content (default `restart`).
    stream_recovery: NotRequired[Union[StreamRecovery, None]]
    # After this many failed attempts in a row at the provider (server
    # errors, timeouts, network errors), its failures are not retried
    # until an attempt succeeds (default 5; 0 = always retry; at most 1000).
    suspend_retries_after: NotRequired[Union[int, None]]


class Health(TypedDict):
    """Health of the gateway: `ok` when every provider is `ok`."""

    providers: Dict[str, ProviderHealth]
    status: str


HealthCheck = Union[bool, HealthCheckObject]
"""The startup probe setting."""


class HealthCheckObject(TypedDict):
    # Model the probe asks (one token, prompt "ping").
    model: str


class JobStats(TypedDict):
    """Job counters; see the module doc for the invariant they satisfy (in
    every snapshot: the counters of one snapshot are one instant's)."""

    cancelled: int
    completed: int
    dropped: int
    failed: int
    # Requests this pool served as a fallback for another provider.
    fallbacks_served: int
    panics: int
    # Jobs accepted and not yet begun by a worker (including one just
    # handed to a worker); `QueueStats::depth` is the queue's occupancy.
    queued: int
    # Jobs a limit of the provider's `limits` had no capacity for before
    # their deadline (ended RATE_LIMITED, never sent).
    rate_limited: int
    rejected: int
    retries: int
    # Jobs a worker has begun and not finished.
    running: int
    # Workers busy past their job's deadline plus a grace second (a
    # provider call blocking its thread), now and since start.
    stalled: int
    stalls_total: int
    submitted: int
    timed_out: int


class KeyConfig(TypedDict):
    """One API key."""

    # Model name a request uses → model id sent upstream (Bifrost's
    # `aliases`; a string or `{"model_id": ...}`), applied after the key is
    # chosen; exact match first, then ignoring case.
    aliases: NotRequired[Dict[str, AliasConfig]]
    # AWS credentials, for `kind: "bedrock"` keys.
    bedrock_key_config: NotRequired[Union[BedrockKeyConfig, None]]
    # Models this key never serves (Bifrost's `blacklisted_models`; wins
    # over `models`; `["*"]` blocks all). Compared ignoring case.
    blacklisted_models: NotRequired[List[str]]
    # How long a key the provider rejected (401/403) is skipped
    # (0..=86400000 ms, default 60000).
    cooldown_ms: NotRequired[int]
    # Bifrost compatibility: accepted and ignored.
    description: NotRequired[Union[str, None]]
    # A disabled key is never chosen (default true).
    enabled: NotRequired[bool]
    # Bifrost compatibility: an optional key id; bifrost's stats use `<provider>#<index>`.
    id: NotRequired[Union[str, None]]
    # Models this key may serve, as written (see [`Config::version`] for
    # what absent and `[]` mean); read through [`KeyConfig::allows`].
    models: NotRequired[Union[List[str], None]]
    # Bifrost compatibility: an optional human-readable key name.
    name: NotRequired[Union[str, None]]
    # Bifrost compatibility: accepted and ignored (no batch API here).
    use_for_batch_api: NotRequired[Union[bool, None]]
    # The key itself, or `env.NAME` to read it from the environment.
    value: NotRequired[Secret]
    # Relative share of requests (> 0).
    weight: NotRequired[float]


class KeyStats(TypedDict):
    """Counters of one key, by its non-secret id."""

    cooldown_remaining_ms: int
    errors: int
    id: str
    requests: int
    # `alive`, `cooldown` (rejected with 401/403) or `disabled`.
    state: str


class LatencyStats(TypedDict):
    """Queue-wait and processing latency summaries, µs."""

    processing: Quantiles
    queue_wait: Quantiles


LimitScope = Union[Literal["provider"], Literal["key"]]
"""Whose buckets a request draws from."""


class LimitStats(TypedDict):
    """One limit bucket (docs/architecture.md §10)."""

    # Units a full bucket holds.
    burst: int
    # Units per period (requests or tokens).
    limit: int
    period_ms: int
    # Jobs this bucket had no capacity for before their deadline.
    rate_limited: int
    # Units that could be taken now.
    remaining: int
    # Ms until the bucket is full again.
    reset_ms: int
    # Times a job at the queue's front waited for this bucket.
    waits: int


class LimitsConfig(TypedDict):
    """A provider's `limits` section."""

    # Capacities; default one period's worth.
    burst: NotRequired[Union[BurstConfig, None]]
    # Completion tokens reserved for a request without `max_tokens`
    # (1..=10000000, default 256).
    default_completion_tokens: NotRequired[Union[int, None]]
    # Lower the buckets to what the provider's rate-limit headers and a
    # 429's `Retry-After` say (default false).
    learn_from_headers: NotRequired[Union[bool, None]]
    # Requests at the upstream at once (1..=100000); a stream counts until
    # it ends.
    max_in_flight: NotRequired[Union[int, None]]
    # Limits of single models (by the name a request uses), on top of
    # the provider's.
    models: NotRequired[Dict[str, RateConfig]]
    requests_per_day: NotRequired[Union[int, None]]
    requests_per_minute: NotRequired[Union[int, None]]
    # Requests per second / minute / day (1..=1000000000; one of the three).
    requests_per_second: NotRequired[Union[int, None]]
    # `provider` (default): one set of buckets; `key`: one set per key
    # (1..=64 keys), and a job takes a key with capacity.
    scope: NotRequired[LimitScope]
    tokens_per_day: NotRequired[Union[int, None]]
    tokens_per_minute: NotRequired[Union[int, None]]
    # Tokens per second / minute / day (1..=1000000000000; one of the three).
    tokens_per_second: NotRequired[Union[int, None]]


class LimitsStoreConfig(TypedDict):
    """The `limits_store` section."""

    # `url` is one node of a Redis Cluster (default false); the others
    # are found from it.
    cluster: NotRequired[Union[bool, None]]
    # Processes sharing the limits (1..=100000); required with
    # `local_share`, which enforces limit ÷ `fleet_size` per process.
    fleet_size: NotRequired[Union[int, None]]
    # `memory` (default) or `redis`.
    kind: NotRequired[StoreKind]
    # How long a `max_in_flight` lease outlives a process that stopped
    # renewing it (killed), in ms (1000..=600000, default 10000).
    lease_ttl_ms: NotRequired[Union[int, None]]
    # `local_share` (default), `fail_open` or `fail_closed`.
    on_unavailable: NotRequired[OnUnavailable]
    # Put before every key (default `bifrost:`; at most 64 bytes, no `{`
    # or `}`, which would change the hash tag).
    prefix: NotRequired[Union[str, None]]
    # Longest one store call may take, in ms (1..=10000, default 50).
    timeout_ms: NotRequired[Union[int, None]]
    # `redis://[:password@]host:port/db` (or `env.NAME`); required for
    # `redis`.
    url: NotRequired[Union[str, None]]


class LimitsStoreStats(TypedDict):
    """The `limits_store` a provider's buckets live in (docs/architecture.md §10)."""

    # Settlements (refunds, charges, learned headers) not applied: the
    # writer's queue was full or the store down.
    dropped_writes: int
    # Store calls that failed or timed out.
    errors: int
    # Whether `on_unavailable` is deciding admissions now.
    fallback_active: bool
    # `memory` or `redis`.
    kind: str
    # `max_in_flight` leases this process holds in the store.
    leases_held: int
    # Leases the store expired before this process renewed them (it
    # stalled past `lease_ttl_ms`; the fleet may have run over then).
    leases_lost: int
    # Whether the store answers (always true for `memory`).
    up: bool


class Message(TypedDict):
    """One chat message."""

    # Text, or a list of content parts (`[{"type": "text", "text": ...}]`).
    content: NotRequired[Content]
    # Optional participant name.
    name: NotRequired[Union[str, None]]
    # `system`, `developer`, `user`, `assistant` or `tool`.
    role: str
    # The call a `tool` message answers.
    tool_call_id: NotRequired[Union[str, None]]
    # Tool calls requested by an assistant message.
    tool_calls: NotRequired[Any]


class MockConfig(TypedDict):
    """Behaviour of the in-process mock provider; every field can be overridden
    per request by a request field `"mock": {...}` with the same keys."""

    # Share of calls that fail with `failure_status` (0..=1).
    failure_rate: NotRequired[Union[float, None]]
    # HTTP status of injected failures (100..=599, default 500).
    failure_status: NotRequired[Union[int, None]]
    # Uniform random extra latency in `[0, jitter_ms]`, ms (0..=600000).
    jitter_ms: NotRequired[Union[int, None]]
    # Base latency of each call, ms (0..=600000).
    latency_ms: NotRequired[Union[int, None]]
    # Share of calls that panic inside the worker (0..=1).
    panic_rate: NotRequired[Union[float, None]]
    # Makes the random choices reproducible.
    seed: NotRequired[Union[int, None]]
    # Blocks the worker's thread this long (ms) without yielding, like a
    # broken provider would: for exercising the stall detector (0..=60000).
    stall_ms: NotRequired[Union[int, None]]
    # Chunks a streamed reply is split into (1..=10000, default 4).
    stream_chunks: NotRequired[Union[int, None]]


class NetworkConfig(TypedDict):
    """Endpoint, timeouts and retries (Bifrost's `network_config`)."""

    # Bifrost's private-address guard for `base_url`. bifrost does not
    # filter addresses, which is Bifrost's `true`; `false` is refused by
    # name (not supported yet).
    allow_private_network: NotRequired[Union[bool, None]]
    # Overrides the provider's default endpoint.
    base_url: NotRequired[Union[str, None]]
    # Bifrost's `anthropic-beta` header rewrites: refused by name when
    # non-empty (not supported yet).
    beta_header_overrides: NotRequired[Dict[str, bool]]
    # Bifrost compatibility: extra CA certificate (PEM) to trust.
    ca_cert_pem: NotRequired[Union[Secret, None]]
    # Bound on one attempt (1..=3600 s).
    default_request_timeout_in_seconds: NotRequired[int]
    # Bifrost compatibility: force HTTP/2.
    enforce_http2: NotRequired[Union[bool, None]]
    # Headers added to every upstream request (values may be `env.NAME`;
    # they never print, as they often carry credentials).
    extra_headers: NotRequired[Dict[str, Secret]]
    # Follow HTTP redirects of API calls (default false: a 3xx is a
    # PROVIDER error). Even when set, a redirect to another origin
    # (scheme, host or port) is never followed, so credentials never
    # leave for another host.
    follow_redirects: NotRequired[bool]
    # Bifrost compatibility: disables TLS certificate checks when true.
    insecure_skip_verify: NotRequired[Union[bool, None]]
    # Bifrost compatibility: idle keep-alive of pooled connections
    # (1..=3600 s): accepted and ignored (the HTTP client keeps its own).
    keep_alive_timeout_in_seconds: NotRequired[Union[int, None]]
    # Bifrost compatibility: connection-pool bound per host (1..=10000).
    max_conns_per_host: NotRequired[Union[int, None]]
    # Largest single SSE event or line of a stream (1 KiB..=256 MiB,
    # default 8 MiB); a larger one is a PROTOCOL error.
    max_event_bytes: NotRequired[int]
    # Largest success body read (1 KiB..=1 GiB, default 64 MiB); a larger
    # one is a PROTOCOL error (docs/architecture.md §13).
    max_response_bytes: NotRequired[int]
    # Extra attempts after a retryable failure (0..=10).
    max_retries: NotRequired[int]
    # Bifrost's spelling of `retry_backoff_initial_ms`, with its meaning:
    # ms or a duration string (`"2m"`), and 0 or less keeps the default.
    retry_backoff_initial: NotRequired[Union[DurationInput, None]]
    # First backoff (0..=1000000 ms); doubles each retry up to the max.
    retry_backoff_initial_ms: NotRequired[DurationInput]
    # Bifrost's spelling of `retry_backoff_max_ms` (as above).
    retry_backoff_max: NotRequired[Union[DurationInput, None]]
    # Backoff ceiling (>= initial, ..=1000000 ms).
    retry_backoff_max_ms: NotRequired[DurationInput]
    # A stream with no event for this long is an error (1..=3600 s).
    stream_idle_timeout_in_seconds: NotRequired[int]


class ObjectPoolStats(TypedDict):
    """Counters of one object pool."""

    hit_ratio: float
    hits: int
    idle: int
    misses: int
    requests: int
    returns: int


OnUnavailable = Union[Literal["local_share"], Literal["fail_open"], Literal["fail_closed"]]
"""What a process does while the store does not answer."""


class ProviderConfig(TypedDict):
    """One provider: its protocol, keys, limits and queue policy."""

    # Circuit breaker; absent means disabled.
    circuit_breaker: NotRequired[Union[CircuitBreakerConfig, None]]
    # Worker count and queue capacity.
    concurrency_and_buffer_size: NotRequired[ConcurrencyConfig]
    # Bifrost's custom provider: `base_provider_type` (`openai`,
    # `anthropic`, `bedrock`) sets `kind`; other fields are refused by name.
    custom_provider_config: NotRequired[Union[CustomProviderConfig, None]]
    # What each failure class does: retry, fallback or return
    # (docs/failover.md; defaults when absent).
    failover: NotRequired[Union[FailoverConfig, None]]
    # Startup probe: `true` (model from the first key's `models`, or any
    # model for `mock`) or `{"model": "..."}`. Its result shows in `health()`.
    health_check: NotRequired[Union[HealthCheck, None]]
    # API keys, chosen by weight among those whose `models` allow the model.
    keys: NotRequired[List[KeyConfig]]
    # Protocol; defaults to the provider's name when that is a known kind.
    kind: NotRequired[Union[ProviderKind, None]]
    # Request and token limits bifrost keeps to before the provider's 429
    # (docs/architecture.md §10); absent means none.
    limits: NotRequired[Union[LimitsConfig, None]]
    # Bifrost's operator labels (no effect on routing): accepted and ignored.
    metadata: NotRequired[Union[Dict[str, str], None]]
    # Knobs of the in-process mock provider (`kind: "mock"` only).
    mock: NotRequired[Union[MockConfig, None]]
    # Endpoint, timeouts and retry policy.
    network_config: NotRequired[NetworkConfig]
    # Bifrost compatibility (`{"disable_store": bool}`): accepted and ignored.
    openai_config: NotRequired[Any]
    # Outbound proxy (Bifrost's `proxy_config`), used by HTTP providers.
    proxy_config: NotRequired[Union[ProxyConfig, None]]
    # What `submit` does when the queue is full.
    queue: NotRequired[QueueConfig]
    # Adaptive worker count; absent means a fixed `concurrency`.
    scaling: NotRequired[Union[ScalingConfig, None]]
    # Bifrost compatibility: accepted and ignored.
    send_back_raw_request: NotRequired[Union[bool, None]]
    # Bifrost compatibility: accepted and ignored; bifrost always returns
    # the normalized OpenAI shape.
    send_back_raw_response: NotRequired[Union[bool, None]]
    # Bifrost compatibility: accepted and ignored.
    store_raw_request_response: NotRequired[Union[bool, None]]
    # Bifrost's operator labels (no effect on routing): accepted and ignored.
    tags: NotRequired[Union[List[str], None]]


class ProviderHealth(TypedDict):
    """Health of one provider pool."""

    # Circuit breaker state (`disabled`, `closed`, `open`, `half_open`).
    circuit: str
    # Configured keys.
    keys: int
    last_error: Union[str, None]
    # Last job that failed, Unix ms (0: none yet), and its error.
    last_error_unix_ms: int
    # Last job that completed, Unix ms (0: none yet).
    last_success_unix_ms: int
    # Keys usable now (not cooling down after a 401/403; disabled ones excluded).
    live_keys: int
    # Queue depth / capacity.
    queue_utilization: float
    # Workers busy past their job's deadline plus grace (see `jobs.stalled`).
    stalled_workers: int
    # The `health_check` probe: `off`, `pending`, `ok` or `failed`.
    startup_probe: str
    # The probe's error, when it failed.
    startup_probe_error: Union[str, None]
    # `ok`; `degraded` when the circuit is not closed, no key is usable,
    # the queue is ≥ 90 % full or workers are missing; `shutdown`.
    status: str
    # Live worker tasks.
    workers: int


ProviderKind = Union[Literal["openai"], Literal["anthropic"], Literal["bedrock"], Literal["mock"]]
"""Which wire protocol a provider speaks."""


class ProviderStats(TypedDict):
    """Everything about one provider pool."""

    circuit: CircuitStats
    jobs: JobStats
    keys: List[KeyStats]
    latency_us: LatencyStats
    # The provider's `limits`, by bucket (`requests`, `tokens`,
    # `model:<name>:tokens`, ...); empty without limits.
    limits: Dict[str, LimitStats]
    # Where those buckets live (absent without `limits`).
    limits_store: NotRequired[Union[LimitsStoreStats, None]]
    queue: QueueStats
    throughput_per_s: float
    workers: WorkerStats


class ProxyConfig(TypedDict):
    """Outbound proxy settings (Bifrost's `proxy_config`)."""

    # Extra CA certificate for TLS-intercepting proxies.
    ca_cert_pem: NotRequired[Union[Secret, None]]
    # Proxy password (may be `env.NAME`).
    password: NotRequired[Union[Secret, None]]
    # `none`, `http`, `socks5` or `environment`.
    type: str
    # Proxy URL (may be `env.NAME`).
    url: NotRequired[Union[Secret, None]]
    # Proxy user (may be `env.NAME`).
    username: NotRequired[Union[Secret, None]]


class Quantiles(TypedDict):
    """p50/p90/p99/max of a latency, µs."""

    max: int
    p50: int
    p90: int
    p99: int


class QueueConfig(TypedDict):
    """Queue policy and the longest a job may wait."""

    # Full-queue behaviour.
    policy: NotRequired[QueuePolicy]
    # Longest wait for queue space (policy `block`) and for a worker, in
    # milliseconds (0..=3600000). A job queued longer is not started.
    wait_timeout_ms: NotRequired[int]


QueuePolicy = Union[Literal["block"], Literal["error"], Literal["drop"], Literal["drop_oldest"]]
"""What `submit` does when the queue is full (docs/architecture.md §3)."""


class QueueStats(TypedDict):
    """Queue occupancy and policy."""

    capacity: int
    depth: int
    policy: str


class RateConfig(TypedDict):
    """Request and token rates: at most one period per resource."""

    # Capacities; default one period's worth.
    burst: NotRequired[Union[BurstConfig, None]]
    requests_per_day: NotRequired[Union[int, None]]
    requests_per_minute: NotRequired[Union[int, None]]
    # Requests per second / minute / day (1..=1000000000; one of the three).
    requests_per_second: NotRequired[Union[int, None]]
    tokens_per_day: NotRequired[Union[int, None]]
    tokens_per_minute: NotRequired[Union[int, None]]
    # Tokens per second / minute / day (1..=1000000000000; one of the three).
    tokens_per_second: NotRequired[Union[int, None]]


class RuntimeStats(TypedDict):
    """The shared runtime."""

    worker_threads: int


class ScalingConfig(TypedDict):
    """Adaptive worker scaling of one pool."""

    # A worker idle this long retires, down to `min_workers`
    # (10..=86400000 ms, default 30000).
    idle_timeout_ms: NotRequired[int]
    # Also scale up when the recent average processing time exceeds this (ms).
    max_latency_ms: NotRequired[Union[int, None]]
    # Most workers (min_workers..=10000).
    max_workers: int
    # How often the controller looks, and the least time between two
    # scale-ups (10..=600000 ms, default 1000).
    min_scale_interval_ms: NotRequired[int]
    # Fewest workers (1..=10000); the pool starts at `concurrency` clamped
    # to `min_workers..=max_workers`.
    min_workers: int
    # Idle workers may retire when queue depth / capacity is at or below
    # this (0..=1, below the up threshold, default 0.3).
    scale_down_threshold: NotRequired[float]
    # Workers multiply by this on each scale-up (1..=10, default 2).
    scale_up_factor: NotRequired[float]
    # Scale up when queue depth / capacity reaches this (0..=1, default 0.8).
    scale_up_threshold: NotRequired[float]


Secret = Union[str, SecretObject]
"""A credential: the value, or "env.NAME" to read it from the environment, or Bifrost's {"value", "env_var", "from_env"}."""


class SecretObject(TypedDict):
    env_var: NotRequired[str]
    from_env: NotRequired[bool]
    value: NotRequired[str]


class ShutdownReport(TypedDict):
    """What [`Gateway::shutdown`] did, counted over the shutdown itself."""

    # Jobs still queued or running at the deadline, ended with SHUTDOWN.
    aborted: int
    # Jobs cancelled while draining.
    cancelled: int
    # Jobs that completed while draining.
    completed: int
    # Time the shutdown took.
    elapsed_ms: int
    # Jobs that failed while draining, including `aborted`.
    failed: int


class Sizing(TypedDict):
    """Suggested `concurrency_and_buffer_size` and timeout for one provider."""

    # Queue slots (`concurrency_and_buffer_size.buffer_size`), 3 × workers.
    buffer_size: int
    # Workers (`concurrency_and_buffer_size.concurrency`), 1..=10000.
    concurrency: int
    # Suggested request `timeout_ms` (at least 1; saturates at `u64::MAX`).
    timeout_ms: int


class Stats(TypedDict):
    """A snapshot of the whole gateway (docs/architecture.md §8)."""

    object_pools: Dict[str, ObjectPoolStats]
    providers: Dict[str, ProviderStats]
    runtime: RuntimeStats


StoreKind = Union[Literal["memory"], Literal["redis"]]
"""Which store."""


StreamRecovery = Union[Literal["off"], Literal["restart"], Literal["buffer"], Literal["continue"]]
"""What a stream does when it fails after content reached the caller
(docs/failover.md "Stream recovery")."""


class StreamRestart(TypedDict):
    """What a restart marker says: a stream's answer number `attempt` (the
    first answer is 1) starts now, from `provider`/`model`, because the
    previous one failed with `reason`."""

    attempt: int
    model: str
    provider: str
    reason: str


class Usage(TypedDict):
    """Token counts of one call."""

    completion_tokens: int
    prompt_tokens: int
    total_tokens: int


class WorkerStats(TypedDict):
    """Worker counts of a pool."""

    added: int
    busy: int
    idle: int
    max: int
    min: int
    retired: int
    # Adaptive scaling (all zero without a `scaling` section): scale-up
    # events, workers they added, and workers retired (one per retirement).
    scale_ups: int
    total: int


ErrorCode = Literal[
    "QUEUE_FULL",
    "DROPPED",
    "QUEUE_TIMEOUT",
    "TIMEOUT",
    "CANCELLED",
    "SHUTDOWN",
    "CIRCUIT_OPEN",
    "PROVIDER",
    "NETWORK",
    "PROTOCOL",
    "INVALID_REQUEST",
    "UNKNOWN_PROVIDER",
    "CONFIG",
    "INTERNAL",
    "RATE_LIMITED",
]
"""The error kinds, as `BifrostError.kind` values."""
