"""When the server breaks, the harness tells the truth: failures counted, summary and exit code written.

Each fault runs real processes on loopback, bounded in time; none may end in a traceback.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.embedded import EmbeddedServer
from tests.conftest import ROOT, SMOKE, LocustRun, record, run_locust

RUN_S = "6s"


@pytest.fixture
def faulty_server(request: pytest.FixtureRequest) -> Iterator[str]:
    process = subprocess.Popen([sys.executable, "-m", "tests.faults.faulty_server", request.param],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        yield line.rsplit("listening on ", 1)[1].strip()
    finally:
        process.kill()
        process.wait()


def _assert_told_the_truth(run: LocustRun, expected_code: int) -> dict:
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert run.returncode == expected_code, run.stderr[-3000:]
    assert run.summary is not None and run.summary["exit_code"] == expected_code
    return run.summary


@pytest.mark.parametrize("faulty_server", ["garbage", "bad-length"], indirect=True)
def test_garbage_answers_are_failed_check_ins(faulty_server: str, fault_scenario: Path, tmp_path: Path,
                                              request: pytest.FixtureRequest) -> None:
    run = run_locust("--scenario", str(fault_scenario), "--host", faulty_server, "-t", RUN_S, results_dir=tmp_path)
    summary = _assert_told_the_truth(run, 1)
    assert summary["checkins"]["failed"] > 0
    assert summary["errors"]["count"] > 0
    mode = request.node.callspec.params["faulty_server"]
    record(f"answers with {'invalid JSON' if mode == 'garbage' else 'a short body'}", run.returncode,
           f"{summary['checkins']['failed']} failed check-ins, {summary['errors']['count']} errors")


@pytest.mark.parametrize("faulty_server", ["wrong-range"], indirect=True)
def test_bytes_that_fail_the_checksum_are_not_installed(faulty_server: str, fault_scenario: Path,
                                                        tmp_path: Path) -> None:
    run = run_locust("--scenario", str(fault_scenario), "--host", faulty_server, "-t", RUN_S, results_dir=tmp_path)
    summary = _assert_told_the_truth(run, 0)
    assert summary["downloads"]["corrupt"] > 0
    assert summary["fleet"]["counters"].get("installed_xpsp2", 0) == 0
    record("206 with bytes failing the checksum", run.returncode,
           f"{summary['downloads']['corrupt']} corrupt downloads, 0 installs")


@pytest.mark.parametrize("faulty_server", ["stall"], indirect=True)
def test_a_stalled_server_costs_time_outs_and_a_bounded_backlog(faulty_server: str, fault_scenario: Path,
                                                                tmp_path: Path) -> None:
    run = run_locust("--scenario", str(fault_scenario), "--host", faulty_server, "-t", RUN_S, results_dir=tmp_path)
    summary = _assert_told_the_truth(run, 1)
    assert summary["errors"]["count"] > 0
    assert summary["checkins"]["late"] > 0
    record("server stalls", run.returncode,
           f"{summary['errors']['count']} time-outs, {summary['checkins']['late']} late check-ins")


@pytest.mark.parametrize("faulty_server", ["slow"], indirect=True)
def test_a_slow_server_grows_the_agent_pool_until_the_rate_is_met(faulty_server: str, tmp_path: Path) -> None:
    # ~202 check-ins/s answered in 200 ms need 41 agents or more (Little's law); the pool starts at 16.
    scenario = tmp_path / "slow.toml"
    scenario.write_text(SMOKE.read_text().split("[thresholds]")[0] + '[thresholds]\nrules = ["check.rps >= 180"]\n')
    run = run_locust("--scenario", str(scenario), "--host", faulty_server, "-t", "10s", results_dir=tmp_path)
    summary = _assert_told_the_truth(run, 0)
    agents, checkins = summary["agents"], summary["checkins"]
    assert agents["start"] == 16 and 41 <= agents["size"] <= agents["ceiling"]
    assert checkins["failed"] == 0
    record("server answers in 200 ms", run.returncode,
           f"agents {agents['start']} -> {agents['size']}, {checkins['achieved_rps']:.0f}/s of "
           f"{checkins['target_rps']:.0f}/s")


@pytest.mark.parametrize("faulty_server", ["storm"], indirect=True)
def test_a_503_storm_makes_the_herd_back_off(faulty_server: str, fault_scenario: Path, tmp_path: Path) -> None:
    run = run_locust("--scenario", str(fault_scenario), "--host", faulty_server, "-t", RUN_S, results_dir=tmp_path)
    summary = _assert_told_the_truth(run, 1)
    checkins = summary["checkins"]
    # Every machine told to come back in a day (two wall minutes here) does not ask again within the run.
    assert checkins["failed"] == checkins["count"]
    assert checkins["count"] <= checkins["target_rps"] * 6 * 1.2
    record("503 storm with Retry-After", run.returncode, f"{checkins['failed']} refused check-ins, none retried early")


def _locust_in_background(results_dir: Path, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "locust", "-f", "locustfile.py", "--headless", "--only-summary",
               "--results-dir", str(results_dir), *args]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen[str], results_dir: Path) -> LocustRun:
    import json

    stdout, stderr = process.communicate(timeout=60)
    path = results_dir / "summary.json"
    return LocustRun(process.returncode, stdout, stderr, json.loads(path.read_text()) if path.exists() else None)


def test_a_server_killed_mid_run_is_counted_as_refused_connections(tmp_path: Path) -> None:
    server = EmbeddedServer.start()
    process = _locust_in_background(tmp_path, "--host", server.url, "-t", RUN_S)
    time.sleep(3)
    server.process.kill()
    server.process.wait()
    summary = _assert_told_the_truth(_finish(process, tmp_path), 1)
    assert summary["checkins"]["count"] > 100
    assert summary["errors"]["count"] > 0
    record("server killed mid-run", 1, f"{summary['errors']['count']} refused requests")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_a_headless_run_with_its_summary(signum: signal.Signals, tmp_path: Path) -> None:
    process = _locust_in_background(tmp_path)
    time.sleep(5)
    process.send_signal(signum)
    run = _finish(process, tmp_path)
    summary = _assert_told_the_truth(run, 0)
    assert summary["duration_s"] < 15
    record(f"{signum.name} to a headless run", run.returncode, f"summary after {summary['duration_s']:.1f} s")
