#!/usr/bin/env bash
# `make bench`: every benchmark of issue 8 in ONE run, side by side, against
# the project's bifrost-mock, then bench/report.py writes
# bench/results/<date>.json, docs/benchmarks.md and docs/img/*.png.
#
#   bash bench/run.sh            # short settings (about 18 minutes on 2 cores, warm)
#   BENCH_SECONDS=5 BENCH_OPENLOOP_SECONDS=20 bash bench/run.sh   # longer cells
#
# Settings (environment):
#   BENCH_SECONDS=3             measured seconds per closed-loop cell
#   BENCH_CONC=64,256,1024      requests in flight, closed loop
#   BENCH_OPENLOOP_SECONDS=5    measured seconds per open-loop cell (issue 8 suggests 20;
#                               5 keeps the whole run under 15 minutes on 2 cores)
#   BENCH_OPENLOOP_WARMUP=0.5   unmeasured seconds at the same rate before each open-loop cell
#   BENCH_OPENLOOP_RATES=1000,3000                requests/s, open loop
#   BENCH_OPENLOOP_PY_CLIENTS=bifrost,aiohttp     Python clients in the open loop
#                               (also: openai, litellm — each adds ~35 s)
#   BENCH_OPENLOOP_NODE_CLIENTS=bifrost,http      Node clients in the open loop (also: fetch, openai)
#   BENCH_STREAMS=256,1024      concurrent streams per stream cell
#   BENCH_STREAM_SECONDS=3      measured seconds per stream cell (every stream started runs to its end)
#   BENCH_QUIET_BUDGET=30       seconds the run may spend in total waiting (≤ 10 s before a
#                               scenario) for other load on the machine to drop below 0.5 cores
#   BENCH_ONLY=openloop,node    run only these scenario groups (names below; the build always
#                               runs). Such a partial run writes its raw results to
#                               bench/results/raw-<date>-only/ and its report to
#                               bench/results/raw-<date>-only/report/, leaving docs/ alone.
#
# Scenario groups (a progress line per scenario, on stderr):
#   build      release artifacts once (mock, examples, libbifrost, Node addon, criterion
#              benches, the C driver, bench/go), and the Node peers (openai, p-limit:
#              npm install --prefix bench/node, versions pinned in bench/node/package.json)
#   pool       cargo bench --bench pool  (criterion, --measurement-time 3)
#   alloc      cargo bench --bench alloc (bytes/allocations per job)
#   http       cargo bench --bench http  (bifrost over HTTP vs plain reqwest, in-process mock)
#   c          bench/c/run.sh            (C API vs Rust API round trip, embedded mock)
#   node       bench/node/bench.js       (gw.chat vs http keep-alive vs fetch vs openai+p-limit)
#   python     bench/python/run.sh       (bifrost vs aiohttp / openai / LiteLLM)
#   stream     streams (issue 20): 256 and 1,024 concurrent streams of 200 chunks, 0 and 10 ms
#              between chunks, one bifrost-mock (1 worker) per language: Rust gw.stream vs
#              reqwest + SSE parsing (core/examples/bench_stream.rs), Python astream vs aiohttp
#              and the openai SDK (bench/python/stream.py), Node gw.stream vs node:http and
#              openai-node (bench/node/stream.js), C bifrost_stream_next (bench/c/stream.c, a
#              thread per stream), Bifrost's Go core (bench/go -stream); chunks/s, client CPU per chunk, ttfc, gaps
#   inflight   10,000 requests in flight at 1 s mock latency (issue 20), closed loop: Rust bifrost
#              and plain reqwest (bench_openloop --closed), Node bifrost and node:http (bench.js),
#              Python bifrost and aiohttp (bench.py); achieved rate vs in-flight / latency, client
#              CPU per request, resident memory per request in flight, p99 added latency
#   fleet      bench/fleet/run.sh        (Redis store vs memory store; a 4-process fleet keeping
#              one limit: bifrost vs LiteLLM's Router on Redis; ~4 minutes)
#   then, per mock latency (0 and 50 ms), against one bifrost-mock process:
#   wrk        wrk at each concurrency (the native floor)
#   go         Bifrost's Go core and Go net/http (bench/go) at 1 (0 ms only) and each concurrency
#   rust       core/examples/bench_openloop --closed: bifrost and plain reqwest at each concurrency
#   chttp      bench/c/http.sh --closed: the C API over HTTP at each concurrency
#   openloop   fixed rates, open loop: Rust bifrost + plain reqwest (the floor), C, Node,
#              Python, Bifrost's Go core + Go net/http
#   backpressure+memory  core/examples/bench_backpressure.rs (0 ms only)
# A scenario that fails or cannot run is recorded as such (status.json) and
# the run goes on; the report shows it as skipped with the reason.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export CARGO_BUILD_TARGET="${CARGO_BUILD_TARGET:-$(rustc -vV | sed -n 's/^host: //p')}"
CARGO="${CARGO:-cargo}"
SECONDS_PER_CELL="${BENCH_SECONDS:-3}"
CONCS="${BENCH_CONC:-64,256,1024}"
OL_SECONDS="${BENCH_OPENLOOP_SECONDS:-5}"
OL_WARMUP="${BENCH_OPENLOOP_WARMUP:-0.5}"
OL_RATES="${BENCH_OPENLOOP_RATES:-1000,3000}"
OL_PY_CLIENTS="${BENCH_OPENLOOP_PY_CLIENTS:-bifrost,aiohttp}"
OL_NODE_CLIENTS="${BENCH_OPENLOOP_NODE_CLIENTS:-bifrost,http}"
ONLY="${BENCH_ONLY:-}"
QUIET_LEFT="${BENCH_QUIET_BUDGET:-30}"
export BENCH_SECONDS="$SECONDS_PER_CELL" BENCH_CONC="$CONCS" BENCH_OPENLOOP_SECONDS="$OL_SECONDS" \
    BENCH_OPENLOOP_WARMUP="$OL_WARMUP" BENCH_OPENLOOP_RATES="$OL_RATES"  # report.py records them
