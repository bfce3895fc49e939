"""Type stubs of the native module (the API of docs/architecture.md §7)."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any, AsyncIterator, Dict, Iterator, List, Literal, Optional, Tuple, Type, TypedDict, Union

__version__: str

# ---------------------------------------------------------------- config

class AliasConfig(TypedDict, total=False):
    model_id: str
    model_name: str
    model_family: str
    description: str

class KeyConfig(TypedDict, total=False):
    value: Union[str, Dict[str, Any]]
    weight: float
    # Required unless the config sets "version" (see the README's config section).
    models: List[str]
    blacklisted_models: List[str]
    aliases: Dict[str, Union[str, AliasConfig]]
    id: str
    name: str
    description: str
    enabled: bool
    use_for_batch_api: bool
    cooldown_ms: int
    bedrock_key_config: Dict[str, Any]

class NetworkConfig(TypedDict, total=False):
    base_url: str
    extra_headers: Dict[str, str]
    default_request_timeout_in_seconds: int
    max_retries: int
    retry_backoff_initial_ms: Union[int, str]
    retry_backoff_max_ms: Union[int, str]
    retry_backoff_initial: Union[int, str]
    retry_backoff_max: Union[int, str]
    stream_idle_timeout_in_seconds: int
    max_conns_per_host: int
    insecure_skip_verify: bool
    ca_cert_pem: str
    keep_alive_timeout_in_seconds: int
    beta_header_overrides: Dict[str, bool]
    allow_private_network: bool
    follow_redirects: bool
    max_response_bytes: int
    max_event_bytes: int

class MockSettings(TypedDict, total=False):
    latency_ms: int
    jitter_ms: int
    failure_rate: float
    failure_status: int
    panic_rate: float
    stream_chunks: int
    seed: int
    stall_ms: int

class ProviderConfig(TypedDict, total=False):
    kind: Literal["openai", "anthropic", "bedrock", "mock"]
    keys: List[KeyConfig]
    network_config: NetworkConfig
    concurrency_and_buffer_size: Dict[str, int]
    queue: Dict[str, Union[str, int]]
    mock: MockSettings
    circuit_breaker: Dict[str, Union[int, float]]
    scaling: Dict[str, Union[int, float]]
    health_check: Union[bool, Dict[str, str]]
    proxy_config: Dict[str, Any]
    custom_provider_config: Dict[str, Any]
    metadata: Dict[str, str]
    tags: List[str]
    send_back_raw_response: bool
    send_back_raw_request: bool
    store_raw_request_response: bool

class GatewayConfig(TypedDict, total=False):
    version: Literal[1, 2]
    initial_pool_size: int
    providers: Dict[str, ProviderConfig]

# ---------------------------------------------------------------- requests

class Message(TypedDict, total=False):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Union[str, List[Dict[str, Any]], None]
    name: str
    tool_calls: List[Dict[str, Any]]
    tool_call_id: str

class _RequestBase(TypedDict):
    model: str
    messages: List[Message]

class ChatRequest(_RequestBase, total=False):
    params: Dict[str, Any]
    fallbacks: List[str]
    timeout_ms: int
    mock: MockSettings

class _EmbedBase(TypedDict):
    model: str
    input: Union[str, List[str]]

class EmbedRequest(_EmbedBase, total=False):
    params: Dict[str, Any]
    timeout_ms: int
    mock: MockSettings

# ---------------------------------------------------------------- responses

class Usage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

class ExtraFields(TypedDict):
    provider: str
    model: str
    latency_ms: int
    queue_wait_us: int
    attempts: int
    fallback_index: int
    key_id: Optional[str]

class AssistantMessage(TypedDict, total=False):
    role: str
    content: Optional[str]
    tool_calls: List[Dict[str, Any]]

class Choice(TypedDict):
    index: int
    message: AssistantMessage
    finish_reason: Optional[str]

class ChatResponse(TypedDict):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: List[Choice]
    usage: Usage
    extra_fields: ExtraFields

class Delta(TypedDict, total=False):
    role: str
    content: str
    tool_calls: List[Dict[str, Any]]

class ChunkChoice(TypedDict):
    index: int
    delta: Delta
    finish_reason: Optional[str]

class Chunk(TypedDict, total=False):
    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: List[ChunkChoice]
    usage: Usage

class Embedding(TypedDict):
    object: str
    index: int
    embedding: List[float]

class EmbedResponse(TypedDict):
    object: Literal["list"]
    data: List[Embedding]
    model: str
    usage: Usage
    extra_fields: ExtraFields

# ---------------------------------------------------------------- stats

class Quantiles(TypedDict):
    p50: int
    p90: int
    p99: int
    max: int

class WorkerStats(TypedDict):
    total: int
    busy: int
    idle: int
    min: int
    max: int
    scale_ups: int
    added: int
    retired: int

class QueueStats(TypedDict):
    depth: int
    capacity: int
    policy: str

class JobStats(TypedDict):
    submitted: int
    completed: int
    failed: int
    dropped: int
    rejected: int
    timed_out: int
    cancelled: int
    retries: int
    panics: int
    running: int
    queued: int
    stalled: int
    stalls_total: int
    fallbacks_served: int

class LatencyStats(TypedDict):
    queue_wait: Quantiles
    processing: Quantiles

class CircuitStats(TypedDict):
    state: Literal["disabled", "closed", "open", "half_open"]
    opened_total: int

class KeyStats(TypedDict):
    id: str
    requests: int
    errors: int
    state: Literal["alive", "cooldown", "disabled"]
    cooldown_remaining_ms: int

class ProviderStats(TypedDict):
    workers: WorkerStats
    queue: QueueStats
    jobs: JobStats
    latency_us: LatencyStats
    throughput_per_s: float
    circuit: CircuitStats
    keys: List[KeyStats]

class ObjectPoolStats(TypedDict):
    requests: int
    hits: int
    misses: int
    returns: int
    idle: int
    hit_ratio: float

class Stats(TypedDict):
    providers: Dict[str, ProviderStats]
    object_pools: Dict[str, ObjectPoolStats]
    runtime: Dict[str, int]

class ProviderHealth(TypedDict):
    status: Literal["ok", "degraded", "shutdown"]
    circuit: str
    queue_utilization: float
    workers: int
    live_keys: int
    keys: int
    last_success_unix_ms: int
    last_error_unix_ms: int
    last_error: Optional[str]
    startup_probe: Literal["off", "pending", "ok", "failed"]
    startup_probe_error: Optional[str]
    stalled_workers: int

class Health(TypedDict):
    status: Literal["ok", "degraded", "shutdown"]
    providers: Dict[str, ProviderHealth]

class ShutdownReport(TypedDict):
    completed: int
    failed: int
    cancelled: int
    aborted: int
    elapsed_ms: int

class Sizing(TypedDict):
    concurrency: int
    buffer_size: int
    timeout_ms: int

# ---------------------------------------------------------------- API

class Job:
    @property
    def id(self) -> int: ...
    def done(self) -> bool: ...
    def cancel(self) -> bool: ...
    def result(self, timeout: Optional[float] = None) -> ChatResponse: ...
    def __await__(self) -> Any: ...

class Stream(Iterator[Chunk]):
    def __iter__(self) -> Stream: ...
    def __next__(self) -> Chunk: ...
    def close(self) -> None: ...
    @property
    def fallback_index(self) -> int: ...
    def __enter__(self) -> Stream: ...
    def __exit__(self, *exc: Any) -> bool: ...

class AsyncStream(AsyncIterator[Chunk]):
    def __aiter__(self) -> AsyncStream: ...
    async def __anext__(self) -> Chunk: ...
    async def aclose(self) -> None: ...

class Gateway:
    def __init__(self, config: Union[GatewayConfig, str]) -> None: ...
    @classmethod
    def from_file(cls, path: Union[str, os.PathLike[str]]) -> Gateway: ...
    def chat(self, request: Union[ChatRequest, str]) -> ChatResponse: ...
    async def achat(self, request: Union[ChatRequest, str]) -> ChatResponse: ...
    def submit(self, request: Union[ChatRequest, str]) -> Job: ...
    async def asubmit(self, request: Union[ChatRequest, str]) -> Job: ...
    def stream(self, request: Union[ChatRequest, str]) -> Stream: ...
    def astream(self, request: Union[ChatRequest, str]) -> AsyncStream: ...
    def embed(self, request: Union[EmbedRequest, str]) -> EmbedResponse: ...
    async def aembed(self, request: Union[EmbedRequest, str]) -> EmbedResponse: ...
    def stats(self) -> Stats: ...
    def prometheus(self) -> str: ...
    def health(self) -> Health: ...
    @property
    def providers(self) -> List[str]: ...
    def shutdown(self, timeout: float = 10.0) -> ShutdownReport: ...
    async def ashutdown(self, timeout: float = 10.0) -> ShutdownReport: ...
    def __enter__(self) -> Gateway: ...
    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> bool: ...
    async def __aenter__(self) -> Gateway: ...
    async def __aexit__(self, *exc: Any) -> bool: ...

def optimal_concurrency(rate_limit_rps: float, avg_latency_s: float, error_rate: float = 0.0) -> Sizing: ...
def error_classes() -> List[Tuple[str, str]]:
    """(kind, exception class name) for every core error kind (used by the tests)."""
    ...
