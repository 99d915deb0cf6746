"""The flagship SP2 ramp: its throttle meets the seed's figures, in simulation and in a real run."""

from __future__ import annotations

import functools
from argparse import Namespace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from msgspec.structs import replace

from harness.config.errors import InputError
from harness.config.options import rate_line, resolve_scenario
from harness.config.scenario import load_scenario
from harness.config.schema import Rollouts, Scenario, Step
from harness.config.world import default_world
from harness.measure.thresholds import Threshold, parse_thresholds
from harness.model.fleet import Partition
from harness.model.simulation import Rollout, compare_with_seed, initial_installs, simulate, with_seed
from tests.conftest import ROOT, run_locust

RAMP = ROOT / "scenarios" / "throttled_ramp.toml"
RAMP_SMOKE = ROOT / "scenarios" / "throttled_ramp-smoke.toml"
FIGURES = default_world().figures
SEP_17, OCT_18, OCT_22 = (figure.at for figure in FIGURES)
SEEDS = range(1, 21)


@functools.cache
def _ramp_over_seeds() -> tuple[Rollout, ...]:
    """The ramp simulated with fleet seeds 1-20: twenty samples of the same real fleet."""
    return tuple(simulate(with_seed(load_scenario(RAMP), seed)) for seed in SEEDS)


def _dated_thresholds(scenario: Scenario) -> list[Threshold]:
    rules = parse_thresholds(scenario.thresholds, "ramp", scenario.world)
    return [rule for rule in rules if rule.key in ("fleet.installed.xpsp2", "fleet.delivered.xpsp2") and rule.at]


def _simulated(run: Rollout, threshold: Threshold) -> float:
    """What a dated SP2 threshold observes in a simulation: through the client, or the site too (delivered)."""
    real = run.installed_real("xpsp2", threshold.at, site=threshold.key == "fleet.delivered.xpsp2")
    return real if threshold.real else real / run.scenario.fleet.weight


def test_the_ramps_two_sided_thresholds_hold_for_at_least_19_of_20_fleet_seeds() -> None:
    thresholds = _dated_thresholds(load_scenario(RAMP))
    assert {t.op for t in thresholds} == {">=", "<="} and len(thresholds) == 4
    holding = [all(t.passes(_simulated(run, t)) for t in thresholds) for run in _ramp_over_seeds()]
    assert sum(holding) >= 19


def test_the_calibrated_throttle_meets_the_fitted_figures_on_average_and_the_held_out_one_is_shown() -> None:
    runs = _ramp_over_seeds()
    for figure in FIGURES:
        mean = np.mean([run.installed_real("xpsp2", figure.at, figure.site) for run in runs])
        if figure.role == "fitted":  # `make calibrate` wrote the throttle: it must still meet them
            assert mean == pytest.approx(figure.machines, rel=0.01)
        else:  # nothing was fitted to AP's Oct 22 figure: the model's difference is shown, not hidden
            line = next(row for row in compare_with_seed(load_scenario(RAMP), 2).splitlines() if "held_out" in row)
            assert f"{figure.machines:,}" in line and "%" in line


def test_a_ramp_without_its_throttle_fails_the_two_sided_thresholds() -> None:
    ramp = load_scenario(RAMP)
    everyone = replace(ramp.server.rollout_of("xpsp2"), steps=(Step(datetime(2004, 8, 18, tzinfo=UTC), 100.0),))
    unthrottled = simulate(replace(ramp, server=replace(ramp.server, rollout=Rollouts((("xpsp2", everyone),)))))
    assert not all(t.passes(_simulated(unthrottled, t)) for t in _dated_thresholds(ramp))


def test_the_ramp_offers_nothing_before_aug_18_and_its_cap_never_binds() -> None:
    rollout = simulate(load_scenario(RAMP))
    assert rollout.installed_real("xpsp2", datetime(2004, 8, 17, 23, 59, tzinfo=UTC)) == 0
    assert 0 < rollout.busiest_hour_offers["xpsp2"] <= rollout.scenario.server.offers_per_hour


def test_a_real_run_of_the_ramp_smoke_follows_its_simulation(tmp_path: Path) -> None:
    expected = simulate(load_scenario(RAMP_SMOKE))
    run = run_locust("--scenario", str(RAMP_SMOKE), results_dir=tmp_path, timeout=180)
    assert run.returncode == 0, run.stdout[-3000:]
    observed = {t["expr"]: t["observed"] for t in run.summary["thresholds"]}
    # Sep 17 through AU and the Windows Update site, Oct 18 through AU alone, as the figures count
    assert observed["real.fleet.delivered.xpsp2 >= 16M at 2004-09-17"] == pytest.approx(
        expected.installed_real("xpsp2", SEP_17), rel=0.05)
    assert observed["real.fleet.installed.xpsp2 >= 90M at 2004-10-18"] == pytest.approx(
        expected.installed_real("xpsp2", OCT_18, site=False), rel=0.05)
    assert run.summary["fleet"]["counters"]["installed_xpsp2_site"] > 0
    assert run.summary["checkins"]["late"] <= 0.001 * run.summary["checkins"]["count"]  # the dispatcher keeps up


