"""A run always ends: at the timeline's end or at -t, whichever comes first, and says which."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import SMOKE, run_locust

TIMELINE_S = 5  # the smoke scenario until 07:15: one scenario hour at time scale 720
START_UP_S = 15  # a bound on start-up and shut-down around the run itself, on a busy machine


@pytest.mark.parametrize(
    ("run_time", "lasts_s", "ended_by"),
    [
        (None, TIMELINE_S, "the timeline's end"),
        ("3s", 3, "the run time limit (-t 3s)"),
        ("60s", TIMELINE_S, "the timeline's end"),
        ("1m", TIMELINE_S, "the timeline's end"),
    ],
    ids=["timeline", "run-time-shorter", "run-time-longer", "run-time-in-minutes"],
)
def test_a_run_ends_at_the_timelines_end_or_its_run_time_whichever_comes_first(
        run_time: str | None, lasts_s: float, ended_by: str, tmp_path: Path) -> None:
    started = time.monotonic()
    run = run_locust("--scenario", str(SMOKE), "--until", "2004-08-18T07:15:00Z",
                     *(("-t", run_time) if run_time else ()), results_dir=tmp_path, timeout=lasts_s + 60)
    took_s = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-2000:]
    assert took_s < lasts_s + START_UP_S
    summary = run.summary
    assert summary is not None and summary["exit_code"] == 0 and summary["ended_by"] == ended_by
    assert summary["duration_s"] == pytest.approx(lasts_s, abs=1.5)
    assert (tmp_path / "junit.xml").exists() and (tmp_path / "report.html").exists()
    assert f"ended by      {ended_by}" in run.stdout
