// Generated from the serde types of bifrost-core by core/tests/schema_types.rs
// (BIFROST_BLESS=1 cargo test -p bifrost-core --test schema_types); do not edit.

/** A model id sent upstream, or Bifrost's object form (only model_id is used; the others are labels). */
export type AliasConfig = string | AliasConfigObject

export interface AliasConfigObject {
  description?: string
  model_family?: string
  model_id: string
  model_name?: string
}

/** The assistant message of a choice.
 * 
 * Like every response type, it keeps the fields bifrost does not name
 * (`refusal`, `annotations`, …) as they came, so an OpenAI-compatible
 * answer comes back whole (docs/architecture.md §12). */
export interface AssistantMessage {
  /** The text; always written, `null` when there is none. */
  content: string | null
  /** The model's reasoning text, where the provider reports it (Anthropic thinking, Bedrock reasoning, DeepSeek-style servers). */
  reasoning_content?: string | null
  /** `assistant` (borrowed when it is the well-known value: no allocation). */
  role: string
  tool_calls?: unknown
}

/** AWS credentials of a Bedrock key (Bifrost's `bedrock_key_config`). */
export interface BedrockKeyConfig {
  access_key?: Secret | null
  /** Inference-profile ARN prefix used with `deployments`. */
  arn?: Secret | null
  /** Model name → inference profile / model id. */
  deployments?: Record<string, string>
  external_id?: Secret | null
  /** Bifrost's Bedrock Mantle project (no effect on Converse): ignored. */
  project_id?: Secret | null
  /** AWS region, e.g. `us-east-1` (required; may be `env.NAME`). */
  region?: Secret
  /** STS AssumeRole (Bifrost): refused by name when set (not supported yet). */
  role_arn?: Secret | null
  secret_key?: Secret | null
  session_name?: Secret | null
  session_token?: Secret | null
}

/** Bucket capacities, when not one period's worth. */
export interface BurstConfig {
  /** Requests a full bucket holds (1..=1000000000). */
  requests?: number | null
  /** Tokens a full bucket holds (1..=1000000000000). */
  tokens?: number | null
}

/** A chat request (`{"model": "provider/model", "messages": [...], ...}`). */
export interface ChatRequest {
  /** The tokens this request will use, prompt and completion, when the caller counted them (a tokenizer): what the provider's `limits` reserve instead of bifrost's estimate (docs/architecture.md §10). Never sent to the provider. */
  estimated_tokens?: number | null
  /** This request's own failover actions, over its provider's (docs/failover.md). Never sent to the provider. */
  failover?: FailoverConfig | null
  /** `"provider/model"` targets tried in order when the primary fails. */
  fallbacks?: string[]
  /** The conversation, oldest first. */
  messages: Message[]
  /** Per-request overrides for the mock provider. */
  mock?: MockConfig | null
  /** `"<provider>/<model>"`. */
  model: string
  /** OpenAI request parameters (`temperature`, `max_tokens`, `tools`, …). */
  params?: Record<string, unknown>
  /** One end-to-end deadline in ms: queue wait, every attempt and backoff. */
  timeout_ms?: number | null
}

/** An OpenAI `chat.completion` object plus `extra_fields`. */
export interface ChatResponse {
  choices: Choice[]
  created: number
  extra_fields: ExtraFields
  id: string
  model: string
  /** `chat.completion` (borrowed: no allocation per response). */
  object: string
  usage: Usage
}

/** One completion choice. */
export interface Choice {
  /** `stop`, `length`, `tool_calls`, `content_filter` (borrowed when well known). */
  finish_reason: string | null
  index: number
  message: AssistantMessage
}

/** An OpenAI `chat.completion.chunk` object. */
export interface Chunk {
  choices: ChunkChoice[]
  created: number
  /** bifrost's addition, when there is something to say: on a stream's first chunk, what of the request the provider had no equivalent for (a stream has no response to carry it); on a restart marker, the restart (docs/failover.md). */
  extra_fields?: ChunkExtraFields | null
  id: string
  model: string
  /** `chat.completion.chunk` (borrowed: no allocation per chunk). */
  object: string
  /** Present on the final chunk. */
  usage?: Usage | null
}

