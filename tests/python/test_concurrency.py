"""Real concurrency: threads, several event loops, cancellation through
asyncio, a loop that never blocks, a storm with a shutdown midway, fork,
and streams over real HTTP to the mock server."""

from __future__ import annotations

import asyncio
import os
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import bifrost
from conftest import invariant, mock_gateway, req


def test_many_threads_share_one_gateway():
    g = mock_gateway(mock={"latency_ms": 1}, concurrency_and_buffer_size={"concurrency": 16, "buffer_size": 1000})
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: g.chat(req(f"t{i}"))["choices"][0]["message"]["content"], range(800)))
    assert results == [f"echo: t{i}" for i in range(800)]
    invariant(g.stats())
    g.shutdown()


def test_several_event_loops_at_once():
    g = mock_gateway(mock={"latency_ms": 2})

    def loop_in_thread(n):
        async def main():
            rs = await asyncio.gather(*(g.achat(req(f"{n}-{i}")) for i in range(100)))
            return [r["choices"][0]["message"]["content"] for r in rs]

        return asyncio.run(main())

    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(loop_in_thread, range(4)))
    assert [len(o) for o in outs] == [100] * 4
    assert g.stats()["providers"]["p"]["jobs"]["completed"] == 400
    g.shutdown()


async def test_cancelling_the_awaiting_task_cancels_the_job():
    g = mock_gateway(mock={"latency_ms": 10_000})
    task = asyncio.create_task(g.achat(req()))
    for _ in range(500):
        if g.stats()["providers"]["p"]["jobs"]["running"] == 1:
            break
        await asyncio.sleep(0.002)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(500):
        if g.stats()["providers"]["p"]["jobs"]["cancelled"] == 1:
            break
        await asyncio.sleep(0.002)
    j = g.stats()["providers"]["p"]["jobs"]
    assert (j["cancelled"], j["running"]) == (1, 0)
    # The same for a Job awaited from a task.
    job = await g.asubmit(req())
    waiter = asyncio.create_task(_await(job))
    await asyncio.sleep(0.05)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    for _ in range(500):
        if job.done():
            break
        await asyncio.sleep(0.002)
    assert g.stats()["providers"]["p"]["jobs"]["cancelled"] == 2
    await g.ashutdown(1)


async def _await(job):
    return await job


async def test_asubmit_under_block_never_blocks_the_loop():
    g = mock_gateway(mock={"latency_ms": 300}, concurrency_and_buffer_size={"concurrency": 1, "buffer_size": 1},
                     queue={"policy": "block", "wait_timeout_ms": 5000})
    first = await g.asubmit(req())
    for _ in range(500):
        if g.stats()["providers"]["p"]["jobs"]["running"] == 1:
            break
        await asyncio.sleep(0.002)
    second = await g.asubmit(req())  # fills the queue
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    t = asyncio.create_task(ticker())
    started = time.monotonic()
    third = await g.asubmit(req())  # waits ~300 ms for space
    waited = time.monotonic() - started
    t.cancel()
    assert waited > 0.1
    assert ticks >= waited / 0.01 * 0.5, f"the loop was blocked: {ticks} ticks in {waited:.2f} s"
    for j in (first, second, third):
        await j
    await g.ashutdown(1)


