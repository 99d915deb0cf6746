"""The run's Prometheus metrics say what the run measured, in Prometheus's names and units."""

from __future__ import annotations

import math
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from harness.measure.metrics import Metrics
from harness.ui.exporter import Exported, registry_for
from tests.conftest import SMOKE, finish_locust, free_port, record, start_locust


def _scraped(metrics: Metrics, **run: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, labels): value} of one scrape of a run with these measurements."""
    snapshot = {"totals": metrics, "machines": 1000, "weight": 200.0, "time_scale": 100.0, "scenario_s": 0.0,
                "scenario_epoch_s": 0.0, "target_rps": 10.0, "achieved_rps": 9.0, "agents": 16, "thresholds": ()}
    snapshot |= run
    text = generate_latest(registry_for(lambda: Exported(**snapshot))).decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_check_ins_are_counted_by_result_and_late_ones_apart() -> None:
    metrics = Metrics()
    metrics.counters.update({"checkins": 10, "checkins_failed": 3, "late": 2})
    scraped = _scraped(metrics)
    assert scraped["fleetstorm_checkins_total", (("result", "ok"),)] == 7
    assert scraped["fleetstorm_checkins_total", (("result", "failed"),)] == 3
    assert scraped["fleetstorm_checkins_late_total", ()] == 2


def test_the_latency_histogram_holds_every_check_in_in_cumulative_buckets_of_seconds() -> None:
    metrics = Metrics()
    for seconds in (0.0008, 0.003, 0.003, 0.2):
        metrics.record_checkin(seconds, ok=True)
    scraped = _scraped(metrics)
    bucket = "fleetstorm_checkin_latency_seconds_bucket"
    assert scraped[bucket, (("le", "0.001"),)] == 1
    assert scraped[bucket, (("le", "0.005"),)] == 3
    assert scraped[bucket, (("le", "0.25"),)] == scraped[bucket, (("le", "+Inf"),)] == 4
    assert scraped["fleetstorm_checkin_latency_seconds_sum", ()] == pytest.approx(0.2068, rel=0.01)


def test_coverage_counts_every_way_a_machine_got_the_update() -> None:
    metrics = Metrics()
    metrics.counters.update({"initial_xpsp2": 100, "installed_xpsp2": 50, "installed_xpsp2_network": 25,
                             "offered_xpsp2": 80, "downloading_xpsp2": 5})
    scraped = _scraped(metrics)
    assert scraped["fleetstorm_fleet_coverage_ratio", (("update", "xpsp2"),)] == 0.175
    assert scraped["fleetstorm_fleet_update_machines", (("state", "downloading"), ("update", "xpsp2"))] == 5
    assert ("fleetstorm_fleet_coverage_ratio", (("update", "kb884020"),)) not in scraped  # never spoken of


def test_rates_are_given_as_emulated_per_wall_second_and_as_what_they_stand_for() -> None:
    scraped = _scraped(Metrics())
    assert scraped["fleetstorm_achieved_checkins_per_second", ()] == 9.0
    # 200 real machines each, 100 scenario seconds per wall second: 9 x 200 / 100 real check-ins a second.
    assert scraped["fleetstorm_real_achieved_checkins_per_second", ()] == 18.0


def test_each_threshold_is_one_when_passing_zero_when_failing_and_nan_before_it_is_judged() -> None:
    scraped = _scraped(Metrics(), thresholds=(("check.p95 < 1s", "PASS"), ("errors.ratio < 1%", "FAIL"),
                                              ("check.rps >= 5 at 2004-10-18", "pending")))
    states = {dict(labels)["threshold"]: value for (name, labels), value in scraped.items()
              if name == "fleetstorm_threshold_passing"}
    assert states["check.p95 < 1s"] == 1 and states["errors.ratio < 1%"] == 0
    assert math.isnan(states["check.rps >= 5 at 2004-10-18"])


def test_a_scrape_while_the_run_ends_gets_a_whole_exposition_or_a_closed_port_and_loses_nothing(
        tmp_path: Path) -> None:
    port = free_port()
    run = start_locust("--scenario", str(SMOKE), "-t", "3s", "--metrics-port", str(port), results_dir=tmp_path)
    answers: Counter[str] = Counter()
    counted = 0.0  # check-ins the last whole scrape counted
    deadline = time.monotonic() + 30  # bounded: the run itself takes about 5 s
    while time.monotonic() < deadline and run.poll() is None:  # scraping on through the run's end
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                samples = {sample.name + str(sorted(sample.labels.items())): sample.value for family
                           in text_string_to_metric_families(response.read().decode()) for sample in family.samples}
            counted = sum(value for name, value in samples.items() if name.startswith("fleetstorm_checkins_total"))
            answers["whole"] += 1
        except urllib.error.HTTPError as error:
            answers[f"HTTP {error.code}"] += 1
        except urllib.error.URLError:  # not listening yet, or no more
            answers["closed"] += 1
        time.sleep(0.01)
    finished = finish_locust(run, tmp_path)
    assert finished.returncode == 0 and finished.summary is not None, finished.stderr[-2000:]
    assert set(answers) == {"whole", "closed"} and answers["whole"] > 50
    assert 0 < counted <= finished.summary["checkins"]["count"]  # what was exported, the summary has
    record("a Prometheus scrape while the run ends", finished.returncode,
           f"{answers['whole']} whole expositions, then a closed port; the summary written")