/** One streamed choice. */
export interface ChunkChoice {
  delta: Delta
  finish_reason: string | null
  index: number
}

/** What a stream's first chunk adds to OpenAI's shape. */
export interface ChunkExtraFields {
  /** On a restart marker only: the stream failed after content reached the caller and a new answer starts after this chunk (whose `choices` is empty; docs/failover.md "Stream recovery"). */
  restart?: StreamRestart | null
  /** As [`ExtraFields::unmapped_params`] (on a stream's first chunk). */
  unmapped_params?: string[]
}

/** When a provider's circuit opens and how it recovers. */
export interface CircuitBreakerConfig {
  /** Also open when this share of calls in `window_ms` failed (0..=1). */
  error_rate?: number | null
  /** Consecutive failures that open the circuit (1..=10000, default 5). */
  failure_threshold?: number
  /** Probe calls allowed when half-open; that many successes close it (1..=1000, default 1). */
  half_open_probes?: number
  /** Calls needed in the window before `error_rate` applies (1..=100000, default 20). */
  min_requests?: number
  /** How long the circuit stays open (1..=3600000 ms, default 30000). */
  open_ms?: number
  /** Window for `error_rate` (1..=3600000 ms, default 10000). */
  window_ms?: number
}

/** Circuit breaker state (`disabled` until breakers exist for the pool). */
export interface CircuitStats {
  opened_total: number
  state: string
}

/** Worker count and queue capacity (Bifrost's `concurrency_and_buffer_size`). */
export interface ConcurrencyConfig {
  /** Jobs that may wait in the queue (1..=1000000). */
  buffer_size?: number
  /** Worker tasks, i.e. jobs running at once (1..=10000). */
  concurrency?: number
}

/** The whole gateway configuration. */
export interface Config {
  /** A JSON-schema reference (Bifrost's `$schema`); ignored. */
  '$schema'?: string | null
  /** How many buffers each object pool holds ready at start (0..=100000). */
  initial_pool_size?: number
  /** Where the providers' `limits` buckets live: this process (default) or a Redis server the whole fleet shares (docs/architecture.md §10). */
  limits_store?: LimitsStoreConfig | null
  /** Providers by name; a request's `model` is `"<name>/<model>"`. */
  providers?: Record<string, ProviderConfig>
  /** Bifrost's config version, for what a key's `models` means. `["*"]` is every model and a list is those models in every version. `[]` and a missing `models` are no model with `version: 2` (Bifrost ≥ 1.5) and every model with `version: 1` (Bifrost 1.4); without `version`, `[]` is no model (Bifrost's default) and a key without `models` is refused: the two Bifrost versions read it oppositely, and a file that loaded with either reading would route some requests wrongly. */
  version?: number | null
}

/** Message content: a string, or OpenAI content parts. */
export type Content = string | unknown[] | null

/** Bifrost's `custom_provider_config`. */
export interface CustomProviderConfig {
  /** The protocol this provider reuses. */
  base_provider_type: string
  /** The provider needs no key (requests go without credentials). */
  is_key_less?: boolean
}

/** The incremental message of a streamed choice. */
export interface Delta {
  content?: string | null
  /** A piece of the model's reasoning text (see [`AssistantMessage::reasoning_content`]). */
  reasoning_content?: string | null
  role?: string | null
  tool_calls?: unknown
}

/** The schema of a duration field: integer milliseconds or a Go duration
 * string (`"500ms"`, `"5s"`, `"2m"`), as [`read_millis`] reads it. */
export type DurationInput = number | string

/** Embedding input: one string or many. */
export type EmbedInput = string | string[]

/** An embeddings request in the OpenAI shape, routed by `model`. */
export interface EmbedRequest {
  /** One text or several. */
  input: EmbedInput
  /** Per-request overrides for the mock provider. */
  mock?: MockConfig | null
  /** `"<provider>/<model>"`. */
  model: string
  /** Extra OpenAI parameters (`dimensions`, `encoding_format`, …). */
  params?: Record<string, unknown>
  /** End-to-end deadline, ms. */
  timeout_ms?: number | null
}

