"""Every error kind arrives as its own exception class with useful fields."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

import bifrost
from conftest import invariant, mock_gateway, req


def wait_running(g, n=1, provider="p"):
    deadline = time.monotonic() + 5
    while g.stats()["providers"][provider]["jobs"]["running"] < n:
        assert time.monotonic() < deadline
        time.sleep(0.002)


def test_queue_full_and_dropped():
    g = mock_gateway(mock={"latency_ms": 300}, concurrency_and_buffer_size={"concurrency": 1, "buffer_size": 1}, queue={"policy": "error"})
    first = g.submit(req())
    wait_running(g)
    queued = g.submit(req())
    with pytest.raises(bifrost.QueueFullError) as e:
        g.submit(req())
    assert e.value.kind == "QUEUE_FULL" and e.value.provider == "p"
    assert "buffer_size=1, policy=error" in str(e.value)
    first.result(5), queued.result(5)
    d = mock_gateway(mock={"latency_ms": 300}, concurrency_and_buffer_size={"concurrency": 1, "buffer_size": 1}, queue={"policy": "drop"})
    a = d.submit(req())
    wait_running(d)
    b = d.submit(req())
    with pytest.raises(bifrost.DroppedError):
        d.submit(req()).result(5)
    a.result(5), b.result(5)
    invariant(g.stats()), invariant(d.stats())


def test_timeouts():
    g = mock_gateway(mock={"latency_ms": 2000})
    with pytest.raises(bifrost.RequestTimeoutError) as e:
        g.chat(req(timeout_ms=50))
    assert e.value.kind == "TIMEOUT" and "processing" in str(e.value)
    assert isinstance(e.value, TimeoutError)
    q = mock_gateway(mock={"latency_ms": 500}, concurrency_and_buffer_size={"concurrency": 1, "buffer_size": 5}, queue={"wait_timeout_ms": 50})
    running = q.submit(req())
    wait_running(q)
    with pytest.raises(bifrost.QueueTimeoutError):
        q.chat(req())
    running.result(5)


def test_provider_error_carries_status_and_body():
    g = mock_gateway(mock={"failure_rate": 1.0, "failure_status": 503})
    with pytest.raises(bifrost.ProviderError) as e:
        g.chat(req())
    assert (e.value.kind, e.value.status_code) == ("PROVIDER", 503)
    assert "mock_error" in e.value.body


def test_network_error_on_connection_refused():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    g = bifrost.Gateway({"providers": {"openai": {"keys": [{"value": "k", "models": ["*"]}], "network_config": {"base_url": f"http://127.0.0.1:{port}/v1"}}}})
    with pytest.raises(bifrost.NetworkError) as e:
        g.chat(req(model="openai/gpt"))
    assert isinstance(e.value, ConnectionError)


def test_invalid_requests_are_value_errors_naming_the_key(gw):
    with pytest.raises(bifrost.InvalidRequestError, match=r"request\.messages\[0\]\.role|role"):
        gw.chat({"model": "p/m", "messages": [{"role": "wizard", "content": "x"}]})
    with pytest.raises(bifrost.InvalidRequestError, match="temperature"):
        gw.chat({"model": "p/m", "messages": [], "temperature": 1})
    with pytest.raises(ValueError, match="provider>/<model"):
        gw.chat({"model": "nomodel", "messages": [{"role": "user", "content": "x"}]})
    with pytest.raises(bifrost.UnknownProviderError, match="configured providers: p"):
        gw.chat(req(model="nope/m"))
    assert gw.stats()["providers"]["p"]["jobs"]["submitted"] == 0


def test_wrong_python_types_are_type_errors(gw):
    with pytest.raises(TypeError, match="request must be a dict"):
        gw.chat(["not", "a", "dict"])
    with pytest.raises(TypeError, match="config must be a dict or JSON text"):
        bifrost.Gateway(42)
    with pytest.raises(TypeError):
        gw.shutdown("soon")
    with pytest.raises(ValueError, match="timeout"):
        gw.submit(req()).result(timeout=-1)


def test_config_errors_are_value_errors_naming_the_key():
    with pytest.raises(bifrost.ConfigError) as e:
        bifrost.Gateway({"providers": {"p": {"kind": "mock", "queue": {"polcy": "error"}}}})
    assert isinstance(e.value, ValueError) and e.value.kind == "CONFIG"
    assert "providers.p.queue.polcy" in str(e.value)
    with pytest.raises(bifrost.ConfigError, match="environment variable BIFROST_NOT_SET_ANYWHERE"):
        bifrost.Gateway({"providers": {"openai": {"keys": [{"value": "env.BIFROST_NOT_SET_ANYWHERE", "models": ["*"]}]}}})
    # A key without "models" and no "version": Bifrost's versions disagree.
    with pytest.raises(bifrost.ConfigError, match=r"providers\.openai\.keys\[0\]\.models: missing"):
        bifrost.Gateway({"providers": {"openai": {"keys": [{"value": "sk-x"}]}}})
    g = bifrost.Gateway({"version": 1, "providers": {"openai": {"keys": [{"value": "sk-x"}]}}})
    g.shutdown()


def test_panics_are_internal_errors():
    g = mock_gateway(mock={"panic_rate": 1.0})
    with pytest.raises(bifrost.InternalError, match="injected a panic"):
        g.chat(req())
    assert g.stats()["providers"]["p"]["jobs"]["panics"] == 1


def test_cancel_from_result_and_from_await():
    g = mock_gateway(mock={"latency_ms": 5000})
    job = g.submit(req())
    assert job.cancel() is True
    with pytest.raises(bifrost.CancelledError):
        job.result(5)

    async def main():
        j = await g.asubmit(req())
        j.cancel()
        with pytest.raises(asyncio.CancelledError):
            await j

    asyncio.run(main())
    assert g.stats()["providers"]["p"]["jobs"]["cancelled"] == 2


def test_fallback_errors_are_attached():
    g = bifrost.Gateway({"providers": {
        "a": {"kind": "mock", "mock": {"failure_rate": 1.0, "failure_status": 502}},
        "b": {"kind": "mock", "mock": {"failure_rate": 1.0, "failure_status": 503}},
    }})
    with pytest.raises(bifrost.ProviderError) as e:
        g.chat({"model": "a/m", "messages": [{"role": "user", "content": "x"}], "fallbacks": ["b/m"]})
    assert e.value.status_code == 502
    [(target, fe)] = e.value.fallback_errors
    assert target == "b/m" and isinstance(fe, bifrost.ProviderError) and fe.status_code == 503


def test_errors_pickle():
    import pickle

    e = bifrost.ProviderError("boom", "PROVIDER", 500, "{}", "p", [])
    back = pickle.loads(pickle.dumps(e))
    assert (type(back), back.kind, back.status_code, str(back)) == (bifrost.ProviderError, "PROVIDER", 500, "boom")


def test_every_core_error_kind_has_its_own_class():
    from bifrost import _bifrost

    pairs = _bifrost.error_classes()
    assert len(pairs) == len({k for k, _ in pairs}) == len({c for _, c in pairs}), pairs
    for kind, name in pairs:
        cls = getattr(bifrost, name)
        assert issubclass(cls, bifrost.BifrostError) and cls is not bifrost.BifrostError, (kind, name)
