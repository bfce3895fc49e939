#!/usr/bin/env bash
# Python clients side by side against bifrost-mock (issue 5's benchmark).
#
#   bench/python/run.sh [bench.py options]     e.g. --rounds 1 --seconds 3
#   bench/python/run.sh --stream [stream.py options]   the stream cells (issue 20)
#
# 1. bench/.venv with aiohttp, openai and litellm from PyPI (once), and
#    bifrost built from this repository in release mode (maturin's default);
# 2. bifrost-mock built in release mode (bench.py starts it, once per latency);
# 3. bench.py: the table on stdout, bench/results/python-<date>.{md,json}.
# Not a test. Takes about 5 minutes on 2 cores once the builds are cached.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$ROOT/bench/.venv"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PYTHON="${PYTHON:-python3}"

say() { echo "# $*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import aiohttp, openai, litellm" 2>/dev/null; then
    say "installing aiohttp, openai, litellm from PyPI into $VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check aiohttp openai litellm
fi

# bifrost from this checkout, release profile. The wheel is rebuilt only when
# cargo sees changes (shared target dir), so a rerun costs a few seconds.
say "building and installing bifrost (release) into $VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps --force-reinstall "$ROOT"

say "building bifrost-mock (release)"
(cd "$ROOT" && cargo build --quiet --release -p bifrost-mock)
MOCK="$CARGO_TARGET_DIR/${CARGO_BUILD_TARGET:+$CARGO_BUILD_TARGET/}release/bifrost-mock"

# LiteLLM: no telemetry, no cost-map download at import, errors only.
export LITELLM_LOG=ERROR LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_TELEMETRY=False
export BENCH_COMMAND="bench/python/run.sh${*:+ $*}"

cd "$ROOT"
# --stream: the stream cells (stream.py) instead of bench.py.
if [ "${1:-}" = "--stream" ]; then
    shift
    exec "$VENV/bin/python" "$HERE/stream.py" --mock "$MOCK" "$@"
fi
exec "$VENV/bin/python" "$HERE/bench.py" --mock "$MOCK" "$@"
