"""Locust's master and workers on loopback: the fleet is split, merged, and survives losing a worker."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, SMOKE, LocustRun, free_port, record, run_locust

RUN_S = 8
LOCUST = [sys.executable, "-m", "locust", "-f", "locustfile.py"]


def _check_requests_in_locust_csv(prefix: Path) -> int:
    with open(f"{prefix}_stats.csv", newline="") as handle:
        return next(int(row["Request Count"]) for row in csv.DictReader(handle) if row["Name"] == "check")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], list[subprocess.Popen[str]], Path]]:
    """A headless master expecting 2 workers, and the 2 workers, on a free loopback port."""
    port = str(free_port())
    workers = [subprocess.Popen([*LOCUST, "--worker", "--master-port", port], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    master = subprocess.Popen(
        [*LOCUST, "--master", "--headless", "--only-summary", "--expect-workers", "2", "--master-bind-host",
         "127.0.0.1", "--master-bind-port", port, "--scenario", str(SMOKE), "-t", f"{RUN_S}s",
         "--results-dir", str(tmp_path), "--csv", str(tmp_path / "locust")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield master, workers, tmp_path
    finally:
        for process in [master, *workers]:
            process.kill()
            process.wait()


def _finish(master: subprocess.Popen[str], results: Path) -> LocustRun:
    stdout, stderr = master.communicate(timeout=90)
    return LocustRun(master.returncode, stdout, stderr, json.loads((results / "summary.json").read_text()))


def test_two_workers_deliver_the_single_process_rate_and_their_counts_add_up(cluster, tmp_path: Path) -> None:
    master, _, results = cluster
    distributed = _finish(master, results)
    single = run_locust("--scenario", str(SMOKE), "-t", f"{RUN_S}s", results_dir=tmp_path / "single")
    assert distributed.returncode == 0, distributed.stderr[-2000:]
    assert distributed.summary["workers"] == 2 and distributed.summary["fleet_complete"]
    rates = distributed.summary["checkins"]["achieved_rps"], single.summary["checkins"]["achieved_rps"]
    assert rates[0] == pytest.approx(rates[1], rel=0.03)
    # what the workers reported to fleetstorm adds up to what Locust itself merged
    assert distributed.summary["checkins"]["count"] == _check_requests_in_locust_csv(results / "locust")


def test_losing_a_worker_mid_run_is_reported_and_the_run_still_ends_with_its_verdict(cluster) -> None:
    master, workers, results = cluster
    time.sleep(5)
    workers[0].kill()
    run = _finish(master, results)
    assert "Traceback" not in run.stderr
    summary = run.summary
    assert summary["fleet_complete"] is False
    [lost] = summary["lost_partitions"]
    assert lost["partition"] in (0, 1) and 0 < lost["since_s"] < RUN_S
    rps = next(t for t in summary["thresholds"] if t["expr"] == "check.rps >= 180")
    assert not rps["passed"]  # half the fleet stopped checking in
    assert run.returncode == summary["exit_code"] == 1
    record("a worker killed in a distributed run", run.returncode,
           f"partition {lost['partition']} lost from {lost['since_s']} s, reported in the summary")
