"""The fleet's schedule: a timing wheel of due-time buckets, and due-ordered, open-model dispatch."""

from __future__ import annotations

import gevent
import numpy as np
import pytest
from gevent.queue import Queue

from harness.load.schedule import Dispatcher, TimingWheel
from harness.measure.metrics import Metrics
from harness.model.clock import ScenarioClock
from harness.model.fleet import WakeRule
from harness.server.policy import LAUNCH


def _wheel(due: np.ndarray, bucket_s: float = 1.0, horizon_s: float = 3600.0) -> TimingWheel:
    return TimingWheel(len(due), lambda first, stop: due[first:stop], lambda indices: due[indices], bucket_s, horizon_s)


def _dispatcher(due: np.ndarray, queue: Queue, metrics: Metrics | None = None, time_scale: float = 1.0,
                **wheel: float) -> Dispatcher:
    return Dispatcher(_wheel(due, **wheel), ScenarioClock(LAUNCH, wall_start=0.0, time_scale=time_scale), queue,
                      metrics or Metrics(), end_s=1e6, tick_s=0.001)


def _drain(queue: Queue) -> list[tuple[int, float]]:
    return [queue.get_nowait() for _ in range(queue.qsize())]


def test_the_wheel_pops_every_machine_once_within_the_bucket_holding_its_first_check() -> None:
    due = np.random.default_rng(1).uniform(0, 1000, 5000)
    wheel = _wheel(due, bucket_s=10.0, horizon_s=1100.0)
    seen = []
    for _ in range(wheel.size):
        indices, when = wheel.pop()
        assert np.array_equal(when // 10.0, due[indices] // 10.0)
        seen.extend(indices.tolist())
    assert sorted(seen) == list(range(5000))


def _filed_late(due: np.ndarray, earliest: np.ndarray, bucket_s: float = 10.0) -> TimingWheel:
    """A wheel that files only its first bucket before the clock starts, machines by `earliest` until then."""
    return TimingWheel(len(due), lambda first, stop: earliest[first:stop], lambda indices: due[indices], bucket_s,
                       horizon_s=1100.0, seed=3, ready_machines=0)


def _pop_all(wheel: TimingWheel) -> list[list[tuple[int, float]]]:
    return [sorted(zip(*(part.tolist() for part in wheel.pop()), strict=True)) for _ in range(wheel.size)]


def test_a_wheel_filed_by_earliest_times_and_built_while_it_pops_gives_the_same_schedule() -> None:
    rng = np.random.default_rng(2)
    due = np.where(rng.uniform(size=20_000) < 0.1, np.inf, rng.uniform(0, 1000, 20_000))
    earliest = np.where(np.isfinite(due), due * rng.uniform(size=20_000), rng.uniform(0, 1000, 20_000))
    at_once = TimingWheel(len(due), lambda first, stop: due[first:stop], lambda indices: due[indices], 10.0,
                          horizon_s=1100.0, seed=3)
    late = _filed_late(due, earliest)
    assert late.built_until < late.size  # the rest is filed while it runs
    for _ in range(5):
        assert late.file_next()  # the run files part of it while it goes, then the clock catches up
    assert _pop_all(late) == _pop_all(at_once)


def _late_pair(seed: int) -> tuple[TimingWheel, TimingWheel]:
    """The same schedule filed at once and filed late (machines first by an earlier time)."""
    rng = np.random.default_rng(seed)
    due = rng.uniform(0, 1000, 5000)
    at_once = TimingWheel(len(due), lambda first, stop: due[first:stop], lambda indices: due[indices], 10.0,
                          horizon_s=1100.0, seed=3)
    return at_once, _filed_late(due, due * rng.uniform(size=5000))


def test_the_clock_catching_up_with_a_range_being_filed_elsewhere_waits_for_it() -> None:
    at_once, late = _late_pair(4)

    def slow(work):  # noqa: ANN001, ANN202 (an offload: the search runs while other greenlets go on)
        gevent.sleep(0.05)
        return work()

    filing = gevent.spawn(lambda: [None for _ in iter(lambda: late.file_next(slow), False)])
    gevent.sleep(0.01)  # the first range is being filed
    assert _pop_all(late) == _pop_all(at_once)
    filing.get(timeout=5)  # it ended well, having filed nothing twice
    assert not any(entries is not None for entries in late._initial)


def test_a_range_whose_filing_was_cut_short_is_filed_again() -> None:
    at_once, late = _late_pair(5)

    def cut_short(work):  # noqa: ANN001, ANN202 (an offload that fails, as when the run stops meanwhile)
        raise gevent.GreenletExit

    with pytest.raises(gevent.GreenletExit):
        late.file_next(cut_short)
    assert _pop_all(late) == _pop_all(at_once)


def test_a_machine_scheduled_before_its_bucket_is_filed_checks_in_once_at_its_new_time() -> None:
    due = np.linspace(100.0, 900.0, 1000)
    wheel = _filed_late(due, earliest=due / 2)
    queue: Queue = Queue(maxsize=2000)
    dispatcher = Dispatcher(wheel, ScenarioClock(LAUNCH, 0.0, 1.0), queue, Metrics(), end_s=1e6, tick_s=0.001)
    dispatcher.schedule(999, 20.0)  # pulled forward (a "detect now") before the build reached it
    dispatcher.schedule(0, 850.0)  # and one pushed back
    while wheel.file_next():
        pass
    dispatcher.release_due(2000.0)
    released = _drain(queue)
    assert sorted(index for index, _ in released) == list(range(1000))  # each once
    when = dict(released)
    assert 20.0 <= when[999] < 30.0 and 850.0 <= when[0] < 860.0


def test_machines_that_never_check_are_not_in_the_wheel() -> None:
    due = np.array([5.0, np.inf, 7.0])
    wheel = _wheel(due)
    popped = np.concatenate([wheel.pop()[0] for _ in range(wheel.size)])
    assert sorted(popped.tolist()) == [0, 2]


def test_the_dispatcher_releases_exactly_the_due_check_ins_in_due_order() -> None:
    queue: Queue = Queue(maxsize=10)
    dispatcher = _dispatcher(np.array([5.0, 1.0, 30.0, 2.5, 100.0]), queue)
    dispatcher.release_due(10.0)
    assert [index for index, _ in _drain(queue)] == [1, 3, 0]
    dispatcher.schedule(1, 12.0)
    dispatcher.release_due(40.0)
    released = _drain(queue)
    assert [index for index, _ in released] == [1, 2]
    assert 12.0 <= released[0][1] < 14.0  # never before the time asked for, at most a bucket after


def test_when_the_queue_is_full_due_check_ins_wait_in_order_in_the_backlog() -> None:
    queue: Queue = Queue(maxsize=10)
    metrics = Metrics()
    dispatcher = _dispatcher(0.5 + np.arange(50) / 1000, queue, metrics, time_scale=100.0)  # 50 due in one bucket
    dispatcher.release_due(2.0)
    assert queue.qsize() == 10 and dispatcher.backlog(2.0) == 40
    taken = _drain(queue)
    dispatcher.release_due(50.0)  # the agents freed room much later: the next ten go out
    taken += _drain(queue)
    assert [due for _, due in taken] == sorted(due for _, due in taken)  # due order
    assert len({index for index, _ in taken}) == 20  # nothing repeated
    assert metrics.counters["dispatched"] == 20
    assert dispatcher.backlog(50.0) == 30
    machines, waiting_due = dispatcher.waiting(50.0)
    assert len(machines) == len(waiting_due) == 30 and waiting_due.min() >= max(due for _, due in taken)
    assert not set(machines.tolist()) & {index for index, _ in taken}


def test_the_backlog_counts_a_rescheduled_machine_once_at_its_new_time() -> None:
    queue: Queue = Queue(maxsize=1)
    dispatcher = _dispatcher(np.array([1.0, 2.0, 3.0]), queue)
    dispatcher.release_due(10.0)
    (first, _), = _drain(queue)
    dispatcher.schedule(2, 5.0)  # of the two in the backlog, machine 2 is moved to a later time
    machines, due = dispatcher.waiting(10.0)
    waiting = sorted(zip(due.tolist(), machines.tolist(), strict=True))
    assert first == 0 and [machine for _, machine in waiting] == [1, 2]
    assert 2.0 <= waiting[0][0] < 3.0 and 5.0 <= waiting[1][0] < 6.0
    assert dispatcher.waiting(4.0)[0].tolist() == [1]


def test_a_machine_scheduled_again_checks_in_once_at_its_new_time() -> None:
    queue: Queue = Queue(maxsize=10)
    dispatcher = _dispatcher(np.array([100.0, 200.0, 300.0]), queue)
    dispatcher.schedule(2, 50.0)  # a "detect now" pulls machine 2 forward
    dispatcher.schedule(0, 250.0)  # and machine 0 back
    dispatcher.release_due(1000.0)
    assert [index for index, _ in _drain(queue)] == [2, 1, 0]


def test_a_machine_scheduled_into_a_bucket_already_popped_still_checks_in() -> None:
    queue: Queue = Queue(maxsize=10)
    dispatcher = _dispatcher(np.array([100.0]), queue, bucket_s=10.0)
    dispatcher.release_due(60.0)
    dispatcher.schedule(0, 55.0)  # e.g. a retry due at once
    dispatcher.release_due(60.0)
    assert _drain(queue) == [(0, 55.0)]
    dispatcher.release_due(1000.0)
    assert _drain(queue) == []  # its first entry went stale


def test_rescheduled_machines_are_planned_in_one_batch_at_the_next_tick() -> None:
    queue: Queue = Queue(maxsize=10)
    calls = []

    def plan(rule: int, local: np.ndarray, earliest: np.ndarray) -> np.ndarray:
        calls.append((rule, local.tolist()))
        return earliest + 100.0

    dispatcher = Dispatcher(_wheel(np.array([1.0, 2.0])), ScenarioClock(LAUNCH, 0.0, 1.0), queue, Metrics(),
                            end_s=1e6, plan=plan, tick_s=0.001)
    dispatcher.release_due(3.0)
    _drain(queue)
    dispatcher.reschedule(0, 10.0, WakeRule.WHEN_ON)
    dispatcher.reschedule(1, 20.0, WakeRule.WHEN_ON)
    dispatcher.release_due(50.0)
    assert calls == [(WakeRule.WHEN_ON, [0, 1])] and _drain(queue) == []
    dispatcher.release_due(200.0)
    assert [index for index, _ in _drain(queue)] == [0, 1]
