"""Locust master/worker runs: each worker owns a partition of the fleet; all share one scenario clock.

When the test starts, the master numbers the connected workers by Locust's worker index and tells
worker k of W its partition (machines with index % W == k). Each worker builds its partition and
the first buckets of its schedule (seconds, or minutes when the fleet starts from an earlier
scenario's simulation), its heartbeats going on meanwhile, and says so; once every worker has (or
is missing), the master sends them all the wall time at which scenario second 0 falls, a moment
ahead. Locust delivers these messages before the spawn message that starts the worker's test, so
no worker starts its clock behind the others with a backlog of due check-ins.

Each worker keeps time on its own clock. When it connects it measures how far its clock is ahead of
the master's from a few round trips (Cristian's algorithm) and converts the master's wall time of
scenario second 0 into its own. The master waits, briefly, until it has answered every worker's
probes before sending the partitions, so that each worker's estimate is there before its test starts.

When the run stops, the master asks every worker still emulating to stop and send its last
measurements at once (the check-ins it leaves unfinished among them), and waits for them, a few
seconds at most, before it writes the verdict: Locust's own final reports arrive only within half a
second of its quitting, which a busy worker can miss.

A worker that goes missing is reported with its partition and the moment it was lost; the run goes
on. A worker that joins while partitions are orphaned takes over the lowest one (its users arrive
only if Locust rebalances users: `--enable-rebalancing`); otherwise it gets no partition and sends no
check-ins, so no machine is ever emulated twice.

A worker whose master goes silent mid-run (dead, or cut off) ends its own run after MASTER_SILENT_S,
writing what its partition measured beside the master's results, rather than send check-ins that
nobody counts for the minute Locust's own worker would wait.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import gevent
from locust.argument_parser import default_args_dict
from locust.runners import STATE_MISSING, STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner

from harness.model.fleet import Partition

log = logging.getLogger("fleetstorm")
PARTITION_MESSAGE = "fleetstorm_partition"  # master -> worker: the partition to build
BUILT_MESSAGE = "fleetstorm_built"  # worker -> master: the partition is built
START_MESSAGE = "fleetstorm_start"  # master -> worker: the wall time of scenario second 0
CLOCK_MESSAGE = "fleetstorm_clock"
FINAL_MESSAGE = "fleetstorm_final"  # master -> worker: stop and report now
FINAL_REPORT_WAIT_S = 5.0  # how long the master waits for the workers' last measurements
START_MARGIN_S = 1.0  # from the start message to scenario second 0: time for it to reach every worker
BUILD_WAIT_S = 3600.0  # how long the master waits for its workers' partitions to be built, at most
BUILD_LOG_EVERY_S = 30.0
CLOCK_PROBES = 5  # round trips a worker makes to measure its clock; the shortest one is kept
# Locust's master marks a silent worker missing 4-5 s after its last heartbeat; a worker gives its master
# twice that, and Locust's own worker a minute
MASTER_SILENT_S = 10
CLOCK_WAIT_S = 2.0  # how long the master waits for a worker's probes before giving it its partition anyway


def await_master_silence(runner: WorkerRunner, silent_s: int = MASTER_SILENT_S) -> None:
    """Return once the master has answered none of this worker's heartbeats for `silent_s` seconds.

    Counted in seconds of this worker's own event loop: a loop held up by work of its own has not heard
    the master's answers waiting in its socket, which is not the master's silence.
    """
    heard, silent = runner.last_heartbeat_timestamp, 0
    while silent < silent_s:
        gevent.sleep(1.0)
        silent = silent + 1 if runner.last_heartbeat_timestamp == heard else 0
        heard = runner.last_heartbeat_timestamp


@dataclass(frozen=True)
class Assignment:
    """What a worker is told: its partition and the time.time() at which scenario second 0 falls.

    The master sends that time on its clock; the worker converts it to its own (`ClockProbe.to_local`).
    """

    partition: Partition
    wall_start: float

    @classmethod
    def of_partition(cls, data: dict[str, Any]) -> Assignment:
        """A partition message's assignment: its start is known for a run under way, else NaN until it comes."""
        return cls(Partition(int(data["index"]), int(data["count"])), float(data.get("wall_start", math.nan)))

    def starting(self, data: dict[str, Any]) -> Assignment:
        """The assignment with the start message's wall time (the master's clock)."""
        return replace(self, wall_start=float(data["wall_start"]))


@dataclass(frozen=True)
class ClockEstimate:
    """A worker's clock against the master's: `offset_s` is how far the worker's time.time() is ahead.

    The error is at most half the round trip `rtt_s`; infinite when no probe came back and the clocks are
    taken to agree.
    """

    offset_s: float
    rtt_s: float

    def to_report(self) -> dict[str, float | None]:
        """Milliseconds for summary.json (no round trip: None)."""
        return {"offset_ms": round(self.offset_s * 1e3, 3),
                "rtt_ms": round(self.rtt_s * 1e3, 3) if math.isfinite(self.rtt_s) else None}


