// Types of the `bifrost` package (index.js / index.mjs). The shapes mirror
// the core's JSON (docs/architecture.md §4, §5, §8): keys are exactly the core's, in
// snake_case. The native addon's own (internal) declarations are generated
// by `napi build` into native.d.ts.

// ---------------------------------------------------------------- config (§4)

export type ProviderKind = 'openai' | 'anthropic' | 'bedrock' | 'mock'
export type QueuePolicy = 'block' | 'error' | 'drop' | 'drop_oldest'

/** Mock-provider knobs: on a `kind: "mock"` provider, or per request. */
export interface MockOptions {
  latency_ms?: number
  jitter_ms?: number
  /** 0..=1: share of calls failing with `failure_status` (a PROVIDER error). */
  failure_rate?: number
  failure_status?: number
  /** 0..=1: share of calls that panic inside the worker (INTERNAL). */
  panic_rate?: number
  stream_chunks?: number
  stall_ms?: number
  seed?: number
}

export interface BedrockKeyConfig {
  access_key?: string
  secret_key?: string
  session_token?: string
  region: string
  arn?: string
  deployments?: Record<string, string>
}

/** A key's alias: the model id sent upstream, plus labels. */
export interface AliasConfig {
  model_id: string
  model_name?: string
  model_family?: string
  description?: string
}

export interface KeyConfig {
  /** The key, or `"env.NAME"` to read it from the environment at load time. */
  value?: string | { value?: string; env_var?: string; from_env?: boolean }
  weight?: number
  /**
   * `["*"]` = every model; `[]` = none (every model with `version: 1`).
   * Required unless the config sets `version` (Bifrost versions read a
   * missing list oppositely).
   */
  models?: string[]
  /** Models never served by this key (wins over `models`). */
  blacklisted_models?: string[]
  /** Model name → id sent upstream. */
  aliases?: Record<string, string | AliasConfig>
  id?: string
  name?: string
  enabled?: boolean
  cooldown_ms?: number
  description?: string
  use_for_batch_api?: boolean
  bedrock_key_config?: BedrockKeyConfig
}

export interface NetworkConfig {
  base_url?: string
  extra_headers?: Record<string, string>
  default_request_timeout_in_seconds?: number
  max_retries?: number
  retry_backoff_initial_ms?: number
  retry_backoff_max_ms?: number
  /** Bifrost's spelling: milliseconds or a string such as `"500ms"`. */
  retry_backoff_initial?: number | string
  retry_backoff_max?: number | string
  stream_idle_timeout_in_seconds?: number
  max_conns_per_host?: number
  insecure_skip_verify?: boolean
  ca_cert_pem?: string
  enforce_http2?: boolean
  keep_alive_timeout_in_seconds?: number
  beta_header_overrides?: Record<string, boolean>
  allow_private_network?: boolean
  follow_redirects?: boolean
  max_response_bytes?: number
  max_event_bytes?: number
}

export interface ConcurrencyConfig {
  /** Workers, 1..=10000 (default 100). */
  concurrency?: number
  /** Queue slots, 1..=1000000 (default 1000). */
  buffer_size?: number
}

export interface QueueConfig {
  policy?: QueuePolicy
  wait_timeout_ms?: number
}

export interface CircuitBreakerConfig {
  failure_threshold?: number
  error_rate?: number
  window_ms?: number
  min_requests?: number
  open_ms?: number
  half_open_probes?: number
}

export interface ScalingConfig {
  min_workers: number
  max_workers: number
  scale_up_threshold?: number
  scale_down_threshold?: number
  max_latency_ms?: number
  min_scale_interval_ms?: number
  idle_timeout_ms?: number
  scale_up_factor?: number
}

export interface ProxyConfig {
  type: 'http' | 'socks5' | 'environment' | 'none'
  url?: string
  username?: string
  password?: string
  ca_cert_pem?: string
}

export interface ProviderConfig {
  /** Defaults to the provider's name when that is a known kind. */
  kind?: ProviderKind
  keys?: KeyConfig[]
  network_config?: NetworkConfig
  concurrency_and_buffer_size?: ConcurrencyConfig
  queue?: QueueConfig
  mock?: MockOptions
  circuit_breaker?: CircuitBreakerConfig
  scaling?: ScalingConfig
  health_check?: boolean | { model: string }
  proxy_config?: ProxyConfig
  send_back_raw_response?: boolean
  send_back_raw_request?: boolean
  store_raw_request_response?: boolean
  openai_config?: Record<string, unknown>
  custom_provider_config?: { base_provider_type: 'openai' | 'anthropic' | 'bedrock'; is_key_less?: boolean }
  metadata?: Record<string, string>
  tags?: string[]
}