def test_storm_with_shutdown_midway_resolves_every_job_once():
    g = bifrost.Gateway({"providers": {
        "a": {"kind": "mock", "mock": {"latency_ms": 1, "jitter_ms": 4, "failure_rate": 0.2, "panic_rate": 0.02},
              "concurrency_and_buffer_size": {"concurrency": 8, "buffer_size": 3000}},
        "b": {"kind": "mock", "mock": {"latency_ms": 2, "failure_rate": 0.1},
              "concurrency_and_buffer_size": {"concurrency": 4, "buffer_size": 3000}, "queue": {"policy": "drop_oldest"}},
    }})
    outcomes = {}
    lock = threading.Lock()
    jobs = []
    rng = random.Random(7)

    def count(key):
        with lock:
            outcomes[key] = outcomes.get(key, 0) + 1

    # Each submitter stops halfway until the shutdown has been issued: the
    # shutdown lands while submitters run, whatever the machine's speed.
    halfway = threading.Barrier(5)
    shut = threading.Event()

    def submitter(n):
        for i in range(2500):
            if i == 1250:
                halfway.wait(timeout=300)
                shut.wait(timeout=300)
            try:
                job = g.submit(req(f"{n}-{i}", model=f"{'ab'[i % 2]}/m"))
            except bifrost.BifrostError as e:
                count("submit:" + e.kind)
                continue
            if rng.random() < 0.05:
                job.cancel()
            with lock:
                jobs.append(job)
            if i % 50 == 0:
                time.sleep(0.001)

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    halfway.wait(timeout=300)
    report = g.shutdown(0.1)
    shut.set()
    for t in threads:
        t.join()
    for job in jobs:
        try:
            job.result(timeout=10)
            count("ok")
        except TimeoutError:
            pytest.fail("a job never resolved")
        except bifrost.BifrostError as e:
            count(e.kind)
    assert sum(outcomes.values()) == 4 * 2500, outcomes
    assert outcomes.get("submit:SHUTDOWN", 0) == 4 * 1250, outcomes
    s = g.stats()
    invariant(s)
    assert sum(p["jobs"]["completed"] for p in s["providers"].values()) == outcomes.get("ok", 0)
    assert all(p["jobs"]["queued"] == 0 and p["jobs"]["running"] == 0 for p in s["providers"].values())
    assert report["aborted"] >= outcomes.get("SHUTDOWN", 0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_gets_a_clear_error_not_a_hang():
    g = mock_gateway()
    g.chat(req())
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            g.chat(req())
            msg = b"no error"
        except bifrost.InternalError as e:
            msg = b"ok:" + str(e).encode()
        except BaseException as e:  # noqa: BLE001
            msg = repr(e).encode()
        os.write(w, msg)
        os._exit(0)
    os.close(w)
    deadline = time.monotonic() + 10
    while True:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            pytest.fail("the forked child hung")
        time.sleep(0.01)
    out = os.read(r, 4096).decode()
    assert out.startswith("ok:") and "fork" in out, out
    g.shutdown()


def http_gateway(server, **extra):
    cfg = {"openai": {"keys": [{"value": "mock-key", "models": ["*"]}], "network_config": {"base_url": f"{server.url}/v1"}}}
    cfg["openai"].update(extra)
    return bifrost.Gateway({"providers": cfg})


def test_http_chat_stream_embed(mock_server):
    g = http_gateway(mock_server)
    r = g.chat(req("over http", model="openai/gpt-4o"))
    assert r["choices"][0]["message"]["content"] == "echo: over http"
    assert r["extra_fields"]["key_id"] == "openai#0"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in g.stream(req("s t", model="openai/gpt-4o")) if c["choices"])
    assert text == "echo: s t"
    e = g.embed({"model": "openai/text-embedding-3-small", "input": "x", "params": {"dimensions": 8}})
    assert len(e["data"][0]["embedding"]) == 8
    with pytest.raises(bifrost.ProviderError) as err:
        g.chat(req(model="openai/gpt~fail_status=429"))
    assert err.value.status_code == 429
    g.shutdown()


