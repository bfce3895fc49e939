"""The failure policy end to end from Python (docs/failover.md), one test per
fault class, against bifrost-mock over loopback HTTP: each call ends within
its bound, with the complete answer when a healthy route exists (never a
truncated success), after exactly the attempts the policy allows (the mock's
per-scenario request counts are the judge), and the gateway serves the next
call."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

import bifrost

PROMPT = "alpha beta gamma delta epsilon"
ANSWER = "echo: alpha beta gamma delta epsilon"


@pytest.fixture
def fgw(mock_server):
    net = {"max_retries": 2, "retry_backoff_initial_ms": 1, "retry_backoff_max_ms": 2,
           "default_request_timeout_in_seconds": 2, "stream_idle_timeout_in_seconds": 1}
    keys = [{"value": "mock-key", "models": ["*"]}]
    g = bifrost.Gateway({"providers": {
        "openai": {"keys": keys, "network_config": {**net, "base_url": f"{mock_server.url}/v1"},
                   "failover": {"first_token_timeout_ms": 300}},
        "anthropic": {"keys": keys, "network_config": {**net, "base_url": mock_server.url}},
    }})
    yield g
    g.shutdown(5.0)


def scenario() -> str:
    return uuid.uuid4().hex[:12]


def seen(mock_server, s: str) -> int:
    return mock_server.stats()["by_scenario"].get(s, 0)


def request(model: str, fallbacks=(), **extra) -> dict:
    r = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
    if fallbacks:
        r["fallbacks"] = list(fallbacks)
    r.update(extra)
    return r


def text_of(message: dict) -> str:
    return message["choices"][0]["message"]["content"]


def next_call_works(g: bifrost.Gateway) -> None:
    assert text_of(g.chat(request("openai/m"))) == ANSWER
    assert g.stream(request("anthropic/c")).collect()["choices"][0]["message"]["content"] == ANSWER


def test_a_silent_route_goes_to_the_fallback_after_one_attempt(fgw, mock_server):
    s = scenario()
    started = time.monotonic()
    r = fgw.chat(request(f"openai/m~hang=1&scenario={s}", [f"anthropic/c~scenario={s}-fb"]))
    assert text_of(r) == ANSWER and r["extra_fields"]["fallback_index"] == 1
    assert time.monotonic() - started < 60
    assert (seen(mock_server, s), seen(mock_server, f"{s}-fb")) == (1, 1), "a silent route is not retried"
    next_call_works(fgw)


def test_a_slow_first_token_goes_to_the_fallback_at_its_bound(fgw, mock_server):
    s = scenario()
    stream = fgw.stream(request(f"openai/m~first_chunk_delay_ms=600000&scenario={s}", [f"anthropic/c~scenario={s}-fb"]))
    message = stream.collect()
    assert text_of(message) == ANSWER and message["extra_fields"]["restarts"] == 0
    assert (seen(mock_server, s), seen(mock_server, f"{s}-fb")) == (1, 1)
    next_call_works(fgw)


def test_a_stream_cut_after_content_restarts_on_the_fallback_with_a_marker(fgw, mock_server):
    s = scenario()
    chunks = list(fgw.stream(request(f"openai/m~chunks=6&truncate_after=2&scenario={s}", [f"anthropic/c~scenario={s}-fb"])))
    markers = [c for c in chunks if (c.get("extra_fields") or {}).get("restart")]
    assert len(markers) == 1 and markers[0]["choices"] == []
    assert markers[0]["extra_fields"]["restart"]["provider"] == "anthropic"
    acc = bifrost.Accumulator()
    for c in chunks:
        acc.add(c)
    assert acc.text == ANSWER and acc.restarts == 1, "the accumulator keeps only the new answer"
    assert (seen(mock_server, s), seen(mock_server, f"{s}-fb")) == (1, 1)
    next_call_works(fgw)


def test_a_stalled_stream_is_retried_on_the_same_route(fgw, mock_server):
    s = scenario()
    message = fgw.stream(request(f"openai/m~chunks=6&stall_after=2&fail_first=1&scenario={s}")).collect()
    assert text_of(message) == ANSWER and message["extra_fields"]["restarts"] == 1
    assert seen(mock_server, s) == 2, "idle → network → retry here"
    assert fgw.stats()["providers"]["openai"]["jobs"]["retries"] >= 1
    next_call_works(fgw)


def test_an_invalid_event_after_content_goes_to_the_fallback(fgw, mock_server):
    s = scenario()
    message = fgw.stream(request(f"openai/m~chunks=6&invalid_event_at=3&scenario={s}", [f"anthropic/c~scenario={s}-fb"])).collect()
    assert text_of(message) == ANSWER and message["extra_fields"]["restarts"] == 1
    assert (seen(mock_server, s), seen(mock_server, f"{s}-fb")) == (1, 1)


def test_a_stream_without_its_terminator_is_complete(fgw, mock_server):
    s = scenario()
    for model in (f"openai/m~terminator=0&scenario={s}", f"anthropic/c~terminator=0&scenario={s}"):
        message = fgw.stream(request(model)).collect()
        assert text_of(message) == ANSWER and message["choices"][0]["finish_reason"] == "stop"
    assert seen(mock_server, s) == 2, "one attempt each"


def test_a_prompt_too_long_falls_back_and_a_refusal_comes_back(fgw, mock_server):
    s = scenario()
    r = fgw.chat(request(f"openai/m~fail_status=400&fail_reason=context_length&scenario={s}", [f"anthropic/c~scenario={s}-fb"]))
    assert text_of(r) == ANSWER
    assert (seen(mock_server, s), seen(mock_server, f"{s}-fb")) == (1, 1)
    s = scenario()
    with pytest.raises(bifrost.ProviderError) as e:
        fgw.chat(request(f"openai/m~fail_status=400&fail_reason=content_policy&scenario={s}", [f"anthropic/c~scenario={s}-fb"]))
    assert e.value.status_code == 400 and "safety system" in str(e.value)
    assert (seen(mock_server, s), seen(mock_server, f"{s}-fb")) == (1, 0)
    next_call_works(fgw)


def test_continue_on_a_route_that_refuses_prefill_restarts_instead(fgw, mock_server):
    s = scenario()
    r = request(f"openai/m~chunks=6&stream_error_after=2&fail_first=1&reject_prefill=1&scenario={s}",
                failover={"stream_recovery": "continue"})
    message = fgw.stream(r).collect()
    assert text_of(message) == ANSWER and message["extra_fields"]["restarts"] == 1
    assert seen(mock_server, s) == 3
    # A route that takes the prefill: only the continuation, no marker.
    s = scenario()
    r = request(f"anthropic/c~chunks=6&stream_error_after=2&fail_first=1&scenario={s}", failover={"stream_recovery": "continue"})
    chunks = list(fgw.stream(r))
    assert "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"]) == ANSWER
    assert seen(mock_server, s) == 2


def test_off_raises_with_the_text_so_far(fgw, mock_server):
    s = scenario()
    got = ""
    with pytest.raises(bifrost.ProtocolError) as e:
        for c in fgw.stream(request(f"openai/m~chunks=6&truncate_after=2&scenario={s}", failover={"stream_recovery": "off"})):
            got += "".join((ch["delta"].get("content") or "") for ch in c["choices"])
    assert got and ANSWER.startswith(got)
    assert e.value.text_so_far == got
    assert seen(mock_server, s) == 1


def test_async_collect_recovers_too(fgw, mock_server):
    s = scenario()

    async def run():
        return await fgw.astream(request(f"openai/m~chunks=6&truncate_after=2&scenario={s}", [f"anthropic/c~scenario={s}-fb"])).collect()

    message = asyncio.run(run())
    assert text_of(message) == ANSWER and message["extra_fields"]["restarts"] == 1


def test_accumulator_refuses_what_is_not_a_chunk():
    acc = bifrost.Accumulator()
    with pytest.raises(bifrost.InvalidRequestError):
        acc.add({"choices": "nope"})
    assert acc.message()["choices"] == []


def test_an_outage_stops_retries_and_the_provider_is_used_again_once_it_answers(fgw, mock_server):
    s = scenario()
    model = f"openai/m~outage_ms=2000&scenario={s}"
    n = 8
    for _ in range(n):
        r = fgw.chat(request(model, [f"anthropic/c~scenario={s}-fb"]))
        assert text_of(r) == ANSWER, "every request gets the complete answer"
    primary = seen(mock_server, s)
    # max_retries 2, suspend_retries_after 5: 3 + 2 + 1 each (fewer when
    # the outage ended early), never 3 per request.
    assert n <= primary <= n + 3, primary
    # The outage ends 2 s after its first request, which came before now.
    time.sleep(2.5)
    r = fgw.chat(request(model, [f"anthropic/c~scenario={s}-fb"]))
    assert r["extra_fields"]["fallback_index"] == 0 and r["extra_fields"]["attempts"] == 1