export interface Config {
  /** Bifrost's config version: what a key's `models` means. */
  version?: 1 | 2
  initial_pool_size?: number
  providers: Record<string, ProviderConfig>
}

// ----------------------------------------------------- requests, responses (§5)

export type Role = 'system' | 'developer' | 'user' | 'assistant' | 'tool'

export interface ContentPart {
  type: string
  text?: string
  [key: string]: unknown
}

export interface Message {
  role: Role
  content?: string | ContentPart[] | null
  name?: string
  tool_calls?: unknown
  tool_call_id?: string
}

export interface ChatRequest {
  /** `"<provider>/<model>"`. */
  model: string
  messages: Message[]
  /** OpenAI request parameters (`temperature`, `max_tokens`, `tools`, …), forwarded as given. */
  params?: Record<string, unknown>
  /** `"<provider>/<model>"` targets tried in order when the primary fails. */
  fallbacks?: string[]
  /** One end-to-end deadline, ms (1..=3600000). */
  timeout_ms?: number
  /** Per-request overrides for the mock provider. */
  mock?: MockOptions
}

export interface Usage {
  prompt_tokens: number
  completion_tokens: number
  total_tokens: number
}

export interface ExtraFields {
  provider: string
  model: string
  latency_ms: number
  queue_wait_us: number
  attempts: number
  /** 0 for the primary, i + 1 for `fallbacks[i]`. */
  fallback_index: number
  /** Non-secret key id such as `"openai#0"`. */
  key_id: string | null
}

export interface AssistantMessage {
  role: string
  content: string | null
  tool_calls?: unknown
}

export interface Choice {
  index: number
  message: AssistantMessage
  finish_reason: string | null
}

/** An OpenAI `chat.completion` plus `extra_fields`. */
export interface ChatResponse {
  id: string
  object: string
  created: number
  model: string
  choices: Choice[]
  usage: Usage
  extra_fields: ExtraFields
}

export interface Delta {
  role?: string
  content?: string
  tool_calls?: unknown
}

export interface ChunkChoice {
  index: number
  delta: Delta
  finish_reason: string | null
}

/** An OpenAI `chat.completion.chunk`; the last carries `finish_reason` and `usage`. */
export interface Chunk {
  id: string
  object: string
  created: number
  model: string
  choices: ChunkChoice[]
  usage?: Usage
}

export interface EmbedRequest {
  model: string
  input: string | string[]
  params?: Record<string, unknown>
  timeout_ms?: number
  mock?: MockOptions
}

export interface Embedding {
  object: string
  index: number
  embedding: number[]
}

export interface EmbedResponse {
  object: string
  data: Embedding[]
  model: string
  usage: Usage
  extra_fields: ExtraFields
}

// ------------------------------------------------------------------ stats (§8)

export interface Quantiles { p50: number, p90: number, p99: number, max: number }

export interface WorkerStats {
  total: number
  busy: number
  idle: number
  min: number
  max: number
  scale_ups: number
  added: number
  retired: number
}

export interface QueueStats { depth: number, capacity: number, policy: QueuePolicy }

/** `submitted = queued + running + completed + failed + dropped + rejected + timed_out + cancelled`. */
export interface JobStats {
  submitted: number
  completed: number
  failed: number
  dropped: number
  rejected: number
  timed_out: number
  cancelled: number
  retries: number
  panics: number
  running: number
  queued: number
  stalled: number
  stalls_total: number
  fallbacks_served: number
}

export interface ProviderStats {
  workers: WorkerStats
  queue: QueueStats
  jobs: JobStats
  latency_us: { queue_wait: Quantiles, processing: Quantiles }
  throughput_per_s: number
  circuit: { state: 'disabled' | 'closed' | 'open' | 'half_open', opened_total: number }
  keys: Array<{ id: string, requests: number, errors: number, state: 'alive' | 'cooldown' | 'disabled', cooldown_remaining_ms: number }>
}

export interface ObjectPoolStats {
  requests: number
  hits: number
  misses: number
  returns: number
  idle: number
  hit_ratio: number
}

export interface Stats {
  providers: Record<string, ProviderStats>
  object_pools: Record<string, ObjectPoolStats>
  runtime: { worker_threads: number }
}

