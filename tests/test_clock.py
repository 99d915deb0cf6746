"""Scenario time against wall time, at one time scale or in phases that change it."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.config.pace import Pace
from harness.measure.metrics import Metrics
from harness.model.clock import ScenarioClock
from harness.server.policy import LAUNCH

# a day at 3600x, then from scenario hour 24 at 60x, then from hour 30 at 7200x again
PHASED = Pace(3600.0, ((24 * 3600.0, 60.0), (30 * 3600.0, 7200.0)))


def test_each_phase_plays_at_its_own_time_scale() -> None:
    assert PHASED.wall_at(24 * 3600.0) == pytest.approx(24.0)
    assert PHASED.wall_at(30 * 3600.0) == pytest.approx(24.0 + 360.0)
    assert PHASED.wall_at(36 * 3600.0) == pytest.approx(24.0 + 360.0 + 3.0)
    assert [PHASED.scale_at(h * 3600.0) for h in (0, 23.9, 24, 29.9, 30, 100)] == [3600, 3600, 60, 60, 7200, 7200]
    assert PHASED.fastest == 7200.0


@given(st.floats(min_value=0.0, max_value=1e7, allow_nan=False))
def test_wall_time_and_scenario_time_map_onto_each_other(scenario_s: float) -> None:
    assert PHASED.scenario_at(PHASED.wall_at(scenario_s)) == pytest.approx(scenario_s, rel=1e-9, abs=1e-6)


@given(st.floats(min_value=0.0, max_value=1e5), st.floats(min_value=0.0, max_value=1e5))
def test_scenario_time_never_runs_backwards(a: float, b: float) -> None:
    early, late = sorted((a, b))
    assert PHASED.scenario_at(early) <= PHASED.scenario_at(late)


def test_a_clock_with_phases_travels_between_master_worker_and_server_intact() -> None:
    clock = ScenarioClock(LAUNCH, 1_000.0, 3600.0, PHASED.phases)
    again = ScenarioClock.from_json(clock.to_json())
    assert again == clock
    assert again.wall_at(30 * 3600.0) == pytest.approx(1_000.0 + 24.0 + 360.0)
    assert again.scale_at(25 * 3600.0) == 60.0


@pytest.mark.parametrize("phases", [((100.0, 0.0),), ((100.0, 60.0), (50.0, 60.0)), ((0.0, 60.0),)])
def test_a_pace_refuses_a_scale_not_above_zero_or_phases_out_of_order(phases: tuple[tuple[float, float], ...]) -> None:
    with pytest.raises(ValueError, match="phases in order"):
        Pace(3600.0, phases)


@pytest.mark.parametrize("phases", [(), PHASED.phases])
def test_a_step_of_the_wall_clock_after_the_start_moves_neither_scenario_time_nor_latencies(
        phases: tuple[tuple[float, float], ...], monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ScenarioClock(LAUNCH, time.time() - 10.0, 3600.0, phases)
    before = clock.now(), clock.seconds_since(clock.now() - 3600.0)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600.0)  # NTP steps the wall clock an hour on
    after = clock.now(), clock.seconds_since(clock.now() - 3600.0)
    assert after[0] == pytest.approx(before[0], abs=3600.0 * 0.1)  # scenario time went on by what really passed
    assert after[1] == pytest.approx(before[1], abs=0.1)  # a scenario hour ago is still what it was in wall seconds
    assert clock.wall_at(0.0) == clock.wall_start  # wall times stay on the scale the clock was made with


def test_wall_time_durations_agree_with_the_wall_clock_it_was_made_with() -> None:
    clock = ScenarioClock(LAUNCH, time.time() - 5.0, 720.0)
    assert clock.seconds_since(0.0) == pytest.approx(time.time() - clock.wall_at(0.0), abs=0.01)
    assert clock.seconds_until(clock.now() + 720.0) == pytest.approx(1.0, abs=0.01)
    assert clock.now() == pytest.approx(5.0 * 720.0, abs=0.01 * 720.0)


def test_a_check_in_answered_before_its_due_time_is_counted_not_passed_off_as_fast() -> None:
    metrics = Metrics()
    for latency_s in (0.002, -0.0005, 0.0, -1.0):
        metrics.record_checkin(latency_s, ok=True)
    assert metrics.counters["latency_negative"] == 2
    assert metrics.counters["checkins"] == 4
    assert metrics.due_latency.get_min_value() == 1  # recorded, clamped to the histogram's 1 µs
