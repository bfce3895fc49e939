"""The same cancel and fallback scenarios as tests/node/agreement.test.js and
tests/c/test_api.c (test_agreement_*), with the same expected answers: the
three bindings wrap one core job handle, so they must agree on cancel
results, on fallback timing and on how every job is counted."""

from __future__ import annotations

import time

import pytest

import bifrost

CONFIG = {
    "providers": {
        # Ten minutes: a job here is still running whenever the test looks.
        "slow": {"kind": "mock", "mock": {"latency_ms": 600000},
                 "concurrency_and_buffer_size": {"concurrency": 1, "buffer_size": 8}},
        "fast": {"kind": "mock"},
        "bad": {"kind": "mock", "mock": {"failure_rate": 1.0}},
    }
}


def req(model, **extra):
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def jobs(g, provider):
    return g.stats()["providers"][provider]["jobs"]


def test_cancel_answers_and_counts_agree():
    g = bifrost.Gateway(CONFIG)
    running = g.submit(req("slow/m"))
    queued = g.submit(req("slow/m"))
    assert queued.cancel() is True
    assert queued.cancel() is False, "a second cancel finds the job over"
    with pytest.raises(bifrost.CancelledError):
        queued.result(60)
    assert running.cancel() is True
    with pytest.raises(bifrost.CancelledError):
        running.result(60)
    done = g.submit(req("fast/m"))
    assert done.result(60)["object"] == "chat.completion"
    assert done.cancel() is False, "a finished job cannot be cancelled"
    slow = jobs(g, "slow")
    assert (slow["submitted"], slow["cancelled"], slow["queued"], slow["running"]) == (2, 2, 0, 0), slow
    assert jobs(g, "fast")["completed"] == 1
    g.shutdown(5)


def test_fallbacks_advance_while_nobody_waits():
    g = bifrost.Gateway(CONFIG)
    job = g.submit(req("bad/m", fallbacks=["fast/m"]))
    deadline = time.monotonic() + 60  # a liveness bound, not a timing assumption
    while jobs(g, "fast")["fallbacks_served"] < 1:
        assert time.monotonic() < deadline, "the fallback never ran"
        time.sleep(0.01)
    assert job.done() is True, "finished without anyone waiting"
    r = job.result(0)
    assert (r["extra_fields"]["provider"], r["extra_fields"]["fallback_index"]) == ("fast", 1)
    assert jobs(g, "bad")["failed"] == 1
    assert job.cancel() is False
    g.shutdown(5)


# Same input, same error kind (and the same `path`) in every binding: the
# Node and C files check these inputs too.
@pytest.mark.parametrize(
    "config, path",
    [
        ('{"providers": {"a\ud800": {"kind": "mock"}}}', ""),  # not Unicode
        ("{not json", ""),
        ('{"providers": {"a": {"kind": "mock", "bogus": 1}}}', "providers.a.bogus"),
    ],
)
def test_bad_config_text_is_config_error_with_path(config, path):
    with pytest.raises(bifrost.ConfigError) as e:
        bifrost.Gateway(config)
    assert e.value.kind == "CONFIG"
    assert e.value.path == path, str(e.value)


def test_only_config_errors_carry_a_path():
    g = bifrost.Gateway(CONFIG)
    with pytest.raises(bifrost.InvalidRequestError) as e:
        g.chat({"model": "fast/m"})
    assert e.value.path is None
    g.shutdown(5)
