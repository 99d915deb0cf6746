"""The run as it stands now: one snapshot shared by the web UI's Fleet tab and the progress line."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from harness.config.schema import Scenario
from harness.measure.metrics import Metrics
from harness.measure.thresholds import Verdict
from harness.measure.timeseries import TimeSeries, state_of
from harness.model.clock import ScenarioClock

RATE_WINDOW_S = 10.0
PUSH_BACK = {"503 answers": "http_503", "machines backed off": "backoffs",
             "waited as Retry-After asked": "retry_after_honoured"}


@dataclass(frozen=True)
class LiveState:
    """What a person watching the run wants to see."""

    scenario: str
    date: str  # the scenario clock, e.g. "2004-08-18 03:00"
    day: int  # day of the timeline, from 1
    days: int
    progress: float  # share of the timeline played, 0..1
    machines: int
    weight: float
    target_rps: float
    achieved_rps: float  # over the last RATE_WINDOW_S wall seconds of the run (or since its start)
    checkins: int
    late: int
    unfinished: int  # due and not done when the run stopped (0 while it runs)
    p95_ms: float  # due-time latency, whole run so far
    errors: int
    counters: dict[str, int]  # the fleet's: online now, and per update offered, downloading, pending, installed
    push_back: dict[str, int]  # the server's: 503 answers, machines backed off, Retry-After honoured
    checked_last_hour: int  # check-ins in the last scenario hour
    targets: tuple[tuple[str, float, float], ...]  # (what and by when, real-world figure now, target)
    failing: tuple[str, ...]  # thresholds that would fail if the run ended now
    thresholds: tuple[tuple[str, str], ...]  # (expression, "PASS"/"FAIL"/"pending")


def live_state(scenario: Scenario, clock: ScenarioClock | None, totals: Metrics, judged: Sequence[Verdict],
               series: TimeSeries, targets: Sequence[tuple[datetime, float, str, tuple[str, ...]]]) -> LiveState:
    """A snapshot of the run from what it has measured so far (no clock yet: the timeline's start).

    `series` is the run's time series; `targets` the fleet install figures asked for by a date
    (`Harness.rollout_targets`).
    """
    timeline = scenario.timeline
    elapsed = min(max(clock.now(), 0.0), timeline.scenario_seconds) if clock else 0.0
    date = timeline.start + (timeline.end - timeline.start) * (elapsed / timeline.scenario_seconds)
    return LiveState(
        scenario=scenario.name,
        date=date.strftime("%Y-%m-%d %H:%M"),
        day=int(elapsed // 86400) + 1,
        days=max(1, int(-(-timeline.scenario_seconds // 86400))),
        progress=elapsed / timeline.scenario_seconds,
        machines=scenario.fleet.machines,
        weight=scenario.fleet.weight,
        target_rps=scenario.target_rps(timeline.pace.scale_at(elapsed)),
        achieved_rps=_recent_rate(series),
        checkins=totals.counters["checkins"],
        late=totals.counters["late"],
        unfinished=totals.counters["unfinished"],
        p95_ms=totals.latency_ms(95),
        errors=totals.requests()[1],
        counters=totals.fleet_counters(),
        push_back={name: totals.counters[counter] for name, counter in PUSH_BACK.items()},
        checked_last_hour=_checked_last_hour(series, elapsed, totals.counters["checkins"]),
        targets=tuple((expr, sum(totals.counters[name] for name in counters) * scenario.fleet.weight, value)
                      for _, value, expr, counters in targets),
        failing=tuple(v.expr for v in judged if state_of(v) == "FAIL"),
        thresholds=tuple((v.expr, state_of(v)) for v in judged),
    )


def progress_line(state: LiveState) -> str:
    """One line for the terminal of a headless run."""
    failing = ", ".join(state.failing) if state.failing else "none"
    return (f"[fleetstorm] {state.date} ({state.progress:.0%} of {state.scenario})  "
            f"check-ins/s {state.achieved_rps:.0f} of {state.target_rps:.0f} target  "
            f"p95 {state.p95_ms:.1f} ms  errors {state.errors}  late {state.late}  failing: {failing}")


def _recent_rate(series: TimeSeries) -> float:
    """Check-ins per wall second over the last RATE_WINDOW_S of the time series, counted from scenario second 0.

    Not Locust's current rate: that one also averages the seconds before the fleet's first check-in.
    """
    wall, checkins = series.column("wall_s"), series.column("checkins")
    if not wall:
        return 0.0
    before = bisect_right(wall, wall[-1] - RATE_WINDOW_S) - 1  # the last row at least a window back
    since_s, since_checkins = (wall[before], checkins[before]) if before >= 0 else (0.0, 0)
    return (checkins[-1] - since_checkins) / max(wall[-1] - since_s, 1e-9)


def _checked_last_hour(series: TimeSeries, scenario_s: float, checkins_now: int) -> int:
    """Check-ins since one scenario hour ago, from the time series (the whole run if shorter)."""
    before = bisect_right(series.column("scenario_s"), scenario_s - 3600) - 1
    return checkins_now - (series.column("checkins")[before] if before >= 0 else 0)
