"""fleetstorm's listeners on Locust's events: options, start-up checks, starting and ending the run.

Each process holds one Harness (harness/run.py) on `environment.fleetstorm`. Bad input is refused
in `init`, before any load, with one line and exit code 2. The embedded reference server is started
when no --host is given and stopped when Locust quits.
"""

from __future__ import annotations

import logging
import math
import signal
import sys
from typing import Any

import gevent
from locust.env import Environment
from locust.event import Events
from locust.runners import MasterRunner, WorkerRunner

from harness.config.errors import ExitCode, InputError
from harness.config.options import add_arguments, check_target, rate_line, resolve_scenario
from harness.config.schema import Scenario
from harness.load.distributed import (
    BUILT_MESSAGE,
    CLOCK_MESSAGE,
    FINAL_MESSAGE,
    PARTITION_MESSAGE,
    START_MESSAGE,
    Assignment,
    ClockProbe,
    Coordinator,
)
from harness.load.embedded_server import EmbeddedServer
from harness.load.memory import check_fits, check_numbering
from harness.measure.thresholds import Threshold, parse_thresholds
from harness.protocols import load_adapter
from harness.protocols.base import ProtocolAdapter
from harness.run import Harness, report_now
from harness.ui.exporter import registry_for, serve_alone, serve_on_web_ui
from harness.ui.fleet_tab import install as install_fleet_tab
from harness.ui.web_login import install as install_web_login

log = logging.getLogger("fleetstorm")

def _fail_input(error: InputError) -> None:
    print(f"fleetstorm: error: {error}", file=sys.stderr, flush=True)
    sys.exit(ExitCode.BAD_INPUT)


def _harness(environment: Environment) -> Harness | None:
    return getattr(environment, "fleetstorm", None)


def resolve(environment: Environment) -> tuple[Scenario, tuple[Threshold, ...], ProtocolAdapter]:
    """The scenario, thresholds and adapter the options ask for; InputError if any is wrong."""
    options = environment.parsed_options
    scenario = resolve_scenario(options)
    thresholds = parse_thresholds(scenario.thresholds, f"{scenario.path}: thresholds", scenario.world)
    adapter = load_adapter(scenario.protocol, options=scenario.protocol_options, world=scenario.world)
    check_target(environment.host, options.allow_remote_target)
    field = "--fleet-size" if options.fleet_size else f"{scenario.path}: fleet.machines"
    check_numbering(scenario.fleet.machines, field)
    if not isinstance(environment.runner, MasterRunner | WorkerRunner):  # workers check their own share
        check_fits(scenario.fleet.machines, field)
    return scenario, thresholds, adapter


def _on_parser(parser: Any) -> None:
    add_arguments(parser)


def _on_init(environment: Environment, **_: Any) -> None:
    if environment.parsed_options is None:  # a library use of Locust without our command line
        return
    try:
        harness = Harness(environment, *resolve(environment))
        if environment.web_ui and environment.parsed_options.web_login:
            install_web_login(environment)
    except InputError as error:
        _fail_input(error)
    environment.fleetstorm = harness  # type: ignore[attr-defined]
    if not isinstance(environment.runner, WorkerRunner):
        log.info("%s", rate_line(environment.parsed_options))
    environment.events.request.add_listener(harness.on_request)
    environment.events.report_to_master.add_listener(harness.on_report_to_master)
    environment.events.worker_report.add_listener(harness.on_worker_report)
    if isinstance(environment.runner, MasterRunner):
        coordinator = harness.coordinator = Coordinator(environment.runner)
        environment.events.worker_connect.add_listener(
            lambda client_id, **_: harness.coordinator and harness.coordinator.on_worker_connect(client_id))
        environment.runner.register_message(
            CLOCK_MESSAGE, lambda msg, **_: coordinator.answer_probe(msg.node_id, msg.data))
        environment.runner.register_message(BUILT_MESSAGE, lambda msg, **_: coordinator.on_built(msg.node_id, msg.data))
        environment.events.heartbeat_sent.add_listener(coordinator.on_heartbeat)
    if isinstance(environment.runner, WorkerRunner):
        probe = harness.clock_probe = ClockProbe(environment.runner)
        environment.runner.register_message(CLOCK_MESSAGE, lambda msg, **_: probe.on_answer(msg.data))
        environment.runner.register_message(
            PARTITION_MESSAGE, lambda msg, **_: _on_partition(environment, harness, probe, msg.data))
        environment.runner.register_message(
            START_MESSAGE,
            lambda msg, **_: setattr(harness, "assignment", probe.to_local(harness.assignment.starting(msg.data))))
        environment.runner.register_message(FINAL_MESSAGE, lambda **_: _send_final_report(environment.runner))
        probe.send()
    if environment.web_ui:
        install_fleet_tab(environment, harness.live)
    _serve_metrics(environment, harness)
    if environment.parsed_options.headless:
        # Locust installs its SIGTERM handler only after a headless shape run has ended; until then
        # a SIGTERM would kill the process without a summary. A SIGINT would raise KeyboardInterrupt
        # in whichever agent greenlet happens to run. Both end the run the graceful way instead.
        for signum in (signal.SIGTERM, signal.SIGINT):
            gevent.signal_handler(signum, harness.end, f"the signal {signum.name}")
    if not environment.host and not isinstance(environment.runner, WorkerRunner):
        harness.server = EmbeddedServer.start()
        environment.host = harness.server.url
        log.info("embedded reference server at %s", harness.server.url)


