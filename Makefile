# One task runner for humans and CI. `make demo` and `make test` are the README's quick start.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint typecheck unit bench clean

# the demo needs only the runtime; tests add the dev tools (pytest, mypy, Playwright...)
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed

$(RUNTIME): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	# byte-compile our own sources once: start-up matters for short commands (re-runs)
	$(BIN)/python -m compileall -q src
	touch $@

$(DEV): $(RUNTIME)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(DEV)

demo: $(RUNTIME)
	$(BIN)/mediamill demo

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest

test: lint typecheck unit

bench: install
	$(BIN)/python bench/probe.py
	$(BIN)/python bench/rescan.py
	$(BIN)/python bench/audio.py
	$(BIN)/python bench/strm.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/scale.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
