# fleetstorm: `make run` plays the smoke scenario on the embedded reference server; `make test` tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
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
	$(BIN)/locust -f locustfile.py --headless --only-summary --scenario $(SCENARIO) \
		--html results/locust.html --csv results/locust $(LOCUST_ARGS)

smoke: run

test: install $(CHROMIUM)
	$(BIN)/python -m pytest

# The browser tests drive Debian's Chromium (Playwright's own browser download is not used).
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

lint: install
	$(BIN)/ruff check harness locustfile.py tests