/** An OpenAI embeddings response (`object: "list"`) plus `extra_fields`. */
export interface EmbedResponse {
  data: Embedding[]
  extra_fields: ExtraFields
  model: string
  object: string
  usage: EmbedUsage
}

/** Token counts of an embeddings call (OpenAI's shape: no completion). */
export interface EmbedUsage {
  prompt_tokens: number
  total_tokens: number
}

/** One embedding vector. */
export interface Embedding {
  embedding: EmbeddingVector
  index: number
  object: string
}

/** An embedding as the provider sent it: numbers (kept as f64, so every
 * value comes back exactly) or, with `encoding_format: "base64"`, the
 * base64 text of little-endian f32s. */
export type EmbeddingVector = number[] | string

/** Where and how a response was produced (bifrost's additions to the shape). */
export interface ExtraFields {
  /** Attempts made (1 + retries). */
  attempts: number
  /** 0 for the primary, i + 1 for `fallbacks[i]`. */
  fallback_index: number
  /** Stable non-secret id of the key used (`openai#0`), if any. */
  key_id: string | null
  /** Submit-to-outcome latency, ms. */
  latency_ms: number
  /** Model name without the provider prefix. */
  model: string
  /** Provider name that served the request. */
  provider: string
  /** Time the job waited in the queue, µs. */
  queue_wait_us: number
  /** What of the request the provider has no equivalent for and was not sent (`frequency_penalty`, `messages[2].name`, …); absent when everything was sent (docs/architecture.md §12). */
  unmapped_params?: string[]
}

/** What a failure class does. */
export type FailoverAction = 'retry' | 'fallback' | 'return'

/** Per-class actions; a key left out keeps its default (shown per field). */
export interface FailoverConfig {
  /** `buffer`: chunks flow to the caller once this many characters of content are held (default and most 1048576: a buffer is bounded). */
  commit_after_chars?: number | null
  /** Streams: the longest wait from an attempt's start to its first content chunk (default 15000; 0 = none). Armed only when its action can do something: `retry` with a retry left, or `fallback` with a fallback to go to; else the attempt limit alone bounds the wait. */
  first_token_timeout_ms?: number | null
  /** Unary calls: the longest wait for the response head (default none: a non-streamed answer's head comes only when the whole answer is ready, so only a caller who knows its model's latency sets this). */
  headers_timeout_ms?: number | null
  /** The provider refused the content (default `return`; `retry` is refused). */
  on_content_policy?: FailoverAction | null
  /** The prompt does not fit the model (default `fallback`; `retry` is refused). */
  on_context_length?: FailoverAction | null
  /** A stream's first content (or a unary call's response head, with `headers_timeout_ms`) did not come in time (default `fallback`). */
  on_first_token_timeout?: FailoverAction | null
  /** Connect, reset, TLS, a cut body (default `retry`). */
  on_network?: FailoverAction | null
  /** 429 / throttling (default `retry`, waiting `Retry-After` when it fits). */
  on_rate_limit?: FailoverAction | null
  /** 5xx, 529, 408 (default `retry`). */
  on_server_error?: FailoverAction | null
  /** No answer within the attempt limit (default `fallback`: a route that went silent is not waited for again). */
  on_timeout?: FailoverAction | null
  /** What a stream does when it fails after its first content (default `restart`). */
  stream_recovery?: StreamRecovery | null
  /** After this many failed attempts in a row at the provider (server errors, timeouts, network errors), its failures are not retried until an attempt succeeds (default 5; 0 = always retry; at most 1000). */
  suspend_retries_after?: number | null
}

/** Health of the gateway: `ok` when every provider is `ok`. */
export interface Health {
  providers: Record<string, ProviderHealth>
  status: string
}

/** The startup probe setting. */
export type HealthCheck = boolean | HealthCheckObject

export interface HealthCheckObject {
  /** Model the probe asks (one token, prompt "ping"). */
  model: string
}

/** Job counters; see the module doc for the invariant they satisfy (in
 * every snapshot: the counters of one snapshot are one instant's). */
