"""The run over time: one row a second (rates, latency percentiles, fleet counters, threshold states).

Bounded: at most MAX_ROWS rows. When full, every other row is dropped and rows are taken half as
often, so a run of any length keeps its whole shape at a resolution that coarsens as it grows
(a 10-minute run keeps 1 s rows; a 2-hour run 2 s rows; a day-long run 32 s rows).
"""

from __future__ import annotations

import math
from array import array
from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from harness.measure.metrics import Metrics, updates_in
from harness.measure.span import Span, observed, update_counters
from harness.measure.thresholds import Verdict

MAX_ROWS = 3600
STATES = ("pending", "PASS", "FAIL")  # a threshold's live state, as kept in its column
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
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
    """Rows taken every `stride` ticks from the measurements of those ticks, kept column by column.

    A number costs eight bytes in its column's array, where a row as a dict of Python objects costs
    about 1.3 kilobytes: a day-long run's series stays small, and a long run's memory flat. A column
    starts at the row its measure first appeared in (an update first counted mid-run); `rows` gives the
    rows back as dicts, each with the keys it was made with.
    """

    def __init__(self, max_rows: int = MAX_ROWS) -> None:
        self.max_rows = max_rows
        self.stride = 1
        self._ticks = 0
        self._pending = Metrics()
        self._pending_since = 0.0
        self._count = 0
        self._columns: dict[str, tuple[int, array]] = {}  # key -> (the row it starts at, its values)
        self._states: dict[str, tuple[int, array]] = {}  # threshold -> (its first row, STATES codes)
        self._zone: tzinfo | None = None  # of the dates, kept as microseconds since the epoch
        self._order: list[str] = []  # the keys, in the order the rows were made with

    def __len__(self) -> int:
        return self._count

    def tick(self, delta: Metrics, wall_s: float, scenario_s: float, date: datetime, totals: Span,
             target_rps: float, verdicts: list[Verdict]) -> None:
        """Add one tick's measurements; append a row when a stride is complete."""
        self._pending.add(delta)
        self._ticks += 1
        if self._ticks % self.stride:
            return
        interval = replace(totals, metrics=self._pending, duration_s=wall_s - self._pending_since)
        self._append(make_row(wall_s, scenario_s, date, interval, totals, target_rps, verdicts))
        self._pending, self._pending_since = Metrics(), wall_s
        if self._count >= self.max_rows:
            self._halve()
            self.stride *= 2

    def _append(self, row: dict[str, Any]) -> None:
        assert self._columns.keys() <= row.keys(), "a measure left the rows: its column would fall out of step"
        for key, value in row.items():
            if key not in self._columns and key not in self._order:
                self._order.append(key)
            if key == "thresholds":
                for expr, state in value.items():
                    self._add(self._states, expr, "b", STATES.index(state))
            elif key == "date":
                date = datetime.fromisoformat(value)
                self._zone = date.tzinfo
                self._add(self._columns, key, "q", (date - _EPOCH) // _MICROSECOND)
            elif isinstance(value, int):
                self._add(self._columns, key, "q", value)
            else:
                self._add(self._columns, key, "d", math.nan if value is None else value)
        self._count += 1

    def _add(self, columns: dict[str, tuple[int, array]], key: str, typecode: str, value: float) -> None:
        column = columns.get(key)
        if column is None:
            column = columns[key] = (self._count, array(typecode))
        elif column[1].typecode == "q" and not isinstance(value, int):  # an integer measure gone fractional
            column = columns[key] = (column[0], array("d", column[1]))
        column[1].append(value)

    def _halve(self) -> None:
        """Keep every other row (the even ones, from the first)."""
        for columns in (self._columns, self._states):
            for key, (first, values) in columns.items():
                columns[key] = ((first + 1) // 2, values[first % 2 :: 2])
        self._count = (self._count + 1) // 2

    def column(self, key: str) -> array:
        """The values of a measure every row has (`wall_s`, `scenario_s`, `checkins`…), oldest first."""
        first, values = self._columns[key] if key in self._columns else (0, array("d"))
        assert first == 0, f"{key} is not in every row"
        return values

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Every row, oldest first, as the dict it was made as (dates in ISO 8601, unmeasured values None)."""
        rows: list[dict[str, Any]] = [{} for _ in range(self._count)]
        for key in self._order:
            if key == "thresholds":
                for index, row in enumerate(rows):
                    row[key] = {expr: STATES[codes[index - first]]
                                for expr, (first, codes) in self._states.items() if index >= first}
                continue
            first, values = self._columns[key]
            if key == "date":
                for row, value in zip(rows[first:], values, strict=True):
                    row[key] = (_EPOCH + timedelta(microseconds=value)).astimezone(self._zone).isoformat()
            elif values.typecode == "q":
                for row, value in zip(rows[first:], values, strict=True):
                    row[key] = value
            else:
                for row, value in zip(rows[first:], values, strict=True):
                    row[key] = None if math.isnan(value) else value
        return rows
