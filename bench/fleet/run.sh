#!/usr/bin/env bash
# Fleet limits on Redis (issue 17's benchmark): bifrost's Redis store next
# to its memory store, and a 4-process fleet keeping one limit with bifrost
# versus LiteLLM's Router on Redis.
#
#   bench/fleet/run.sh [bench.py options]      e.g. --seconds 65 --out DIR
#
# 1. bench/.venv with litellm and redis from PyPI (once), bifrost from this
#    checkout in release mode; 2. bifrost-mock in release mode; 3. bench.py
#    (starts its own redis-server and mocks on loopback). Not a test. Takes
#    about 4 minutes with --seconds 65.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$ROOT/bench/.venv"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PYTHON="${PYTHON:-python3}"
say() { echo "# $*" >&2; }

command -v redis-server > /dev/null || { say "redis-server is not installed (apt-get install redis-server)"; exit 1; }
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
if ! "$VENV/bin/python" -c "import litellm, redis" 2>/dev/null; then
    say "installing litellm and redis from PyPI into $VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check litellm redis
fi
say "building and installing bifrost (release) into $VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps --force-reinstall "$ROOT"
say "building bifrost-mock (release)"
(cd "$ROOT" && cargo build --quiet --release -p bifrost-mock)
MOCK="$CARGO_TARGET_DIR/${CARGO_BUILD_TARGET:+$CARGO_BUILD_TARGET/}release/bifrost-mock"
export LITELLM_LOG=ERROR LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_TELEMETRY=False
exec "$VENV/bin/python" "$HERE/bench.py" --mock "$MOCK" "$@"
