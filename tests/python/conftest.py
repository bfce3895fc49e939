"""Shared fixtures: gateways on the in-process mock provider, and the
project's HTTP mock server (bifrost-mock) started as a child process."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import urllib.request

import pytest

import bifrost

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def mock_binary() -> str:
    explicit = os.environ.get("BIFROST_MOCK_BIN")
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    found = sorted(glob.glob(os.path.join(target, "debug", "bifrost-mock")) + glob.glob(os.path.join(target, "*", "debug", "bifrost-mock")))
    if not found:
        pytest.fail("bifrost-mock is not built: run `cargo build -p bifrost-mock` (make test does)")
    return max(found, key=os.path.getmtime)


class MockServer:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([mock_binary(), "--port", "0"], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        assert line.isdigit(), f"bifrost-mock printed {line!r} instead of its port"
        self.port = int(line)
        self.url = f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/_mock/stats", timeout=5) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=5)


@pytest.fixture(scope="session")
def mock_server():
    server = MockServer()
    yield server
    server.stop()


def mock_gateway(**provider) -> bifrost.Gateway:
    cfg = {"kind": "mock"}
    cfg.update(provider)
    return bifrost.Gateway({"providers": {"p": cfg}})


@pytest.fixture
def gw():
    g = mock_gateway()
    yield g
    g.shutdown(1.0)


def req(text: str = "hello", model: str = "p/m", **extra) -> dict:
    r = {"model": model, "messages": [{"role": "user", "content": text}]}
    r.update(extra)
    return r


def invariant(stats: dict) -> None:
    for name, p in stats["providers"].items():
        j = p["jobs"]
        total = (
            j["queued"] + j["running"] + j["completed"] + j["failed"] + j["dropped"] + j["rejected"]
            + j["timed_out"] + j["cancelled"] + j["rate_limited"]
        )
        assert j["submitted"] == total, f"{name}: {j}"