export interface JobStats {
  cancelled: number
  completed: number
  dropped: number
  failed: number
  /** Requests this pool served as a fallback for another provider. */
  fallbacks_served: number
  panics: number
  /** Jobs accepted and not yet begun by a worker (including one just handed to a worker); `QueueStats::depth` is the queue's occupancy. */
  queued: number
  /** Jobs a limit of the provider's `limits` had no capacity for before their deadline (ended RATE_LIMITED, never sent). */
  rate_limited: number
  rejected: number
  retries: number
  /** Jobs a worker has begun and not finished. */
  running: number
  /** Workers busy past their job's deadline plus a grace second (a provider call blocking its thread), now and since start. */
  stalled: number
  stalls_total: number
  submitted: number
  timed_out: number
}

/** One API key. */
export interface KeyConfig {
  /** Model name a request uses → model id sent upstream (Bifrost's `aliases`; a string or `{"model_id": ...}`), applied after the key is chosen; exact match first, then ignoring case. */
  aliases?: Record<string, AliasConfig>
  /** AWS credentials, for `kind: "bedrock"` keys. */
  bedrock_key_config?: BedrockKeyConfig | null
  /** Models this key never serves (Bifrost's `blacklisted_models`; wins over `models`; `["*"]` blocks all). Compared ignoring case. */
  blacklisted_models?: string[]
  /** How long a key the provider rejected (401/403) is skipped (0..=86400000 ms, default 60000). */
  cooldown_ms?: number
  /** Bifrost compatibility: accepted and ignored. */
  description?: string | null
  /** A disabled key is never chosen (default true). */
  enabled?: boolean
  /** Bifrost compatibility: an optional key id; bifrost's stats use `<provider>#<index>`. */
  id?: string | null
  /** Models this key may serve, as written (see [`Config::version`] for what absent and `[]` mean); read through [`KeyConfig::allows`]. */
  models?: string[] | null
  /** Bifrost compatibility: an optional human-readable key name. */
  name?: string | null
  /** Bifrost compatibility: accepted and ignored (no batch API here). */
  use_for_batch_api?: boolean | null
  /** The key itself, or `env.NAME` to read it from the environment. */
  value?: Secret
  /** Relative share of requests (> 0). */
  weight?: number
}

/** Counters of one key, by its non-secret id. */
export interface KeyStats {
  cooldown_remaining_ms: number
  errors: number
  id: string
  requests: number
  /** `alive`, `cooldown` (rejected with 401/403) or `disabled`. */
  state: string
}

/** Queue-wait and processing latency summaries, µs. */
export interface LatencyStats {
  processing: Quantiles
  queue_wait: Quantiles
}

/** Whose buckets a request draws from. */
export type LimitScope = 'provider' | 'key'

/** One limit bucket (docs/architecture.md §10). */
export interface LimitStats {
  /** Units a full bucket holds. */
  burst: number
  /** Units per period (requests or tokens). */
  limit: number
  period_ms: number
  /** Jobs this bucket had no capacity for before their deadline. */
  rate_limited: number
  /** Units that could be taken now. */
  remaining: number
  /** Ms until the bucket is full again. */
  reset_ms: number
  /** Times a job at the queue's front waited for this bucket. */
  waits: number
}

/** A provider's `limits` section. */
export interface LimitsConfig {
  /** Capacities; default one period's worth. */
  burst?: BurstConfig | null
  /** Completion tokens reserved for a request without `max_tokens` (1..=10000000, default 256). */
  default_completion_tokens?: number | null
  /** Lower the buckets to what the provider's rate-limit headers and a 429's `Retry-After` say (default false). */
  learn_from_headers?: boolean | null
  /** Requests at the upstream at once (1..=100000); a stream counts until it ends. */
  max_in_flight?: number | null
  /** Limits of single models (by the name a request uses), on top of the provider's. */
  models?: Record<string, RateConfig>
  requests_per_day?: number | null
  requests_per_minute?: number | null
  /** Requests per second / minute / day (1..=1000000000; one of the three). */
  requests_per_second?: number | null
  /** `provider` (default): one set of buckets; `key`: one set per key (1..=64 keys), and a job takes a key with capacity. */
  scope?: LimitScope
  tokens_per_day?: number | null
  tokens_per_minute?: number | null
  /** Tokens per second / minute / day (1..=1000000000000; one of the three). */
  tokens_per_second?: number | null
}