def _options(scenario: Path, **given: str) -> Namespace:
    """The command line's options as the harness reads them: only `given` differ from the defaults."""
    defaults = {"fleet_size": "", "time_scale": "", "target_rps": "", "seed": "", "until": "", "protocol": ""}
    return Namespace(scenario=str(scenario), threshold=[], **(defaults | given))


@pytest.mark.parametrize(("fleet_size", "weight"), [("20000", 10_500), ("5000", 42_000)])
def test_fleet_size_resamples_the_same_real_fleet_and_says_so_at_start_up(fleet_size: str, weight: float) -> None:
    options = _options(RAMP, fleet_size=fleet_size)
    fleet = resolve_scenario(options).fleet
    assert (fleet.machines, fleet.real_fleet, fleet.weight) == (int(fleet_size), 210_000_000, weight)
    assert rate_line(options).startswith(f"{int(fleet_size):,} machines standing for 210,000,000 (weight {weight:,})")


def test_a_fleet_size_derived_from_the_rate_keeps_the_real_fleet() -> None:
    options = _options(RAMP, target_rps="1000", time_scale="10080")
    fleet = resolve_scenario(options).fleet
    assert fleet.real_fleet == 210_000_000 and fleet.weight == pytest.approx(210e6 / fleet.machines)
    assert f"fleet size derived, {fleet.machines:,} machines standing for 210,000,000" in rate_line(options)


@pytest.mark.parametrize(("given", "flag"), [({"fleet_size": "300M"}, "--fleet-size"),
                                             ({"target_rps": "1e6", "time_scale": "1"}, "--target-rps")])
def test_a_sample_larger_than_the_real_fleet_is_refused(given: dict[str, str], flag: str) -> None:
    with pytest.raises(InputError, match=f"^{flag}: .* more than the 210,000,000 real machines"):
        resolve_scenario(_options(RAMP, **given))


def test_the_simulation_at_twice_the_sample_stands_for_the_same_fleet() -> None:
    default, doubled = (simulate(resolve_scenario(_options(RAMP, fleet_size=size))) for size in ("", "50000"))
    # Samples of 25,000 and 50,000 machines differ by ~2 % (one s.d.) at Sep 17; a kept weight would double.
    assert doubled.installed_real("xpsp2", SEP_17) == pytest.approx(default.installed_real("xpsp2", SEP_17), rel=0.1)


# 19 days in 12 wall seconds at ~1,200 check-ins/s for 1,000 machines. A whole number of seconds:
# with a fractional one, the wall time elapsed can fall a rounding error short of it and never end the run.
SHORT_RAMP = ("--fleet-size", "1000", "--time-scale", "136800", "--until", "2004-08-28")


def test_a_live_run_with_another_fleet_size_agrees_with_the_simulation_and_the_full_sample(tmp_path: Path) -> None:
    end = datetime(2004, 8, 28, tzinfo=UTC)
    run = run_locust("--scenario", str(RAMP), *SHORT_RAMP, "--threshold", "real.fleet.delivered.xpsp2 > 0",
                     results_dir=tmp_path, timeout=60)
    assert run.summary is not None, run.stderr[-2000:]
    assert "1,000 machines standing for 210,000,000 (weight 210,000) at time scale 136800" in run.stderr
    fleet = run.summary["fleet"]
    assert (fleet["machines"], fleet["real_machines"], fleet["weight"]) == (1000, 210_000_000, 210_000)
    live = next(t["observed"] for t in run.summary["thresholds"] if t["expr"] == "real.fleet.delivered.xpsp2 > 0")
    simulated = simulate(resolve_scenario(_options(RAMP, fleet_size="1000"))).installed_real("xpsp2", end)
    # The same 1,000 machines: a live run differs from its simulation by a machine or two (due times
    # rounded up to the dispatcher's buckets; late check-ins when the load generator is busy).
    assert live == pytest.approx(simulated, abs=3 * 210_000)
    # 1,000 machines sample the fleet with a spread of ~16 % (one s.d. over 20 seeds) on Aug 28.
    assert live == pytest.approx(simulate(load_scenario(RAMP)).installed_real("xpsp2", end), rel=0.35)


SURGE = ROOT / "scenarios" / "hotfix_surge.toml"
SURGE_SMOKE = ROOT / "scenarios" / "hotfix_surge-smoke.toml"


