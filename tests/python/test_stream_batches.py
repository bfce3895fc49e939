"""Chunks cross into Python in batches (``AsyncStream``): one reader per
stream reads ahead of the consumer, taking every chunk that is already
there, and ``__anext__`` returns a chunk that is ready without a task, a
future or a wake-up. Batching must never lose, repeat or reorder a chunk,
not even when ``__anext__`` calls are cancelled, and an error read behind
chunks is raised only after them."""

from __future__ import annotations

import asyncio

import pytest

import bifrost

from conftest import mock_gateway, req

WORDS = " ".join(f"w{i}" for i in range(300))  # more chunks than one batch (256)


def http_gateway(mock_server, **provider) -> bifrost.Gateway:
    """A gateway on bifrost-mock over loopback HTTP (openai provider)."""
    cfg = {"keys": [{"value": "mock-key", "models": ["*"]}], "network_config": {"base_url": f"{mock_server.url}/v1"}}
    cfg.update(provider)
    return bifrost.Gateway({"providers": {"openai": cfg}})


def content(chunks) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def step(awaitable):
    """One step of an awaitable: ("chunk", value) if it finished without
    suspending, ("wait", future) if it yielded a future to wait on."""
    it = awaitable.__await__()
    try:
        return "wait", it.send(None)
    except StopIteration as done:
        return "chunk", done.value


async def test_ready_chunks_are_returned_without_suspending(gw):
    # The in-process mock provider knows every chunk at once: once the first
    # arrived, the next ones are already read ahead.
    s = gw.astream(req("a b c d"))
    first = await s.__anext__()
    kind, second = step(s.__anext__())
    assert kind == "chunk", "a chunk already read is returned without waiting"
    rest = [second] + [c async for c in s]
    assert content([first] + rest) == "echo: a b c d"
    assert rest[-1]["choices"][0]["finish_reason"] == "stop"


async def test_a_stream_longer_than_a_batch_arrives_whole_and_in_order():
    g = mock_gateway(mock={"stream_chunks": 1000})
    try:
        got = [c async for c in g.astream(req(WORDS))]
        assert content(got) == "echo: " + WORDS
        assert len(got) > 256
    finally:
        g.shutdown(1.0)


async def test_after_the_end_every_anext_is_the_end(gw):
    s = gw.astream(req("x"))
    assert content([c async for c in s]) == "echo: x"
    for _ in range(3):
        with pytest.raises(StopAsyncIteration):
            await s.__anext__()


async def test_http_stream_at_full_speed_is_lossless(mock_server):
    # 2000 chunks with no delay over loopback: reads take many chunks at once.
    g = http_gateway(mock_server)
    try:
        prompt = " ".join(f"t{i}" for i in range(2000))

        async def one():
            return [c async for c in g.astream(req(prompt, model="openai/m~chunks=2000"))]

        results = await asyncio.gather(*(one() for _ in range(8)))
        for got in results:
            assert content(got) == "echo: " + prompt
    finally:
        g.shutdown(5.0)


async def test_an_error_behind_ready_chunks_comes_after_them(mock_server):
    # The mock sends 5 good events, then one that is not JSON; with recovery
    # off the error is the stream's end. All 5 chunks come first, then the
    # error once, then the stream is over.
    g = http_gateway(mock_server, failover={"stream_recovery": "off"})
    try:
        s = g.astream(req("a b c d e f g h", model="openai/m~chunks=8&invalid_event_at=5"))
        got = []
        with pytest.raises(bifrost.ProtocolError):
            async for c in s:
                got.append(c)
        assert len(got) == 5
        with pytest.raises(StopAsyncIteration):
            await s.__anext__()
    finally:
        g.shutdown(5.0)


async def test_concurrent_anext_calls_share_out_every_chunk_once(gw):
    s = gw.astream(req(" ".join(f"c{i}" for i in range(20))))
    expected = [c async for c in gw.astream(req(" ".join(f"c{i}" for i in range(20))))]
    results = await asyncio.gather(*(s.__anext__() for _ in range(len(expected) + 10)), return_exceptions=True)
    chunks = [r for r in results if isinstance(r, dict)]
    ends = [r for r in results if not isinstance(r, dict)]
    assert all(isinstance(e, StopAsyncIteration) for e in ends) and len(ends) == 10
    key = lambda c: (c["choices"][0]["delta"].get("content") or "", c["choices"][0]["finish_reason"] or "")  # noqa: E731
    assert sorted(map(key, chunks)) == sorted(map(key, expected))


async def test_collect_after_a_partial_read_keeps_the_ready_chunks(gw):
    s = gw.astream(req(WORDS))
    first = await s.__anext__()
    message = await s.collect()
    assert content([first]) + message["choices"][0]["message"]["content"] == "echo: " + WORDS


async def test_aclose_drops_the_ready_chunks(gw):
    s = gw.astream(req("a b c d"))
    await s.__anext__()
    await s.aclose()
    with pytest.raises(StopAsyncIteration):
        await s.__anext__()


async def test_cancelled_anext_calls_lose_no_chunk(mock_server):
    # Every chunk takes 20 ms; most __anext__ calls time out (cancelled)
    # before one arrives. The chunk a cancelled call would have taken stays
    # for the next call: the whole answer arrives, in order.
    g = http_gateway(mock_server)
    try:
        prompt = " ".join(f"k{i}" for i in range(30))
        s = g.astream(req(prompt, model="openai/m~chunks=30&chunk_delay_ms=20"))
        got, timeouts = [], 0
        while True:
            try:
                got.append(await asyncio.wait_for(s.__anext__(), timeout=0.002))
            except asyncio.TimeoutError:
                timeouts += 1
            except StopAsyncIteration:
                break
        assert content(got) == "echo: " + prompt
        assert timeouts > 0, "the test must cancel calls that wait"
    finally:
        g.shutdown(5.0)


