"""A provider's `limits` from Python: a limited provider works, a job that
cannot get capacity before its deadline raises RateLimitedError (sync and
async), and the stats show the buckets. The same cases run in
tests/node/limits.test.js and tests/c/test_api.c (test_limits)."""

from __future__ import annotations

import asyncio

import pytest

import bifrost
from conftest import invariant, mock_gateway, req


def test_a_limited_provider_works_and_rate_limited_is_typed():
    g = mock_gateway(limits={"requests_per_minute": 2})
    assert g.chat(req())["object"] == "chat.completion"
    assert g.chat(req())["object"] == "chat.completion"
    with pytest.raises(bifrost.RateLimitedError) as e:
        g.chat(req(timeout_ms=5000))
    assert e.value.kind == "RATE_LIMITED" and e.value.provider == "p"
    assert 20_000 < e.value.retry_after_ms <= 30_000, e.value.retry_after_ms
    assert "requests_per_minute" in str(e.value)

    async def main():
        with pytest.raises(bifrost.RateLimitedError):
            await g.achat(req(timeout_ms=5000))

    asyncio.run(main())
    stats = g.stats()
    s = stats["providers"]["p"]
    assert (s["jobs"]["completed"], s["jobs"]["rate_limited"]) == (2, 2)
    bucket = s["limits"]["requests"]
    assert (bucket["limit"], bucket["period_ms"], bucket["burst"], bucket["remaining"]) == (2, 60000, 2, 0)
    assert bucket["rate_limited"] == 2
    invariant(stats)
    prom = g.prometheus()
    assert 'outcome="rate_limited"} 2' in prom
    assert 'bifrost_ratelimit_remaining{provider="p",bucket="requests"} 0' in prom
    assert 'bifrost_ratelimit_rate_limited_total{provider="p",bucket="requests"} 2' in prom
    g.shutdown(5)


def test_limits_are_validated_like_every_other_key():
    with pytest.raises(bifrost.ConfigError) as e:
        mock_gateway(limits={"requests_per_minute": 0})
    assert e.value.path == "providers.p.limits.requests_per_minute"
    with pytest.raises(bifrost.ConfigError) as e:
        mock_gateway(limits={"requests_per_minute": 5, "scope": "key"})
    # (the mock provider has no keys to give buckets of their own)
    assert e.value.path == "providers.p.limits.scope" and "1..=64 keys" in str(e.value)


def test_max_in_flight_slots_show_in_the_stats():
    g = mock_gateway(limits={"max_in_flight": 1})

    async def main():
        return await asyncio.gather(*(g.achat(req()) for _ in range(8)))

    assert len(asyncio.run(main())) == 8
    slots = g.stats()["providers"]["p"]["limits"]["in_flight"]
    assert (slots["limit"], slots["remaining"], slots["period_ms"]) == (1, 1, 0), slots
    g.shutdown(5)


def test_limits_store_is_validated_and_its_url_never_shown():
    """The same cases as tests/node/limits.test.js: a bad `limits_store` is
    a CONFIG error naming the key, and the URL (a credential) appears in
    no message or stats; with Redis unreachable and `fail_closed`, a job
    is refused RATE_LIMITED at once instead of hanging."""
    secret = "redis://:hunter2@127.0.0.1:1/0"
    for store, path in [
        ({"kind": "redis", "url": secret}, "limits_store.fleet_size"),
        ({"kind": "redis", "url": "http://:hunter2@h", "fleet_size": 2}, "limits_store.url"),
        ({"kind": "memory", "url": secret}, "limits_store.url"),
    ]:
        with pytest.raises(bifrost.ConfigError) as e:
            bifrost.Gateway({"limits_store": store, "providers": {"p": {"kind": "mock", "limits": {"requests_per_minute": 5}}}})
        assert e.value.path == path, (store, e.value.path)
        assert "hunter2" not in str(e.value) and "hunter2" not in repr(e.value)
    g = bifrost.Gateway({"limits_store": {"kind": "redis", "url": secret, "on_unavailable": "fail_closed"},
                         "providers": {"p": {"kind": "mock", "limits": {"requests_per_minute": 5}}}})
    with pytest.raises(bifrost.RateLimitedError) as e:
        g.chat(req())
    assert "limits_store" in str(e.value) and "hunter2" not in str(e.value)
    store = g.stats()["providers"]["p"]["limits_store"]
    assert store["kind"] == "redis" and not store["up"] and store["errors"] >= 1
    assert "hunter2" not in str(g.stats()) and "hunter2" not in g.prometheus() and "hunter2" not in repr(g)
    g.shutdown(1.0)
