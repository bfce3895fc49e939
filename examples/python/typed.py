"""A typed tour of the API; `mypy --strict examples/python/typed.py` checks
it against the package's stubs (tests/python/test_types.py runs it), as
`tsc` checks examples/node/typed.ts. Runs with no API keys:
    python examples/python/typed.py
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Optional

import bifrost

if TYPE_CHECKING:  # the shapes are stubs only: typing, no runtime cost
    from bifrost._types import ChatRequest, ChatResponse, Config, ErrorCode, JobStats, Stats


def main() -> None:
    config: Config = {"providers": {"local": {"kind": "mock", "mock": {"latency_ms": 5}, "queue": {"policy": "error"}}}}
    req: ChatRequest = {"model": "local/echo-1", "messages": [{"role": "user", "content": "hello"}]}
    with bifrost.Gateway(config) as gw:
        resp: ChatResponse = gw.chat(req)
        text: Optional[str] = resp["choices"][0]["message"]["content"]
        latency: int = resp["extra_fields"]["latency_ms"]
        print(text, latency)

        job = gw.submit(req)
        try:
            job.result(5)
        except bifrost.BifrostError as e:
            kind: str = e.kind
            print(kind)

        for chunk in gw.stream(req):
            print(chunk["choices"][0]["delta"].get("content") or "", end="")
        print()

        stats: Stats = gw.stats()
        jobs: JobStats = stats["providers"]["local"]["jobs"]
        print(jobs["submitted"], jobs["completed"])
        code: ErrorCode = "QUEUE_FULL"
        print(code, asyncio.run(achat(gw, req))["id"] != "")


async def achat(gw: bifrost.Gateway, req: ChatRequest) -> ChatResponse:
    return await gw.achat(req)


if __name__ == "__main__":
    main()
