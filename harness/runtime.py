"""Wiring into Locust through its events: options, start-up checks, the run, and the verdict.

Each process holds one Harness on `environment.fleetstorm`. Bad input is refused in `init`,
before any load, with one line and exit code 2. The embedded reference server is started when
no --host is given and stopped when Locust quits.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import gevent
from gevent.queue import Empty, Queue
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from harness.agent import Agent
from harness.clock import ScenarioClock
from harness.embedded import EmbeddedServer
from harness.errors import ExitCode, InputError
from harness.fleet import Fleet
from harness.metrics import Metrics
from harness.options import add_arguments, check_target, resolve_scenario
from harness.protocols import load_adapter
from harness.protocols.base import ProtocolAdapter
from harness.scenario import Scenario
from harness.schedule import Dispatcher
from harness.summary import RunFacts, build_summary, exit_code, format_summary, verdicts, write_json_atomically
from harness.thresholds import Threshold, parse_thresholds

log = logging.getLogger("fleetstorm")
EXPECTED_LATENCY_S = 0.010  # service time assumed when sizing the agent pool
POOL_HEADROOM = 4
MIN_POOL = 16


def pool_size(scenario: Scenario) -> int:
    """Agents needed: the scenario's, or Little's law (rate x latency) with headroom."""
    if scenario.agents.users:
        return scenario.agents.users
    rate = scenario.fleet.target_rps(scenario.timeline.time_scale)
    return max(MIN_POOL, math.ceil(rate * EXPECTED_LATENCY_S * POOL_HEADROOM))


class Harness:
    """One process's share of a fleetstorm run."""

    def __init__(self, environment: Environment, scenario: Scenario, thresholds: tuple[Threshold, ...],
                 adapter: ProtocolAdapter) -> None:
        self.environment = environment
        self.scenario = scenario
        self.thresholds = thresholds
        self.adapter = adapter
        self.server: EmbeddedServer | None = None
        self.metrics = Metrics()
        self.late = 0
        self.queue: Queue = Queue()
        self.dispatcher: Dispatcher | None = None
        self.agent: Agent | None = None
        self.clock: ScenarioClock | None = None
        self.started_at = self.stopped_at = 0.0

    @property
    def pool_size(self) -> int:
        return pool_size(self.scenario)

    def start(self) -> None:
        """Start the scenario clock (and, where users run, the fleet and its dispatcher)."""
        timeline = self.scenario.timeline
        self.metrics = Metrics()
        self.late = 0
        self.clock = ScenarioClock.starting_now(timeline.start, timeline.time_scale)
        self.started_at, self.stopped_at = time.time(), 0.0
        if self.server is not None:
            self.server.configure(self.scenario.server, self.clock)
        if isinstance(self.environment.runner, MasterRunner):
            return
        fleet = Fleet(self.scenario.fleet)
        rate = self.scenario.fleet.target_rps(timeline.time_scale)
        self.queue = Queue(maxsize=max(64, math.ceil(rate)))  # about one second of check-ins
        self.dispatcher = Dispatcher(fleet.next_check, self.clock, self.queue, timeline.scenario_seconds)
        self.agent = Agent(fleet, self.clock, self.adapter, self.metrics, self.dispatcher.schedule,
                           self.scenario.agents.chunk_bytes)
        self.dispatcher.start()

    def stop(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.stop()
            self.late = self.dispatcher.counters.late
        if not self.stopped_at:
            self.stopped_at = time.time()

    def next_checkin(self, timeout: float) -> tuple[int, float] | None:
        """The next due check-in `(index, due_at)`, or None if none came within `timeout`."""
        try:
            return self.queue.get(timeout=timeout)
        except Empty:
            return None

    def finish(self) -> ExitCode:
        """Judge the thresholds, print the summary, write summary.json; the process exit code."""
        self.stop()
        end = self.stopped_at or time.time()
        facts = RunFacts(self.scenario, self.metrics, self.environment.stats,
                         end - self.started_at if self.started_at else 0.0, self.late)
        results = verdicts(facts, self.thresholds)
        code = exit_code(results)
        summary = build_summary(facts, results, code)
        results_dir = Path(self.environment.parsed_options.results_dir)
        write_json_atomically(results_dir / "summary.json", summary)
        print(format_summary(summary), flush=True)
        return code


def _fail_input(error: InputError) -> None:
    print(f"fleetstorm: error: {error}", file=sys.stderr, flush=True)
    sys.exit(ExitCode.BAD_INPUT)


@events.init_command_line_parser.add_listener
def _on_parser(parser: Any) -> None:
    add_arguments(parser)


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is None:  # a library use of Locust without our command line
        return
    try:
        scenario = resolve_scenario(options)
        thresholds = parse_thresholds(scenario.thresholds, f"{scenario.path}: thresholds")
        adapter = load_adapter(scenario.protocol, options=scenario.protocol_options)
        check_target(environment.host, options.allow_remote_target)
    except InputError as error:
        _fail_input(error)
    harness = Harness(environment, scenario, thresholds, adapter)
    environment.fleetstorm = harness  # type: ignore[attr-defined]
    if not environment.host and not isinstance(environment.runner, WorkerRunner):
        harness.server = EmbeddedServer.start()
        environment.host = harness.server.url
        log.info("embedded reference server at %s", harness.server.url)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    harness: Harness | None = getattr(environment, "fleetstorm", None)
    if harness is not None:
        harness.start()


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    harness: Harness | None = getattr(environment, "fleetstorm", None)
    if harness is not None:
        harness.stop()


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    harness: Harness | None = getattr(environment, "fleetstorm", None)
    if harness is None:
        return
    try:
        if not isinstance(environment.runner, WorkerRunner):
            environment.process_exit_code = int(harness.finish())
    except Exception:
        log.exception("fleetstorm could not finish its summary")
        environment.process_exit_code = int(ExitCode.HARNESS_ERROR)
    finally:
        if harness.server is not None:
            gevent.spawn(harness.server.stop).join()
