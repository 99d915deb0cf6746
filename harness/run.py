"""The run: one Harness per Locust process, holding the fleet, the load on it, its measurements and verdict.

Locust's events drive it (harness/hooks.py), as Locust's own Environment is driven by its runners.

Measurements flow one way: every process records into its `recorder`; workers ship it with each
Locust worker report; the master (or the local runner) adds everything into `totals` once a second,
feeds the thresholds' judge and the time series, and at the end writes the verdict. The
measurements up to each `at` date travel the same way, as snapshots (harness/measure/snapshots.py).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import gevent
import numpy as np
from gevent.monkey import get_original
from gevent.pywsgi import WSGIServer
from gevent.queue import Empty, Queue
from gevent.threadpool import ThreadPool
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from harness.config.errors import ExitCode, InputError
from harness.config.options import resolve_scenario
from harness.config.schema import Scenario
from harness.config.world import network_update
from harness.load.agent import Agent
from harness.load.deployments import run_deployments
from harness.load.distributed import (
    MASTER_SILENT_S,
    Assignment,
    ClockProbe,
    Coordinator,
    await_master_silence,
)
from harness.load.embedded_server import EmbeddedServer
from harness.load.memory import check_fits
from harness.load.pool import AgentPool, BusyMeter
from harness.load.schedule import Dispatcher, TimingWheel, bucket_seconds, fleet_wheel
from harness.load.surges import SiteVisit, SurgePlan, plan_surges, schedule_surges
from harness.measure.judge import Judge
from harness.measure.metrics import Metrics, describe
from harness.measure.server_scrape import scrape
from harness.measure.snapshots import DateSnapshots
from harness.measure.span import Span, update_counters
from harness.measure.thresholds import INSTALL_STATS, Threshold, Verdict
from harness.measure.timeseries import TimeSeries
from harness.model.clock import ScenarioClock
from harness.model.fleet import WHOLE_FLEET, Fleet, Partition
from harness.model.network_install import Deployments, PackageFetch, install_before_start, package_of
from harness.model.simulation import initial_installs
from harness.output.junit import write_junit
from harness.output.report import write_report
from harness.output.summary import build_summary, exit_code, format_summary, write_json_atomically
from harness.protocols.base import ProtocolAdapter
from harness.ui.exporter import Exported
from harness.ui.progress import LiveState, live_state, progress_line

log = logging.getLogger("fleetstorm")
TICK_S = 1.0
DISPATCH_TICK_S = 0.005
# Wall seconds of the schedule filed before the clock starts, at least; the rest is filed while the run goes.
READY_WALL_S = 10.0
READY_LATE_S = 0.1  # a process ready to send this long after its clock started says so
BACKGROUND_SHARE = 0.25  # of a core, at most, for building in the background (the rest of the schedule is
# filed well before the clock needs it: minutes ahead in real time)
_thread_sleep = get_original("time", "sleep")  # a real thread's own sleep, not the event loop's
T = TypeVar("T")
SCRAPE_EVERY_TICKS = 5  # live server.* thresholds read the server's /metrics this often
PROGRESS_INTERVAL_S = 5.0
REPORT_KEY = "fleetstorm"
CPU_KEY = "fleetstorm_cpu"  # a worker's share of a core since its last report, for the agent pool
CLOCK_KEY = "fleetstorm_clock"  # a worker's clock against the master's, for the summary
FINAL_KEY = "fleetstorm_final"  # set in a worker's report once it has stopped: nothing more will come
DATES_KEY = "fleetstorm_at"  # a worker's snapshots at the `at` dates it crossed since its last report


@dataclass(frozen=True)
class Built:
    """A process's partition of the fleet, ready to run: for which scenario, its schedule, the updates it
    started with (machines by update), and the checks its scenario's events bring."""

    scenario: Scenario
    fleet: Fleet
    wheel: TimingWheel
    initial: dict[str, int]
    surges: SurgePlan


class Pace:
    """Keeps work in a thread to a share of a core: each call rests the thread in proportion to the time
    worked since the last one."""

    def __init__(self, share: float) -> None:
        self.rest = 1.0 / share - 1.0
        self._since = time.monotonic()

    def __call__(self) -> None:
        _thread_sleep((time.monotonic() - self._since) * self.rest)
        self._since = time.monotonic()

    def after(self, work: Callable[[], T]) -> T:
        """`work()`, then the rest it earns."""
        self._since = time.monotonic()
        try:
            return work()
        finally:
            self()