async def test_two_tasks_reading_one_stream_share_it_without_hanging(mock_server):
    g = http_gateway(mock_server)
    try:
        prompt = " ".join(f"q{i}" for i in range(40))
        s = g.astream(req(prompt, model="openai/m~chunks=40&chunk_delay_ms=5"))

        async def reader():
            out = []
            async for c in s:
                out.append(c)
            return out

        a, b = await asyncio.wait_for(asyncio.gather(reader(), reader()), timeout=60)
        reference = [c async for c in g.astream(req(prompt, model="openai/m~chunks=40"))]
        # Every chunk went to exactly one of the two readers.
        assert sorted(content([c]) for c in a + b) == sorted(content([c]) for c in reference)
    finally:
        g.shutdown(5.0)


def test_the_awaitables_are_not_public():
    assert not hasattr(bifrost, "Ready") and not hasattr(bifrost, "Next")


# ---- the sync Stream: each wait for the network takes every chunk already there


def test_sync_stream_longer_than_a_batch_arrives_whole_and_in_order():
    g = mock_gateway(mock={"stream_chunks": 1000})
    try:
        got = list(g.stream(req(WORDS)))
        assert content(got) == "echo: " + WORDS
        assert len(got) > 256
    finally:
        g.shutdown(1.0)


def test_sync_http_stream_at_full_speed_is_lossless(mock_server):
    g = http_gateway(mock_server)
    try:
        prompt = " ".join(f"t{i}" for i in range(2000))
        for _ in range(4):
            assert content(list(g.stream(req(prompt, model="openai/m~chunks=2000")))) == "echo: " + prompt
    finally:
        g.shutdown(5.0)


def test_sync_error_behind_ready_chunks_comes_after_them(mock_server):
    g = http_gateway(mock_server, failover={"stream_recovery": "off"})
    try:
        s = g.stream(req("a b c d e f g h", model="openai/m~chunks=8&invalid_event_at=5"))
        got = []
        with pytest.raises(bifrost.ProtocolError):
            for c in s:
                got.append(c)
        assert len(got) == 5
        for _ in range(2):
            with pytest.raises(StopIteration):
                next(s)
    finally:
        g.shutdown(5.0)


def test_sync_collect_after_a_partial_read_keeps_the_ready_chunks(gw):
    s = gw.stream(req(WORDS))
    first = next(s)
    message = s.collect()
    assert content([first]) + message["choices"][0]["message"]["content"] == "echo: " + WORDS


def test_sync_close_drops_the_ready_chunks(gw):
    s = gw.stream(req("a b c d"))
    next(s)
    s.close()
    with pytest.raises(StopIteration):
        next(s)


def test_sync_threads_reading_one_stream_share_every_chunk_once(mock_server):
    import threading

    g = http_gateway(mock_server)
    try:
        prompt = " ".join(f"t{i}" for i in range(1500))
        s = g.stream(req(prompt, model="openai/m~chunks=1500"))
        parts: list[list] = [[] for _ in range(4)]

        def read(out):
            for c in s:
                out.append(c)

        threads = [threading.Thread(target=read, args=(p,)) for p in parts]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        words = sorted(c["choices"][0]["delta"].get("content") or "" for p in parts for c in p if c["choices"])
        expected = [c["choices"][0]["delta"].get("content") or "" for c in g.stream(req(prompt, model="openai/m~chunks=1500")) if c["choices"]]
        assert words == sorted(expected)
    finally:
        g.shutdown(5.0)


def test_sync_fallback_index_holds_after_the_read_ahead_reached_the_end(mock_server):
    keys = [{"value": "mock-key", "models": ["*"]}]
    g = bifrost.Gateway({"providers": {
        "openai": {"keys": keys, "network_config": {"base_url": f"{mock_server.url}/v1", "max_retries": 0}},
        "anthropic": {"keys": keys, "network_config": {"base_url": mock_server.url}},
    }})
    try:
        r = req("a b c d e f", model="openai/m~fail_status=503&fail_rate=1")
        r["fallbacks"] = ["anthropic/c"]
        s = g.stream(r)
        first = next(s)
        assert s.fallback_index == 1
        rest = list(s)
        assert s.fallback_index == 1, "the answer came from fallbacks[0], to its last chunk"
        assert content([first] + rest) == "echo: a b c d e f"
    finally:
        g.shutdown(5.0)


def test_sync_close_ends_a_thread_waiting_for_the_next_chunk(mock_server):
    import threading

    g = http_gateway(mock_server)
    try:
        s = g.stream(req("a b c", model="openai/m~chunks=3&stall_after=1"))
        ended = []

        def wait():
            try:
                for _ in s:
                    pass
                ended.append("end")
            except Exception as e:  # noqa: BLE001 - recorded for the assert
                ended.append(e)

        t = threading.Thread(target=wait)
        t.start()
        s.close()
        t.join(30)
        assert not t.is_alive(), "close() must wake a thread waiting in __next__"
        assert ended == ["end"]
    finally:
        g.shutdown(5.0)