REL="$CARGO_TARGET_DIR/$CARGO_BUILD_TARGET/release"
STAMP="$(date -u +%Y-%m-%d)"
RAW="$ROOT/bench/results/raw-$STAMP${ONLY:+-only}"
rm -rf "$RAW" && mkdir -p "$RAW"
T0=$(date +%s)
STATUS="$RAW/status.jsonl"
: > "$STATUS"

# want GROUP: is this scenario group selected (BENCH_ONLY empty = all)?
want() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }
progress() { printf '[bench %4ds] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }
# record NAME STATUS SECONDS NOTE COMMAND
record() {
    python3 -c 'import json,sys; print(json.dumps({"scenario":sys.argv[1],"status":sys.argv[2],"seconds":int(sys.argv[3]),"note":sys.argv[4],"command":sys.argv[5]}))' \
        "$1" "$2" "$3" "$4" "$5" >> "$STATUS"
}
# busy_cores: CPU cores busy on the whole machine over 0.2 s (/proc/stat)
busy_cores() {
    local a b
    a=$(head -1 /proc/stat); sleep 0.2; b=$(head -1 /proc/stat)
    awk -v a="$a" -v b="$b" -v hz="$CLK_TCK" 'BEGIN { split(a, x); split(b, y); t = 0; i = 0
        for (k = 2; k <= 9; k++) { t += y[k] - x[k] }; i = (y[5] - x[5]) + (y[6] - x[6])
        printf "%.2f", (t - i) / (hz * 0.2) }'  # busy jiffies over 0.2 s → cores
}
# quiet_wait: this machine is shared; wait (bounded) until other jobs leave the cores alone.
quiet_wait() {
    local waited=0 load
    load=$(busy_cores)
    while awk -v l="$load" 'BEGIN { exit !(l > 0.5) }' && [ "$waited" -lt 10 ] && [ "$QUIET_LEFT" -gt 0 ]; do
        [ "$waited" = 0 ] && progress "waiting for other load to drop ($load cores busy; budget left ${QUIET_LEFT}s)"
        sleep 1; waited=$((waited + 1)); QUIET_LEFT=$((QUIET_LEFT - 1))
        load=$(busy_cores)
    done
    LOAD_BEFORE=$load
}
listen_overflows() { awk '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) c[$i] = i; h = 1 } else print $c["ListenOverflows"] }' /proc/net/netstat 2>/dev/null || echo 0; }
# scenario NAME "COMMAND" : runs COMMAND (bash -c) with stdout → raw/NAME.out, stderr → raw/NAME.err;
# the note records the machine's load just before and any accept-queue overflows (SYNs dropped) during it.
scenario() {
    local name="$1" cmd="$2" t rc lo0 lo1 note
    quiet_wait
    progress "$name: $cmd"
    t=$(date +%s)
    lo0=$(listen_overflows)
    bash -c "$cmd" > "$RAW/$name.out" 2> "$RAW/$name.err"
    rc=$?
    lo1=$(listen_overflows)
    note="other load before: $LOAD_BEFORE cores"
    [ "${lo1:-0}" != "${lo0:-0}" ] && note="$note; $(( ${lo1:-0} - ${lo0:-0} )) listen-queue overflows (SYNs dropped, retried after 1 s)"
    if [ $rc -eq 0 ]; then
        record "$name" ok $(( $(date +%s) - t )) "$note" "$cmd"
        progress "$name: done in $(( $(date +%s) - t ))s"
    else
        record "$name" failed $(( $(date +%s) - t )) "exit status $rc; see bench/results/$(basename "$RAW")/$name.err; $note" "$cmd"
        progress "$name: FAILED (exit $rc) — tail of $RAW/$name.err:"
        tail -5 "$RAW/$name.err" >&2
    fi
    return 0
}
skip() { record "$1" skipped 0 "$2" "${3:-}"; progress "$1: SKIPPED — $2"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }  # utime+stime, clock ticks
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- build
progress "build: release artifacts (bifrost-mock, examples, libbifrost, Node addon, criterion benches, C driver)"
t=$(date +%s)
if ! { $CARGO build -q --release -p bifrost-mock -p bifrost-node \
       && $CARGO build -q --release -p bifrost-core --example bench_backpressure --example bench_openloop --example bench_stream \
       && $CARGO build -q --release -p bifrost-c --lib --example rust_roundtrip \
       && $CARGO bench -q -p bifrost-core --bench pool --bench alloc --bench http --no-run \
       && mkdir -p "$CARGO_TARGET_DIR/c-bench" \
       && gcc -std=c11 -O2 -Wall -Wextra -Werror -Iinclude bench/c/http.c -o "$CARGO_TARGET_DIR/c-bench/http" \
              -L"$REL" -Wl,-rpath,"$REL" -lbifrost -lpthread \
       && gcc -std=c11 -O2 -Wall -Wextra -Werror -Iinclude bench/c/stream.c -o "$CARGO_TARGET_DIR/c-bench/stream" \
              -L"$REL" -Wl,-rpath,"$REL" -lbifrost -lpthread; } 2> "$RAW/build.err"; then
    progress "build FAILED:"; tail -20 "$RAW/build.err" >&2; exit 1
