#!/usr/bin/env bash
# C API vs Rust API: submit -> wait round trip on the zero-latency mock, in
# one run, alternating the programs; prints the median ns per round trip of
# each and the ratios (target: C / Rust <= 1.2). "Rust+JSON" is the Rust API
# doing the C API's conversions too (request parsed from JSON text, response
# serialized to a string), so C / (Rust+JSON) is the cost of the FFI layer.
#   bash bench/c/run.sh [ROUNDS=5] [ROUND_TRIPS=20000]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-5}
N=${2:-20000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
${CARGO:-cargo} build -q --release -p bifrost-c --example rust_roundtrip
REL=$CARGO_TARGET_DIR/${CARGO_BUILD_TARGET:+$CARGO_BUILD_TARGET/}release
mkdir -p "$CARGO_TARGET_DIR/c-bench"
gcc -std=c11 -O2 -Wall -Wextra -Werror -Iinclude bench/c/roundtrip.c -o "$CARGO_TARGET_DIR/c-bench/roundtrip" \
    -L"$REL" -Wl,-rpath,"$REL" -lbifrost -lpthread
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for threads in 1 8; do
    c=(); r=(); j=()
    for _ in $(seq "$ROUNDS"); do
        c+=("$("$CARGO_TARGET_DIR/c-bench/roundtrip" "$threads" "$N" | awk '{print $4}')")
        r+=("$("$REL/examples/rust_roundtrip" "$threads" "$N" | awk '{print $4}')")
        j+=("$("$REL/examples/rust_roundtrip" "$threads" "$N" json | awk '{print $4}')")
    done
    cm=$(printf '%s\n' "${c[@]}" | median); rm=$(printf '%s\n' "${r[@]}" | median); jm=$(printf '%s\n' "${j[@]}" | median)
    printf 'threads=%d  C %6d ns   Rust %6d ns   Rust+JSON %6d ns   C/Rust %.2fx   C/(Rust+JSON) %.2fx\n' \
        "$threads" "$cm" "$rm" "$jm" "$(echo "$cm / $rm" | bc -l)" "$(echo "$cm / $jm" | bc -l)"
    printf '    (ns per round trip, median of %d runs of %d; C: %s | Rust: %s | Rust+JSON: %s)\n' \
        "$ROUNDS" "$N" "${c[*]}" "${r[*]}" "${j[*]}"
done
