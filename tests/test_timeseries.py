"""The time series: the rows a run made, given back as made, in a few bytes a number."""

from __future__ import annotations

import gc
import json
import tracemalloc
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from harness.measure.metrics import Metrics
from harness.measure.span import Span
from harness.measure.thresholds import Verdict
from harness.measure.timeseries import TimeSeries, make_row

START = datetime(2004, 8, 18, 6, 15, tzinfo=UTC)
RATE = "check.rps >= 180"
LATER = "fleet.installed.xpsp2 >= 1"


def _play(series: TimeSeries, seconds: int, first: int = 1) -> list[dict]:
    """Feed `seconds` ticks of a run in which SP2 is first offered at second 5 and a threshold appears at 8;
    the rows make_row makes from the same measurements, one a tick."""
    made, totals = [], Metrics()
    for second in range(first, first + seconds):
        delta = Metrics()
        if second % 3:  # every third second checks nothing in: its latency percentiles are unmeasured
            for latency_s in (0.001, 0.002, 0.004):
                delta.record_checkin(latency_s, ok=True)
        if second >= 5:
            delta.count("offered_xpsp2", second)
        if second % 7 == 0:
            delta.count("http_503")
        totals.add(delta)
        verdicts = [Verdict(RATE, None if second < 2 else 3.0 * second, second % 4 != 0)]
        if second >= 8:
            verdicts.append(Verdict(LATER, 0.0, False))
        date = START + timedelta(seconds=720.5 * second)
        whole = Span(totals, float(second), 1000.0, 720.5 * second)
        interval = replace(whole, metrics=delta, duration_s=1.0)  # as the series takes a row's second
        made.append(make_row(float(second), 720.5 * second, date, interval, whole, 202.0, verdicts))
        series.tick(delta, float(second), 720.5 * second, date, whole, 202.0, verdicts)
    return made


def test_the_rows_come_back_as_they_were_made_with_the_keys_each_had() -> None:
    series = TimeSeries()
    made = _play(series, 20)
    assert series.rows == made
    assert "offered_xpsp2" not in series.rows[3] and series.rows[4]["offered_xpsp2"] == 5
    assert series.rows[2]["p50_ms"] is None  # unmeasured, as made
    assert series.rows[0]["thresholds"] == {RATE: "pending"}
    assert series.rows[9]["thresholds"] == {RATE: "PASS", LATER: "FAIL"}
    assert json.dumps(series.rows) == json.dumps(made)  # series.json holds them as made, 5 as 5 and 5.0 as 5.0


def test_a_full_series_keeps_every_other_row_and_takes_rows_half_as_often() -> None:
    series = TimeSeries(max_rows=8)
    made = _play(series, 23)
    # full at 8 rows: rows 1, 3, 5, 7 kept, then one every 2 ticks (10, 12, 14, 16) until full again:
    # 1, 5, 10, 14, then one every 4 ticks (20)
    assert [row["wall_s"] for row in series.rows] == [1.0, 5.0, 10.0, 14.0, 20.0]
    assert [row["checkins"] for row in series.rows] == [made[int(row["wall_s"]) - 1]["checkins"]
                                                        for row in series.rows]
    assert "offered_xpsp2" not in series.rows[0] and series.rows[1]["offered_xpsp2"] == 5
    assert LATER not in series.rows[1]["thresholds"] and series.rows[2]["thresholds"][LATER] == "FAIL"
    assert series.stride == 4


def test_a_row_costs_a_few_hundred_bytes_not_the_kilobytes_of_a_dict() -> None:
    series = TimeSeries()
    tracemalloc.start()
    try:
        _play(series, 50)  # every column made: from now on a row only adds to them
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        _play(series, 1000, first=51)  # what it returns is dropped: only what the series keeps is still traced
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(series) == 1050
    assert grown < 1000 * 300, f"{grown / 1000:.0f} bytes a row"
