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

from harness.load.embedded_server import EmbeddedServer
from tests.conftest import ROOT, SMOKE, LocustRun, finish_locust, record, run_locust, start_locust

RUN_S = "6s"


SERVER_LOG = "server.log"  # in the test's tmp_path: each check the faulty server answered, with its time


@pytest.fixture
def faulty_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    process = subprocess.Popen([sys.executable, "-m", "tests.faults.faulty_server", request.param,
                                str(tmp_path / SERVER_LOG)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
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
    # Every machine told to come back in a day (of the server's clock: a wall day) does not ask again within the run.
    assert checkins["failed"] == checkins["count"]
    assert checkins["count"] <= checkins["target_rps"] * 6 * 1.2
    record("503 storm with Retry-After", run.returncode, f"{checkins['failed']} refused check-ins, none retried early")


def test_a_server_killed_mid_run_is_counted_as_refused_connections(tmp_path: Path) -> None:
    server = EmbeddedServer.start()
    process = start_locust("--host", server.url, "-t", RUN_S, results_dir=tmp_path)
    time.sleep(3)
    server.process.kill()
    server.process.wait()
    summary = _assert_told_the_truth(finish_locust(process, tmp_path, timeout=60), 1)
    assert summary["checkins"]["count"] > 100
    assert summary["errors"]["count"] > 0
    assert summary["ended_by"] == "the run time limit (-t 6s)"  # on time: refusals do not hold the run
    record("server killed mid-run", 1, f"{summary['errors']['count']} refused requests")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_a_headless_run_with_its_summary(signum: signal.Signals, tmp_path: Path) -> None:
    process = start_locust(results_dir=tmp_path)
    time.sleep(5)
    process.send_signal(signum)
    run = finish_locust(process, tmp_path, timeout=60)
    summary = _assert_told_the_truth(run, 0)
    assert summary["duration_s"] < 15
    assert summary["ended_by"] == f"the signal {signum.name}"
    record(f"{signum.name} to a headless run", run.returncode, f"summary after {summary['duration_s']:.1f} s")


def _smoke_lasting(tmp_path: Path, days: int, time_scale: float) -> Path:
    """The smoke scenario's fleet, with no thresholds, over `days` days from its start at `time_scale`."""
    path = tmp_path / "long.toml"
    text = SMOKE.read_text().split("[thresholds]")[0]
    path.write_text(text.replace("end = 2004-08-18T12:15:00Z", f"end = 2004-08-{18 + days}T06:15:00Z")
                        .replace("time_scale = 720", f"time_scale = {time_scale}"))
    return path


def _smoke_without_thresholds(tmp_path: Path) -> Path:
    path = tmp_path / "no-thresholds.toml"
    path.write_text(SMOKE.read_text().split("[thresholds]")[0])
    return path


def _checks_logged(tmp_path: Path) -> list[tuple[float, str, int]]:
    lines = (tmp_path / SERVER_LOG).read_text().splitlines()
    return [(float(when), client, int(status)) for when, client, status in (line.split() for line in lines)]


@pytest.mark.parametrize("faulty_server", ["unknown-update"], indirect=True)
def test_an_offer_of_an_update_the_fleet_does_not_know_loses_no_machine(faulty_server: str, tmp_path: Path) -> None:
    # 200 machines over 3 days in 12 wall seconds: about 3.6 check-ins each are due.
    scenario = _smoke_lasting(tmp_path, days=3, time_scale=21600)
    run = run_locust("--scenario", str(scenario), "--host", faulty_server, "--fleet-size", "200",
                     results_dir=tmp_path, timeout=60)
    summary = _assert_told_the_truth(run, 1)
    due = summary["checkins"]["target_rps"] * summary["duration_s"]
    assert due > 3 * 200
    reaching = len(_checks_logged(tmp_path))
    assert reaching >= 0.9 * due  # every machine goes on checking in (backed off, so more often)
    errors = summary["harness_errors"]
    assert errors["by_source"] == {"target": errors["count"]} and errors["count"] >= summary["checkins"]["failed"] > 0
    assert errors["reasons"][0]["reason"] == "unknown update 'xpsp3'"
    assert "unknown update 'xpsp3'" in run.stdout  # in the summary table, and in Locust's failures
    record("offers an unknown update", run.returncode, f"{reaching} checks reached the server, {due:.0f} due")


@pytest.mark.parametrize("faulty_server", ["refuse-first"], indirect=True)
def test_a_servers_retry_after_is_wall_seconds_at_any_time_scale(faulty_server: str, tmp_path: Path) -> None:
    # At time scale 7,200 a Retry-After of 5 read as scenario seconds would bring a machine back in 0.7 ms.
    scenario = _smoke_lasting(tmp_path, days=2, time_scale=7200)
    run = run_locust("--scenario", str(scenario), "--host", faulty_server, "--fleet-size", "1000", "-t", "18s",
                     results_dir=tmp_path)
    summary = _assert_told_the_truth(run, 0)
    last_refusal: dict[str, float] = {}
    came_back_after = []
    for when, client, status in _checks_logged(tmp_path):
        if client in last_refusal:
            came_back_after.append(when - last_refusal.pop(client))
        if status == 503:
            last_refusal[client] = when
    assert len(came_back_after) >= 20 and summary["backoff"]["retry_after_honoured"] >= 20
    assert min(came_back_after) >= 5.0 - 0.01  # the server's timestamps: never sooner than it asked
    assert max(came_back_after) <= 5.0 * 1.5 + 1.0  # within Retry-After's jitter (and a bucket and a tick)
    record("503 + Retry-After: 5 at time scale 7200", run.returncode,
           f"{len(came_back_after)} refused machines back after {min(came_back_after):.2f}..."
           f"{max(came_back_after):.2f} wall s")


@pytest.mark.parametrize("faulty_server", ["stall-later"], indirect=True)
def test_check_ins_unfinished_at_the_end_are_counted_with_their_age(faulty_server: str, tmp_path: Path) -> None:
    # 2,000 machines (~20/s); from 6 s into a 12 s run every answer stalls for 40 s (past the end).
    scenario = _smoke_without_thresholds(tmp_path)
    run = run_locust("--scenario", str(scenario), "--host", faulty_server, "--fleet-size", "2000", "-t", "12s",
                     results_dir=tmp_path)
    summary = _assert_told_the_truth(run, 0)
    unfinished, latency = summary["checkins"]["unfinished"], summary["latency_ms"]
    # About 6 s of check-ins (~120) are still under way or waiting: the oldest about 6 s old.
    assert 60 <= unfinished["count"] == unfinished["backlog"] + unfinished["queued"] + unfinished["in_flight"]
    assert unfinished["in_flight"] > 0 and 4000 <= unfinished["age_ms"]["max"] <= 8000
    assert latency["p99"] >= 4000  # the stall is in the latency figures, not lost with the run's end
    assert "unfinished at the end" in run.stdout
    record("server stalls from mid-run", run.returncode,
           f"{unfinished['count']} unfinished, oldest {unfinished['age_ms']['max'] / 1000:.1f} s, "
           f"p99 {latency['p99'] / 1000:.1f} s")


def test_an_adapter_that_raises_loses_no_machine_and_fails_the_run(tmp_path: Path) -> None:
    run = run_locust("--scenario", str(SMOKE), "--protocol", "tests.faults.raising_adapter:RaisingAdapter",
                     "-t", RUN_S, results_dir=tmp_path)
    summary = _assert_told_the_truth(run, 1)
    errors, checkins = summary["harness_errors"], summary["checkins"]
    assert errors["by_source"] == {"adapter": errors["count"]}
    assert {reason["reason"] for reason in errors["reasons"]} == {"KeyError: 'no such machine field'",
                                                                  "ValueError: cannot read this offer"}
    # every check-in is still carried out (the retries of backed-off machines add to the rate), and
    # a seventh of the machines fail before sending, the ones offered SP2 after
    assert checkins["achieved_rps"] >= 0.9 * checkins["target_rps"]
    assert checkins["failed"] > checkins["count"] / 7
    assert summary["errors"]["count"] >= checkins["failed"]  # Locust's statistics count each of them
    assert "ERROR    check" in run.stdout + run.stderr  # the check never sent, in Locust's table
    record("the protocol adapter raises", run.returncode,
           f"{errors['count']} adapter errors, {checkins['failed']} failed check-ins, none lost")


def test_a_failure_while_the_run_starts_ends_it_at_once_with_its_results_written(tmp_path: Path) -> None:
    scenario = tmp_path / "network.toml"  # asking the adapter for the network-install package happens at start
    scenario.write_text(SMOKE.read_text().replace("enterprise_share = 0.1", "enterprise_share = 0.1\n"
                        "[fleet.network_install]\nshare = 1.0", 1))
    started = time.monotonic()
    run = run_locust("--scenario", str(scenario), "--protocol", "tests.faults.raising_adapter:RaisingAtStartAdapter",
                     "-t", "30s", results_dir=tmp_path, timeout=60)
    summary = _assert_told_the_truth(run, 3)
    assert time.monotonic() - started < 20  # not the 30 s asked: nothing would be sent in them
    assert summary["ended_by"] == "an internal error (RuntimeError)"
    assert summary["harness_errors"]["reasons"][0]["reason"] == "RuntimeError: cannot build a package request"
    record("the run fails while starting", run.returncode, f"ended after {time.monotonic() - started:.1f} s")


@pytest.mark.parametrize("faulty_server", ["downloads-fail-first"], indirect=True)
def test_a_failed_download_is_tried_again_ten_scenario_minutes_later_until_the_client_gives_up(
        faulty_server: str, tmp_path: Path) -> None:
    # Downloads fail for the first 4 s (48 scenario minutes at 720x). The client tries again every 10
    # minutes while on (BITS's 600 s) and here gives up after 30 minutes (BITS: 14 days).
    world = tmp_path / "impatient.toml"
    world.write_text((ROOT / "scenarios" / "worlds" / "xp2004.toml").read_text().replace(
        'download_give_up = "14d"', 'download_give_up = "30m"'))
    scenario = _smoke_lasting(tmp_path, days=1, time_scale=720)
    scenario.write_text(f'world = "{world}"\n' + scenario.read_text())
    run = run_locust("--scenario", str(scenario), "--host", faulty_server, "--fleet-size", "2000", "-t", "8s",
                     results_dir=tmp_path)
    summary = _assert_told_the_truth(run, 0)
    downloads, counters = summary["downloads"], summary["fleet"]["counters"]
    assert downloads["failed"] > 0 and downloads["corrupt"] == 0
    # Offered in the first 18 minutes: given up before the server mended, and reported failed; later:
    # tried until it mended, then downloading, or done and waiting for 03:00.
    at_it = sum(counters.get(f"{stage}_xpsp2", 0) for stage in ("downloading", "install_pending", "installed"))
    gave_up = counters["offered_xpsp2"] - at_it
    assert 0.1 * counters["offered_xpsp2"] < gave_up < 0.3 * counters["offered_xpsp2"]
    # about half were offered in the failing 48 minutes, each tried every 10 minutes (up to 4 times
    # more) until it mended or it gave up: not once a day, at its next detection, nor at once
    window_offers = counters["offered_xpsp2"] / 2
    retries = downloads["failed"] - gave_up  # a give-up is the last failure, not followed by a retry
    assert downloads["retries"] == retries and 1.5 * window_offers <= retries <= 5 * window_offers
    record("downloads fail for 48 scenario minutes", run.returncode,
           f"{downloads['failed']} failed downloads, tried again 10 scenario minutes later; {gave_up} "
           "machines gave up after 30")


def test_an_adapter_that_raises_while_downloading_installs_nothing_it_never_fetched(tmp_path: Path) -> None:
    run = run_locust("--scenario", str(SMOKE), "--protocol", "tests.faults.raising_adapter:RaisingDownloadAdapter",
                     "-t", RUN_S, results_dir=tmp_path)
    summary = _assert_told_the_truth(run, 1)
    counters, errors = summary["fleet"]["counters"], summary["harness_errors"]
    assert counters["offered_xpsp2"] > 0 and errors["by_source"] == {"adapter": errors["count"]}
    # no download is under way and none was installed: each offered machine goes back to checking in
    assert not any(counters.get(f"{stage}_xpsp2", 0) for stage in ("downloading", "install_pending", "installed"))
    assert summary["downloads"]["bytes"] == 0
    record("the protocol adapter raises on a download", run.returncode,
           f"{counters['offered_xpsp2']} offers, {errors['count']} adapter errors, 0 installs")
