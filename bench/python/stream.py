"""Streams from Python, side by side in one run (issue 20): bifrost
``astream`` vs raw aiohttp with its own SSE line parsing vs the openai SDK's
``stream=True``, all against one bifrost-mock process, N concurrent streams
of 200 chunks each. Reports chunks/s, this process's CPU µs per chunk (all
its threads: bifrost's Rust runtime included), time to first chunk p50 and
inter-chunk gap p99.

    bench/.venv/bin/python bench/python/stream.py --mock target/release/bifrost-mock
    ... --streams 256,1024 --seconds 4 --chunk-delay-ms 0,10 --clients bifrost,aiohttp,openai

One JSON object per cell on stdout (the fields of bench/node/stream.js and
core/examples/bench_stream.rs), a summary line per cell on stderr. The
openai SDK is given an httpx pool without a connection cap (its default
caps at 1000 connections, fewer than the streams of the largest cell).
Not a test. Rounds alternate between the clients so drift on a noisy
machine hits all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

PROMPT = " ".join(f"w{i:03d}" for i in range(200))  # 1000 characters: 200 chunks of 5


def model(chunks: int, delay_ms: int) -> str:
    return f"gpt~chunks={chunks}&chunk_delay_ms={delay_ms}"


async def bifrost_client(base: str, chunks: int, delay_ms: int):
    import bifrost

    gw = bifrost.Gateway({"providers": {"openai": {
        "keys": [{"value": "mock-key", "models": ["*"]}],
        "network_config": {"base_url": f"{base}/v1", "max_conns_per_host": 4096},
        "concurrency_and_buffer_size": {"concurrency": 4096, "buffer_size": 65536}}}})
    req = {"model": f"openai/{model(chunks, delay_ms)}", "messages": [{"role": "user", "content": PROMPT}]}

    async def one(marks: list):
        async for c in gw.astream(req):
            if c["choices"] and c["choices"][0]["delta"].get("content"):
                marks.append(time.perf_counter())

    return one, gw.shutdown


async def aiohttp_client(base: str, chunks: int, delay_ms: int):
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    body = {"model": model(chunks, delay_ms), "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
    headers = {"authorization": "Bearer mock-key"}

    async def one(marks: list):
        async with session.post(f"{base}/v1/chat/completions", json=body, headers=headers) as r:
            async for line in r.content:
                if not line.startswith(b"data: "):
                    continue
                data = line[6:].strip()
                if data == b"[DONE]":
                    break
                c = json.loads(data)
                if c["choices"] and c["choices"][0]["delta"].get("content"):
                    marks.append(time.perf_counter())

    async def close(*_):
        await session.close()

    return one, close


async def openai_client(base: str, chunks: int, delay_ms: int):
    import httpx
    import openai

    client = openai.AsyncOpenAI(api_key="mock-key", base_url=f"{base}/v1", max_retries=0,
                                http_client=openai.DefaultAsyncHttpxClient(limits=httpx.Limits(max_connections=None)))

    async def one(marks: list):
        s = await client.chat.completions.create(model=model(chunks, delay_ms), stream=True,
                                                 messages=[{"role": "user", "content": PROMPT}])
        async for c in s:
            if c.choices and c.choices[0].delta.content:
                marks.append(time.perf_counter())

    async def close(*_):
        await client.close()

    return one, close


CLIENTS = {"bifrost": bifrost_client, "aiohttp": aiohttp_client, "openai": openai_client}
LABELS = {"bifrost": "python: bifrost astream", "aiohttp": "python: aiohttp + SSE parsing", "openai": "python: openai stream"}


async def cell(name: str, base: str, streams: int, seconds: float, chunks: int, delay_ms: int) -> dict:
    one, close = await CLIENTS[name](base, chunks, delay_ms)
    stop = time.perf_counter() + seconds
    ttfc, gaps, counts = [], [], []

    async def loop():
        while time.perf_counter() < stop:
            marks: list = []
            started = time.perf_counter()
            await one(marks)
            if marks:
                ttfc.append(marks[0] - started)
                gaps.extend(b - a for a, b in zip(marks, marks[1:]))
            counts.append(len(marks))

    # One warm-up stream per slot, unmeasured.
    await asyncio.gather(*(one([]) for _ in range(min(streams, 64))))
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(streams)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    r = close(5.0)
    if asyncio.iscoroutine(r):
        await r
    n = sum(counts)
    gaps.sort()
    return {"mode": "stream", "client": LABELS[name], "lang": "Python", "streams": streams, "chunk_delay_ms": delay_ms, "chunks": n,
            "chunks_per_s": n / wall, "cpu_us_per_chunk": cpu / n * 1e6 if n else None,
            "ttfc_p50_ms": statistics.median(ttfc) * 1e3 if ttfc else None,
            "gap_p99_ms": gaps[int(len(gaps) * 0.99)] * 1e3 if gaps else None,
            "complete": len(set(counts)) == 1}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mock", required=True)
    p.add_argument("--clients", default="bifrost,aiohttp,openai")
    p.add_argument("--streams", default="256")
    p.add_argument("--chunk-delay-ms", default="0")
    p.add_argument("--chunks", type=int, default=200)
    p.add_argument("--slow-streams", type=int, default=256,
                   help="the openai SDK runs only in cells of at most this many streams (it needs ~30 s per 1,024-stream cell)")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--json", help="write the cells here")
    a = p.parse_args()
    mock = subprocess.Popen([a.mock, "--port", "0", "--workers", "1"], stdout=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{int(mock.stdout.readline())}"
    cells = []
    try:
        for delay in [int(x) for x in a.chunk_delay_ms.split(",")]:
            for streams in [int(x) for x in a.streams.split(",")]:
                for _ in range(a.rounds):
                    for name in a.clients.split(","):
                        if name == "openai" and streams > a.slow_streams:
                            continue
                        cells.append(asyncio.run(cell(name, base, streams, a.seconds, a.chunks, delay)))
                        c = cells[-1]
                        print(json.dumps(c), flush=True)
                        print(f"# {c['client']:30} streams={streams:5} delay={delay:3}ms  {c['chunks_per_s']:9.0f} chunks/s  "
                              f"{c['cpu_us_per_chunk']:6.1f} µs CPU/chunk  ttfc p50 {c['ttfc_p50_ms']:7.1f} ms  "
                              f"gap p99 {c['gap_p99_ms']:6.1f} ms  complete={c['complete']}", file=sys.stderr, flush=True)
    finally:
        mock.kill()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(cells, f, indent=1)


if __name__ == "__main__":
    main()
