# fleetstorm: `make run` plays the smoke scenario on the embedded reference server; `make test` tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SCENARIO ?= scenarios/smoke.toml
LOCUST_ARGS ?=

.PHONY: install run smoke test lint

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: install
	$(BIN)/locust -f locustfile.py --headless --only-summary --scenario $(SCENARIO) $(LOCUST_ARGS)

smoke: run

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check harness locustfile.py tests
