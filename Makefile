# fed-assets: `make demo` runs the embedded demo in Dagster's UI; `make test` runs the tests
# against real servers. Both create .venv on first use; `make test` also installs the system
# packages the tests need (PostgreSQL 15's server, Chromium) when they are missing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TOOLS_STAMP := .venv-tools/.installed-stamp
PYTEST_ARGS ?=
# Two pytest workers (pytest-xdist), one test file each at a time: much of the suite waits on
# servers and subprocesses, so two workers finish sooner even on two cores. PYTEST_WORKERS=0 runs
# the suite in one process.
PYTEST_WORKERS ?= 2
PGBIN ?= /usr/lib/postgresql/15/bin
CHROMIUM ?= chromium

# Debian packages the tests need and do not find: PostgreSQL 15's server binaries (not on PATH)
# and Chromium for the UI test. `make -n system` shows what would be installed.
MISSING_SYSTEM := $(strip \
  $(if $(wildcard $(PGBIN)/initdb),,postgresql-15) \
  $(if $(shell command -v $(CHROMIUM) 2>/dev/null),,chromium))
# apt-get as root (CI machines have no sudo), else through sudo where there is one.
APT := $(if $(filter 0,$(shell id -u)),,$(if $(shell command -v sudo 2>/dev/null),sudo ,))apt-get

export FED_ASSETS_DATA ?= $(CURDIR)/data/demo
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install tools system seed demo test lint format clean

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

system:
ifneq ($(MISSING_SYSTEM),)
	$(APT) update -qq
	DEBIAN_FRONTEND=noninteractive $(APT) install -y -qq --no-install-recommends $(MISSING_SYSTEM)
endif

test: system install tools
	$(BIN)/python -m tests.servers run -- $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .venv-tools data .dagster_home
