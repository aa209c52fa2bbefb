# The commands the README names. Every target creates .venv and installs first if needed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/dagster_home
export ALGO_PLATFORM_STORAGE ?= $(CURDIR)/storage
# The run queue's size (dagster_home/dagster.yaml): one run per core unless set.
export ALGO_PLATFORM_MAX_RUNS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: setup demo dev admin test test-fast lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

# torch==2.13.0 first: it is the CPU wheel on disk here; an unpinned torch would pull GBs of CUDA.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/algo-platform demo --project shortvideo

dev: setup
	$(BIN)/algo-platform dev -w workspace.yaml --host 127.0.0.1 --port 3000

# A platform admin for signing in to the UI: make admin NAME=you (asks for a password).
admin: setup
	$(BIN)/algo-platform users add $(NAME) --platform-admin

# Test files run in parallel, one process per core (a file's tests stay together: they share its
# servers); TEST_WORKERS=0 runs them in this process, one after another.
TEST_WORKERS ?= auto
test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# Everything but the system tests (servers, daemons, browser, Spark, whole pipelines): a few minutes.
test-fast: setup
	$(BIN)/python -m pytest -m "not system" -n $(TEST_WORKERS) --dist loadfile

bench: setup
	$(BIN)/python -m benchmarks.suite

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) storage
	find dagster_home -mindepth 1 ! -name dagster.yaml -exec rm -rf {} +
