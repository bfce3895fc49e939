#!/usr/bin/env bash
# `make bench`: every benchmark of issue 8 in ONE run, side by side, against
# the project's bifrost-mock, then bench/report.py writes
# bench/results/<date>.json, docs/benchmarks.md and docs/img/*.png.
#
#   bash bench/run.sh            # short settings (about 8–12 minutes on 2 cores)
#   BENCH_SECONDS=5 bash bench/run.sh
#
# Scenarios (a progress line each, on stderr):
#   build      release artifacts once (mock, examples, criterion benches, Go program)
#   pool       cargo bench --bench pool  (criterion, --measurement-time 3)
#   alloc      cargo bench --bench alloc (bytes/allocations per job)
#   http       cargo bench --bench http  (bifrost over HTTP vs plain reqwest)
#   c          bench/c/run.sh            (C API vs Rust API round trip)
#   node       bench/node/bench.js       (gw.chat vs http keep-alive vs fetch)
#   python     bench/python/run.sh       (bifrost vs aiohttp / openai / LiteLLM)
#   wrk        wrk -c64/-c256 at 0 and 50 ms (the native floor)
#   go         Bifrost's Go core (bench/go) at 1/64/256 in flight, 0 and 50 ms
#   backpressure+memory  core/examples/bench_backpressure.rs
# A scenario that fails or cannot run is recorded as such (status.json) and
# the run goes on; the report shows it as skipped with the reason.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export CARGO_BUILD_TARGET="${CARGO_BUILD_TARGET:-$(rustc -vV | sed -n 's/^host: //p')}"
CARGO="${CARGO:-cargo}"
SECONDS_PER_CELL="${BENCH_SECONDS:-3}"
REL="$CARGO_TARGET_DIR/$CARGO_BUILD_TARGET/release"
STAMP="$(date -u +%Y-%m-%d)"
RAW="$ROOT/bench/results/raw-$STAMP"
rm -rf "$RAW" && mkdir -p "$RAW"
T0=$(date +%s)
STATUS="$RAW/status.jsonl"
: > "$STATUS"

