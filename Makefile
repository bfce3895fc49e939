# bifrost: `make test` runs every suite, `make demo` the demo, `make bench` the benchmarks.
SHELL := /bin/bash
CARGO ?= cargo
# One target dir and one target triple for every tool (cargo, maturin, napi).
export CARGO_TARGET_DIR ?= $(CURDIR)/target

.PHONY: test test-rust demo bench lint fmt mock-server

test: test-rust

test-rust:
	$(CARGO) test -p bifrost-core --lib --tests --examples
	$(CARGO) test -p bifrost-core --doc
	$(CARGO) test -p bifrost-mock

demo:
	$(CARGO) run -p bifrost-core --release --example demo

bench:
	$(CARGO) bench -p bifrost-core --bench pool
	$(CARGO) bench -p bifrost-core --bench alloc
	$(CARGO) bench -p bifrost-core --bench http

mock-server:
	$(CARGO) run -p bifrost-mock --release -- --port 0

lint:
	$(CARGO) clippy -p bifrost-core --all-targets -- -D warnings
	$(CARGO) fmt --check

fmt:
	$(CARGO) fmt
