# Quick start: `make run` replays the bundled sample; `make test` runs the test suite.
# Both create .venv with the project installed on first use (needs Python 3.11+ and network access to PyPI).
# EXTRAS picks the optional extras installed with it; .ci/run sets EXTRAS=dev,local-llm,crew.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && echo $$p && break; done)
EXTRAS ?= dev
VENV := .venv
BIN := $(VENV)/bin
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
# llama-cpp-python (extra local-llm) compiles llama.cpp; a -march=native build uses every instruction set the CPU
# advertises, and on a VM that advertises AMX without allowing it the first generation segfaults: build portably.
CMAKE_ARGS ?= -DGGML_NATIVE=OFF
export CMAKE_ARGS

.PHONY: venv run test lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python 3.11+ not found (set PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/tradegraph run $(ARGS)

test: $(STAMP)
	$(BIN)/pytest --cov --cov-report=term:skip-covered

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_replay.py
	$(BIN)/python benchmarks/bench_eval.py
	$(BIN)/python benchmarks/bench_live_latency.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage tradegraph.sqlite* eval-results