/** The `limits_store` section. */
export interface LimitsStoreConfig {
  /** `url` is one node of a Redis Cluster (default false); the others are found from it. */
  cluster?: boolean | null
  /** Processes sharing the limits (1..=100000); required with `local_share`, which enforces limit ÷ `fleet_size` per process. */
  fleet_size?: number | null
  /** `memory` (default) or `redis`. */
  kind?: StoreKind
  /** How long a `max_in_flight` lease outlives a process that stopped renewing it (killed), in ms (1000..=600000, default 10000). */
  lease_ttl_ms?: number | null
  /** `local_share` (default), `fail_open` or `fail_closed`. */
  on_unavailable?: OnUnavailable
  /** Put before every key (default `bifrost:`; at most 64 bytes, no `{` or `}`, which would change the hash tag). */
  prefix?: string | null
  /** Longest one store call may take, in ms (1..=10000, default 50). */
  timeout_ms?: number | null
  /** `redis://[:password@]host:port/db` (or `env.NAME`); required for `redis`. */
  url?: string | null
}

/** The `limits_store` a provider's buckets live in (docs/architecture.md §10). */
export interface LimitsStoreStats {
  /** Settlements (refunds, charges, learned headers) not applied: the writer's queue was full or the store down. */
  dropped_writes: number
  /** Store calls that failed or timed out. */
  errors: number
  /** Whether `on_unavailable` is deciding admissions now. */
  fallback_active: boolean
  /** `memory` or `redis`. */
  kind: string
  /** `max_in_flight` leases this process holds in the store. */
  leases_held: number
  /** Leases the store expired before this process renewed them (it stalled past `lease_ttl_ms`; the fleet may have run over then). */
  leases_lost: number
  /** Whether the store answers (always true for `memory`). */
  up: boolean
}

/** One chat message. */
export interface Message {
  /** Text, or a list of content parts (`[{"type": "text", "text": ...}]`). */
  content?: Content
  /** Optional participant name. */
  name?: string | null
  /** `system`, `developer`, `user`, `assistant` or `tool`. */
  role: string
  /** The call a `tool` message answers. */
  tool_call_id?: string | null
  /** Tool calls requested by an assistant message. */
  tool_calls?: unknown
}

/** Behaviour of the in-process mock provider; every field can be overridden
 * per request by a request field `"mock": {...}` with the same keys. */
export interface MockConfig {
  /** Share of calls that fail with `failure_status` (0..=1). */
  failure_rate?: number | null
  /** HTTP status of injected failures (100..=599, default 500). */
  failure_status?: number | null
  /** Uniform random extra latency in `[0, jitter_ms]`, ms (0..=600000). */
  jitter_ms?: number | null
  /** Base latency of each call, ms (0..=600000). */
  latency_ms?: number | null
  /** Share of calls that panic inside the worker (0..=1). */
  panic_rate?: number | null
  /** Makes the random choices reproducible. */
  seed?: number | null
  /** Blocks the worker's thread this long (ms) without yielding, like a broken provider would: for exercising the stall detector (0..=60000). */
  stall_ms?: number | null
  /** Chunks a streamed reply is split into (1..=10000, default 4). */
  stream_chunks?: number | null
}

