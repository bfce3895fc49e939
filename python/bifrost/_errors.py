"""Exception classes of bifrost: one per error kind of the core (docs/architecture.md §6).

Every exception is a :class:`BifrostError` with ``kind`` (the stable name,
e.g. ``"QUEUE_FULL"``), ``provider``, and for provider errors
``status_code`` and ``body``; ``retry_after_ms`` says when to come back
(a provider's ``Retry-After``, capped, or when an open circuit lets the next
probe through), else None; ``path`` is the key path a :class:`ConfigError`
names (``"providers.a.kind"``; ``""`` for the text as a whole), else None;
``text_so_far`` is the content a stream had sent when it failed past
recovery (since its start or its last restart marker), else None. When fallbacks were tried and all failed, the
exception is the primary's and ``fallback_errors`` lists
``(target, exception)`` for each fallback.
"""

from __future__ import annotations

from typing import List, Optional, Tuple


class BifrostError(Exception):
    """Base of every bifrost error."""

    kind: str
    status_code: Optional[int]
    body: Optional[str]
    provider: Optional[str]
    fallback_errors: List[Tuple[str, "BifrostError"]]
    retry_after_ms: Optional[int]
    path: Optional[str]
    text_so_far: Optional[str]

    def __init__(
        self,
        message: str,
        kind: str = "INTERNAL",
        status_code: Optional[int] = None,
        body: Optional[str] = None,
        provider: Optional[str] = None,
        fallback_errors: Optional[List[Tuple[str, "BifrostError"]]] = None,
        retry_after_ms: Optional[int] = None,
        path: Optional[str] = None,
        text_so_far: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status_code = status_code
        self.body = body
        self.provider = provider
        self.fallback_errors = list(fallback_errors or [])
        self.retry_after_ms = retry_after_ms
        self.path = path
        self.text_so_far = text_so_far

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, kind={self.kind!r})"

    def __reduce__(self):
        return (
            type(self),
            (
                self.message,
                self.kind,
                self.status_code,
                self.body,
                self.provider,
                self.fallback_errors,
                self.retry_after_ms,
                self.path,
                self.text_so_far,
            ),
        )


class QueueFullError(BifrostError):
    """The provider's queue is full (policy ``error``, or ``try_submit`` under ``block``)."""


class DroppedError(BifrostError):
    """The job was dropped by policy ``drop`` or ``drop_oldest``."""


class RateLimitedError(BifrostError):
    """A limit of the provider's ``limits`` had no capacity before the job's deadline.

    The job was never sent; ``retry_after_ms`` says when the limit has room.
    """


class QueueTimeoutError(BifrostError):
    """The job waited longer than ``queue.wait_timeout_ms``."""


class RequestTimeoutError(BifrostError, TimeoutError):
    """The request's ``timeout_ms`` ran out (the message says in which phase)."""


class CancelledError(BifrostError):
    """The job was cancelled (``Job.result()``; awaiting raises ``asyncio.CancelledError``)."""


class ShutdownError(BifrostError):
    """The gateway is shutting down or shut down."""


class CircuitOpenError(BifrostError):
    """The provider's circuit breaker is open."""


class ProviderError(BifrostError):
    """The provider answered with an error status (``status_code``, ``body``)."""


class NetworkError(BifrostError, ConnectionError):
    """The provider could not be reached, or the connection broke."""


class ProtocolError(BifrostError):
    """The provider answered, but not in its protocol (invalid JSON, a 200 that is not a
    completion, a stream that ends with neither its terminal event nor a finish)."""


class InvalidRequestError(BifrostError, ValueError):
    """The request is malformed; the message says what to fix."""


class UnknownProviderError(InvalidRequestError):
    """The request's model names a provider that is not configured."""


class ConfigError(BifrostError, ValueError):
    """The configuration is invalid; the message names the key."""


class InternalError(BifrostError):
    """A bug or a caught panic inside bifrost or a provider."""


__all__ = [
    "BifrostError",
    "QueueFullError",
    "DroppedError",
    "QueueTimeoutError",
    "RequestTimeoutError",
    "CancelledError",
    "ShutdownError",
    "CircuitOpenError",
    "ProviderError",
    "NetworkError",
    "ProtocolError",
    "InvalidRequestError",
    "UnknownProviderError",
    "ConfigError",
    "InternalError",
]
