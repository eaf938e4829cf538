# convsim: every command installs what it needs first (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install broker browser cluster cluster-down up down demo test lint format bench

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	@rm -f $(VENV)/.installed-* && touch $@

broker:
	@bash scripts/broker.sh ensure

# Three RabbitMQ nodes on loopback (AMQP 5681-5683, management 15681-15683): see scripts/cluster.sh
cluster:
	@bash scripts/cluster.sh up

cluster-down:
	@bash scripts/cluster.sh down

# Debian's chromium, for the web page's tests (they skip, saying why, if it can't be installed)
browser:
	@bash scripts/browser.sh

up: install broker
	@bash scripts/stack.sh up

down:
	@bash scripts/stack.sh down

demo: install broker
	@bash scripts/stack.sh up --quiet
	@bash scripts/stack.sh demo

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# Two passes: most tests in two processes at once (pytest-xdist; a file's tests stay in one
# process), then, in one process, those that change a setting of the whole node, the cluster
# tests (one local cluster), those that restart the broker, and the audit of every log of both
# passes. The second runs even if the first failed (not if it was interrupted or could not
# collect: exit 2); the cluster tests fail rather than skip when three nodes cannot start.
TEST_RUN := .run/pytest
ALONE := cluster or serial or broker_restart or audit_logs

test: install broker browser lint
	@rm -rf $(TEST_RUN) && mkdir -p $(TEST_RUN); status=0; \
	$(PY) -m pytest -n 2 --dist loadfile --durations=15 --basetemp=$(TEST_RUN)/parallel \
		-m "not ($(ALONE))" || status=$$?; \
	[ $$status -ne 2 ] || exit 2; \
	CONVSIM_TEST_LOG_ROOT=$(CURDIR)/$(TEST_RUN) CONVSIM_TEST_REQUIRE_CLUSTER=1 \
		$(PY) -m pytest --durations=10 --basetemp=$(TEST_RUN)/serial \
		-m "$(ALONE)" || status=$$?; \
	exit $$status

# make bench                       W2: 300 simulations, 5 turns, 1 s per call
# make bench ARGS="--n 1000"       W1; add --orchestrators 2, --baseline, --json out.json
# modes: --client typical, --bot llm, --judge, --limits [--cap 50]; --capacity; --help for all
bench: install broker
	$(PY) -m bench $(or $(ARGS),--n 300 --turns 5 --latency 1)
