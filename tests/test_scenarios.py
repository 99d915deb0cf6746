"""The flagship SP2 ramp: its throttle meets the seed's figures, in simulation and in a real run."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.domain import SEED_FIGURES
from harness.scenario import load_scenario
from harness.simulate import simulate
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
    assert observed["real.fleet.sp2_installed >= 19M at 2004-09-17"] == pytest.approx(
        expected.installed_real(SEP_17), rel=0.05)
    assert observed["real.fleet.sp2_installed >= 95M at 2004-10-18"] == pytest.approx(
        expected.installed_real(OCT_18), rel=0.05)
    assert run.summary["checkins"]["late"] == 0
