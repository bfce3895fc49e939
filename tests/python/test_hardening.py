"""Hostile input at the Python boundary (issue "Hardening", docs/architecture.md §13).

Each case here crashed the interpreter, raised a PanicException, lost a
job or silently changed a value before.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bifrost

SECRET = "sk-live-SECRET-0123456789abcdef"


def gateway(**mock) -> bifrost.Gateway:
    return bifrost.Gateway({"providers": {"m": {"kind": "mock", "mock": mock}}})


def req(content: str = "x", **extra) -> dict:
    r = {"model": "m/x", "messages": [{"role": "user", "content": content}]}
    r.update(extra)
    return r


def nested(depth: int, leaf=1):
    v = leaf
    for _ in range(depth):
        v = {"k": [v]}
    return v


# ------------------------------------------------------------ crashes


@pytest.mark.parametrize("depth", [101, 20_000, 200_000])
def test_deep_requests_and_configs_are_typed_errors_not_crashes(depth):
    gw = gateway()
    with pytest.raises(bifrost.InvalidRequestError, match="nested deeper than 100 levels"):
        gw.chat(req(params={"deep": nested(depth)}))
    with pytest.raises(bifrost.ConfigError, match="nested deeper than 100 levels"):
        bifrost.Gateway({"providers": {"m": {"kind": "mock", "openai_config": nested(depth)}}})
    # As JSON text too.
    text = json.dumps(req()).replace('"m/x"', '"m/x", "params": {"p": ' + "[" * depth + "]" * depth + "}")
    with pytest.raises(bifrost.InvalidRequestError):
        gw.chat(text)
    gw.shutdown(0)


def test_nesting_up_to_the_bound_is_accepted():
    gw = gateway()
    # params itself is one level, the request dict another.
    assert gw.chat(req(params={"p": nested(40)}))["object"] == "chat.completion"
    gw.shutdown(0)


def test_values_that_contain_themselves_are_typed_errors():
    gw = gateway()
    r = req()
    r["params"] = {"me": r}
    with pytest.raises(bifrost.InvalidRequestError, match=r"params\.me: the value contains itself"):
        gw.chat(r)
    lst: list = []
    lst.append(lst)
    with pytest.raises(bifrost.InvalidRequestError, match="contains itself"):
        gw.chat(req(params={"l": lst}))
    cfg: dict = {"providers": {"m": {"kind": "mock"}}}
    cfg["providers"]["m"]["self"] = cfg
    with pytest.raises(bifrost.ConfigError, match="contains itself"):
        bifrost.Gateway(cfg)
    # The same object twice (no cycle) is fine.
    shared = {"a": 1}
    assert gw.chat(req(params={"x": shared, "y": shared}))["object"] == "chat.completion"
    gw.shutdown(0)


@pytest.mark.parametrize("t", [1e20, 1e300, 1.7976931348623157e308])
def test_huge_timeouts_are_clamped_not_panics(t):
    gw = gateway()
    job = gw.submit(req())
    assert job.result(timeout=t)["object"] == "chat.completion"
    assert gw.shutdown(t)["aborted"] == 0


async def test_huge_async_shutdown_timeout_is_clamped():
    gw = gateway()
    assert (await gw.ashutdown(1e300))["aborted"] == 0


@pytest.mark.parametrize("t", [float("nan"), float("inf"), -1.0])
def test_timeouts_that_are_no_duration_are_invalid_request(t):
    gw = gateway()
    job = gw.submit(req())
    with pytest.raises(bifrost.InvalidRequestError, match="timeout"):
        job.result(timeout=t)
    with pytest.raises(ValueError):  # InvalidRequestError is a ValueError
        gw.shutdown(t)
    # Nothing was shut down.
    assert gw.chat(req("still up"))["choices"][0]["message"]["content"] == "echo: still up"
    gw.shutdown(0)


def test_result_timeout_message_says_the_seconds():
    gw = gateway(latency_ms=600_000)
    job = gw.submit(req())
    with pytest.raises(TimeoutError, match=r"did not finish within 0\.05 s$"):
        job.result(timeout=0.05)
    assert job.cancel()
    gw.shutdown(0)


# ------------------------------------------------------------ lost jobs


async def test_await_await_asubmit_runs_the_job_to_its_outcome():
    gw = gateway(latency_ms=50)
    outs = await asyncio.gather(*[_await_twice(gw, i) for i in range(50)])
    assert outs == [f"echo: a{i}" for i in range(50)]
    j = gw.stats()["providers"]["m"]["jobs"]
    assert j["submitted"] == 50 and j["completed"] == 50 and j["cancelled"] == 0
    await gw.ashutdown(0)


async def _await_twice(gw, i):
    r = await (await gw.asubmit(req(f"a{i}")))
    return r["choices"][0]["message"]["content"]


async def test_cancelling_the_awaiting_task_still_cancels_the_job():
    gw = gateway(latency_ms=600_000)
    job = await gw.asubmit(req())
    awaiting = asyncio.Event()
    task = asyncio.ensure_future(_await(job, awaiting))
    # `set()` and `await job` run in one step of the task: once the event
    # is seen, the task is suspended on the job.
    await awaiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(bifrost.CancelledError):
        job.result(timeout=60)
    await gw.ashutdown(0)


async def _await(job, awaiting):
    awaiting.set()
    return await job


def test_an_unfinished_job_nobody_holds_is_cancelled():
    gw = gateway(latency_ms=600_000)
    gw.submit(req())
    gc.collect()
    j = gw.stats()["providers"]["m"]["jobs"]
    assert j["cancelled"] == 1 and j["submitted"] == 1
    gw.shutdown(0)


# ------------------------------------------------------------ changed values


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused_not_sent_as_null(bad):
    gw = gateway()
    with pytest.raises(bifrost.InvalidRequestError, match=r"timeout_ms: .* is not a JSON number"):
        gw.chat(req(timeout_ms=bad))
    with pytest.raises(bifrost.InvalidRequestError, match=r"params\.t\[1\]: .* is not a JSON number"):
        gw.chat(req(params={"t": [0.5, bad]}))
    with pytest.raises(bifrost.ConfigError, match=r"providers\.m\.mock\.failure_rate: .* is not a JSON number"):
        bifrost.Gateway({"providers": {"m": {"kind": "mock", "mock": {"failure_rate": bad}}}})
    assert gw.stats()["providers"]["m"]["jobs"]["submitted"] == 0
    gw.shutdown(0)


def test_json_text_is_read_strictly():
    gw = gateway()
    good = json.dumps(req())
    assert gw.chat(good)["object"] == "chat.completion"
    with pytest.raises(bifrost.InvalidRequestError):
        gw.chat(good + " trailing")
    with pytest.raises(bifrost.InvalidRequestError, match="duplicate"):
        gw.chat('{"model": "m/x", "model": "m/y", "messages": [{"role": "user", "content": "x"}]}')
    with pytest.raises(bifrost.ConfigError, match="duplicate"):
        bifrost.Gateway('{"providers": {"m": {"kind": "mock"}, "m": {"kind": "mock"}}}')
    with pytest.raises(bifrost.ConfigError):
        bifrost.Gateway('{"providers": {"m": {"kind": "mock"}}} x')
    gw.shutdown(0)


# ------------------------------------------------------------ secrets


@pytest.mark.parametrize(
    "shape",
    [
        {"keys": SECRET},
        {"keys": [SECRET]},
        {"keys": [{"value": "k-ok-123456", "models": ["*"]}], "network_config": {"extra_headers": SECRET}},
        {"keys": [{"value": "k-ok-123456", "models": ["*"]}], "network_config": {"base_url": SECRET}},
        {"keys": [{"value": "k-ok-123456", "models": ["*"]}], "network_config": {"retry_backoff_initial": SECRET}},
        {"keys": [{"value": "k-ok-123456", "models": ["*"]}], "proxy_config": {"type": SECRET}},
        {"kind": SECRET, "keys": [{"value": "k-ok-123456", "models": ["*"]}]},
    ],
)
def test_secrets_in_the_wrong_place_never_appear_in_config_errors(shape):
    cfg = {"providers": {"o": {"kind": "openai", **shape}}}
    for c in (cfg, json.dumps(cfg)):
        with pytest.raises(bifrost.ConfigError) as info:
            bifrost.Gateway(c)
        e = info.value
        for shown in (str(e), repr(e), repr(e.args), e.body or "", str(pickle.loads(pickle.dumps(e)))):
            assert "SECRET" not in shown, shown


def test_retry_after_ms_of_an_open_circuit():
    gw = bifrost.Gateway(
        {
            "providers": {
                "f": {
                    "kind": "mock",
                    "mock": {"failure_rate": 1},
                    "circuit_breaker": {"failure_threshold": 1, "open_ms": 600_000},
                }
            }
        }
    )
    r = {"model": "f/x", "messages": [{"role": "user", "content": "x"}]}
    with pytest.raises(bifrost.ProviderError) as first:
        gw.chat(r)
    assert first.value.retry_after_ms is None
    with pytest.raises(bifrost.CircuitOpenError) as info:
        gw.chat(r)
    assert isinstance(info.value.retry_after_ms, int)
    assert 0 < info.value.retry_after_ms <= 600_000
    again = pickle.loads(pickle.dumps(info.value))
    assert again.retry_after_ms == info.value.retry_after_ms and again.kind == "CIRCUIT_OPEN"
    gw.shutdown(0)


# ------------------------------------------------------------ property: conversion

finite = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | finite | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=30,
)
anything = st.recursive(
    scalars | st.sampled_from([math.nan, math.inf, -math.inf]),
    lambda inner: st.lists(inner, max_size=4)
    | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=30,
)

GW = None


def shared_gateway() -> bifrost.Gateway:
    global GW
    if GW is None:
        GW = gateway()
    return GW


def outcome(fn):
    try:
        r = fn()
        return ("ok", r["choices"][0]["message"]["content"])
    except bifrost.BifrostError as e:
        return (e.kind, None)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(json_values)
def test_property_dict_and_json_text_agree(v):
    """A value JSON can carry means the same as a dict and as JSON text."""
    gw = shared_gateway()
    r = req("p", params={"v": v})
    assert outcome(lambda: gw.chat(r)) == outcome(lambda: gw.chat(json.dumps(r)))


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(anything)
def test_property_values_json_cannot_carry_are_refused(v):
    """Never a crash or a silent change: either the value is sent as JSON
    (`allow_nan=False` agrees it can be) or it is InvalidRequestError."""
    gw = shared_gateway()
    r = req("p", params={"v": v})
    try:
        json.dumps(r, allow_nan=False)
        representable = True
    except ValueError:
        representable = False
    got = outcome(lambda: gw.chat(r))
    if representable:
        assert got == ("ok", "echo: p")
    else:
        assert got == ("INVALID_REQUEST", None)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rate=st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False, exclude_min=False),
    latency=st.one_of(st.floats(min_value=1e-6, max_value=600, allow_nan=False), st.decimals("0.001", "60", places=3).map(float)),
    error=st.one_of(st.just(0.0), st.floats(min_value=0, max_value=0.999, allow_nan=False), st.sampled_from([0.1, 0.2, 0.3, 0.05])),
)
def test_optimal_concurrency_matches_exact_fractions(rate, latency, error):
    # The judge: Python's own Fraction arithmetic on the decimals the floats
    # print as (repr is the shortest round-trip form, as in Rust).
    from fractions import Fraction

    r, lat, e = (Fraction(repr(v)) for v in (rate, latency, error))
    workers = min(max(math.ceil(r * lat * (1 + e)), 1), 10_000)
    got = bifrost.optimal_concurrency(rate, latency, error)
    assert got == {"concurrency": workers, "buffer_size": 3 * workers, "timeout_ms": max(math.ceil(2000 * lat), 1)}
