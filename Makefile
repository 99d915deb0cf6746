# fleetstorm: `make run` plays the smoke scenario on the embedded reference server; `make test` tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium
FAKETIME := /usr/bin/faketime
WRK := /usr/bin/wrk
STRESS_NG := /usr/bin/stress-ng
PROMETHEUS := /usr/bin/prometheus
IPTABLES := /usr/sbin/iptables
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SCENARIO ?= scenarios/smoke.toml
LOCUST_ARGS ?=
HEADLINE_ARGS ?=
WORLD_ARGS ?=

WORKERS ?= 2
MASTER_PORT ?= 5557

.PHONY: install run smoke test test-busy lint distributed bench bench-headline bench-fleet bench-distributed \
	bench-server bench-latency bench-world bench-first-second soak ramp surge compare-seed calibrate staged-rollout

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

# Microsoft's SP2 rollout, Aug 9 -> Oct 18 2004, in about 10 minutes: the expected curve, then the run.
ramp: compare-seed
	$(BIN)/locust -f locustfile.py --headless --only-summary --scenario scenarios/throttled_ramp.toml \
		--html results/locust.html --csv results/locust $(LOCUST_ARGS)

# KB884020's week, Sep 19 -> 24 2004, in about 5 minutes: a boot storm and a "detect now" push.
surge: install
	$(BIN)/locust -f locustfile.py --headless --only-summary --scenario scenarios/hotfix_surge.toml \
		--html results/locust.html --csv results/locust $(LOCUST_ARGS)

# A browser release rolled out 1 % -> 10 % -> (pause) -> 50 % -> 100 % over a week, in 5 minutes, in Omaha.
staged-rollout: install
	$(BIN)/locust -f locustfile.py --headless --only-summary --scenario scenarios/staged_rollout.toml \
		--html results/locust.html --csv results/locust $(LOCUST_ARGS)

# The published figures against the ramp's fast simulation over 20 fleet seeds (no HTTP): fitted or held out.
compare-seed: install
	$(BIN)/python -m harness.model.simulation scenarios/throttled_ramp.toml

# Fit the SP2 throttle to the 2004 world's fitted figures, the mean over 20 fleet seeds, and write it (~2 min).
calibrate: install
	$(BIN)/python -m harness.model.calibrate scenarios/throttled_ramp.toml

# A master and $(WORKERS) workers on loopback; the workers are stopped with the master.
distributed: install
	@trap 'kill $$(jobs -p) 2>/dev/null' EXIT; \
	for i in $$(seq $(WORKERS)); do \
		$(BIN)/locust -f locustfile.py --worker --master-port $(MASTER_PORT) > /dev/null 2>&1 & \
	done; \
	$(BIN)/locust -f locustfile.py --master --headless --only-summary --expect-workers $(WORKERS) \
		--master-bind-host 127.0.0.1 --master-bind-port $(MASTER_PORT) --scenario $(SCENARIO) $(LOCUST_ARGS)

test: install $(CHROMIUM) $(FAKETIME) $(PROMETHEUS) $(IPTABLES)
	$(BIN)/python -m pytest

# The suite beside a CPU hog on one core, as on a user's busy laptop: it must pass there too.
test-busy: install $(CHROMIUM) $(FAKETIME) $(PROMETHEUS) $(IPTABLES) $(STRESS_NG)
	@stress-ng --cpu 1 --timeout 30m --quiet & hog=$$!; \
	trap 'kill $$hog 2>/dev/null' EXIT; \
	$(BIN)/python -m pytest

# Debian packages named as the programs they install: the browser tests drive Chromium (Playwright's
# own browser download is not used), a distributed test shifts a worker's wall clock with faketime,
# the server benchmark loads with wrk, make test-busy keeps a core busy with stress-ng, a test scrapes
# a run with a real Prometheus, and the network namespace tests cut, reset and blackhole connections
# with iptables.
$(CHROMIUM) $(FAKETIME) $(WRK) $(STRESS_NG) $(PROMETHEUS) $(IPTABLES):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(notdir $@)

lint: install
	$(BIN)/ruff check harness locustfile.py tests benchmarks examples

# The headline first (210 M machines in real time from one core, against bare Locust), then the others.
# HEADLINE_ARGS="--fleet-size 10M --rounds 1" makes the headline quicker.
bench: bench-headline bench-world bench-first-second bench-fleet bench-distributed bench-server bench-latency

bench-headline: install
	$(BIN)/python benchmarks/bench_headline.py $(HEADLINE_ARGS)

# 600 M machines (every Windows PC of 2004) in real time: --processes 2 and the reference server on this machine.
bench-world: install
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/bench_world.py $(WORLD_ARGS)

# make run's first five seconds and a 6 s run against their target rate.
bench-first-second: install
	$(BIN)/python benchmarks/bench_first_second.py

# Bytes per machine at 1M, 10M and 100M machines, the dispatcher's cost, the arrival rate's accuracy.
bench-fleet: install
	$(BIN)/python benchmarks/bench_fleet.py

bench-distributed: install
	$(BIN)/python benchmarks/bench_distributed.py

# Needs Debian's wrk: installed here when missing; uvicorn and granian (.[bench]) are installed for it alone.
bench-server: install $(WRK)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/bench_server.py

# Half an hour at ~80 % of the ceiling here: memory every minute, its slope, the rate's drift, lateness.
soak: install
	$(BIN)/python benchmarks/soak.py

# The harness's own added latency: due-time latency of check-ins against a server that answers at once.
bench-latency: install
	$(BIN)/python benchmarks/bench_latency.py
