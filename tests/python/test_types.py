"""The package's type stubs (python/bifrost/_bifrost.pyi and the generated
_types.pyi) type-check a typed tour of the API under `mypy --strict`, as
`tsc` checks Node's; and that tour runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TYPED = os.path.join(ROOT, "examples", "python", "typed.py")


def test_the_typed_example_passes_mypy_strict(tmp_path):
    pytest.importorskip("mypy")
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", str(tmp_path), TYPED],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_wrong_key_fails_mypy(tmp_path):
    """The check can fail: a misspelled config key is a type error."""
    pytest.importorskip("mypy")
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from bifrost._types import Config\n"
        "c: Config = {'providers': {'a': {'kind': 'mock', 'concurency_and_buffer_size': {}}}}\n"
    )
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", str(tmp_path / "c"), str(bad)],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
    )
    assert r.returncode != 0 and "concurency_and_buffer_size" in r.stdout, r.stdout


def test_the_typed_example_runs():
    r = subprocess.run([sys.executable, TYPED], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
