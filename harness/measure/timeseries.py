"""The run over time: one row a second (rates, latency percentiles, fleet counters, threshold states).

Bounded: at most MAX_ROWS rows. When full, every other row is dropped and rows are taken half as
often, so a run of any length keeps its whole shape at a resolution that coarsens as it grows
(a 10-minute run keeps 1 s rows; a 2-hour run 2 s rows; a day-long run 32 s rows).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from harness.measure.metrics import Metrics, updates_in
from harness.measure.span import Span, observed, update_counters
from harness.measure.thresholds import Verdict

MAX_ROWS = 3600
PERCENTILES = ("p50", "p95", "p99")
CUMULATIVE = ("checkins", "late")


def state_of(verdict: Verdict) -> str:
    """A live verdict in one word: PASS, FAIL, or pending (nothing to judge yet)."""
    if verdict.observed is None:
        return "pending"
    return "PASS" if verdict.passed else "FAIL"


def make_row(wall_s: float, scenario_s: float, date: datetime, interval: Span, totals: Span, target_rps: float,
             verdicts: list[Verdict]) -> dict[str, Any]:
    """One row: rates and percentiles over `interval`, counters over the `totals` run so far."""
    counters, seconds = interval.metrics.counters, max(interval.duration_s, 1e-9)
    row: dict[str, Any] = {
        "wall_s": round(wall_s, 3),
        "scenario_s": round(scenario_s, 1),
        "date": date.isoformat(),
        "target_rps": round(target_rps, 3),
        "achieved_rps": observed(interval, "check.rps"),
        "real_achieved_rps": observed(interval, "check.rps", real=True),  # per real-world second, whole real fleet
        "error_ratio": observed(interval, "errors.ratio"),
        "goodput_bps": observed(interval, "download.goodput"),
        "real_goodput_bps": observed(interval, "download.goodput", real=True),
        "http_503_rps": counters["http_503"] / seconds,
        "backoff_rps": (counters["backoffs"] + counters["retry_after_honoured"]) / seconds,
        "thresholds": {v.expr: state_of(v) for v in verdicts},
    }
    row |= {f"{p}_ms": observed(interval, f"check.{p}") for p in PERCENTILES}
    total = totals.metrics.counters
    row |= {name: total[name] for name in CUMULATIVE}
    for update in updates_in(total):
        row |= {f"offered_{update}": total[f"offered_{update}"], f"installed_{update}": total[f"installed_{update}"]}
        with_it = sum(total[name] for name in update_counters("with", update))
        row |= {f"real_offered_{update}": total[f"offered_{update}"] * totals.weight,
                f"real_with_{update}": with_it * totals.weight}
    return row


class TimeSeries:
    """Rows taken every `stride` ticks from the measurements of those ticks."""

    def __init__(self, max_rows: int = MAX_ROWS) -> None:
        self.max_rows = max_rows
        self.rows: list[dict[str, Any]] = []
        self.stride = 1
        self._ticks = 0
        self._pending = Metrics()
        self._pending_since = 0.0

    def tick(self, delta: Metrics, wall_s: float, scenario_s: float, date: datetime, totals: Span,
             target_rps: float, verdicts: list[Verdict]) -> None:
        """Add one tick's measurements; append a row when a stride is complete."""
        self._pending.add(delta)
        self._ticks += 1
        if self._ticks % self.stride:
            return
        interval = replace(totals, metrics=self._pending, duration_s=wall_s - self._pending_since)
        self.rows.append(make_row(wall_s, scenario_s, date, interval, totals, target_rps, verdicts))
        self._pending, self._pending_since = Metrics(), wall_s
        if len(self.rows) >= self.max_rows:
            self.rows = self.rows[::2]
            self.stride *= 2
