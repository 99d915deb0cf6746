"""The flagship SP2 ramp: its throttle meets the seed's figures, in simulation and in a real run."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from harness.domain import SEED_FIGURES
from harness.scenario import load_scenario
from harness.simulate import initial_sp2, simulate
from tests.conftest import ROOT, run_locust

RAMP = ROOT / "scenarios" / "throttled_ramp.toml"
RAMP_SMOKE = ROOT / "scenarios" / "throttled_ramp-smoke.toml"
SEP_17, OCT_18 = (when for when, _, _ in SEED_FIGURES)


@pytest.mark.parametrize(("when", "figure"), [(when, figure) for when, figure, _ in SEED_FIGURES])
def test_the_ramp_meets_the_seeds_figures_within_5_percent(when: datetime, figure: float) -> None:
    rollout = simulate(load_scenario(RAMP))
    assert rollout.installed_real(when) == pytest.approx(figure, rel=0.05)


def test_the_ramp_offers_nothing_before_aug_18_and_its_cap_never_binds() -> None:
    rollout = simulate(load_scenario(RAMP))
    assert rollout.installed_real(datetime(2004, 8, 17, 23, 59, tzinfo=UTC)) == 0
    assert 0 < rollout.busiest_hour_offers <= rollout.scenario.server.offers_per_hour


def test_a_real_run_of_the_ramp_smoke_follows_its_simulation(tmp_path: Path) -> None:
    expected = simulate(load_scenario(RAMP_SMOKE))
    run = run_locust("--scenario", str(RAMP_SMOKE), results_dir=tmp_path, timeout=180)
    assert run.returncode == 0, run.stdout[-3000:]
    observed = {t["expr"]: t["observed"] for t in run.summary["thresholds"]}
    assert observed["real.fleet.sp2_installed >= 18M at 2004-09-17"] == pytest.approx(
        expected.installed_real(SEP_17), rel=0.05)
    assert observed["real.fleet.sp2_installed >= 90M at 2004-10-18"] == pytest.approx(
        expected.installed_real(OCT_18), rel=0.05)
    assert run.summary["checkins"]["late"] <= 0.001 * run.summary["checkins"]["count"]  # the dispatcher keeps up


SURGE_SMOKE = ROOT / "scenarios" / "hotfix_surge-smoke.toml"


def test_the_surge_starts_from_the_ramps_state_on_sep_19() -> None:
    surge = load_scenario(SURGE_SMOKE)
    with_sp2 = initial_sp2(surge)
    real = with_sp2.sum() * surge.fleet.weight
    assert 19e6 < real < 27e6  # ~20-25 M machines with SP2, as the ramp had them
    ramp = replace(load_scenario(RAMP), fleet=replace(surge.fleet, start_from=None))
    assert np.array_equal(with_sp2, simulate(ramp).installs <= (surge.timeline.start - ramp.timeline.start)
                          .total_seconds())


def test_the_hotfix_surge_meets_push_back_and_the_herd_drains(tmp_path: Path) -> None:
    run = run_locust("--scenario", str(SURGE_SMOKE), results_dir=tmp_path, timeout=180)
    assert run.summary is not None and run.returncode == run.summary["exit_code"], run.stderr[-2000:]
    backoff = run.summary["backoff"]
    assert backoff["http_503"] > 100 and backoff["retry_after_honoured"] == backoff["http_503"]
    rows = json.loads((tmp_path / "series.json").read_text())
    refusals = [row["http_503_rps"] for row in rows]
    peak = max(range(len(rows)), key=refusals.__getitem__)
    assert rows[peak]["date"] >= "2004-09-20"  # the surges, not the quiet weekend, meet the capacity
    assert max(refusals[-len(rows) // 5 :]) < 0.05 * refusals[peak]  # drained by the end of the week
    counters = run.summary["fleet"]["counters"]
    assert counters["installed_kb884020"] > 0
    coverage = next(t for t in run.summary["thresholds"] if "kb884020_coverage" in t["expr"])["observed"]
    assert coverage > 0.7
