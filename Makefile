# bifrost: `make test` runs every suite, `make demo` the demo, `make bench` the benchmarks.
SHELL := /bin/bash
CARGO ?= cargo
# One target dir and one target triple for every tool (cargo, maturin, napi):
# the napi CLI always passes --target, so everything else uses it too and all
# builds share one set of compiled dependencies.
export CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_BUILD_TARGET ?= $(shell rustc -vV | sed -n 's/^host: //p')

PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: test test-rust test-python test-c test-node node-dev python-deps python-dev demo bench lint fmt mock-server

test: test-rust test-python test-c test-node

# The Rust suite checks the Prometheus text with the official judges
# (prometheus_client here; promtool from Debian's `prometheus`, which .ci/run
# installs): without BIFROST_REQUIRE_JUDGES=1 a missing judge is a visible skip.
test-rust:
	$(PIP) install -q --disable-pip-version-check "prometheus_client>=0.20"
	$(CARGO) test -p bifrost-core --lib --tests --examples
	$(CARGO) test -p bifrost-core --doc
	$(CARGO) test -p bifrost-mock
	$(CARGO) test -p bifrost-loom

# Python: tools from PyPI, then the package built from source (dev profile, so
# it shares compiled dependencies with the Rust tests) and its pytest suite.
# openai, anthropic and botocore are the fidelity tests' judges (test only).
python-deps:
	$(PIP) install -q --disable-pip-version-check "maturin>=1.16,<2" "pytest>=8" "pytest-asyncio>=1.0" "hypothesis>=6" "prometheus_client>=0.20" "mypy>=1.10" \
		"openai>=1.60" "anthropic>=0.40" "botocore>=1.35"

python-dev: python-deps
	MATURIN_PEP517_ARGS="--profile dev" $(PIP) install -q --disable-pip-version-check --no-build-isolation --force-reinstall --no-deps .

test-python: python-dev
	$(CARGO) build -p bifrost-mock
	cd tests/python && $(PYTHON) -m pytest -q -p no:cacheprovider

# C: header freshness, C11/C++ header checks, the C tests (shared and static
# libbifrost), then again under valgrind and AddressSanitizer.
test-c:
	bash tests/c/run.sh

# Node: `npm install` builds the addon from source (debug inside this
# repository), then node:test and a tsc type check of a typed example.
node-dev:
	npm install --no-audit --no-fund

test-node: node-dev
	npm test

demo: python-dev node-dev
	$(CARGO) run -p bifrost-core --release --example demo
	$(PYTHON) examples/python/demo.py
	node examples/node/quickstart.mjs
	bash examples/c/run.sh

# Every benchmark side by side in one run (Rust, Python, Node, C, Bifrost's Go
# core, wrk), then bench/report.py writes bench/results/<date>.json,
# docs/benchmarks.md and the plots in docs/img/. About 18 minutes warm
# (plus ~3 when the release build must recompile the core).
bench:
	bash bench/run.sh

mock-server:
	$(CARGO) run -p bifrost-mock --release -- --port 0

lint:
	$(CARGO) clippy -p bifrost-core -p bifrost-mock -p bifrost-python -p bifrost-c -p bifrost-node -- -D warnings
	$(CARGO) clippy -p bifrost-core --all-targets -- -D warnings
	$(CARGO) clippy -p bifrost-loom --all-targets -- -D warnings
	$(CARGO) fmt --check

fmt:
	$(CARGO) fmt
