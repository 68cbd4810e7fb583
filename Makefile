# Two commands on a fresh machine: `make demo` and `make test`. Both set up .venv on their own.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.loom-setup
PYTEST_ARGS ?=

.PHONY: setup test demo bench docs lint clean

setup: $(STAMP)

# Re-run only when the project's dependencies change. torch is installed first and pinned, so
# that the `torch>=2.4` range in pyproject.toml is already satisfied and pulls no CUDA build.
# The anchors (torchdata 0.9 for loom.data) go in with --no-deps: tests use them as oracles only.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[dev]"
	$(PIP) install -q --no-deps "torchdata==0.9.0" || echo "torchdata 0.9 not installed: its oracle tests will be skipped"
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/loom demo

bench: setup
	$(VENV)/bin/loom bench

# The documentation site (MkDocs + mkdocstrings) into site/; --strict fails on any warning.
docs: setup
	$(PY) -m mkdocs build --strict

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks examples docs
	$(VENV)/bin/ruff format --check src tests benchmarks examples docs

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