/** Endpoint, timeouts and retries (Bifrost's `network_config`). */
export interface NetworkConfig {
  /** Bifrost's private-address guard for `base_url`. bifrost does not filter addresses, which is Bifrost's `true`; `false` is refused by name (not supported yet). */
  allow_private_network?: boolean | null
  /** Overrides the provider's default endpoint. */
  base_url?: string | null
  /** Bifrost's `anthropic-beta` header rewrites: refused by name when non-empty (not supported yet). */
  beta_header_overrides?: Record<string, boolean>
  /** Bifrost compatibility: extra CA certificate (PEM) to trust. */
  ca_cert_pem?: Secret | null
  /** Bound on one attempt (1..=3600 s). */
  default_request_timeout_in_seconds?: number
  /** Bifrost compatibility: force HTTP/2. */
  enforce_http2?: boolean | null
  /** Headers added to every upstream request (values may be `env.NAME`; they never print, as they often carry credentials). */
  extra_headers?: Record<string, Secret>
  /** Follow HTTP redirects of API calls (default false: a 3xx is a PROVIDER error). Even when set, a redirect to another origin (scheme, host or port) is never followed, so credentials never leave for another host. */
  follow_redirects?: boolean
  /** Bifrost compatibility: disables TLS certificate checks when true. */
  insecure_skip_verify?: boolean | null
  /** Bifrost compatibility: idle keep-alive of pooled connections (1..=3600 s): accepted and ignored (the HTTP client keeps its own). */
  keep_alive_timeout_in_seconds?: number | null
  /** Bifrost compatibility: connection-pool bound per host (1..=10000). */
  max_conns_per_host?: number | null
  /** Largest single SSE event or line of a stream (1 KiB..=256 MiB, default 8 MiB); a larger one is a PROTOCOL error. */
  max_event_bytes?: number
  /** Largest success body read (1 KiB..=1 GiB, default 64 MiB); a larger one is a PROTOCOL error (docs/architecture.md §13). */
  max_response_bytes?: number
  /** Extra attempts after a retryable failure (0..=10). */
  max_retries?: number
  /** Bifrost's spelling of `retry_backoff_initial_ms`, with its meaning: ms or a duration string (`"2m"`), and 0 or less keeps the default. */
  retry_backoff_initial?: DurationInput | null
  /** First backoff (0..=1000000 ms); doubles each retry up to the max. */
  retry_backoff_initial_ms?: DurationInput
  /** Bifrost's spelling of `retry_backoff_max_ms` (as above). */
  retry_backoff_max?: DurationInput | null
  /** Backoff ceiling (>= initial, ..=1000000 ms). */
  retry_backoff_max_ms?: DurationInput
  /** A stream with no event for this long is an error (1..=3600 s). */
  stream_idle_timeout_in_seconds?: number
}

/** Counters of one object pool. */
export interface ObjectPoolStats {
  hit_ratio: number
  hits: number
  idle: number
  misses: number
  requests: number
  returns: number
}

/** What a process does while the store does not answer. */
export type OnUnavailable = 'local_share' | 'fail_open' | 'fail_closed'

/** One provider: its protocol, keys, limits and queue policy. */
export interface ProviderConfig {
  /** Circuit breaker; absent means disabled. */
  circuit_breaker?: CircuitBreakerConfig | null
  /** Worker count and queue capacity. */
  concurrency_and_buffer_size?: ConcurrencyConfig
  /** Bifrost's custom provider: `base_provider_type` (`openai`, `anthropic`, `bedrock`) sets `kind`; other fields are refused by name. */
  custom_provider_config?: CustomProviderConfig | null
  /** What each failure class does: retry, fallback or return (docs/failover.md; defaults when absent). */
  failover?: FailoverConfig | null
  /** Startup probe: `true` (model from the first key's `models`, or any model for `mock`) or `{"model": "..."}`. Its result shows in `health()`. */
  health_check?: HealthCheck | null
  /** API keys, chosen by weight among those whose `models` allow the model. */
  keys?: KeyConfig[]
  /** Protocol; defaults to the provider's name when that is a known kind. */
  kind?: ProviderKind | null
  /** Request and token limits bifrost keeps to before the provider's 429 (docs/architecture.md §10); absent means none. */
  limits?: LimitsConfig | null
  /** Bifrost's operator labels (no effect on routing): accepted and ignored. */
  metadata?: Record<string, string> | null
  /** Knobs of the in-process mock provider (`kind: "mock"` only). */
  mock?: MockConfig | null
  /** Endpoint, timeouts and retry policy. */
  network_config?: NetworkConfig
  /** Bifrost compatibility (`{"disable_store": bool}`): accepted and ignored. */
  openai_config?: unknown
  /** Outbound proxy (Bifrost's `proxy_config`), used by HTTP providers. */
  proxy_config?: ProxyConfig | null
  /** What `submit` does when the queue is full. */
  queue?: QueueConfig
  /** Adaptive worker count; absent means a fixed `concurrency`. */
  scaling?: ScalingConfig | null
  /** Bifrost compatibility: accepted and ignored. */
  send_back_raw_request?: boolean | null
  /** Bifrost compatibility: accepted and ignored; bifrost always returns the normalized OpenAI shape. */
  send_back_raw_response?: boolean | null
  /** Bifrost compatibility: accepted and ignored. */
  store_raw_request_response?: boolean | null
  /** Bifrost's operator labels (no effect on routing): accepted and ignored. */
  tags?: string[] | null
}