export interface ProviderHealth {
  status: 'ok' | 'degraded' | 'shutdown'
  circuit: string
  queue_utilization: number
  workers: number
  live_keys: number
  keys: number
  last_success_unix_ms: number
  last_error_unix_ms: number
  last_error: string | null
  startup_probe: 'off' | 'pending' | 'ok' | 'failed'
  startup_probe_error: string | null
  stalled_workers: number
}

export interface Health {
  status: 'ok' | 'degraded' | 'shutdown'
  providers: Record<string, ProviderHealth>
}

export interface ShutdownReport {
  completed: number
  failed: number
  cancelled: number
  aborted: number
  elapsed_ms: number
}

export interface Sizing {
  concurrency: number
  buffer_size: number
  timeout_ms: number
}

// ------------------------------------------------------------------ errors (§6)

export type ErrorCode =
  | 'QUEUE_FULL' | 'DROPPED' | 'QUEUE_TIMEOUT' | 'TIMEOUT' | 'CANCELLED' | 'SHUTDOWN' | 'CIRCUIT_OPEN'
  | 'PROVIDER' | 'NETWORK' | 'PROTOCOL' | 'INVALID_REQUEST' | 'UNKNOWN_PROVIDER' | 'CONFIG' | 'INTERNAL'

export declare const ERROR_CODES: readonly ErrorCode[]

/** Every failure bifrost reports. Wrong argument types are `TypeError`s instead. */
export declare class BifrostError extends Error {
  readonly name: 'BifrostError'
  readonly code: ErrorCode
  /** The provider the error concerns, when there is one. */
  readonly provider?: string
  /** PROVIDER: the provider's HTTP status. */
  readonly status?: number
  /** PROVIDER: the provider's response body (up to 16 KiB). */
  readonly body?: string
  /** PROVIDER: the provider's Retry-After, ms. */
  readonly retryAfterMs?: number
  /** CONFIG: the offending key path. */
  readonly path?: string
  /** In `fallbackErrors`: the `"<provider>/<model>"` target this error is for. */
  readonly target?: string
  /** When fallbacks were tried and failed too: each target's error. */
  readonly fallbackErrors?: BifrostError[]
}

// -------------------------------------------------------------------- the API

export interface CallOptions {
  /** Aborting cancels the job (and its upstream request); the call rejects with a CANCELLED BifrostError. */
  signal?: AbortSignal
}

/** A submitted chat job. */
export declare class Job {
  private constructor ()
  /** Unique within its gateway (0 if the primary refused it and it went straight to its fallbacks). */
  readonly id: number
  /** True once the outcome is here. */
  readonly done: boolean
  result (): Promise<ChatResponse>
  /** Asks the job to stop; false if it had already finished. */
  cancel (): boolean
}

/** A streamed chat. Leaving `for await` early closes the upstream request. */
export declare class ChunkStream implements AsyncIterableIterator<Chunk> {
  private constructor ()
  /** 0 if the primary provider serves the stream, i + 1 for `fallbacks[i]` (known after the first chunk). */
  readonly fallbackIndex: number
  next (): Promise<IteratorResult<Chunk, undefined>>
  return (value?: unknown): Promise<IteratorResult<Chunk, undefined>>
  throw (err?: unknown): Promise<IteratorResult<Chunk, undefined>>
  [Symbol.asyncIterator] (): ChunkStream
}

export declare class Gateway {
  /** @throws {BifrostError} code CONFIG, naming the key path. @throws {TypeError} */
  constructor (config: Config | string)
  /** Configured provider names, sorted. */
  readonly providers: string[]
  chat (request: ChatRequest, options?: CallOptions): Promise<ChatResponse>
  /** Resolves once the job is queued (under policy `block`, after waiting for space). */
  submit (request: ChatRequest, options?: CallOptions): Promise<Job>
  stream (request: ChatRequest, options?: CallOptions): ChunkStream
  embed (request: EmbedRequest, options?: CallOptions): Promise<EmbedResponse>
  stats (): Stats
  health (): Health
  prometheus (): string
  /** Default timeout 10000 ms. */
  shutdown (timeoutMs?: number): Promise<ShutdownReport>
}

/** Workers, queue and timeout by Little's law. @throws {BifrostError} INVALID_REQUEST on out-of-range input. */
export declare function optimalConcurrency (rateLimitRps: number, avgLatencyS: number, errorRate?: number): Sizing

export declare const version: string

declare const bifrost: {
  Gateway: typeof Gateway
  Job: typeof Job
  ChunkStream: typeof ChunkStream
  BifrostError: typeof BifrostError
  ERROR_CODES: typeof ERROR_CODES
  optimalConcurrency: typeof optimalConcurrency
  version: string
}
export default bifrost