UNMEASURED = ClockEstimate(0.0, math.inf)


def cristian(sent: float, received: float, received_wall: float, master_wall: float) -> ClockEstimate:
    """The estimate from one round trip, during which the master read its wall clock as `master_wall`.

    `sent` and `received` are the worker's monotonic clock around the round trip, `received_wall` its
    wall clock at the answer. Taking the master's reading as made halfway through errs by at most half
    the round trip, whatever the network's asymmetry.
    """
    rtt = received - sent
    return ClockEstimate(received_wall - (master_wall + rtt / 2), rtt)


class ClockProbe:
    """A worker's side of the clock measurement: round trips to the master, one after the other."""

    def __init__(self, runner: WorkerRunner) -> None:
        self.runner = runner
        self.left = CLOCK_PROBES
        self.best = UNMEASURED
        self.in_use: ClockEstimate | None = None  # what the partition's start was converted with

    def send(self) -> None:
        """Send the next probe; the master answers with its wall clock."""
        self.left -= 1
        self.runner.send_message(CLOCK_MESSAGE, {"sent": time.monotonic()})

    def on_answer(self, data: dict[str, float]) -> None:
        """Take the master's answer to a probe in, and send the next probe."""
        estimate = cristian(data["sent"], time.monotonic(), time.time(), data["master"])
        if estimate.rtt_s < self.best.rtt_s:
            self.best = estimate
        if self.left > 0:
            self.send()

    def to_local(self, assignment: Assignment) -> Assignment:
        """The assignment with scenario second 0 on this worker's clock, by the best estimate so far."""
        self.in_use = self.best
        if self.best is UNMEASURED:
            log.warning("fleetstorm: no clock probe came back from the master: this worker takes its clock as "
                        "the master's")
        else:
            log.info("fleetstorm: this worker's clock is %+.3f ms ahead of the master's (round trip %.3f ms)",
                     self.best.offset_s * 1e3, self.best.rtt_s * 1e3)
        return replace(assignment, wall_start=assignment.wall_start + self.best.offset_s)


@dataclass(frozen=True)
class LostPartition:
    """A partition whose worker went missing, and since when (wall seconds into the run): its last heartbeat,
    from which Locust takes 4-5 s to mark it missing; 0 when it was lost before the clock started."""

    partition: int
    worker: str
    since_s: float


