"""How results reach asyncio (bindings-python/src/bridge.rs): every event
loop gets its own queue and wake-up socket (`loop.add_reader`), drained on
the loop's thread. Loops come and go (``asyncio.run`` per call, a loop per
thread): each is served, none leaks a socket, and a cancelled await never
receives a result."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from conftest import mock_gateway, req


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc (Linux)")
def test_a_loop_per_call_is_served_and_leaks_no_socket():
    gw = mock_gateway()
    try:
        asyncio.run(gw.achat(req("warm")))
        before = open_fds()
        for i in range(100):
            r = asyncio.run(gw.achat(req(f"n{i}")))
            assert r["choices"][0]["message"]["content"] == f"echo: n{i}"
        # One loop's hub may still be cached per thread; nothing grows with the loops.
        assert open_fds() - before <= 4
    finally:
        gw.shutdown(1.0)


def test_loops_on_several_threads_each_get_their_own_results():
    gw = mock_gateway(mock={"latency_ms": 2})
    errors: list = []

    def worker(t: int) -> None:
        async def main():
            got = await asyncio.gather(*(gw.achat(req(f"t{t}-{i}")) for i in range(200)))
            for i, r in enumerate(got):
                assert r["choices"][0]["message"]["content"] == f"echo: t{t}-{i}"
            chunks = [c async for c in gw.astream(req(f"s{t} a b c"))]
            assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == f"echo: s{t} a b c"

        try:
            asyncio.run(main())
        except BaseException as e:  # noqa: BLE001 — reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not any(th.is_alive() for th in threads)
    assert errors == []
    gw.shutdown(1.0)


async def test_a_cancelled_await_gets_no_result_and_the_next_call_works():
    gw = mock_gateway(mock={"latency_ms": 50})
    try:
        task = asyncio.ensure_future(gw.achat(req("late")))
        await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        r = await gw.achat(req("next"))
        assert r["choices"][0]["message"]["content"] == "echo: next"
    finally:
        gw.shutdown(1.0)
