"""The fleet's schedule: AU detection intervals, an open-model rate, and due-ordered dispatch."""

from __future__ import annotations

import numpy as np
import pytest
from gevent.queue import Queue

from harness.clock import ScenarioClock
from harness.domain import LAUNCH, MEAN_INTERVAL_S
from harness.fleet import Fleet, detection_interval
from harness.metrics import Metrics
from harness.scenario import load_scenario
from harness.schedule import Dispatcher, TimingWheel
from tests.conftest import SMOKE

FLEET = load_scenario(SMOKE).fleet


def test_detection_intervals_lie_within_17_6_to_22_hours() -> None:
    intervals = np.array([detection_interval(7, i, cycle) for i in range(2000) for cycle in (0, 1, 99)])
    assert intervals.min() >= 17.6 * 3600
    assert intervals.max() <= 22 * 3600
    assert intervals.mean() == pytest.approx(MEAN_INTERVAL_S, rel=0.02)


def test_first_checks_spread_evenly_so_counts_per_window_match_the_rate() -> None:
    fleet = Fleet(FLEET)
    window = 3600.0
    counts, _ = np.histogram(fleet.next_check, bins=np.arange(0, 17 * 3600 + 1, window))
    expected = FLEET.machines / MEAN_INTERVAL_S * window
    assert np.all(np.abs(counts - expected) < 0.1 * expected)


def test_the_same_seed_gives_the_same_fleet() -> None:
    a, b = Fleet(FLEET), Fleet(FLEET)
    assert np.array_equal(a.next_check, b.next_check)
    assert a.machine(123) == b.machine(123)


def test_the_wheel_pops_every_machine_once_in_due_order_of_buckets() -> None:
    due = np.random.default_rng(1).uniform(0, 1000, 5000).astype(np.float32)
    wheel = TimingWheel(due, bucket_s=10.0, horizon_s=1100.0)
    seen = []
    for bucket in range(wheel.size):
        popped = wheel.pop()
        assert np.all(due[popped] // 10.0 == bucket)
        seen.extend(popped.tolist())
    assert sorted(seen) == list(range(5000))


def test_the_dispatcher_releases_exactly_the_due_check_ins_in_due_order() -> None:
    due = np.array([5.0, 1.0, 30.0, 2.5, 100.0], dtype=np.float32)
    queue: Queue = Queue(maxsize=10)
    clock = ScenarioClock(LAUNCH, wall_start=0.0, time_scale=1.0)
    dispatcher = Dispatcher(due, clock, queue, Metrics(), end_s=1000.0, tick_s=0.001, horizon_s=200.0)
    dispatcher.release_due(10.0)
    assert [queue.get_nowait() for _ in range(queue.qsize())] == [(1, 1.0), (3, 2.5), (0, 5.0)]
    dispatcher.schedule(1, 12.0)
    dispatcher.release_due(40.0)
    assert [queue.get_nowait() for _ in range(queue.qsize())] == [(1, 12.0), (2, 30.0)]


def test_when_the_queue_is_full_due_check_ins_wait_in_order_and_count_late_once_released() -> None:
    due = np.arange(50, dtype=np.float32) / 1000  # all due within the first 50 ms
    queue: Queue = Queue(maxsize=10)
    metrics = Metrics()
    dispatcher = Dispatcher(due, ScenarioClock(LAUNCH, 0.0, 1.0), queue, metrics, end_s=1e6, tick_s=0.001,
                            horizon_s=3600)
    dispatcher.release_due(0.05)
    assert queue.qsize() == 10 and dispatcher.backlog(0.05) == 40
    assert metrics.counters["late"] == 0
    taken = [queue.get_nowait() for _ in range(10)]
    dispatcher.release_due(5.0)  # the agents freed room much later: the next ten go out, late
    taken += [queue.get_nowait() for _ in range(10)]
    assert [index for index, _ in taken] == list(range(20))  # due order, nothing lost or repeated
    assert metrics.counters["late"] == 10 and metrics.counters["dispatched"] == 20
    assert dispatcher.backlog(5.0) == 30
    assert np.array_equal(due, np.arange(50, dtype=np.float32) / 1000)  # the clock moved on, schedules did not


def test_a_machine_scheduled_again_checks_in_once_at_its_new_time() -> None:
    due = np.array([100.0, 200.0, 300.0], dtype=np.float32)
    queue: Queue = Queue(maxsize=10)
    dispatcher = Dispatcher(due, ScenarioClock(LAUNCH, 0.0, 1.0), queue, Metrics(), end_s=1e6, tick_s=0.001,
                            horizon_s=3600)
    dispatcher.schedule(2, 50.0)  # a "detect now" pulls machine 2 forward
    dispatcher.schedule(0, 250.0)  # and machine 0 back
    dispatcher.release_due(1000.0)
    assert [queue.get_nowait() for _ in range(queue.qsize())] == [(2, 50.0), (1, 200.0), (0, 250.0)]