progress() { printf '[bench %4ds] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }
# record NAME STATUS SECONDS NOTE COMMAND
record() {
    python3 -c 'import json,sys; print(json.dumps({"scenario":sys.argv[1],"status":sys.argv[2],"seconds":int(sys.argv[3]),"note":sys.argv[4],"command":sys.argv[5]}))' \
        "$1" "$2" "$3" "$4" "$5" >> "$STATUS"
}
# scenario NAME "COMMAND" : runs COMMAND (bash -c) with stdout → raw/NAME.out, stderr → raw/NAME.err
scenario() {
    local name="$1" cmd="$2" t rc
    progress "$name: $cmd"
    t=$(date +%s)
    bash -c "$cmd" > "$RAW/$name.out" 2> "$RAW/$name.err"
    rc=$?
    if [ $rc -eq 0 ]; then
        record "$name" ok $(( $(date +%s) - t )) "" "$cmd"
        progress "$name: done in $(( $(date +%s) - t ))s"
    else
        record "$name" failed $(( $(date +%s) - t )) "exit status $rc; see bench/results/raw-$STAMP/$name.err" "$cmd"
        progress "$name: FAILED (exit $rc) — tail of $RAW/$name.err:"
        tail -5 "$RAW/$name.err" >&2
    fi
    return 0
}
skip() { record "$1" skipped 0 "$2" "${3:-}"; progress "$1: SKIPPED — $2"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }  # utime+stime, clock ticks
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- build
progress "build: release artifacts (bifrost-mock, bench_backpressure, rust_roundtrip, criterion benches)"
t=$(date +%s)
if ! { $CARGO build -q --release -p bifrost-mock \
       && $CARGO build -q --release -p bifrost-core --example bench_backpressure \
       && $CARGO build -q --release -p bifrost-c --lib --example rust_roundtrip \
       && $CARGO bench -q -p bifrost-core --bench pool --bench alloc --bench http --no-run; } 2> "$RAW/build.err"; then
    progress "build FAILED:"; tail -20 "$RAW/build.err" >&2; exit 1
fi
record build ok $(( $(date +%s) - t )) "" "cargo build --release -p bifrost-mock; -p bifrost-core --example bench_backpressure; -p bifrost-c --lib --example rust_roundtrip; cargo bench -p bifrost-core --bench pool --bench alloc --bench http --no-run"
MOCK="$REL/bifrost-mock"

GO="$(command -v go || true)"
[ -z "$GO" ] && [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go
GO_BIN="$CARGO_TARGET_DIR/go-bench/bifrost-go-bench"
GO_NOTE=""
if [ -z "$GO" ]; then
    GO_NOTE="no Go toolchain (go not on PATH, no /usr/local/go/bin/go)"
else
    progress "build: bench/go (Bifrost's Go core, version pinned in bench/go/go.mod, from the Go module proxy)"
    mkdir -p "$(dirname "$GO_BIN")"
    if ! (cd bench/go && GOTOOLCHAIN=local GOFLAGS=-mod=mod "$GO" build -o "$GO_BIN" .) 2> "$RAW/go-build.err"; then
        GO_NOTE="go build of bench/go failed: $(tail -3 "$RAW/go-build.err" | tr '\n' ' ')"
    fi
fi
progress "build: done in $(( $(date +%s) - t ))s"

# ---------------------------------------------------------------- Rust, C, Node, Python
export CRITERION_HOME="$RAW/criterion"
scenario pool "$CARGO bench -q -p bifrost-core --bench pool -- --measurement-time 3 --warm-up-time 1"
scenario alloc "$CARGO bench -q -p bifrost-core --bench alloc"
scenario http "$CARGO bench -q -p bifrost-core --bench http"
scenario c "bash bench/c/run.sh 3 20000"
if command -v node > /dev/null; then
    scenario node "BENCH_SECONDS=$SECONDS_PER_CELL BENCH_CONC=64,256 node bench/node/bench.js"
else
    skip node "node not installed"
fi
scenario python "bash bench/python/run.sh --rounds 1 --seconds $SECONDS_PER_CELL --slow-seconds 2 --warmup 0.5 --quiet-budget 15 --retry-budget 0 --out $RAW/python"

# ---------------------------------------------------------------- our own mock: wrk, Go, backpressure/memory
start_mock() {  # start_mock LATENCY_MS → sets MOCK_PID, MOCK_PORT
    coproc MOCKPROC { exec "$MOCK" --port 0 --latency-ms "$1"; }
    MOCK_PID=$MOCKPROC_PID
    read -r MOCK_PORT <&"${MOCKPROC[0]}"
}
stop_mock() { kill "$MOCK_PID" 2>/dev/null; wait "$MOCK_PID" 2>/dev/null; }
trap 'kill "${MOCK_PID:-}" 2>/dev/null' EXIT

# with_mock_cpu NAME CMD: run CMD, append {"mock_cpu_s":…,"client_cpu_s":…} to raw/NAME.cpu
with_mock_cpu() {
    local name="$1" cmd="$2" m0 m1
    m0=$(cpu_ticks "$MOCK_PID")
    scenario "$name" "/usr/bin/time -f '{\"client_cpu_s\": %U, \"client_sys_s\": %S, \"client_max_rss_kib\": %M}' -o $RAW/$name.time $cmd"
    m1=$(cpu_ticks "$MOCK_PID")
    awk -v a="$m0" -v b="$m1" -v hz="$CLK_TCK" 'BEGIN {printf "{\"mock_cpu_s\": %.3f}\n", (b - a) / hz}' > "$RAW/$name.mockcpu"
}

for lat in 0 50; do
    start_mock "$lat"
    progress "bifrost-mock (latency $lat ms) on port $MOCK_PORT, pid $MOCK_PID"
    URL="http://127.0.0.1:$MOCK_PORT"
    if command -v wrk > /dev/null; then
        for c in 64 256; do
            with_mock_cpu "wrk-$lat-$c" "wrk -t2 -c$c -d${SECONDS_PER_CELL}s -s bench/wrk/openai.lua $URL/v1/chat/completions"
        done
    else
        skip "wrk-$lat" "wrk not installed (apt-get install -y wrk)"
    fi
    if [ -z "$GO_NOTE" ]; then
        for c in 1 64 256; do
            [ "$lat" = 50 ] && [ "$c" = 1 ] && continue
            with_mock_cpu "go-$lat-$c" "$GO_BIN -base $URL -conc $c -seconds $SECONDS_PER_CELL"
            with_mock_cpu "gohttp-$lat-$c" "$GO_BIN -plain -base $URL -conc $c -seconds $SECONDS_PER_CELL"
        done
    else
        skip "go-$lat" "$GO_NOTE"
    fi
    if [ "$lat" = 0 ]; then
        scenario backpressure "$REL/examples/bench_backpressure --mock-url $URL"
    fi
    stop_mock
done
trap - EXIT

# ---------------------------------------------------------------- report
progress "report: bench/report.py → bench/results/$STAMP.json, docs/benchmarks.md, docs/img/*.png"
VENV="$ROOT/bench/.venv"
PY=python3
if [ -x "$VENV/bin/python" ]; then
    PY="$VENV/bin/python"
    "$PY" -c "import matplotlib" 2> /dev/null \
        || "$VENV/bin/pip" install --quiet --disable-pip-version-check matplotlib >&2 \
        || progress "matplotlib install failed: no plots"
fi
"$PY" bench/report.py --raw "$RAW" --total-seconds $(( $(date +%s) - T0 ))
progress "all done in $(( $(date +%s) - T0 ))s"