class Coordinator:
    """The master's side: hands out partitions and notices workers that go missing."""

    def __init__(self, runner: MasterRunner) -> None:
        self.runner = runner
        self.wall_start = 0.0
        self.count = 0
        self.owners: dict[str, int] = {}  # worker id -> partition index
        self.lost: list[LostPartition] = []
        self.answered: Counter[str] = Counter()  # worker id -> clock probes answered
        self.clocks: dict[str, dict[str, float | None]] = {}  # worker id -> its clock estimate, as it reported it
        self.awaiting_final: set[str] = set()  # workers asked for their last measurements, not yet heard from
        self.built: set[str] = set()  # workers whose partition is built
        self.heard: dict[str, float] = {}  # worker id -> time.time() of its last heartbeat
        self.generation = 0  # which split of the fleet: a worker's word that it has built one is about it

    def assign(self) -> float:
        """Give every connected worker its partition and, once all are built, the wall time of scenario second 0."""
        workers = sorted((c for c in self.runner.clients.values() if c.state != STATE_MISSING),
                         key=lambda c: self.runner.get_worker_index(c.id))
        self._await_clock_probes([worker.id for worker in workers])
        self.wall_start, self.count, self.generation = 0.0, len(workers), self.generation + 1
        self.owners, self.lost, self.built = {}, [], set()
        for index, worker in enumerate(workers):
            self._send(worker.id, index)
        log.info("fleet split into %d partitions", self.count)
        self._await_built()
        self.wall_start = time.time() + START_MARGIN_S
        for worker_id in self.owners:
            self._send_start(worker_id)
        return self.wall_start

    def _send(self, worker_id: str, index: int) -> None:
        self.owners[worker_id] = index
        message = {"index": index, "count": self.count, "generation": self.generation, "options": self.options()}
        if self.wall_start:  # a run under way: the worker starts as soon as it has built its partition
            message["wall_start"] = self.wall_start
        self.runner.send_message(PARTITION_MESSAGE, message, client_id=worker_id)

    def options(self) -> dict[str, Any]:
        """The master's own options (fleetstorm's), which Locust sends workers only with the spawn message:
        a worker needs them to build the right fleet before that."""
        locust_options = default_args_dict()
        return {name: value for name, value in vars(self.runner.environment.parsed_options).items()
                if name not in locust_options}

    def _send_start(self, worker_id: str) -> None:
        self.runner.send_message(START_MESSAGE, {"wall_start": self.wall_start}, client_id=worker_id)

    def _await_built(self) -> None:
        """Wait until every worker given a partition has built it, or is missing (BUILD_WAIT_S at most: those
        still building then are taken as lost)."""
        started = time.monotonic()
        told = started
        while building := [worker_id for worker_id in self.owners if worker_id not in self.built
                           and (node := self.runner.clients.get(worker_id)) is not None
                           and node.state != STATE_MISSING]:
            waited = time.monotonic() - started
            if waited >= BUILD_WAIT_S:
                log.error("workers %s did not build their partition within %.0f s: the clock starts without them",
                          ", ".join(building), BUILD_WAIT_S)
                for worker_id in building:
                    self.lost.append(LostPartition(self.owners.pop(worker_id), worker_id, 0.0))
                return
            if time.monotonic() - told >= BUILD_LOG_EVERY_S:
                told = time.monotonic()
                log.info("waiting %.0f s so far for workers %s to build their partition", waited, ", ".join(building))
            gevent.sleep(0.05)

    def on_built(self, worker_id: str, data: dict[str, Any]) -> None:
        """A worker has built its partition: one that joined a run under way is told its start at once."""
        if data.get("generation") != self.generation:
            return  # a partition of an earlier split, built too late to matter
        self.built.add(worker_id)
        if self.wall_start and worker_id in self.owners:
            self._send_start(worker_id)

    def answer_probe(self, worker_id: str, data: dict[str, float]) -> None:
        """Answer a worker's clock probe with this host's wall clock."""
        self.runner.send_message(CLOCK_MESSAGE, {"sent": data["sent"], "master": time.time()}, client_id=worker_id)
        self.answered[worker_id] += 1

    def _await_clock_probes(self, worker_ids: list[str]) -> None:
        """Wait (a little at most) until every worker's probes are answered.

        The answers travel ahead of the partition and the spawn message on the same connection, so each
        worker has its clock measured before its test starts.
        """
        deadline = time.monotonic() + CLOCK_WAIT_S
        while (waiting := [w for w in worker_ids if self.answered[w] < CLOCK_PROBES]) and time.monotonic() < deadline:
            gevent.sleep(0.01)
        if waiting:
            log.warning("workers %s have not finished measuring their clocks against this one", ", ".join(waiting))

    def workers_clock(self) -> list[dict[str, Any]]:
        """How far each worker's clock is ahead of the master's, and the round trip it was measured from, in ms."""
        return [{"worker": worker_id, **clock} for worker_id, clock in sorted(self.clocks.items())]

    def collect_final_reports(self) -> None:
        """Ask every worker still emulating to stop and report at once; wait (a few seconds at most) for them all."""
        self.awaiting_final = {worker_id for worker_id in self.owners
                               if (node := self.runner.clients.get(worker_id)) is not None
                               and node.state != STATE_MISSING}
        for worker_id in self.awaiting_final:
            self.runner.send_message(FINAL_MESSAGE, None, client_id=worker_id)
        deadline = time.monotonic() + FINAL_REPORT_WAIT_S
        while self.awaiting_final and time.monotonic() < deadline:
            gevent.sleep(0.02)
        if self.awaiting_final:
            log.error("workers %s sent no final report within %.0f s: their last measurements are missing",
                      ", ".join(sorted(self.awaiting_final)), FINAL_REPORT_WAIT_S)

    def on_heartbeat(self, client_id: str, timestamp: float, **_: Any) -> None:
        """Locust's `heartbeat_sent`: the master answered a worker's heartbeat, so the worker was there then."""
        self.heard[client_id] = timestamp

    def check_losses(self, wall_s: float) -> None:
        """Record, once, each partition whose worker is missing or gone (`wall_s`: seconds into the run now)."""
        for worker_id, index in list(self.owners.items()):
            node = self.runner.clients.get(worker_id)
            if node is None or node.state == STATE_MISSING:
                del self.owners[worker_id]
                since_s = min(max(self.heard.get(worker_id, 0.0) - self.wall_start, 0.0), wall_s)
                self.lost.append(LostPartition(index, worker_id, round(since_s, 1)))
                log.error("worker %s went missing: partition %d of %d is no longer emulated (last heard at %.1f s)",
                          worker_id, index, self.count, since_s)

    def on_worker_connect(self, worker_id: str) -> None:
        """A worker joining mid-run takes over the lowest orphaned partition, if any (between runs, none: the
        next run splits the fleet anew)."""
        orphaned = sorted({lost.partition for lost in self.lost} - set(self.owners.values()))
        under_way = self.runner.state in (STATE_SPAWNING, STATE_RUNNING)
        if self.count and orphaned and under_way and worker_id not in self.owners:
            self._send(worker_id, orphaned[0])
            log.info("worker %s takes over partition %d", worker_id, orphaned[0])