/** Health of one provider pool. */
export interface ProviderHealth {
  /** Circuit breaker state (`disabled`, `closed`, `open`, `half_open`). */
  circuit: string
  /** Configured keys. */
  keys: number
  last_error: string | null
  /** Last job that failed, Unix ms (0: none yet), and its error. */
  last_error_unix_ms: number
  /** Last job that completed, Unix ms (0: none yet). */
  last_success_unix_ms: number
  /** Keys usable now (not cooling down after a 401/403; disabled ones excluded). */
  live_keys: number
  /** Queue depth / capacity. */
  queue_utilization: number
  /** Workers busy past their job's deadline plus grace (see `jobs.stalled`). */
  stalled_workers: number
  /** The `health_check` probe: `off`, `pending`, `ok` or `failed`. */
  startup_probe: string
  /** The probe's error, when it failed. */
  startup_probe_error: string | null
  /** `ok`; `degraded` when the circuit is not closed, no key is usable, the queue is ≥ 90 % full or workers are missing; `shutdown`. */
  status: string
  /** Live worker tasks. */
  workers: number
}

/** Which wire protocol a provider speaks. */
export type ProviderKind = 'openai' | 'anthropic' | 'bedrock' | 'mock'

/** Everything about one provider pool. */
export interface ProviderStats {
  circuit: CircuitStats
  jobs: JobStats
  keys: KeyStats[]
  latency_us: LatencyStats
  /** The provider's `limits`, by bucket (`requests`, `tokens`, `model:<name>:tokens`, ...); empty without limits. */
  limits: Record<string, LimitStats>
  /** Where those buckets live (absent without `limits`). */
  limits_store?: LimitsStoreStats | null
  queue: QueueStats
  throughput_per_s: number
  workers: WorkerStats
}

/** Outbound proxy settings (Bifrost's `proxy_config`). */
export interface ProxyConfig {
  /** Extra CA certificate for TLS-intercepting proxies. */
  ca_cert_pem?: Secret | null
  /** Proxy password (may be `env.NAME`). */
  password?: Secret | null
  /** `none`, `http`, `socks5` or `environment`. */
  type: string
  /** Proxy URL (may be `env.NAME`). */
  url?: Secret | null
  /** Proxy user (may be `env.NAME`). */
  username?: Secret | null
}

/** p50/p90/p99/max of a latency, µs. */
export interface Quantiles {
  max: number
  p50: number
  p90: number
  p99: number
}

/** Queue policy and the longest a job may wait. */
export interface QueueConfig {
  /** Full-queue behaviour. */
  policy?: QueuePolicy
  /** Longest wait for queue space (policy `block`) and for a worker, in milliseconds (0..=3600000). A job queued longer is not started. */
  wait_timeout_ms?: number
}

/** What `submit` does when the queue is full (docs/architecture.md §3). */
export type QueuePolicy = 'block' | 'error' | 'drop' | 'drop_oldest'

/** Queue occupancy and policy. */
export interface QueueStats {
  capacity: number
  depth: number
  policy: string
}

/** Request and token rates: at most one period per resource. */
export interface RateConfig {
  /** Capacities; default one period's worth. */
  burst?: BurstConfig | null
  requests_per_day?: number | null
  requests_per_minute?: number | null
  /** Requests per second / minute / day (1..=1000000000; one of the three). */
  requests_per_second?: number | null
  tokens_per_day?: number | null
  tokens_per_minute?: number | null
  /** Tokens per second / minute / day (1..=1000000000000; one of the three). */
  tokens_per_second?: number | null
}

