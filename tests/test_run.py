"""End to end: real `locust` runs against the real reference server on 127.0.0.1."""

from __future__ import annotations

import csv
import json
import re
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from harness.config.scenario import load_scenario, with_overrides
from harness.load.embedded_server import EmbeddedServer
from harness.model.fleet import Fleet
from harness.model.network_install import Deployments
from harness.model.simulation import simulate
from harness.output.report import render_report
from harness.server.policy import LAUNCH
from tests.conftest import ROOT, SMOKE, run_locust, server_metrics

RUN = ("--scenario", str(SMOKE), "-t", "6s")
RAMP = ROOT / "scenarios" / "throttled_ramp-smoke.toml"


def test_a_short_smoke_run_meets_its_rate_moves_bytes_and_judges_every_threshold(tmp_path: Path) -> None:
    run = run_locust(*RUN, results_dir=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    summary = run.summary
    assert summary is not None
    checkins = summary["checkins"]
    assert checkins["count"] > 500
    # against the reference server, which keeps up: the fleet's arrival rate, within 2 %
    assert checkins["achieved_rps"] == pytest.approx(checkins["target_rps"], rel=0.02)
    assert summary["downloads"]["bytes"] > 0
    assert summary["fleet"]["counters"]["installed_xpsp2"] > 0
    assert summary["latency_ms"]["p50"] > 0
    # a server that keeps up leaves only what fell due in the run's last moments, each counted once
    unfinished = checkins["unfinished"]
    assert unfinished["count"] <= summary["agents"]["size"] + 0.01 * checkins["count"]
    assert unfinished["age_ms"]["max"] < 1000 and summary["harness_errors"]["count"] == 0
    assert [t["expr"] for t in summary["thresholds"]] == ["check.p95 < 250ms", "check.rps >= 180", "errors.ratio < 1%"]
    assert all(t["passed"] and t["observed"] is not None for t in summary["thresholds"])
    assert "PASS  check.rps >= 180" in run.stdout
    assert "[fleetstorm] 2004-08-18" in run.stdout  # the progress line


def test_a_timeline_phase_changes_the_time_scale_and_the_fleet_follows_with_its_rate(tmp_path: Path) -> None:
    scenario = tmp_path / "phased.toml"  # 3 wall seconds at 720x, then 1440x: twice the check-ins per second
    scenario.write_text(SMOKE.read_text().replace(
        "time_scale = 720", "time_scale = 720\n[[timeline.phases]]\nfrom = 2004-08-18T06:51:00Z\ntime_scale = 1440", 1))
    run = run_locust("--scenario", str(scenario), "-t", "8s", results_dir=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "from 2004-08-18 06:51 at time scale 1440: 404.0/s" in run.stderr
    series = json.loads((tmp_path / "series.json").read_text())
    before = [row for row in series if 0 < row["scenario_s"] < 36 * 60]
    after = [row for row in series if row["scenario_s"] > 36 * 60 + 2 * 1440]  # a second after the change
    assert before and len(after) >= 2
    assert [row["target_rps"] for row in before] == pytest.approx([202.0] * len(before), rel=0.01)
    assert [row["target_rps"] for row in after] == pytest.approx([404.0] * len(after), rel=0.01)
    achieved = sum(row["achieved_rps"] for row in after) / len(after)
    assert achieved == pytest.approx(404.0, rel=0.1)
    checkins = run.summary["checkins"]
    assert 202.0 < checkins["target_rps"] < 404.0  # the run's mean
    assert checkins["achieved_rps"] == pytest.approx(checkins["target_rps"], rel=0.03)


def test_administrators_deploy_the_network_install_package_as_scenario_time_reaches_their_dates(
        tmp_path: Path) -> None:
    scenario = tmp_path / "network.toml"  # every organisation deploys within the first scenario hour (5 s)
    scenario.write_text(SMOKE.read_text().replace("enterprise_share = 0.1", "enterprise_share = 0.1\n"
                        '[fleet.network_install]\nshare = 1.0\nfrom = 2004-08-18T06:15:00Z\nover = "1h"', 1))
    run = run_locust("--scenario", str(scenario), "-t", "7s", "--csv", str(tmp_path / "locust"), results_dir=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    spec = load_scenario(scenario).fleet
    managed = int(Fleet(spec, LAUNCH).enterprise_mask(np.arange(spec.machines)).sum())
    # Every managed machine gets SP2 from its administrator, unless Automatic Updates installed it
    # first (a machine is not counted twice): in the smoke's 10 % rollout, a few at most.
    assert 0.95 * managed < run.summary["fleet"]["counters"]["installed_xpsp2_network"] <= managed
    with (tmp_path / "locust_stats.csv").open() as stats:
        rows = {row["Name"]: row for row in csv.DictReader(stats)}
    deployments = Deployments.plan(spec.network_install, spec, LAUNCH, "xpsp2")
    fleet = Fleet(spec, LAUNCH)
    downloads = sum(deployments.downloads(position, len(deployments.managed(fleet, position)))
                    for position in range(len(deployments.seconds)))
    assert downloads > 0
    assert (rows["package"]["Request Count"], rows["package"]["Failure Count"]) == (str(downloads), "0")
    assert run.summary["fleet"]["counters"]["packages_fetched"] == downloads  # each one downloaded and verified


def test_the_report_has_every_plot_drawn_and_the_thresholds_table(tmp_path: Path) -> None:
    # 07:15 is 5 s into the run: well before -t 6s ends it (07:30 would need 6.25 s)
    run = run_locust(*RUN, "--threshold", "real.fleet.sp2_installed >= 1 at 2004-08-18T07:15", results_dir=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    page = (tmp_path / "report.html").read_text()
    assert "http" not in page.split("<svg", 1)[0].replace("http-equiv", "")  # nothing to fetch
    figures = re.findall(r"<figure id='plot-(\w+)'>(.*?)</figure>", page, flags=re.S)
    assert [name for name, _ in figures] == ["checkins", "latency", "rollout", "pushback", "goodput"]
    for name, svg in figures:
        assert svg.startswith("<svg") and "not recorded in this run" not in svg, name
        assert len(re.findall(r"<path ", svg)) > 10, name
    table = re.search(r"<table id='thresholds'>(.*?)</table>", page, flags=re.S).group(1)
    assert len(re.findall(r"<tr class='pass'>", table)) == 4
    series = json.loads((tmp_path / "series.json").read_text())
    assert len(series) >= 4 and all(row["achieved_rps"] is not None for row in series[1:])
    parameters = re.search(r"<table id='parameters'>(.*?)</table>", page, flags=re.S).group(1)
    for row in ("ended by", "check-ins late", "check-ins unfinished count", "check-ins unfinished age_ms max",
                "harness errors"):
        assert f"<th>{row}</th>" in parameters, row
    rollout = dict(figures)["rollout"]
    assert "throttle: xpsp2 (%)" in rollout and "real.fleet.sp2_installed &gt;= 1 at 2004-08-18T07:15: PASS" in rollout
    assert all("scenario date" in svg for _, svg in figures)
    assert "4 of 4 thresholds passed" in re.search(r"<section id='verdict' class='pass'>(.*?)</section>", page,
                                                   flags=re.S).group(1)


def test_the_report_opens_on_what_failed_by_how_much_and_shades_the_timeline_s_phases() -> None:
    summary = {"scenario": "surge", "exit_code": 1, "ended_by": "the timeline's end",
               "checkins": {"count": 1000, "achieved_rps": 100.0, "target_rps": 100.0, "late": 0},
               "timeline": {"start": "2004-10-13T00:00:00+00:00", "end": "2004-10-14T00:00:00+00:00",
                            "phases": [{"from": "2004-10-13T00:00:00+00:00", "time_scale": 3600},
                                       {"from": "2004-10-13T12:00:00+00:00", "time_scale": 60}]},
               "thresholds": [{"expr": "check.p95 < 250ms", "observed": 310.0, "passed": False,
                               "detail": "worst window from 2004-10-13 14:00"},
                              {"expr": "errors.ratio < 1%", "observed": 0.0, "passed": True, "detail": ""}]}
    series = [{"date": f"2004-10-13T{hour:02d}:00:00+00:00", "wall_s": hour, "p95_ms": 300.0} for hour in range(24)]
    page = render_report(summary, series)
    verdict = re.search(r"<section id='verdict' class='fail'>(.*?)</section>", page, flags=re.S).group(1)
    assert "1 of 2 thresholds passed" in verdict
    assert "check.p95 &lt; 250ms</b>: observed 310, 24% over its limit — worst window from 2004-10-13 14:00" in verdict
    assert "errors.ratio" not in verdict
    latency = re.search(r"<figure id='plot-latency'>(.*?)</figure>", page, flags=re.S).group(1)
    assert "×3600" in latency and "×60" in latency


def test_an_at_threshold_observes_the_fleet_at_its_date_as_the_simulation_does(tmp_path: Path) -> None:
    # The throttled ramp from Aug 16, steepened to 100 % by Aug 28 so that a thousand machines install
    # a few hundred times by the date; at 120,000x a 1 Hz tick is 33 scenario hours, in which the
    # fleet would grow by a quarter. No machine installs within an hour of 04:00 on Aug 25, so due times
    # rounded up to the dispatcher's buckets (12 scenario minutes here) move no install across it.
    date = "2004-08-25T04:00"
    scenario = tmp_path / "steep_ramp.toml"
    scenario.write_text(f'extends = "{RAMP}"\n'
                        "[timeline]\nstart = 2004-08-16T00:00:00Z\nend = 2004-08-30T00:00:00Z\n"
                        "[server]\noffers_per_hour = 0\n"
                        "[server.rollout.xpsp2]\nsteps = [{ at = 2004-08-18T00:00:00Z, percent = 1 }, "
                        "{ at = 2004-08-28T00:00:00Z, percent = 100 }]\n"
                        f'[thresholds]\nrules = ["real.fleet.sp2_installed >= 1 at {date}"]\n')
    run = run_locust("--scenario", str(scenario), "--fleet-size", "1000", "--time-scale", "120000", "-t", "8s",
                     results_dir=tmp_path)  # the date falls 6.6 s in
    assert run.returncode == 0, run.stderr[-2000:]
    [verdict] = run.summary["thresholds"]
    rollout = simulate(with_overrides(load_scenario(scenario), fleet_size=1000))
    simulated = rollout.installed_real("xpsp2", datetime.fromisoformat(date).replace(tzinfo=UTC), site=False)
    machines = simulated / rollout.scenario.fleet.weight
    assert 100 < machines < 300  # mid-ramp: 12 % of the machines (four languages out by then), more on their way
    assert verdict["observed"] == pytest.approx(simulated, rel=0.01), run.summary["checkins"]


def test_a_threshold_that_cannot_hold_fails_the_run_with_exit_code_1_and_junit_says_which(tmp_path: Path) -> None:
    run = run_locust(*RUN, "--threshold", "check.rps >= 2020", results_dir=tmp_path)  # 10x the target
    assert run.returncode == 1
    assert run.summary is not None and run.summary["exit_code"] == 1
    failed = [t for t in run.summary["thresholds"] if not t["passed"]]
    assert [t["expr"] for t in failed] == ["check.rps >= 2020"]
    assert "FAIL  check.rps >= 2020" in run.stdout
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    outcomes = {case.get("name"): case.find("failure") is None for case in suite.findall("testcase")}
    assert outcomes == {"check.p95 < 250ms": True, "check.rps >= 180": True, "errors.ratio < 1%": True,
                        "check.rps >= 2020": False}


def test_abort_on_fail_stops_the_run_early_with_exit_code_1(tmp_path: Path) -> None:
    scenario = tmp_path / "abort.toml"
    aborting = '{ expr = "check.rps >= 2020", abort_on_fail = true, delay = "2s" },'
    scenario.write_text(SMOKE.read_text().replace('"errors.ratio < 1%",', f'"errors.ratio < 1%",\n  {aborting}'))
    started = time.monotonic()
    run = run_locust("--scenario", str(scenario), "-t", "30s", results_dir=tmp_path)
    assert run.returncode == 1, run.stderr[-2000:]
    assert time.monotonic() - started < 20
    assert run.summary is not None and run.summary["aborted_by"] == "check.rps >= 2020"
    assert run.summary["ended_by"] == "threshold 'check.rps >= 2020' failed (abort_on_fail)"
    assert run.summary["duration_s"] < 10


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (("--fleet-size", "zero"), "--fleet-size"),
        (("--fleet-size", "0"), "--fleet-size"),
        (("--time-scale", "-3"), "--time-scale"),
        (("--threshold", "check.p95 <"), "check.p95 <"),
        (("--protocol", "nosuch"), "--protocol"),
        (("--scenario", "scenarios/absent.toml"), "scenarios/absent.toml"),
        (("--host", "http://192.0.2.1:80"), "--host: 192.0.2.1 is not a loopback address"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_sends_no_request(
    tmp_path: Path, reference_server: EmbeddedServer, args: tuple[str, ...], names: str
) -> None:
    host = () if "--host" in args else ("--host", reference_server.url)
    run = run_locust(*RUN, *host, *args, results_dir=tmp_path, timeout=60)
    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if line.startswith("fleetstorm: error:")]
    assert len(errors) == 1 and names in errors[0] and "fix:" in errors[0]
    assert "Traceback" not in run.stderr
    assert run.summary is None
    requests = {k: v for k, v in server_metrics(reference_server.url).items() if "requests_total" in k}
    assert not any("check" in k or "content" in k for k in requests)


def test_a_bad_scenario_file_exits_2_naming_the_field(tmp_path: Path, reference_server: EmbeddedServer) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(SMOKE.read_text().replace("seed = 42", "seed = -1"))
    run = run_locust("--scenario", str(bad), "--host", reference_server.url, results_dir=tmp_path, timeout=60)
    assert run.returncode == 2
    assert f"{bad}: fleet.seed:" in run.stderr
