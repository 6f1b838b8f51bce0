# Every target bootstraps .venv on its own, so a fresh clone needs nothing else.
# The demo needs only the daemon and its emulators (.venv/.runtime); the tests,
# linters and benchmarks add the development tools on top (.venv/.installed).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
RUNTIME := $(VENV)/.runtime
STAMP   := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean

$(RUNTIME): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(RUNTIME)

$(STAMP): $(RUNTIME)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Runs until Ctrl-C; e.g. make demo DEMO_ARGS="--listen 127.0.0.1:8123"
demo: $(RUNTIME)
	$(BIN)/syncd demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/ruff check syncd providers tests bench
	$(BIN)/ruff format --check syncd providers tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check syncd providers tests bench
	$(BIN)/ruff format --check syncd providers tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