fi
record build ok $(( $(date +%s) - t )) "" "cargo build --release -p bifrost-mock -p bifrost-node; -p bifrost-core --example bench_backpressure --example bench_openloop --example bench_stream; -p bifrost-c --lib --example rust_roundtrip; cargo bench -p bifrost-core --bench pool --bench alloc --bench http --no-run; gcc … bench/c/http.c, bench/c/stream.c"
MOCK="$REL/bifrost-mock"
OL_BIN="$REL/examples/bench_openloop"
# Everything is built: the drivers below must not rebuild (another build mid-run would skew cells).
export BENCH_NO_BUILD=1

NODE_NOTE=""
command -v node > /dev/null || NODE_NOTE="node not installed"
NODE_PEERS_NOTE=""
if [ -z "$NODE_NOTE" ] && { want node || want openloop || want stream || want inflight; }; then
    progress "build: Node peers (openai, p-limit; pinned in bench/node/package.json) from npm"
    if ! npm install --no-audit --no-fund --prefix bench/node > "$RAW/npm.out" 2> "$RAW/npm.err"; then
        NODE_PEERS_NOTE="npm install --prefix bench/node failed ($(tail -2 "$RAW/npm.err" | tr '\n' ' ')): no openai + p-limit rows"
        progress "$NODE_PEERS_NOTE"
        skip node-openai "$NODE_PEERS_NOTE" "npm install --no-audit --no-fund --prefix bench/node"
    fi
fi

