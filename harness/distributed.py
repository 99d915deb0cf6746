"""Locust master/worker runs: each worker owns a partition of the fleet; all share one scenario clock.

When the test starts, the master numbers the connected workers by Locust's worker index and tells
worker k of W its partition (machines with index % W == k) and the wall time at which scenario
second 0 falls, a little ahead so every worker has built its partition by then. Locust delivers this
message before the spawn message that starts the worker's test.

A worker that goes missing is reported with its partition and the moment it was lost; the run goes
on. A worker that joins while partitions are orphaned takes over the lowest one (its users arrive
only if Locust rebalances users: `--enable-rebalancing`); otherwise it gets no partition and sends no
check-ins, so no machine is ever emulated twice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from locust.runners import STATE_MISSING, MasterRunner

from harness.fleet import Partition

log = logging.getLogger("fleetstorm")
PARTITION_MESSAGE = "fleetstorm_partition"
START_MARGIN_S = 2.0  # time for workers to build their partition before scenario second 0


@dataclass(frozen=True)
class Assignment:
    """What a worker is told: its partition and when scenario second 0 falls (wall clock)."""

    partition: Partition
    wall_start: float

    def to_message(self) -> dict[str, Any]:
        return {"index": self.partition.index, "count": self.partition.count, "wall_start": self.wall_start}

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> Assignment:
        return cls(Partition(int(data["index"]), int(data["count"])), float(data["wall_start"]))


@dataclass(frozen=True)
class LostPartition:
    """A partition whose worker went missing, and when (wall seconds into the run)."""

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

    def assign(self) -> float:
        """Give every connected worker its partition; the wall time of scenario second 0."""
        workers = sorted((c for c in self.runner.clients.values() if c.state != STATE_MISSING),
                         key=lambda c: self.runner.get_worker_index(c.id))
        self.wall_start = time.time() + START_MARGIN_S
        self.count = len(workers)
        self.owners, self.lost = {}, []
        for index, worker in enumerate(workers):
            self._send(worker.id, index)
        log.info("fleet split into %d partitions", self.count)
        return self.wall_start

    def _send(self, worker_id: str, index: int) -> None:
        self.owners[worker_id] = index
        assignment = Assignment(Partition(index, self.count), self.wall_start)
        self.runner.send_message(PARTITION_MESSAGE, assignment.to_message(), client_id=worker_id)

    def check_losses(self, wall_s: float) -> None:
        """Record, once, each partition whose worker is missing or gone."""
        for worker_id, index in list(self.owners.items()):
            node = self.runner.clients.get(worker_id)
            if node is None or node.state == STATE_MISSING:
                del self.owners[worker_id]
                self.lost.append(LostPartition(index, worker_id, round(wall_s, 1)))
                log.error("worker %s went missing: partition %d of %d is no longer emulated (from %.1f s)",
                          worker_id, index, self.count, wall_s)

    def on_worker_connect(self, worker_id: str) -> None:
        """A worker joining mid-run takes over the lowest orphaned partition, if any."""
        orphaned = sorted({lost.partition for lost in self.lost} - set(self.owners.values()))
        if self.count and orphaned:
            self._send(worker_id, orphaned[0])
            log.info("worker %s takes over partition %d", worker_id, orphaned[0])