def _off_the_loop(work: Callable[[], T]) -> T:
    """`work()` in a thread, this greenlet waiting: the others (a worker's heartbeats) go on meanwhile, as
    numpy's loops leave the interpreter free."""
    return gevent.get_hub().threadpool.apply(work)


class Harness:
    """One process's share of a fleetstorm run."""

    def __init__(self, environment: Environment, scenario: Scenario, thresholds: tuple[Threshold, ...],
                 adapter: ProtocolAdapter) -> None:
        self.environment = environment
        self.scenario = scenario
        self.thresholds = thresholds
        self.adapter = adapter
        self.server: EmbeddedServer | None = None
        self.metrics_server: WSGIServer | None = None  # headless --metrics-port
        self.recorder = Metrics()  # this process's measurements not yet added into `totals`
        self.incoming = Metrics()  # on the master: what workers reported, not yet added
        self.totals = Metrics()  # on a worker: its own measurements, shipped so far
        self.snapshots: DateSnapshots | None = None
        self.judge = Judge(thresholds, scenario.timeline.pace)
        self.pool = AgentPool(scenario.target_rps(scenario.timeline.pace.fastest), scenario.agents.users)
        self._busy = BusyMeter()  # made here: the thread of Locust's event loop
        self._worker_cpu: dict[str, float] = {}  # on the master: each worker's last reported CPU share
        self.series = TimeSeries()
        self.server_values: dict[str, float] = {}
        self.queue: Queue = Queue()
        self.dispatcher: Dispatcher | None = None
        self.agent: Agent | None = None
        self.clock: ScenarioClock | None = None
        self.started_at = self.stopped_at = 0.0
        self.aborted_by: str | None = None
        self.ended_by: str | None = None  # what ended the run, in words: the first reason given wins
        self.coordinator: Coordinator | None = None  # on the master
        self.assignment: Assignment | None = None  # on a worker: its partition, from the master
        self._prepared: Built | None = None  # on a worker: its partition, built before its test starts
        self._preparing: gevent.Greenlet | None = None
        # One thread builds in the background: never stopped (stopping waits for its work in progress), it
        # lies idle between runs.
        self._builder = ThreadPool(1)
        self.clock_probe: ClockProbe | None = None  # on a worker
        self.master_lost = False  # on a worker: its master went silent mid-run
        self._greenlets: list[gevent.Greenlet] = []
        self._ticks = 0
        self._measured_s = 0.0  # wall seconds into the run at the last tick

    @property
    def _scrapes_live(self) -> bool:
        return any(t.key.startswith("server.") for t in self.thresholds)

    def _cpu_share(self) -> float:
        """How busy the sender was since the last call (`BusyMeter`): this process, or on a master its busiest
        worker."""
        if self.is_master:  # as last reported; until a worker reports, assume saturated: the pool holds
            return max(self._worker_cpu.values(), default=1.0)
        return self._busy.share()

    @property
    def is_master(self) -> bool:
        return isinstance(self.environment.runner, MasterRunner)

    def start(self) -> None:
        """Start the scenario clock, the sampler and, where users run, the fleet and its dispatcher."""
        timeline = self.scenario.timeline
        self.recorder, self.incoming, self.totals = Metrics(), Metrics(), Metrics()
        self.judge = Judge(self.thresholds, timeline.pace)
        self.series, self.aborted_by, self._measured_s, self.clock = TimeSeries(), None, 0.0, None
        built = self._built_for_this_run()
        fleet, wheel = (built.fleet, built.wheel) if built is not None else (None, None)
        for update, count in (built.initial if built is not None else {}).items():
            self.recorder.count(f"initial_{update}", count)
        deployments = self._plan_deployments(fleet)
        if self.coordinator is not None:
            wall_start = self.coordinator.assign()
        elif self.assignment is not None and not math.isnan(self.assignment.wall_start):
            wall_start = self.assignment.wall_start
        else:
            if self.assignment is not None:
                log.error("fleetstorm: the master sent this worker no start time: its clock starts now")
                self.recorder.record_harness_error("harness", "the master sent this worker no start time")
            wall_start = time.time()
        self.clock = ScenarioClock(timeline.start, wall_start, timeline.time_scale, timeline.phases)
        dates = [date for t in self.thresholds for date in ((t.at,) if t.at is not None else t.between or ())]
        snapshots = self.snapshots = DateSnapshots(dates, self.clock, timeline.scenario_seconds)
        self.started_at, self.stopped_at, self.ended_by = wall_start, 0.0, None
        if self.server is not None:
            self.server.configure(self.scenario.server, self.clock, self.scenario.world, self.scenario.fleet.weight)
        if not isinstance(self.environment.runner, WorkerRunner):
            self._spawn(self._sample)
            if self.environment.parsed_options.headless:
                self._spawn(self._print_progress)
        if fleet is None or wheel is None:
            return
        if self.assignment is not None:  # a worker with a partition
            self._spawn(self._watch_master)
        rate = self.scenario.target_rps(timeline.pace.fastest)
        self.queue = Queue(maxsize=max(64, math.ceil(rate)))  # about one second of check-ins
        self.dispatcher = Dispatcher(wheel, self.clock, self.queue, self.recorder, timeline.scenario_seconds,
                                     fleet.plan, DISPATCH_TICK_S)
        self.agent = Agent(fleet, self.clock, self.adapter, self.recorder, self.dispatcher,
                           self.scenario.agents.chunk_bytes, self.scenario.agents.late_after_s)
        self.dispatcher.start().link_exception(self._crashed)
        if (behind_s := time.time() - wall_start) > READY_LATE_S:
            log.warning("fleetstorm: this process was ready %.1f s after scenario second 0: the check-ins due "
                        "meanwhile go out late", behind_s)
        self._spawn(snapshots.run, self._measured, fleet.partition.index)
        self._spawn(self._build_in_background, fleet, wheel)
        for greenlet in schedule_surges(built.surges, self.dispatcher, self.clock, self.queue.put,
                                        timeline.scenario_seconds):
            greenlet.link_exception(self._crashed)
            self._greenlets.append(greenlet)
        if deployments is not None:
            fetches = self.adapter.package_request(package_of(deployments.update), "en") is not None
            self._spawn(run_deployments, fleet, deployments, self.clock, self.recorder,
                        self._queue_fetch if fetches else None, timeline.scenario_seconds)

    def _watch_master(self) -> None:
        """On a worker: end the run once its master has gone silent (its partition's results are written as
        the worker quits: `finish_partition`)."""
        await_master_silence(self.environment.runner)
        self.master_lost = True
        log.error("fleetstorm: no word from the master for %d s: this worker ends its run and writes its "
                  "partition's results in %s", MASTER_SILENT_S, self._partition_results())
        self.end(f"the master's silence ({MASTER_SILENT_S} s)")

    def _partition_results(self) -> Path:
        assert self.assignment is not None  # only a worker with a partition watches its master
        return Path(self.environment.parsed_options.results_dir) / f"partition-{self.assignment.partition.index}"

    def _spawn(self, run: Callable[..., Any], *args: Any) -> None:
        """Run a part of the harness in its own greenlet, stopped with the run; one that dies ends the run."""
        greenlet = gevent.spawn(run, *args)
        greenlet.link_exception(self._crashed)
        self._greenlets.append(greenlet)

    def _plan_deployments(self, fleet: Fleet | None) -> Deployments | None:
        """The administrators' network-install deployments, the earlier ones given to the fleet now."""
        spec = self.scenario.fleet.network_install
        if fleet is None or spec is None:
            return None
        update = network_update(self.scenario.world)
        if update is None:
            return None  # refused at load: no update of the world has a network-install package
        deployments = Deployments.plan(spec, self.scenario.fleet, self.scenario.timeline.start, update)
        self.recorder.count(f"initial_{update}", install_before_start(fleet, deployments))
        if self.adapter.package_request(package_of(update), "en") is None:
            log.warning("fleetstorm: the %s protocol cannot fetch a package outside an offer: administrators' "
                        "network installs send no requests", self.adapter.name)
        return deployments

    def _queue_fetch(self, fetch: PackageFetch) -> None:
        """Queue a package download for the agents without holding up the deployments while the queue is full."""
        self._greenlets.append(gevent.spawn(self.queue.put, fetch))

    def _build_in_background(self, fleet: Fleet, wheel: TimingWheel) -> None:
        """File the rest of the schedule, then count who is online, in a thread while the run goes on (numpy's
        loops leave the interpreter to the run) and paced to a share of a core, so that the run's check-ins
        keep the cores they need; then keep the online_now gauge (summed over workers, as a counter of
        changes) at this partition's count."""
        pace = Pace(BACKGROUND_SHARE)
        while wheel.file_next(lambda work: self._builder.apply(pace.after, (work,))):
            pass
        census = self._builder.apply(fleet.online_census, (pace,))
        reported = 0
        while True:
            now = census.online_now(self.clock.now())
            self.recorder.count("online_now", now - reported)
            reported = now
            gevent.sleep(TICK_S)

    def prepare(self, assignment: Assignment, done: Callable[[], None]) -> None:
        """On a worker given its partition: build it and its schedule's first buckets in a greenlet of their
        own, before its test starts (which waits for them), then call `done`."""
        if self._preparing is not None:
            self._preparing.kill()
        self.assignment, self._prepared = assignment, None
        self._preparing = gevent.spawn(self._prepare, assignment.partition, done)

    def _prepare(self, partition: Partition, done: Callable[[], None]) -> None:
        try:
            self.scenario = resolve_scenario(self.environment.parsed_options)  # with the master's options
            self._prepared = self._build(partition)
        except Exception:  # the test's start builds it again, and reports what goes wrong then
            log.exception("fleetstorm: building this worker's partition failed")
        finally:
            done()

    def _built_for_this_run(self) -> Built | None:
        """This process's partition of the fleet and its schedule; None where no check-ins are sent from."""
        if self.is_master:
            return None
        if not isinstance(self.environment.runner, WorkerRunner):
            return self._build(WHOLE_FLEET)
        if self.assignment is None:
            log.error("fleetstorm: this worker was given no partition of the fleet: it sends no check-ins")
            return None
        if self._preparing is not None:
            self._preparing.join()  # a worker taking over a partition mid-run starts as soon as it is built
        prepared, self._prepared, self._preparing = self._prepared, None, None
        if (prepared is not None and prepared.scenario == self.scenario
                and prepared.fleet.partition == self.assignment.partition):
            return prepared
        if prepared is not None:
            log.warning("fleetstorm: the scenario changed since this worker built its partition: building it again")
            del prepared  # before building anew: two partitions need not fit
        return self._build(self.assignment.partition)

    def _build(self, partition: Partition) -> Built | None:
        """A partition of the fleet, the updates it starts with, and the first buckets of its schedule (seconds
        at 210 M machines; the rest is filed while the run goes on). The long steps run in a thread: a worker's
        heartbeats to the master go on meanwhile."""
        scenario = self.scenario
        try:
            check_fits(partition.size_of(scenario.fleet.machines), "this worker's share of the fleet")
        except InputError as error:
            log.error("fleetstorm: error: %s", error)
            gevent.spawn(self.environment.runner.quit)
            return None
        fleet = Fleet(scenario.fleet, scenario.timeline.start, partition, scenario.world)
        _off_the_loop(fleet.warm_identities)
        initial: dict[str, int] = {}
        if scenario.fleet.start_from is not None or scenario.fleet.installed:
            for update, with_it in _off_the_loop(partial(initial_installs, scenario, partition)).items():
                fleet.status[with_it] |= fleet.update_bit(update)
                initial[update] = int(with_it.sum())
        pace = scenario.timeline.pace
        wheel = _off_the_loop(partial(fleet_wheel, fleet, bucket_seconds(pace.fastest, DISPATCH_TICK_S),
                                      ready_s=READY_WALL_S * pace.fastest))
        surges = _off_the_loop(partial(plan_surges, scenario.events, fleet, scenario.timeline.start))
        return Built(scenario, fleet, wheel, initial, surges)

    @property
    def running(self) -> bool:
        """Between this test's start and its stop."""
        return self.clock is not None and not self.stopped_at

    def agents_wanted(self, run_time: float | None) -> tuple[int, float] | None:
        """Locust's users now: the agent pool, all spawned at once; None when the timeline or -t has ended."""
        if self.running:
            timeline_s = self.scenario.timeline.wall_seconds
            since_start = time.time() - self.started_at  # from scenario second 0, past the timeline's end too
            if run_time and run_time < timeline_s and since_start >= run_time:
                self.ended_by = self.ended_by or f"the run time limit (-t {run_time}s)"
                return None
            if since_start >= timeline_s:
                self.ended_by = self.ended_by or "the timeline's end"
                return None
        return self.pool.size, float(self.pool.size)  # every agent (and each growth) in one spawn step

    def end(self, reason: str) -> None:
        """End the run now, saying why (unless something else already ended it)."""
        if self.ended_by is None:
            self.ended_by = reason
            log.info("fleetstorm: the run ends: %s", reason)
        gevent.spawn(self.environment.runner.quit)

    def _crashed(self, greenlet: gevent.Greenlet) -> None:
        """A harness greenlet died: a bug in fleetstorm. Count it and end the run, whose results are still written."""
        self.internal_error(greenlet.exception)

    def internal_error(self, error: BaseException) -> None:
        """Something in fleetstorm (or a plug-in it calls) raised: count it and end the run, results still written."""
        self.recorder.record_harness_error("harness", describe(error))
        if isinstance(self.environment.runner, WorkerRunner):
            report_now(self.environment.runner)  # quitting, a worker sends no last report of its own
        log.error("fleetstorm: internal error, ending the run: %r", error)
        self.end(f"an internal error ({type(error).__name__})")

    def elapsed_s(self) -> float:
        """Wall seconds since scenario second 0 (to the stop or the timeline's end)."""
        if not self.started_at:
            return 0.0
        # No check-in is due after the timeline's end, so the time after it does not count.
        end = min(self.stopped_at or time.time(), self.started_at + self.scenario.timeline.wall_seconds)
        return max(0.0, end - self.started_at)

    def _measured(self) -> Metrics:
        """A copy of everything this process has measured so far."""
        measured = Metrics()
        measured.add(self.totals)
        measured.add(self.recorder)
        return measured

    def _partitions(self) -> set[int]:
        """The partitions the run's measurements come from: the workers' still emulated, or this process's."""
        return set(self.coordinator.owners.values()) if self.coordinator is not None else {WHOLE_FLEET.index}

    def span(self) -> Span:
        """The whole run up to the last tick, as thresholds observe it."""
        timeline = self.scenario.timeline
        wall_s = self._measured_s  # what `totals` holds was measured up to then, not up to now
        return Span(self.totals, wall_s, self.scenario.fleet.weight, timeline.pace.scenario_at(wall_s),
                    self.server_values, self.scenario.fleet.machines)

    def verdicts(self, final: bool = False) -> list[Verdict]:
        return self.judge.verdicts(self.span(), final)

    def tick(self, final: bool = False) -> None:
        """Add what was measured since the last tick into the whole run, and judge it."""
        delta = self.recorder.drain()
        delta.add(self.incoming.drain())
        self.totals.add(delta)
        if self.clock is None:
            return
        self._ticks += 1
        if self._scrapes_live and self.environment.host and self._ticks % SCRAPE_EVERY_TICKS == 0:
            self.server_values = scrape(self.environment.host)
        wall_s, scenario_s = self.elapsed_s(), min(self.clock.now(), self.scenario.timeline.scenario_seconds)
        self._measured_s = wall_s
        date, totals = self.clock.date_at(scenario_s), self.span()
        if self.coordinator is not None and not final:  # at the end, workers leave on purpose
            self.coordinator.check_losses(wall_s)
        at_dates = {} if self.snapshots is None else self.snapshots.spans(
            self._partitions(), final, self.scenario.fleet.weight, self.server_values, self.scenario.fleet.machines)
        self.judge.feed(delta, wall_s, totals, at_dates)
        if not final:
            self.pool.adjust(delta.counters["late"], self._cpu_share())
        target = self.scenario.target_rps(self.clock.scale_at(scenario_s))
        self.series.tick(delta, wall_s, scenario_s, date, totals, target, self.judge.verdicts(totals))
        if self.aborted_by is None and (reason := self.judge.abort_reason(totals, wall_s)):
            self.aborted_by = reason
            log.error("fleetstorm: threshold %r failed with abort_on_fail: stopping the run", reason)
            self.end(f"threshold {reason!r} failed (abort_on_fail)")

    def _sample(self) -> None:
        while True:
            gevent.sleep(TICK_S)
            self.tick()

    def _print_progress(self) -> None:
        while True:
            gevent.sleep(PROGRESS_INTERVAL_S)
            print(progress_line(self.live()), flush=True)

    def record_unfinished(self) -> None:
        """Count the check-ins due but not done as the run stops (backlog, queue, agents), with their ages."""
        if self.clock is None or self.dispatcher is None or self.agent is None or self.agent.closed:
            return
        self.dispatcher.stop()  # nothing more is released: what is due from now on is not the run's
        fleet = self.agent.fleet
        # The timeline's check-ins only: none is due after its end.
        machines, due = self.dispatcher.waiting(min(self.clock.now(), self.scenario.timeline.scenario_seconds))
        queued, visits = [], []  # taken out, so that no agent carries one out in the moment before Locust stops them
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if type(item) is tuple:  # a machine's wake-up
                queued.append(item)
            elif isinstance(item, SiteVisit):  # a check-in too; not an administrator's package fetch
                visits.append(item.due_at)
        queued_machines = np.array([index for index, _ in queued], dtype=np.uint32)
        queued_due = np.array([when for _, when in queued], dtype=np.float64)
        queued_check_ins = np.concatenate((queued_due[fleet.checks_in(queued_machines)], visits))
        for where, check_ins in (("backlog", due[fleet.checks_in(machines)]),
                                 ("queued", queued_check_ins),
                                 ("in_flight", np.array(self.agent.close(), dtype=np.float64))):
            self.recorder.record_unfinished(where, self.clock.seconds_since_each(check_ins))

    def mark_stopped(self) -> None:
        """The run's time ends now (once)."""
        if self.clock is not None and not self.stopped_at:
            self.stopped_at = time.time()

    def stop(self) -> None:
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        self._greenlets.clear()
        if self.snapshots is not None and self.agent is not None:  # a date the run ended on, just as it was crossed
            self.snapshots.take_reached(self._measured, self.agent.fleet.partition.index)
        if self.dispatcher is not None:
            self.dispatcher.stop()
        self.mark_stopped()

    def on_request(self, request_type: str, name: str, response_time: float, exception: BaseException | None,
                   **_: Any) -> None:
        """Locust's `request` event: every request's service time, by name (a failed wake-up's ERROR has none)."""
        self.recorder.record_request(name, response_time, exception is not None, timed=request_type != "ERROR")

    def on_report_to_master(self, data: dict[str, Any], **_: Any) -> None:
        """On a worker: ship what was measured since the last report."""
        shipped = self.recorder.drain()
        self.totals.add(shipped)
        data[REPORT_KEY] = shipped.encode()
        data[CPU_KEY] = self._cpu_share()
        if self.clock_probe is not None and self.clock_probe.in_use is not None:
            data[CLOCK_KEY] = self.clock_probe.in_use.to_report()
        if self.snapshots is not None and (taken := self.snapshots.ship()):
            data[DATES_KEY] = taken
        if self.stopped_at:
            data[FINAL_KEY] = True

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        """On the master: take a worker's measurements in (added into the whole run at the next tick)."""
        if REPORT_KEY in data:
            self.incoming.merge(data[REPORT_KEY])
        if CPU_KEY in data:
            self._worker_cpu[client_id] = data[CPU_KEY]
        if CLOCK_KEY in data and self.coordinator is not None:
            self.coordinator.clocks[client_id] = data[CLOCK_KEY]
        if DATES_KEY in data and self.snapshots is not None:
            self.snapshots.merge(data[DATES_KEY])
        if FINAL_KEY in data and self.coordinator is not None:
            self.coordinator.awaiting_final.discard(client_id)

    def next_checkin(self, timeout: float) -> tuple[int, float] | SiteVisit | PackageFetch | None:
        """The next due wake-up `(index, due_at)`, site visit or package fetch; None if none came within `timeout`."""
        try:
            return self.queue.get(timeout=timeout)
        except Empty:
            return None

    def _distribution(self) -> dict[str, Any]:
        if self.coordinator is None:
            return {}
        lost = [vars(item) for item in self.coordinator.lost]
        return {"workers": self.coordinator.count, "fleet_complete": not lost, "lost_partitions": lost,
                "workers_clock": self.coordinator.workers_clock()}

    def live(self) -> LiveState:
        """The run as it stands now, for the progress line and the Fleet tab."""
        return live_state(self.scenario, self.clock, self.totals, self.verdicts(), self.series,
                          self.rollout_targets())

    def exported(self) -> Exported:
        """The run now, for a Prometheus scrape."""
        timeline = self.scenario.timeline
        scenario_s = min(max(self.clock.now(), 0.0), timeline.scenario_seconds) if self.clock else 0.0
        live = self.live()
        return Exported(self.totals, live.machines, live.weight, timeline.pace.scale_at(scenario_s), scenario_s,
                        timeline.start.timestamp() + scenario_s, live.target_rps, live.achieved_rps, self.pool.size,
                        live.thresholds)

    def rollout_targets(self) -> list[tuple[datetime, float, str, tuple[str, ...]]]:
        """Fleet install figures the thresholds ask for by a date: (date, real machines, expression, its counters)."""
        targets = []
        for t in self.thresholds:
            what, _, update = t.key.removeprefix("fleet.").partition(".")
            if t.at is not None and t.key.startswith("fleet.") and what in INSTALL_STATS:
                targets.append((t.at, t.value if t.real else t.value * self.scenario.fleet.weight, t.expr,
                                update_counters(what, update)))
        return targets

    def _record_locust_exceptions(self) -> None:
        """Errors that escaped to Locust (its `user_error`, from every worker too): fleetstorm's own."""
        for row in self.environment.runner.exceptions.values():
            self.recorder.record_harness_error("harness", row["msg"], row["count"])

    def finish(self) -> ExitCode:
        """Judge the thresholds, print the summary, write the results files; the process exit code."""
        self.record_unfinished()
        self.stop()
        self._record_locust_exceptions()
        if self.environment.host:
            self.server_values = scrape(self.environment.host)
        self.tick(final=True)
        verdicts = self.verdicts(final=True)
        code = exit_code(verdicts, self.totals.harness_errors, aborted=self.aborted_by is not None)
        summary = build_summary(self.scenario, self.span(), verdicts, code, aborted_by=self.aborted_by,
                                ended_by=self.ended_by or "the run was stopped", server=self.server_values,
                                agents=vars(self.pool), **self._distribution())
        results_dir = Path(self.environment.parsed_options.results_dir)
        write_json_atomically(results_dir / "summary.json", summary)
        rows = self.series.rows
        write_json_atomically(results_dir / "series.json", rows)
        write_junit(results_dir / "junit.xml", self.scenario.name, verdicts, self.elapsed_s())
        write_report(results_dir, summary, rows, [t[:3] for t in self.rollout_targets()])
        print(format_summary(summary), flush=True)
        return code

    def finish_partition(self) -> ExitCode:
        """On a worker that lost its master: write what it measured, its partition alone, in
        results_dir/partition-<k>/summary.json and print it; the exit code.

        The thresholds are the whole fleet's, so none is judged on a share of it.
        """
        self.totals.add(self.recorder.drain())  # what the last report to the master would have carried
        self._measured_s = self.elapsed_s()
        assert self.assignment is not None and self.agent is not None  # a worker that watched its master
        partition, machines = self.assignment.partition, self.agent.fleet.size
        code = ExitCode.MASTER_LOST
        summary = build_summary(self.scenario, self.span(), [], code, share=machines / self.scenario.fleet.machines,
                                ended_by=self.ended_by, agents=vars(self.pool),
                                partition={"index": partition.index, "count": partition.count, "machines": machines})
        write_json_atomically(self._partition_results() / "summary.json", summary)
        print(format_summary(summary), flush=True)
        return code


def report_now(runner: WorkerRunner) -> None:
    """Send this worker's report to the master now: Locust's statistics and fleetstorm's, as every 3 s."""
    runner._send_stats()
