# fed-assets: `make demo` runs the embedded demo in Dagster's UI; `make test` runs the tests
# against real servers. Both create .venv on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TOOLS_STAMP := .venv-tools/.installed-stamp
PYTEST_ARGS ?=
PGBIN ?= /usr/lib/postgresql/15/bin

export FED_ASSETS_DATA ?= $(CURDIR)/data/demo
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install tools seed demo test lint format clean

install: $(STAMP)

# torch 2.13.0 first: this machine has its CPU build on disk; a plain `torch` pulls a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,train]"
	touch $(STAMP)

# The Snowflake and BigQuery emulators pin other sqlglot versions: each gets its own virtualenv.
tools: $(TOOLS_STAMP)

$(TOOLS_STAMP): tests/servers/snowflake.py tests/servers/bigquery.py | $(STAMP)
	$(BIN)/python -m tests.servers.snowflake --install
	$(BIN)/python -m tests.servers.bigquery --install
	touch $(TOOLS_STAMP)

seed: install
	$(BIN)/fed-assets demo seed --if-missing

$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	printf 'telemetry:\n  enabled: false\nnux:\n  enabled: false\n' > $@

demo: seed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

test: install tools
	@test -x $(PGBIN)/initdb || { echo "PostgreSQL 15 server binaries missing in $(PGBIN): apt-get install -y postgresql-15"; exit 1; }
	$(BIN)/python -m tests.servers run -- $(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .venv-tools data .dagster_home
