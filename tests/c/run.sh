#!/usr/bin/env bash
# The C suite: header freshness, C11/C++ header checks, the C tests against
# libbifrost (shared and static), then the whole suite again under valgrind
# (and AddressSanitizer when gcc has it). Prints "c: N passed, N failed".
#
#   bash tests/c/run.sh            # everything
#   BIFROST_C_VALGRIND=0 bash tests/c/run.sh   # skip the valgrind pass
#   STRESS_N=500 ...               # submits per thread in the stress test (default 2000; 300 under valgrind)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CARGO=${CARGO:-cargo}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# cargo puts artifacts under <target>/<triple>/ when CARGO_BUILD_TARGET is set (make exports it).
LIBDIR=$CARGO_TARGET_DIR/${CARGO_BUILD_TARGET:+$CARGO_BUILD_TARGET/}debug
OUT=$CARGO_TARGET_DIR/c-tests
mkdir -p "$OUT"
export RUST_BACKTRACE=0               # injected mock panics print one line each, not a backtrace
export BIFROST_WORKER_THREADS=${BIFROST_WORKER_THREADS:-2}

passed=0; failed=0
record() { # record NAME OUTPUT-FILE RC
    local line p f
    line=$(grep -E '^[a-z_]+: [0-9]+ passed, [0-9]+ failed$' "$2" | tail -1 || true)
    p=$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"${line:-x: 0 passed, 0 failed}")
    f=$(sed -E 's/.*, ([0-9]+) failed/\1/' <<<"${line:-x: 0 passed, 0 failed}")
    if [ "$3" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi   # a crash, a valgrind error, a timeout
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$3" -eq 0 ]; then echo "ok   $1 ($p checks)"; else echo "FAIL $1 (exit $3)"; grep -v -E 'injected a panic|^note: run with' "$2" | tail -40; fi
}
run() { # run NAME CMD...
    local name=$1; shift
    local log=$OUT/$name.log rc=0
    timeout 600 "$@" >"$log" 2>&1 || rc=$?
    record "$name" "$log" "$rc"
}

echo "== cargo: header freshness + unit tests, libbifrost, bifrost-mock (debug)"
$CARGO test -q -p bifrost-c --lib
$CARGO build -q -p bifrost-c -p bifrost-mock

echo "== header compiles as C11 and C++"
CWARN=(-Wall -Wextra -Werror -pedantic)
printf '#include "bifrost.h"\nint main(void){return BIFROST_OK;}\n' >"$OUT/hdr.c"
gcc -std=c11 "${CWARN[@]}" -Iinclude -fsyntax-only "$OUT/hdr.c"
g++ -std=c++11 "${CWARN[@]}" -Iinclude -x c++ -fsyntax-only "$OUT/hdr.c"
g++ -std=c++17 "${CWARN[@]}" -Iinclude -x c++ -fsyntax-only "$OUT/hdr.c"

echo "== build C tests (shared via pkg-config; static via pkg-config --static)"
export PKG_CONFIG_PATH=$LIBDIR${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
CFLAGS=(-std=c11 "${CWARN[@]}" -g -O1 $(pkg-config --cflags bifrost))
for t in test_api test_stress test_http test_hardening; do
    gcc "${CFLAGS[@]}" "tests/c/$t.c" -o "$OUT/$t" $(pkg-config --libs bifrost) -lpthread
done
gcc "${CFLAGS[@]}" tests/c/test_api.c -o "$OUT/test_api_static" \
    $(pkg-config --static --libs bifrost | sed "s/-lbifrost/-l:libbifrost.a/") -lpthread
if ldd "$OUT/test_api_static" | grep -q libbifrost; then echo "test_api_static links libbifrost dynamically" >&2; exit 1; fi

echo "== start bifrost-mock"
MOCK_LOG=$OUT/mock.log
"$LIBDIR/bifrost-mock" --port 0 >"$MOCK_LOG" 2>&1 &
MOCK_PID=$!
trap 'kill $MOCK_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$MOCK_LOG" ] && break; sleep 0.1; done
PORT=$(head -1 "$MOCK_LOG")
[[ "$PORT" =~ ^[0-9]+$ ]] || { echo "bifrost-mock did not print a port: $(cat "$MOCK_LOG")" >&2; exit 1; }

echo "== run"
run test_api "$OUT/test_api"
run test_api_static "$OUT/test_api_static"
run test_stress env STRESS_N="${STRESS_N:-2000}" "$OUT/test_stress"
run test_http "$OUT/test_http" "$PORT"
run test_hardening "$OUT/test_hardening"

if [ "${BIFROST_C_VALGRIND:-1}" != 0 ]; then
    echo "== valgrind (memcheck, leaks are errors; suppressions: tests/c/valgrind.supp)"
    VG=(valgrind -q --leak-check=full --errors-for-leak-kinds=definite,possible --error-exitcode=99
        --suppressions=tests/c/valgrind.supp --num-callers=40)
    run vg_test_api "${VG[@]}" "$OUT/test_api"
    run vg_test_stress env STRESS_N="${VALGRIND_STRESS_N:-300}" "${VG[@]}" "$OUT/test_stress"
    run vg_test_http "${VG[@]}" "$OUT/test_http" "$PORT"
    run vg_test_hardening env BIFROST_C_SKIP_FORK=1 "${VG[@]}" "$OUT/test_hardening"
fi

if [ "${BIFROST_C_ASAN:-1}" != 0 ] && echo 'int main(void){return 0;}' | gcc -fsanitize=address -x c - -o "$OUT/asan_probe" 2>/dev/null; then
    echo "== AddressSanitizer (C side instrumented; leaks are valgrind's job)"
    for t in test_api test_stress test_http test_hardening; do
        gcc "${CFLAGS[@]}" -fsanitize=address -fno-omit-frame-pointer "tests/c/$t.c" -o "$OUT/asan_$t" \
            $(pkg-config --libs bifrost) -lpthread
    done
    export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
    run asan_test_api "$OUT/asan_test_api"
    run asan_test_stress env STRESS_N=500 "$OUT/asan_test_stress"
    run asan_test_http "$OUT/asan_test_http" "$PORT"
    run asan_test_hardening "$OUT/asan_test_hardening"
    unset ASAN_OPTIONS
fi

echo "c: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