def test_breaking_out_of_a_stream_closes_the_upstream(mock_server):
    g = http_gateway(mock_server)
    before = mock_server.stats()["streams_aborted_by_client"]
    for i, chunk in enumerate(g.stream(req("a b c", model="openai/gpt~chunks=50&chunk_delay_ms=20"))):
        if i == 2:
            break
    deadline = time.monotonic() + 5
    while mock_server.stats()["streams_aborted_by_client"] < before + 1:
        assert time.monotonic() < deadline, "the server never saw the stream closed"
        time.sleep(0.01)

    async def main():
        async for i, _ in _enumerate(g.astream(req("a b c", model="openai/gpt~chunks=50&chunk_delay_ms=20"))):
            if i == 2:
                break

    asyncio.run(main())
    deadline = time.monotonic() + 5
    while mock_server.stats()["streams_aborted_by_client"] < before + 2:
        assert time.monotonic() < deadline, "async for: the server never saw the stream closed"
        time.sleep(0.01)
    g.shutdown()


async def _enumerate(aiter):
    i = 0
    async for x in aiter:
        yield i, x
        i += 1


async def test_ten_thousand_achat_with_failures_and_shutdown_midway():
    g = bifrost.Gateway({"providers": {
        "a": {"kind": "mock", "mock": {"latency_ms": 1, "jitter_ms": 3, "failure_rate": 0.2, "panic_rate": 0.01},
              "concurrency_and_buffer_size": {"concurrency": 16, "buffer_size": 10000}},
        "b": {"kind": "mock", "mock": {"latency_ms": 2, "failure_rate": 0.1},
              "concurrency_and_buffer_size": {"concurrency": 8, "buffer_size": 10000}},
    }})

    async def one(i):
        try:
            await g.achat(req(f"{i}", model=f"{'ab'[i % 2]}/m"))
            return "ok"
        except bifrost.BifrostError as e:
            return e.kind

    tasks = [asyncio.create_task(one(i)) for i in range(10_000)]
    # The shutdown comes once some calls have completed (not after a fixed
    # time, which a busy machine stretches), long before all 10k can.
    while sum(p["jobs"]["completed"] for p in g.stats()["providers"].values()) < 100:
        await asyncio.sleep(0.005)
    report = await g.ashutdown(0.1)
    results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    assert len(results) == 10_000
    kinds = {k: results.count(k) for k in set(results)}
    assert kinds.get("SHUTDOWN", 0) > 0 and kinds.get("ok", 0) > 0, kinds
    assert set(kinds) <= {"ok", "PROVIDER", "INTERNAL", "SHUTDOWN"}, kinds
    s = g.stats()
    invariant(s)
    assert sum(p["jobs"]["completed"] for p in s["providers"].values()) == kinds["ok"]
    # SHUTDOWN = jobs the shutdown ended (aborted) + calls refused at submit.
    refused = kinds["SHUTDOWN"] - report["aborted"]
    assert refused >= 0
    assert sum(p["jobs"]["submitted"] for p in s["providers"].values()) == 10_000 - refused


async def test_cancelling_a_task_aborts_the_http_request(mock_server):
    g = http_gateway(mock_server)
    before = mock_server.stats()["streams_aborted_by_client"]

    first_chunk = asyncio.Event()

    async def consume():
        async for _ in g.astream(req("a b c", model="openai/gpt~chunks=100&chunk_delay_ms=50")):
            first_chunk.set()

    task = asyncio.create_task(consume())
    # Cancelled once the stream is flowing (it then lasts 5 s more).
    await first_chunk.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline = time.monotonic() + 5
    while mock_server.stats()["streams_aborted_by_client"] < before + 1:
        assert time.monotonic() < deadline, "the server never saw the request aborted"
        await asyncio.sleep(0.01)
    # A unary achat cancelled mid-flight frees its worker and counts as cancelled.
    task = asyncio.create_task(g.achat(req(model="openai/gpt~latency_ms=5000")))
    # Cancelled once its job is running (it would take 5 s).
    while g.stats()["providers"]["openai"]["jobs"]["running"] < 1:
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline = time.monotonic() + 5
    while g.stats()["providers"]["openai"]["jobs"]["cancelled"] < 1:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert g.stats()["providers"]["openai"]["jobs"]["running"] == 0
    await g.ashutdown(1)
