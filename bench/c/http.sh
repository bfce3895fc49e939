#!/usr/bin/env bash
# bifrost through the C API over HTTP (bench/c/http.c): builds libbifrost
# (release) and the driver, then runs it with the given arguments against a
# running bifrost-mock. Open loop at fixed rates and/or closed loop at N in
# flight; one JSON line per cell on stdout.
#   bash bench/c/http.sh --base http://127.0.0.1:PORT --latency-ms 0 --rates 1000,3000 --closed 64,256,1024 --seconds 5
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
REL=$CARGO_TARGET_DIR/${CARGO_BUILD_TARGET:+$CARGO_BUILD_TARGET/}release
BIN=$CARGO_TARGET_DIR/c-bench/http
# BENCH_NO_BUILD=1 (bench/run.sh, after its build step): use libbifrost as built.
[ -n "${BENCH_NO_BUILD:-}" ] || ${CARGO:-cargo} build -q --release -p bifrost-c --lib
mkdir -p "$CARGO_TARGET_DIR/c-bench"
[ -n "${BENCH_NO_BUILD:-}" ] && [ "$BIN" -nt bench/c/http.c ] && [ "$BIN" -nt include/bifrost.h ] && exec "$BIN" "$@"
gcc -std=c11 -O2 -Wall -Wextra -Werror -Iinclude bench/c/http.c -o "$BIN" \
    -L"$REL" -Wl,-rpath,"$REL" -lbifrost -lpthread
exec "$BIN" "$@"
