#!/usr/bin/env bash
# Builds libbifrost (release) and the C demo against include/bifrost.h, then runs it.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
${CARGO:-cargo} build -q --release -p bifrost-c
export PKG_CONFIG_PATH=$CARGO_TARGET_DIR/${CARGO_BUILD_TARGET:+$CARGO_BUILD_TARGET/}release${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
mkdir -p "$CARGO_TARGET_DIR/c-examples"
gcc -std=c11 -O2 -Wall -Wextra -Werror $(pkg-config --cflags bifrost) examples/c/demo.c \
    -o "$CARGO_TARGET_DIR/c-examples/demo" $(pkg-config --libs bifrost) -lpthread
exec "$CARGO_TARGET_DIR/c-examples/demo"
