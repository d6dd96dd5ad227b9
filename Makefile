# Two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SCENARIO ?= deregistration

.PHONY: help install install-dev demo compose-env test test-fast test-slow test-deletion-fuzz lint format lock clean

help:
	@echo "make demo       create .venv, install, run the demo plan (output in demo-output/)"
	@echo "make compose-env  write .env, TLS and SSH key files for docker-compose.yaml (kept if there)"
	@echo "make test       install, check the test servers, lint, run the whole test suite"
	@echo "make test-fast  the suite without the slow end-to-end tests"
	@echo "make test-slow  only the slow end-to-end tests"
	@echo "make test-deletion-fuzz  hunt for deletion bugs with new random examples (10 min)"
	@echo "make lint       ruff and mypy (strict on include/)"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "Python 3.11 is required, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt pyproject.toml | $(BIN)/python
	scripts/system-deps.sh demo
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

demo: install
	scripts/demo.sh $(SCENARIO)

# The secrets docker-compose.yaml needs (.env, deploy/tls, deploy/sftp keys), never committed.
compose-env: install
	$(BIN)/python scripts/compose_env.py

# One pytest worker per core (pytest-xdist), each test file on one worker: the end-to-end
# files mostly wait for Airflow, so they run beside the rest instead of after it.
PARALLEL ?= -n auto --dist loadfile

test: install-dev
	scripts/system-deps.sh test
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PARALLEL)

test-fast: install-dev
	$(BIN)/python -m pytest $(PARALLEL) -m "not slow"

test-slow: install-dev
	scripts/system-deps.sh test
	$(BIN)/python -m pytest $(PARALLEL) -m slow

RETIREMENT_HUNT_MINUTES ?= 10
test-deletion-fuzz: install-dev
	RETIREMENT_HUNT_MINUTES=$(RETIREMENT_HUNT_MINUTES) $(BIN)/python -m pytest -p no:cacheprovider \
		tests/deletion_model/test_hunt.py -x

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Re-resolve the exact pins from requirements.in (top-level requirements).
lock: | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.in
	$(BIN)/pip freeze --exclude-editable > requirements.lock.tmp
	@echo "Review requirements.lock.tmp and split it into requirements.txt / requirements-dev.txt"

clean:
	rm -rf demo-output .pytest_cache .ruff_cache