GO="$(command -v go || true)"
[ -z "$GO" ] && [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go
GO_BIN="$CARGO_TARGET_DIR/go-bench/bifrost-go-bench"
GO_NOTE=""
if [ -z "$GO" ]; then
    GO_NOTE="no Go toolchain (go not on PATH, no /usr/local/go/bin/go)"
elif want go || want openloop || want stream; then
    progress "build: bench/go (Bifrost's Go core, version pinned in bench/go/go.mod, from the Go module proxy)"
    mkdir -p "$(dirname "$GO_BIN")"
    if ! (cd bench/go && GOTOOLCHAIN=local GOFLAGS=-mod=mod "$GO" build -o "$GO_BIN" .) 2> "$RAW/go-build.err"; then
        GO_NOTE="go build of bench/go failed: $(tail -3 "$RAW/go-build.err" | tr '\n' ' ')"
    fi
fi
progress "build: done in $(( $(date +%s) - t ))s"

# ---------------------------------------------------------------- Rust, C, Node, Python
export CRITERION_HOME="$RAW/criterion"
want pool && scenario pool "$CARGO bench -q -p bifrost-core --bench pool -- --measurement-time 3 --warm-up-time 1"
want alloc && scenario alloc "$CARGO bench -q -p bifrost-core --bench alloc"
want http && scenario http "$CARGO bench -q -p bifrost-core --bench http"
want c && scenario c "bash bench/c/run.sh 3 20000"
if want node; then
    if [ -n "$NODE_NOTE" ]; then
        skip node "$NODE_NOTE"
    else
        scenario node "BENCH_SECONDS=$SECONDS_PER_CELL BENCH_CONC=$CONCS BENCH_LATENCIES=0,50 node bench/node/bench.js"
    fi
fi
# Python: bench/python/run.sh sets up bench/.venv (peers from PyPI, bifrost from this checkout).
PY_READY=""
if want python; then
    scenario python "bash bench/python/run.sh --rounds 1 --seconds $SECONDS_PER_CELL --slow-seconds 2 --warmup 0.5 --inflight $CONCS --mock-workers 2 --quiet-budget 15 --retry-budget 0 --out $RAW/python"
    grep -q '"scenario": "python", "status": "ok"' "$STATUS" && PY_READY=1
fi

# Streams: every language against its own bifrost-mock (1 worker thread), the same cells.
STREAMS="${BENCH_STREAMS:-256,1024}"
STREAM_SECONDS="${BENCH_STREAM_SECONDS:-3}"
export BENCH_STREAMS="$STREAMS" BENCH_STREAM_SECONDS="$STREAM_SECONDS"  # report.py records them
if want stream; then
    coproc SMOCK { exec "$MOCK" --port 0 --workers 1; }
    read -r SMOCK_PORT <&"${SMOCK[0]}"
    for client in bifrost reqwest; do
        scenario "stream-rust-$client" "$REL/examples/bench_stream --base http://127.0.0.1:$SMOCK_PORT --client $client --streams $STREAMS --chunk-delay-ms 0,10 --seconds $STREAM_SECONDS"
    done
    scenario stream-c "$CARGO_TARGET_DIR/c-bench/stream --base http://127.0.0.1:$SMOCK_PORT --streams $STREAMS --chunk-delay-ms 0,10 --seconds $STREAM_SECONDS"
    if [ -z "$GO_NOTE" ]; then
        scenario stream-go "$GO_BIN -stream -base http://127.0.0.1:$SMOCK_PORT -streams $STREAMS -chunk-delay-ms 0,10 -seconds $STREAM_SECONDS"
    else
        skip stream-go "$GO_NOTE"
    fi
    kill "$SMOCK_PID" 2>/dev/null; wait "$SMOCK_PID" 2>/dev/null
    if [ -n "$NODE_NOTE" ]; then
        skip stream-node "$NODE_NOTE"
    else
        scenario stream-node "BENCH_STREAMS=$STREAMS BENCH_CHUNK_DELAYS=0,10 BENCH_SECONDS=$STREAM_SECONDS node bench/node/stream.js"
    fi
    # The venv is ready when the python scenario ran; otherwise bench/python/run.sh sets it up first.
    PY_STREAM="bash bench/python/run.sh --stream"
    [ -n "$PY_READY" ] && PY_STREAM="bench/.venv/bin/python bench/python/stream.py --mock $MOCK"
    scenario stream-python "$PY_STREAM --streams $STREAMS --chunk-delay-ms 0,10 --seconds $STREAM_SECONDS --clients bifrost,aiohttp,openai"
fi

# 10,000 in flight at 1 s: every client against a mock holding them (2 workers). The mock's own
# connections need 10k descriptors, as does the client: raise the soft limit where the hard one allows.
INFLIGHT="${BENCH_INFLIGHT:-10000}"
INFLIGHT_LAT="${BENCH_INFLIGHT_LATENCY_MS:-1000}"
export BENCH_INFLIGHT="$INFLIGHT" BENCH_INFLIGHT_LATENCY_MS="$INFLIGHT_LAT"  # report.py records them
if want inflight; then
    ulimit -n "$(( INFLIGHT * 2 + 1024 ))" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$(( INFLIGHT + 256 ))" ]; then
        skip inflight "open-file limit $(ulimit -n) is below $INFLIGHT connections (raise ulimit -n)"
    else
        coproc IMOCK { exec "$MOCK" --port 0 --workers 2 --latency-ms "$INFLIGHT_LAT"; }
        read -r IMOCK_PORT <&"${IMOCK[0]}"
        for client in bifrost reqwest; do
            scenario "inflight-rust-$client" "$OL_BIN --base http://127.0.0.1:$IMOCK_PORT --client $client --latency-ms $INFLIGHT_LAT --closed $INFLIGHT --seconds 5 --warmup 2 --mock-pid $IMOCK_PID"
        done
        kill "$IMOCK_PID" 2>/dev/null; wait "$IMOCK_PID" 2>/dev/null
        if [ -n "$NODE_NOTE" ]; then
            skip inflight-node "$NODE_NOTE"
        else
            # One process per client: its memory is its own (and 10k sockets each fit the fd limit).
            for client in bifrost http; do
                scenario "inflight-node-$client" "BENCH_SECONDS=5 BENCH_WARMUP=2 BENCH_CONC=$INFLIGHT BENCH_LATENCIES=$INFLIGHT_LAT BENCH_CLIENTS=$client node bench/node/bench.js"
            done
        fi
        PY_INF="bash bench/python/run.sh"
        [ -n "$PY_READY" ] && PY_INF="bench/.venv/bin/python bench/python/bench.py --mock $MOCK"
        scenario inflight-python "$PY_INF --rounds 1 --seconds 5 --warmup 2 --inflight $INFLIGHT --latency $INFLIGHT_LAT --clients bifrost,aiohttp --mock-workers 2 --quiet-budget 0 --retry-budget 0 --out $RAW/inflight-python"
    fi
fi

# Fleet limits on Redis: bench/fleet/run.sh starts its own redis-server and mocks.
if want fleet; then
    if command -v redis-server > /dev/null; then
        scenario fleet "bash bench/fleet/run.sh --seconds 65 --out $RAW/fleet"
    else
        skip fleet "redis-server is not installed (apt-get install redis-server)"
    fi
fi

# ---------------------------------------------------------------- one mock per latency: wrk, Go, Rust, C, open loop
start_mock() {  # start_mock LATENCY_MS → sets MOCK_PID, MOCK_PORT
    coproc MOCKPROC { exec "$MOCK" --port 0 --workers 2 --latency-ms "$1"; }
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
    { want wrk || want go || want rust || want chttp || want openloop || want backpressure; } || continue
    start_mock "$lat"
    progress "bifrost-mock (latency $lat ms) on port $MOCK_PORT, pid $MOCK_PID"
    URL="http://127.0.0.1:$MOCK_PORT"
    if want wrk; then
        if command -v wrk > /dev/null; then
            for c in ${CONCS//,/ }; do
                with_mock_cpu "wrk-$lat-$c" "wrk -t2 -c$c -d${SECONDS_PER_CELL}s -s bench/wrk/openai.lua $URL/v1/chat/completions"
            done
        else
            skip "wrk-$lat" "wrk not installed (apt-get install -y wrk)"
        fi
    fi
    if want go; then
        if [ -z "$GO_NOTE" ]; then
            for c in 1 ${CONCS//,/ }; do
                [ "$lat" = 50 ] && [ "$c" = 1 ] && continue
                scenario "go-$lat-$c" "$GO_BIN -base $URL -conc $c -seconds $SECONDS_PER_CELL -mock-pid $MOCK_PID"
                scenario "gohttp-$lat-$c" "$GO_BIN -plain -base $URL -conc $c -seconds $SECONDS_PER_CELL -mock-pid $MOCK_PID"
            done
        else
            skip "go-$lat" "$GO_NOTE"
        fi
    fi
    if want rust; then
        for client in bifrost reqwest; do
            scenario "rust-$client-$lat" "$OL_BIN --base $URL --client $client --latency-ms $lat --closed $CONCS --seconds $SECONDS_PER_CELL --warmup 0.5 --mock-pid $MOCK_PID"
        done
    fi
    want chttp && scenario "chttp-$lat" "bash bench/c/http.sh --base $URL --latency-ms $lat --closed $CONCS --seconds $SECONDS_PER_CELL --warmup 0.5 --mock-pid $MOCK_PID"
    if want openloop; then
        OL_ARGS="--latency-ms $lat --rates $OL_RATES --seconds $OL_SECONDS --warmup $OL_WARMUP"
        scenario "openloop-rust-reqwest-$lat" "$OL_BIN --base $URL --client reqwest $OL_ARGS"
        scenario "openloop-rust-bifrost-$lat" "$OL_BIN --base $URL --client bifrost $OL_ARGS"
        scenario "openloop-c-$lat" "bash bench/c/http.sh --base $URL $OL_ARGS"
        if [ -n "$NODE_NOTE" ]; then
            skip "openloop-node-$lat" "$NODE_NOTE"
        else
            scenario "openloop-node-$lat" "BENCH_MODE=open BENCH_BASE=$URL BENCH_LATENCY_MS=$lat BENCH_RATES=$OL_RATES BENCH_SECONDS=$OL_SECONDS BENCH_WARMUP=$OL_WARMUP BENCH_CLIENTS=$OL_NODE_CLIENTS node bench/node/bench.js"
        fi
        # The venv is ready when the python scenario ran; otherwise bench/python/run.sh sets it up first.
        PY_CMD="bash bench/python/run.sh"
        [ -n "$PY_READY" ] && PY_CMD="bench/.venv/bin/python bench/python/bench.py"
        scenario "openloop-python-$lat" "$PY_CMD --openloop --base $URL $OL_ARGS --clients $OL_PY_CLIENTS"
        [ "$PY_CMD" = "bash bench/python/run.sh" ] && grep -q "\"openloop-python-$lat\", \"status\": \"ok\"" "$STATUS" && PY_READY=1
        if [ -z "$GO_NOTE" ]; then
            GO_OL="-base $URL -rates $OL_RATES -latency-ms $lat -seconds $OL_SECONDS -warmup $OL_WARMUP"
            scenario "openloop-go-$lat" "$GO_BIN $GO_OL"
            scenario "openloop-gohttp-$lat" "$GO_BIN -plain $GO_OL"
        else
            skip "openloop-go-$lat" "$GO_NOTE"
        fi
    fi
    if [ "$lat" = 0 ] && want backpressure; then
        scenario backpressure "$REL/examples/bench_backpressure --mock-url $URL"
    fi
    stop_mock
done
trap - EXIT

# ---------------------------------------------------------------- report
VENV="$ROOT/bench/.venv"
PY=python3
if [ -x "$VENV/bin/python" ]; then
    PY="$VENV/bin/python"
    "$PY" -c "import matplotlib" 2> /dev/null \
        || "$VENV/bin/pip" install --quiet --disable-pip-version-check matplotlib >&2 \
        || progress "matplotlib install failed: no plots"
fi
if [ -n "$ONLY" ]; then
    progress "report (partial run, BENCH_ONLY=$ONLY): $RAW/report/"
    "$PY" bench/report.py --raw "$RAW" --total-seconds $(( $(date +%s) - T0 )) --docs "$RAW/report" --json "$RAW/report/results.json"
else
    progress "report: bench/report.py → bench/results/$STAMP.json, docs/benchmarks.md, docs/img/*.png"
    "$PY" bench/report.py --raw "$RAW" --total-seconds $(( $(date +%s) - T0 ))
fi
progress "all done in $(( $(date +%s) - T0 ))s"
