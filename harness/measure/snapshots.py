"""What the run had measured at the scenario dates that `at` thresholds name, taken as the clock crosses each.

A 1 Hz tick can fall a day or more of scenario time after a date at a large time scale, and a master
sees workers' measurements up to 3 s late, so neither the tick's whole-run value nor an
interpolation between ticks is the value at the date. Instead every process that sends check-ins
copies everything it has measured so far at the wall time its own scenario clock reaches each date
(all processes share one clock). A worker ships its copies with its next Locust report; the master
adds one copy per partition, and a date counts as reached once every partition still emulated has
sent its own (at the end of the run, with whatever came: a lost worker's share is missing, as it is
from the whole run).

Work counts where it was recorded: a check-in (or download, or install) that an agent finished
before the moment counts before the date; one due before the date but still queued or awaiting its
answer then counts after it. That is the check-ins of one due-time latency (milliseconds, unless
`schedule.late` says the harness fell behind).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

import gevent

from harness.measure.metrics import Metrics
from harness.measure.span import Span
from harness.model.clock import ScenarioClock

# A process's shipment: (date, partition, Metrics.encode()) for each date it crossed since the last one.
Shipment = list[tuple[str, int, dict[str, Any]]]


class DateSnapshots:
    """The measurements up to each date: this process's own, or on a master the sum of the workers'."""

    def __init__(self, dates: Iterable[datetime], clock: ScenarioClock, end_s: float) -> None:
        self.clock = clock
        self.dates = sorted(set(dates))
        # A process takes the dates its timeline reaches; a later date is never reached.
        self._reachable = [date for date in self.dates if clock.seconds_at(date) <= end_s]
        self._taken = 0  # how many of the reachable dates this process has taken
        self._sums: dict[datetime, Metrics] = {}
        self._partitions: dict[datetime, set[int]] = {}
        self._unshipped: Shipment = []

    def take_reached(self, measured: Callable[[], Metrics], partition: int) -> None:
        """Copy what this process measured so far for every date its clock has reached and not taken yet."""
        now = self.clock.now()
        while self._taken < len(self._reachable) and self.clock.seconds_at(self._reachable[self._taken]) <= now:
            date, snapshot = self._reachable[self._taken], measured()
            self._add(date, partition, snapshot)
            self._unshipped.append((date.isoformat(), partition, snapshot.encode()))
            self._taken += 1

    def run(self, measured: Callable[[], Metrics], partition: int) -> None:
        """Take each date as this process's clock crosses it (a greenlet's body; ends after the last date)."""
        while self._taken < len(self._reachable):
            # gevent may wake a little early: take_reached then takes nothing and we sleep again
            gevent.sleep(max(0.0, self.clock.seconds_until(self.clock.seconds_at(self._reachable[self._taken]))))
            self.take_reached(measured, partition)

    def ship(self) -> Shipment:
        """The dates taken since the last shipment, for a worker's report."""
        shipment, self._unshipped = self._unshipped, []
        return shipment

    def merge(self, shipment: Shipment) -> None:
        """On the master: add a worker's shipment."""
        for date, partition, encoded in shipment:
            snapshot = Metrics()
            snapshot.merge(encoded)
            self._add(datetime.fromisoformat(date), partition, snapshot)

    def _add(self, date: datetime, partition: int, snapshot: Metrics) -> None:
        self._sums.setdefault(date, Metrics()).add(snapshot)
        self._partitions.setdefault(date, set()).add(partition)

    def spans(self, partitions: Collection[int], final: bool, weight: float,
              server: Mapping[str, float], machines: int = 0) -> dict[datetime, Span]:
        """The run up to each date every one of `partitions` has sent (or, `final`, any has), as thresholds see it.

        The server's counters are not taken at the date: `server` (the latest scrape) stands in.
        """
        pace = self.clock.pace
        spans = {}
        for date, metrics in self._sums.items():
            if final or self._partitions[date].issuperset(partitions):
                scenario_s = max(0.0, self.clock.seconds_at(date))
                spans[date] = Span(metrics, pace.wall_at(scenario_s), weight, scenario_s, server, machines)
        return spans
