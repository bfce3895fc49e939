# bifrost: `make test` runs every suite, `make demo` the demo, `make bench` the benchmarks.
SHELL := /bin/bash
CARGO ?= cargo
# One target dir and one target triple for every tool (cargo, maturin, napi).
export CARGO_TARGET_DIR ?= $(CURDIR)/target

PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: test test-rust test-python test-c python-deps python-dev demo bench lint fmt mock-server

test: test-rust test-python test-c

test-rust:
	$(CARGO) test -p bifrost-core --lib --tests --examples
	$(CARGO) test -p bifrost-core --doc
	$(CARGO) test -p bifrost-mock

# Python: tools from PyPI, then the package built from source (dev profile, so
# it shares compiled dependencies with the Rust tests) and its pytest suite.
python-deps:
	$(PIP) install -q --disable-pip-version-check "maturin>=1.16,<2" "pytest>=8" "pytest-asyncio>=1.0"

python-dev: python-deps
	MATURIN_PEP517_ARGS="--profile dev" $(PIP) install -q --disable-pip-version-check --no-build-isolation --force-reinstall --no-deps .

test-python: python-dev
	$(CARGO) build -p bifrost-mock
	cd tests/python && $(PYTHON) -m pytest -q -p no:cacheprovider

# C: header freshness, C11/C++ header checks, the C tests (shared and static
# libbifrost), then again under valgrind and AddressSanitizer.
test-c:
	bash tests/c/run.sh

demo: python-dev
	$(CARGO) run -p bifrost-core --release --example demo
	$(PYTHON) examples/python/demo.py
	bash examples/c/run.sh

bench:
	$(CARGO) bench -p bifrost-core --bench pool
	$(CARGO) bench -p bifrost-core --bench alloc
	$(CARGO) bench -p bifrost-core --bench http
	bash bench/c/run.sh

mock-server:
	$(CARGO) run -p bifrost-mock --release -- --port 0

lint:
	$(CARGO) clippy -p bifrost-core --all-targets -- -D warnings
	$(CARGO) fmt --check

fmt:
	$(CARGO) fmt
