"""The public :class:`Gateway`: the native gateway plus coroutine wrappers.

The native ``a*`` methods return asyncio futures bound to the running loop;
wrapping them in ``async def`` makes them ordinary coroutines, so
``asyncio.run(gw.achat(...))`` works like any other coroutine call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Union

from . import _bifrost

if TYPE_CHECKING:
    from ._bifrost import Job
    from ._types import ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, ShutdownReport


def _resolve_batch(items: Any) -> None:
    """Resolves a batch of asyncio futures (called on their loop by bifrost's
    completion thread: one wake-up per batch)."""
    for future, ok, value in items:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class Gateway(_bifrost.Gateway):
    """Provider-isolated worker pools behind one routing front (see the README)."""

    __slots__ = ()

    async def achat(self, request: Union[ChatRequest, str]) -> ChatResponse:
        """Sends a chat request; the awaiting task's cancellation cancels the job."""
        return await super().achat(request)

    async def asubmit(self, request: Union[ChatRequest, str]) -> Job:
        """Submits a chat request (waits without blocking the loop under policy block)."""
        return await super().asubmit(request)

    async def aembed(self, request: Union[EmbedRequest, str]) -> EmbedResponse:
        """Computes embeddings."""
        return await super().aembed(request)

    async def ashutdown(self, timeout: float = 10.0) -> ShutdownReport:
        """Graceful shutdown; returns the report."""
        return await super().ashutdown(timeout)