/** The shared runtime. */
export interface RuntimeStats {
  worker_threads: number
}

/** Adaptive worker scaling of one pool. */
export interface ScalingConfig {
  /** A worker idle this long retires, down to `min_workers` (10..=86400000 ms, default 30000). */
  idle_timeout_ms?: number
  /** Also scale up when the recent average processing time exceeds this (ms). */
  max_latency_ms?: number | null
  /** Most workers (min_workers..=10000). */
  max_workers: number
  /** How often the controller looks, and the least time between two scale-ups (10..=600000 ms, default 1000). */
  min_scale_interval_ms?: number
  /** Fewest workers (1..=10000); the pool starts at `concurrency` clamped to `min_workers..=max_workers`. */
  min_workers: number
  /** Idle workers may retire when queue depth / capacity is at or below this (0..=1, below the up threshold, default 0.3). */
  scale_down_threshold?: number
  /** Workers multiply by this on each scale-up (1..=10, default 2). */
  scale_up_factor?: number
  /** Scale up when queue depth / capacity reaches this (0..=1, default 0.8). */
  scale_up_threshold?: number
}

/** A credential: the value, or "env.NAME" to read it from the environment, or Bifrost's {"value", "env_var", "from_env"}. */
export type Secret = string | SecretObject

export interface SecretObject {
  env_var?: string
  from_env?: boolean
  value?: string
}

/** What [`Gateway::shutdown`] did, counted over the shutdown itself. */
export interface ShutdownReport {
  /** Jobs still queued or running at the deadline, ended with SHUTDOWN. */
  aborted: number
  /** Jobs cancelled while draining. */
  cancelled: number
  /** Jobs that completed while draining. */
  completed: number
  /** Time the shutdown took. */
  elapsed_ms: number
  /** Jobs that failed while draining, including `aborted`. */
  failed: number
}

/** Suggested `concurrency_and_buffer_size` and timeout for one provider. */
export interface Sizing {
  /** Queue slots (`concurrency_and_buffer_size.buffer_size`), 3 × workers. */
  buffer_size: number
  /** Workers (`concurrency_and_buffer_size.concurrency`), 1..=10000. */
  concurrency: number
  /** Suggested request `timeout_ms` (at least 1; saturates at `u64::MAX`). */
  timeout_ms: number
}

/** A snapshot of the whole gateway (docs/architecture.md §8). */
export interface Stats {
  object_pools: Record<string, ObjectPoolStats>
  providers: Record<string, ProviderStats>
  runtime: RuntimeStats
}

/** Which store. */
export type StoreKind = 'memory' | 'redis'

/** What a stream does when it fails after content reached the caller
 * (docs/failover.md "Stream recovery"). */
export type StreamRecovery = 'off' | 'restart' | 'buffer' | 'continue'

/** What a restart marker says: a stream's answer number `attempt` (the
 * first answer is 1) starts now, from `provider`/`model`, because the
 * previous one failed with `reason`. */
export interface StreamRestart {
  attempt: number
  model: string
  provider: string
  reason: string
}

/** Token counts of one call. */
export interface Usage {
  completion_tokens: number
  prompt_tokens: number
  total_tokens: number
}

/** Worker counts of a pool. */
export interface WorkerStats {
  added: number
  busy: number
  idle: number
  max: number
  min: number
  retired: number
  /** Adaptive scaling (all zero without a `scaling` section): scale-up events, workers they added, and workers retired (one per retirement). */
  scale_ups: number
  total: number
}

/** The error kinds, as `BifrostError#code` values. */
export type ErrorCode =
    'QUEUE_FULL'
  | 'DROPPED'
  | 'QUEUE_TIMEOUT'
  | 'TIMEOUT'
  | 'CANCELLED'
  | 'SHUTDOWN'
  | 'CIRCUIT_OPEN'
  | 'PROVIDER'
  | 'NETWORK'
  | 'PROTOCOL'
  | 'INVALID_REQUEST'
  | 'UNKNOWN_PROVIDER'
  | 'CONFIG'
  | 'INTERNAL'
  | 'RATE_LIMITED'
