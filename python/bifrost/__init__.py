"""bifrost: provider-isolated worker pools for LLM requests, in-process.

>>> import bifrost
>>> gw = bifrost.Gateway({"providers": {"local": {"kind": "mock"}}})
>>> gw.chat({"model": "local/echo", "messages": [{"role": "user", "content": "hi"}]})["choices"][0]["message"]["content"]
'echo: hi'

Every submitted job ends in exactly one outcome: a response dict or one of
the exceptions below. See the README for the configuration schema.
"""

from ._bifrost import Accumulator, AsyncStream, Job, Stream, __version__, optimal_concurrency
from ._gateway import Gateway
from ._errors import (
    BifrostError,
    CancelledError,
    CircuitOpenError,
    ConfigError,
    DroppedError,
    InternalError,
    InvalidRequestError,
    NetworkError,
    ProtocolError,
    ProviderError,
    QueueFullError,
    QueueTimeoutError,
    RateLimitedError,
    RequestTimeoutError,
    ShutdownError,
    UnknownProviderError,
)

__all__ = [
    "Gateway",
    "Job",
    "Stream",
    "Accumulator",
    "AsyncStream",
    "optimal_concurrency",
    "__version__",
    "BifrostError",
    "CancelledError",
    "CircuitOpenError",
    "ConfigError",
    "DroppedError",
    "InternalError",
    "InvalidRequestError",
    "NetworkError",
    "ProtocolError",
    "ProviderError",
    "QueueFullError",
    "QueueTimeoutError",
    "RateLimitedError",
    "RequestTimeoutError",
    "ShutdownError",
    "UnknownProviderError",
]
