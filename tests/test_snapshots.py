"""The run's measurements at `at` dates: taken as each process's clock crosses them, summed over partitions."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import gevent

from harness.measure.metrics import Metrics
from harness.measure.snapshots import DateSnapshots
from harness.model.clock import ScenarioClock

ORIGIN = datetime(2004, 8, 16, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _installed(count: int) -> Metrics:
    metrics = Metrics()
    metrics.count("installed_xpsp2", count)
    return metrics


def _clock(hours_ago: float, time_scale: float = 3600.0) -> ScenarioClock:
    """A clock that has played `hours_ago` scenario hours so far (at one scenario hour a wall second)."""
    return ScenarioClock(ORIGIN, time.time() - hours_ago * 3600.0 / time_scale, time_scale)


def test_a_process_takes_only_the_dates_its_clock_has_reached_and_each_once() -> None:
    snapshots = DateSnapshots([ORIGIN + 5 * HOUR, ORIGIN + 20 * HOUR], _clock(hours_ago=10), end_s=86400.0)
    snapshots.take_reached(lambda: _installed(7), partition=0)
    snapshots.take_reached(lambda: _installed(9), partition=0)
    spans = snapshots.spans({0}, final=False, weight=100.0, server={})
    assert list(spans) == [ORIGIN + 5 * HOUR]
    assert spans[ORIGIN + 5 * HOUR].metrics.counters["installed_xpsp2"] == 7
    assert spans[ORIGIN + 5 * HOUR].scenario_s == 5 * 3600.0  # rates at the date are per the time played to it


def test_a_process_snapshots_what_it_measured_as_its_clock_crosses_the_date() -> None:
    clock = _clock(hours_ago=0, time_scale=36000.0)  # 10 scenario hours a wall second
    date = ORIGIN + HOUR  # 0.1 s from now
    snapshots = DateSnapshots([date], clock, end_s=86400.0)
    taken_at: list[float] = []

    def measured() -> Metrics:
        taken_at.append(clock.now())
        return _installed(len(taken_at))

    runner = gevent.spawn(snapshots.run, measured, 0)
    runner.join(timeout=2.0)
    assert runner.dead  # done after its last date
    [scenario_s] = taken_at
    # at the date, within the event loop's latency on a busy machine: well within the 1 s tick it replaces
    assert 3600.0 <= scenario_s < 3600.0 + 0.5 * 36000.0


def test_dates_past_the_end_of_the_timeline_are_never_reached() -> None:
    snapshots = DateSnapshots([ORIGIN + 30 * HOUR], _clock(hours_ago=40), end_s=24 * 3600.0)
    snapshots.take_reached(lambda: _installed(1), partition=0)
    runner = gevent.spawn(snapshots.run, lambda: _installed(1), 0)
    runner.join(timeout=1.0)
    assert runner.dead
    assert snapshots.spans({0}, final=True, weight=1.0, server={}) == {}


def test_the_master_sums_the_workers_snapshots_once_every_partition_has_sent_its_own() -> None:
    date = ORIGIN + 5 * HOUR
    workers = [DateSnapshots([date], _clock(hours_ago=6), end_s=86400.0) for _ in range(2)]
    master = DateSnapshots([date], _clock(hours_ago=6), end_s=86400.0)
    for partition, (worker, installed) in enumerate(zip(workers, (3, 4), strict=True)):
        worker.take_reached(lambda count=installed: _installed(count), partition)
    master.merge(workers[0].ship())
    assert master.spans({0, 1}, final=False, weight=1.0, server={}) == {}  # partition 1's share is still on its way
    assert master.spans({0}, final=False, weight=1.0, server={})  # once partition 1 is lost, 0 is all there is
    assert master.spans({0, 1}, final=True, weight=1.0, server={})[date].metrics.counters["installed_xpsp2"] == 3
    master.merge(workers[1].ship())
    assert workers[1].ship() == []  # each snapshot is shipped once
    assert master.spans({0, 1}, final=False, weight=1.0, server={})[date].metrics.counters["installed_xpsp2"] == 7
