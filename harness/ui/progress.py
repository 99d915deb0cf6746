"""The run as it stands now: one snapshot shared by the web UI's Fleet tab and the progress line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from harness.config.schema import Scenario
from harness.measure.metrics import Metrics
from harness.measure.thresholds import Verdict
from harness.measure.timeseries import state_of
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
               rows: list[dict], targets: Sequence[tuple[datetime, float, str, tuple[str, ...]]]) -> LiveState:
    """A snapshot of the run from what it has measured so far (no clock yet: the timeline's start).

    `rows` is the time series; `targets` the fleet install figures asked for by a date (`Harness.rollout_targets`).
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
        achieved_rps=_recent_rate(rows),
        checkins=totals.counters["checkins"],
        late=totals.counters["late"],
        unfinished=totals.counters["unfinished"],
        p95_ms=totals.latency_ms(95),
        errors=totals.requests()[1],
        counters=totals.fleet_counters(),
        push_back={name: totals.counters[counter] for name, counter in PUSH_BACK.items()},
        checked_last_hour=_checked_last_hour(rows, elapsed, totals.counters["checkins"]),
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


def _recent_rate(rows: list[dict]) -> float:
    """Check-ins per wall second over the last RATE_WINDOW_S of the time series, counted from scenario second 0.

    Not Locust's current rate: that one also averages the seconds before the fleet's first check-in.
    """
    if not rows:
        return 0.0
    last = rows[-1]
    earlier = [row for row in rows if row["wall_s"] <= last["wall_s"] - RATE_WINDOW_S]
    since_s, since_checkins = (earlier[-1]["wall_s"], earlier[-1]["checkins"]) if earlier else (0.0, 0)
    return (last["checkins"] - since_checkins) / max(last["wall_s"] - since_s, 1e-9)


def _checked_last_hour(rows: list[dict], scenario_s: float, checkins_now: int) -> int:
    """Check-ins since one scenario hour ago, from the time series (the whole run if shorter)."""
    before = [row["checkins"] for row in rows if row["scenario_s"] <= scenario_s - 3600]
    return checkins_now - (before[-1] if before else 0)
