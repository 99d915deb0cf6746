"""Judging thresholds as the run goes: whole-run, per window (`over`) and at a scenario time (`at`).

The Judge is fed once a second with what was measured in that second. A window threshold
accumulates its own Metrics for tumbling windows of `window_s` wall seconds (counted after its
`delay`) and fails if any complete window fails; its observed value is the worst window. An `at`
threshold takes its value from the run's measurements up to its date, once they are in (see
harness/measure/snapshots.py), not from the tick after the date; a `between` threshold from what was
measured from its first date to its second (the later copy less the earlier); a run that never
reaches the date fails it. Memory is bounded: one Metrics per window threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType

from harness.config.pace import Pace
from harness.measure.metrics import Metrics
from harness.measure.span import Span, observed
from harness.measure.thresholds import Threshold, Verdict

REAL_TIME = Pace(1.0)
NO_DATES: Mapping[datetime, Span] = MappingProxyType({})


@dataclass
class _Window:
    """The open window of one `over` threshold, and what earlier windows showed."""

    started_s: float | None = None
    metrics: Metrics = field(default_factory=Metrics)
    judged: int = 0
    failed: int = 0
    worst: float | None = None


def _worse(threshold: Threshold, a: float | None, b: float) -> float:
    """The value that is further on the failing side of the threshold's operator."""
    if a is None:
        return b
    return max(a, b) if threshold.op in ("<", "<=") else min(a, b)


def _between(since: Span, until: Span) -> Span:
    """What was measured from one date's copy of the run to a later one's."""
    scenario_s = None if until.scenario_s is None or since.scenario_s is None else until.scenario_s - since.scenario_s
    return replace(until, metrics=until.metrics.since(since.metrics), duration_s=until.duration_s - since.duration_s,
                   scenario_s=scenario_s)


class Judge:
    """Keeps the live state of every threshold and gives the final verdicts."""

    def __init__(self, thresholds: tuple[Threshold, ...], pace: Pace = REAL_TIME) -> None:
        self.thresholds = thresholds
        self.pace = pace  # the scenario time a window of wall time played
        self._windows = {t.expr: _Window() for t in thresholds if t.window_s is not None}
        self._at_values: dict[str, float | None] = {}

    def feed(self, delta: Metrics, wall_s: float, totals: Span, at_dates: Mapping[datetime, Span] = NO_DATES) -> None:
        """Take one tick: `delta` was measured up to `wall_s`; `totals` is the run so far.

        `at_dates` holds the run up to each `at` date reached so far; an `at` threshold keeps the
        value it first sees there.
        """
        for threshold in self.thresholds:
            if threshold.window_s is not None and wall_s >= threshold.delay_s:
                self._feed_window(threshold, delta, wall_s, totals)
            if threshold.expr in self._at_values:
                continue
            if threshold.at in at_dates:
                self._at_values[threshold.expr] = observed(at_dates[threshold.at], threshold.key, threshold.real)
            elif threshold.between is not None and all(date in at_dates for date in threshold.between):
                since, until = (at_dates[date] for date in threshold.between)
                self._at_values[threshold.expr] = observed(_between(since, until), threshold.key, threshold.real)

    def _feed_window(self, threshold: Threshold, delta: Metrics, wall_s: float, totals: Span) -> None:
        window = self._windows[threshold.expr]
        if window.started_s is None:
            window.started_s = wall_s
            return  # the window starts after the delay, with the next tick's measurements
        window.metrics.add(delta)
        assert threshold.window_s is not None
        if wall_s - window.started_s < threshold.window_s:
            return
        span = replace(totals, metrics=window.metrics, duration_s=wall_s - window.started_s,
                       scenario_s=self.pace.scenario_at(wall_s) - self.pace.scenario_at(window.started_s))
        value = observed(span, threshold.key, threshold.real)
        if value is not None:
            window.judged += 1
            window.worst = _worse(threshold, window.worst, value)
            window.failed += not threshold.passes(value)
        window.started_s, window.metrics = wall_s, Metrics()

    def verdict(self, threshold: Threshold, totals: Span, final: bool) -> Verdict:
        """One threshold's state now (`final`: the run is over, unreached dates fail)."""
        if threshold.window_s is not None:
            window = self._windows[threshold.expr]
            if window.judged == 0:
                return Verdict(threshold.expr, None, False, "no complete window")
            detail = f"{window.failed} of {window.judged} windows failed"
            return Verdict(threshold.expr, window.worst, window.failed == 0, detail)
        dates = (threshold.at,) if threshold.at is not None else threshold.between
        if dates is not None:
            if threshold.expr not in self._at_values:
                detail = f"the run did not reach {dates[-1]:%Y-%m-%d %H:%M}"
                return Verdict(threshold.expr, None, not final, detail)
            value = self._at_values[threshold.expr]
            detail = "at scenario time" if threshold.at is not None else "between scenario times"
            return Verdict(threshold.expr, value, value is not None and threshold.passes(value), detail)
        value = observed(totals, threshold.key, threshold.real)
        return Verdict(threshold.expr, value, value is not None and threshold.passes(value),
                       "" if value is not None else "not measured")

    def verdicts(self, totals: Span, final: bool = False) -> list[Verdict]:
        return [self.verdict(threshold, totals, final) for threshold in self.thresholds]

    def abort_reason(self, totals: Span, wall_s: float) -> str | None:
        """The first abort_on_fail threshold failing now (after its delay), if any."""
        for threshold in self.thresholds:
            if threshold.abort_on_fail and wall_s >= threshold.delay_s:
                verdict = self.verdict(threshold, totals, final=False)
                if not verdict.passed and verdict.observed is not None:
                    return threshold.expr
        return None