@pytest.mark.parametrize(("path", "machines", "weight", "wall_seconds"), [
    (RAMP, 25_000, 8_400, 634.3), (RAMP_SMOKE, 1000, 210_000, 40), (SURGE, 20_000, 10_500, 300),
    (SURGE_SMOKE, 4000, 52_500, 20)])
def test_the_xp_scenarios_sample_the_xp_install_base_as_their_comments_say(path: Path, machines: int, weight: float,
                                                                             wall_seconds: float) -> None:
    scenario = load_scenario(path)
    assert (scenario.fleet.machines, scenario.fleet.weight) == (machines, weight)
    assert scenario.timeline.wall_seconds == pytest.approx(wall_seconds, rel=0.01)


def test_the_smoke_scenarios_are_their_full_versions_with_a_smaller_sample_played_faster() -> None:
    ramp, ramp_smoke = load_scenario(RAMP), load_scenario(RAMP_SMOKE)
    assert ramp_smoke == replace(ramp, path=str(RAMP_SMOKE), name="throttled_ramp-smoke",
                                 timeline=ramp.timeline.with_time_scale(151_200).until(OCT_18),
                                 fleet=replace(ramp.fleet, machines=1000),
                                 server=replace(ramp.server, offers_per_hour=10),
                                 threshold_table=ramp_smoke.threshold_table)  # its own, held to 20 % and 10 %
    surge, surge_smoke = load_scenario(SURGE), load_scenario(SURGE_SMOKE)
    assert surge_smoke == replace(surge, path=str(SURGE_SMOKE), name="hotfix_surge-smoke",
                                  timeline=surge.timeline.with_time_scale(21_600),
                                  fleet=replace(surge.fleet, machines=4000))


def test_the_surge_plays_the_ramps_fleet_and_sp2_throttle_from_where_the_ramp_left_it() -> None:
    ramp, surge = load_scenario(RAMP), load_scenario(SURGE)
    assert surge.fleet == replace(ramp.fleet, machines=20_000, start_from=str(RAMP))
    assert surge.server.rollout_of("xpsp2") == ramp.server.rollout_of("xpsp2")
    assert (surge.server.offers_per_hour, surge.server.capacity, surge.server.max_real_rps) == (0, 200, 5000)
    assert [update for update, _ in surge.server.rollouts] == ["xpsp2", "kb884020"]


def test_the_surge_starts_from_the_ramps_state_on_sep_19() -> None:
    surge = load_scenario(SURGE_SMOKE)
    with_sp2 = initial_installs(surge)["xpsp2"]
    real = with_sp2.sum() * surge.fleet.weight
    assert 19e6 < real < 27e6  # ~20-25 M machines with SP2, as the ramp had them
    ramp = replace(load_scenario(RAMP), fleet=replace(surge.fleet, start_from=None))
    assert np.array_equal(with_sp2, simulate(ramp).installs["xpsp2"] <= (surge.timeline.start - ramp.timeline.start)
                          .total_seconds())


def test_each_worker_starts_its_partition_of_the_surge_as_the_whole_fleet_would() -> None:
    surge = load_scenario(SURGE_SMOKE)
    whole = initial_installs(surge)
    for index in range(3):
        mine = initial_installs(surge, Partition(index, 3))
        assert all(np.array_equal(mine[update], whole[update][index::3]) for update in whole)


def test_the_hotfix_surge_meets_push_back_at_its_evening_peaks_and_the_refused_come_back(tmp_path: Path) -> None:
    run = run_locust("--scenario", str(SURGE_SMOKE), results_dir=tmp_path, timeout=180)
    summary = run.summary
    assert summary is not None and run.returncode == summary["exit_code"], run.stderr[-2000:]
    backoff, counters = summary["backoff"], summary["fleet"]["counters"]
    # a machine's own client waits as Retry-After asks; a user refused at the site gives up instead
    assert backoff["http_503"] > 100
    assert 0.9 * backoff["http_503"] <= backoff["retry_after_honoured"] <= backoff["http_503"]
    observed = {t["expr"].split(" between ")[-1]: t["observed"] for t in summary["thresholds"]}
    release_days = observed["2004-09-21T12:00 and 2004-09-23T00:00"]
    # judged over the release's days, the refusals are not diluted by the quiet days around them
    assert release_days > 1.5 * backoff["http_503"] / summary["checkins"]["count"]
    assert observed["2004-09-22T03:00 and 2004-09-22T12:00"] < 0.01  # the refused came back; the night is clear
    assert counters["installed_kb884020"] > 0 and counters["site_visits"] > 50
    assert observed["fleet.coverage.kb884020 >= 70% at 2004-09-23T18:00"] > 0.65
