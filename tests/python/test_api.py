"""Every API call of docs/architecture.md §7 on the in-process mock provider."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

import bifrost
from conftest import invariant, mock_gateway, req


def test_chat_returns_the_openai_shape(gw):
    r = gw.chat(req("hello there"))
    assert r["object"] == "chat.completion"
    assert r["choices"][0]["message"]["content"] == "echo: hello there"
    assert r["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    assert r["extra_fields"]["provider"] == "p" and r["extra_fields"]["attempts"] == 1


def test_json_text_config_and_request():
    g = bifrost.Gateway(json.dumps({"providers": {"p": {"kind": "mock"}}}))
    assert g.chat(json.dumps(req("json")))["choices"][0]["message"]["content"] == "echo: json"
    g.shutdown()


def test_from_file(tmp_path):
    path = tmp_path / "bifrost.json"
    path.write_text(json.dumps({"providers": {"p": {"kind": "mock"}}}))
    g = bifrost.Gateway.from_file(path)
    assert g.providers == ["p"]
    with pytest.raises(bifrost.ConfigError, match="cannot read"):
        bifrost.Gateway.from_file(tmp_path / "missing.json")


async def test_achat(gw):
    r = await gw.achat(req("async"))
    assert r["choices"][0]["message"]["content"] == "echo: async"


def test_submit_and_result(gw):
    job = gw.submit(req("job"))
    assert isinstance(job.id, int)
    assert job.result(timeout=5)["choices"][0]["message"]["content"] == "echo: job"
    assert job.done()
    assert job.cancel() is False
    assert job.result()["id"] == job.result()["id"], "result() is repeatable"


async def test_asubmit_and_await(gw):
    job = await gw.asubmit(req("awaited"))
    r = await job
    assert r["choices"][0]["message"]["content"] == "echo: awaited"


def test_result_timeout_leaves_job_running():
    g = mock_gateway(mock={"latency_ms": 300})
    job = g.submit(req())
    with pytest.raises(TimeoutError):
        job.result(timeout=0.01)
    assert not job.done()
    assert job.result(timeout=5)["choices"][0]["message"]["content"] == "echo: hello"
    g.shutdown()


def test_stream_iterates_chunks():
    g = mock_gateway(mock={"stream_chunks": 3})
    chunks = list(g.stream(req("one two three")))
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "echo: one two three"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    g.shutdown()


async def test_astream_iterates_chunks(gw):
    text = ""
    async for c in gw.astream(req("a b")):
        text += c["choices"][0]["delta"].get("content", "")
    assert text == "echo: a b"


def test_embed_and_aembed(gw):
    r = gw.embed({"model": "p/emb", "input": ["x", "y"], "params": {"dimensions": 4}})
    assert r["object"] == "list" and len(r["data"]) == 2 and len(r["data"][0]["embedding"]) == 4
    r2 = asyncio.run(gw.aembed({"model": "p/emb", "input": "x", "params": {"dimensions": 4}}))
    assert r2["data"][0]["embedding"] == r["data"][0]["embedding"]


def test_stats_prometheus_health(gw):
    gw.chat(req())
    s = gw.stats()
    p = s["providers"]["p"]
    assert set(p) == {"workers", "queue", "jobs", "latency_us", "throughput_per_s", "circuit", "keys", "limits"}
    assert p["limits"] == {}, "no limits configured"
    assert p["jobs"]["completed"] == 1
    invariant(s)
    assert s["runtime"]["worker_threads"] >= 1
    assert 'bifrost_jobs_total{provider="p",outcome="completed"} 1' in gw.prometheus()
    h = gw.health()
    assert h["status"] == "ok" and h["providers"]["p"]["circuit"] == "disabled"


def test_prometheus_text_passes_the_official_parser():
    from prometheus_client.parser import text_string_to_metric_families

    # 30 ms per call: every processing time is > 25 ms and (on any machine
    # that finishes the test) <= 30 s, so the buckets at those bounds are known.
    g = mock_gateway(mock={"latency_ms": 30})
    try:
        for _ in range(5):
            g.chat(req())
        families = {f.name: f for f in text_string_to_metric_families(g.prometheus())}
        proc = families["bifrost_processing_seconds"]
        assert proc.type == "histogram"
        buckets = {float(s.labels["le"]): s.value for s in proc.samples if s.name.endswith("_bucket")}
        count = [s.value for s in proc.samples if s.name.endswith("_count")]
        values = [buckets[k] for k in sorted(buckets)]
        assert values == sorted(values) and count == [values[-1]] == [5.0]
        assert buckets[0.025] == 0 and buckets[30.0] == 5
        total = [s.value for s in proc.samples if s.name.endswith("_sum")]
        assert 5 * 0.030 <= total[0] < 5 * 30
        done = families["bifrost_jobs"].samples  # counter family name drops _total
        assert {(s.labels["outcome"], s.value) for s in done if s.labels["provider"] == "p"} >= {("completed", 5.0)}
    finally:
        g.shutdown(1.0)


def test_shutdown_report_and_after(gw):
    job = gw.submit(req())
    report = gw.shutdown(2.0)
    assert set(report) == {"completed", "failed", "cancelled", "aborted", "elapsed_ms"}
    assert job.result(timeout=5)
    assert gw.shutdown() == report, "idempotent"
    with pytest.raises(bifrost.ShutdownError):
        gw.chat(req())
    assert gw.health()["status"] == "shutdown"


def test_context_managers():
    with mock_gateway() as g:
        g.chat(req())
    with pytest.raises(bifrost.ShutdownError):
        g.chat(req())

    async def main():
        async with mock_gateway() as g2:
            await g2.achat(req())
        with pytest.raises(bifrost.ShutdownError):
            await g2.achat(req())

    asyncio.run(main())


def test_repr_never_shows_keys(monkeypatch):
    monkeypatch.setenv("BIFROST_PY_TEST_KEY", "sk-SECRET-python")
    g = bifrost.Gateway(
        {"providers": {"openai": {"keys": [{"value": "env.BIFROST_PY_TEST_KEY", "models": ["*"]}], "network_config": {"base_url": "http://127.0.0.1:9"}}}}
    )
    assert "sk-SECRET" not in repr(g)
    assert "sk-SECRET" not in json.dumps(g.stats()) + g.prometheus() + json.dumps(g.health())
    g.shutdown()


def test_optimal_concurrency():
    assert bifrost.optimal_concurrency(50, 2.0, 0.1) == {"concurrency": 110, "buffer_size": 330, "timeout_ms": 4000}
    with pytest.raises(bifrost.InvalidRequestError, match="rate_limit_rps"):
        bifrost.optimal_concurrency(0, 1.0)


def test_import_is_fast():
    code = "import time; t = time.perf_counter(); import bifrost; print(time.perf_counter() - t)"
    best = min(float(subprocess.check_output([sys.executable, "-c", code], text=True)) for _ in range(3))
    assert best < 0.05, f"import bifrost took {best * 1000:.1f} ms"


def test_typed_package_ships_stubs():
    import importlib.resources as res

    files = {p.name for p in res.files("bifrost").iterdir()}
    assert {"py.typed", "_bifrost.pyi", "_types.pyi", "__init__.py"} <= files