def _serve_metrics(environment: Environment, harness: Harness) -> None:
    """The run's Prometheus metrics: on the web UI, or on --metrics-port; a worker's are in its master's."""
    if isinstance(environment.runner, WorkerRunner):
        return
    options = environment.parsed_options
    if environment.web_ui:
        serve_on_web_ui(environment.web_ui, registry_for(harness.exported))
    elif options.metrics_port:
        try:
            harness.metrics_server = serve_alone(options.metrics_host, options.metrics_port,
                                                 registry_for(harness.exported))
        except InputError as error:
            _fail_input(error)
        log.info("Prometheus metrics at http://%s:%d/metrics", options.metrics_host, options.metrics_port)


def _on_test_start(environment: Environment, **_: Any) -> None:
    harness = _harness(environment)
    if harness is None:
        return
    try:  # the web UI's start form may have changed the options since start-up
        harness.scenario, harness.thresholds, harness.adapter = resolve(environment)
    except InputError as error:
        log.error("fleetstorm: error: %s", error)
        gevent.spawn(environment.runner.stop)
        return
    try:
        harness.start()
    except Exception as error:  # Locust would log it and go on with a run that sends nothing and never ends
        harness.internal_error(error)


def _on_partition(environment: Environment, harness: Harness, probe: ClockProbe, data: dict[str, Any]) -> None:
    """On a worker given its partition: take the master's options, build the partition (in a greenlet of its
    own: the messages that follow go on meanwhile), then tell the master, which starts the clock once all have."""
    vars(environment.parsed_options).update(data.get("options") or {})
    assignment = Assignment.of_partition(data)
    if not math.isnan(assignment.wall_start):  # a run under way, on the master's clock
        assignment = probe.to_local(assignment)
    built = {"generation": data.get("generation")}
    harness.prepare(assignment, lambda: environment.runner.send_message(BUILT_MESSAGE, built))


def _send_final_report(runner: WorkerRunner) -> None:
    """On a worker the master asked: stop (counting what is left unfinished) and report everything now."""
    runner.stop()
    report_now(runner)


def _on_test_stopping(environment: Environment, **_: Any) -> None:
    if (harness := _harness(environment)) is None:
        return
    running = harness.running
    harness.mark_stopped()  # the run's time ends here, not after the workers' last reports
    if harness.coordinator is not None and running:
        harness.coordinator.collect_final_reports()
    # Before Locust kills the agents: what they hold then is unfinished, at its age now.
    harness.record_unfinished()


def _on_test_stop(environment: Environment, **_: Any) -> None:
    if (harness := _harness(environment)) is not None:
        harness.stop()


def _on_quitting(environment: Environment, **_: Any) -> None:
    harness = _harness(environment)
    if harness is None:
        return
    try:
        if not isinstance(environment.runner, WorkerRunner):
            environment.process_exit_code = int(harness.finish())
        elif harness.master_lost:
            environment.process_exit_code = int(harness.finish_partition())
    except Exception:
        log.exception("fleetstorm could not finish its summary")
        environment.process_exit_code = int(ExitCode.HARNESS_ERROR)
    finally:
        if harness.server is not None:
            gevent.spawn(harness.server.stop).join()
        if harness.metrics_server is not None:
            harness.metrics_server.stop(timeout=1)


def install(events: Events) -> None:
    """Register fleetstorm's options and its listeners on Locust's events (locustfile.py calls it once)."""
    events.init_command_line_parser.add_listener(_on_parser)
    events.init.add_listener(_on_init)
    events.test_start.add_listener(_on_test_start)
    events.test_stopping.add_listener(_on_test_stopping)
    events.test_stop.add_listener(_on_test_stop)
    events.quitting.add_listener(_on_quitting)
