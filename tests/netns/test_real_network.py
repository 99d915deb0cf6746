"""A server, a master and two workers on hosts of their own, joined by a real (virtual) network.

What loopback cannot show: the target is refused unless named on purpose, the fleet splits across
hosts as it does on one, and a worker cut off, connections reset and a server gone silent are all
told in the summary, with the run ending on time. Each run is short, and its load stays inside the
test's own namespaces.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.config.errors import ExitCode
from harness.load.distributed import MASTER_SILENT_S
from tests.conftest import SMOKE, LocustRun, finish_locust, record, run_locust
from tests.netns.conftest import SERVER_PORT, Network

RUN_S = 6
MASTER_PORT = 5557
RUN_TIMEOUT_S = 60  # past a run's end: Locust's start-up, the workers' last reports, the summary
REMOTE = "--allow-remote-target"
TIMEOUT_MS = 1000  # tests.conftest.fault_scenario's [agents] timeout
TIMEOUT_SLACK_MS = 500
RESET_EVERY = 40  # packets to the server: one in so many is answered with a TCP reset
HEAL_AFTER_S = 1.0


# Locust's final figures, from the tables it prints as it quits: its CSV files are a snapshot taken
# once a second, so up to a second of requests may be missing from them.
def _failures_reported(run: LocustRun, request: str) -> dict[str, int]:
    """Each reason `request` (e.g. 'POST check') failed for in Locust's error report, with its occurrences."""
    pattern = re.compile(rf"^(\d+)\s+{request}: (.*?)\s*$", re.MULTILINE)
    return {reason: int(count) for count, reason in pattern.findall(run.stderr)}


def _slowest_ms(run: LocustRun, request: str) -> int:
    """The slowest `request` (e.g. 'POST check') in Locust's statistics table, in whole milliseconds."""
    method, name = request.split()
    # the columns: requests, failures (share) | average, min, max, median
    row = re.search(rf"^{method}\s+{name}\s+\d+\s+\d+\(.*?\)\s+\|\s+\d+\s+\d+\s+(\d+)", run.stderr, re.MULTILINE)
    assert row is not None, run.stderr[-3000:]
    return int(row[1])


def _start_distributed(hosts: Network, results: Path, url: str, scenario: Path = SMOKE) -> subprocess.Popen[str]:
    """Start a worker on each worker host and the master on its host, against `url`, for RUN_S; the master."""
    for worker in ("worker0", "worker1"):
        hosts.worker(worker, MASTER_PORT)
    return hosts.locust("master", "--master", "--expect-workers", "2", "--master-bind-host", hosts.address("master"),
                        "--master-bind-port", str(MASTER_PORT), "--host", url, REMOTE, "--scenario", str(scenario),
                        "-t", f"{RUN_S}s", results_dir=results)


def _once_checking_in(hosts: Network, url: str) -> None:
    """Wait until the fleet checks in at the server: its clock has started, a fault can come."""
    # A bare interpreter reads the count: importing the harness for each reading would take most of the run.
    reader = ("import sys, urllib.request; text = urllib.request.urlopen(sys.argv[1] + '/metrics').read().decode(); "
              "print(any(line.startswith('fleetstorm_server_requests_total') and 'endpoint=\"check\"' in line "
              "and float(line.split()[-1]) > 0 for line in text.splitlines()))")
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while subprocess.run([*hosts.inside("master"), sys.executable, "-I", "-c", reader, url], capture_output=True,
                         text=True, timeout=10).stdout.strip() != "True":
        assert time.monotonic() < deadline, "the fleet never checked in"
        time.sleep(0.05)


def test_a_server_on_another_host_is_refused_before_any_load_without_allow_remote_target(
        network: Network, tmp_path: Path) -> None:
    url = network.serve(SMOKE)
    run = finish_locust(network.locust("master", "--host", url, "-t", f"{RUN_S}s", results_dir=tmp_path),
                        tmp_path, timeout=RUN_TIMEOUT_S)
    assert run.returncode == 2
    assert f"{network.address('server')} is not a loopback address" in run.stderr and REMOTE in run.stderr
    assert run.summary is None
    served = [series for series in network.server_metrics(url) if series.startswith("fleetstorm_server_requests_total")]
    assert all('endpoint="metrics"' in series for series in served)  # nothing but the readings of /metrics
    record("a non-loopback --host without --allow-remote-target", run.returncode, "refused before any load")


def test_a_fleet_split_across_hosts_checks_in_as_often_as_one_process_on_loopback(network: Network,
                                                                                   tmp_path: Path) -> None:
    results = tmp_path / "hosts"
    distributed = finish_locust(_start_distributed(network, results, network.serve(SMOKE)), results,
                                timeout=RUN_TIMEOUT_S)
    single = run_locust("--scenario", str(SMOKE), "-t", f"{RUN_S}s", results_dir=tmp_path / "single")
    assert distributed.returncode == 0, distributed.stderr[-2000:]
    summary = distributed.summary
    assert summary["workers"] == 2 and summary["fleet_complete"]
    # per second of the run: a run limited by -t ends at the load shape's next tick, up to a second past it
    rates = summary["checkins"]["achieved_rps"], single.summary["checkins"]["achieved_rps"]
    assert rates[0] == pytest.approx(rates[1], rel=0.03)
    latency = summary["latency_ms"]
    assert latency["measured_from"] == "due time" and summary["checkins"]["negative_latency"] == 0
    record("hosts on a bridge: server, master, 2 workers", distributed.returncode,
           f"{rates[0]:.1f} check-ins/s vs {rates[1]:.1f}/s in one process on loopback; p50 {latency['p50']:.2f} ms, "
           f"p99 {latency['p99']:.2f} ms from due time")


def _cluster_checking_in(network: Network, results: Path) -> tuple[subprocess.Popen[str], list[subprocess.Popen[str]]]:
    """A distributed smoke run, once its fleet checks in at the server; its master and its two workers."""
    url = network.serve(SMOKE)
    cluster = _start_distributed(network, results, url)
    workers = network.started[-3:-1]  # started just before their master
    _once_checking_in(network, url)
    return cluster, workers


def _cluster_with_worker0_cut_off(network: Network, results: Path) -> subprocess.Popen[str]:
    """A distributed smoke run whose first worker's traffic with the master is dropped once it runs; the master."""
    cluster, _ = _cluster_checking_in(network, results)
    master = network.address("master")
    network.firewall("worker0", "OUTPUT", "-d", master, "-j", "DROP")
    network.firewall("worker0", "INPUT", "-s", master, "-j", "DROP")
    return cluster


def test_a_worker_cut_off_from_the_master_is_reported_lost_and_the_run_still_ends(network: Network,
                                                                                 tmp_path: Path) -> None:
    cluster = _cluster_with_worker0_cut_off(network, tmp_path)
    run = finish_locust(cluster, tmp_path, timeout=RUN_TIMEOUT_S)
    assert "Traceback" not in run.stderr
    summary = run.summary
    assert summary["ended_by"] == f"the run time limit (-t {RUN_S}s)"
    assert summary["fleet_complete"] is False
    [lost] = summary["lost_partitions"]
    # lost from its last heartbeat, before the cut: not from when Locust noticed, 4-5 s later
    assert 0 <= lost["since_s"] < RUN_S / 2
    assert "sent no final report" not in run.stderr  # the master did not wait for the worker it had lost
    assert run.returncode == summary["exit_code"] == 1  # half the fleet stopped checking in: check.rps fails
    record("a worker cut off from the master (iptables DROP)", run.returncode,
           f"partition {lost['partition']} lost from {lost['since_s']} s; summary after {summary['duration_s']} s")


def test_a_partition_that_heals_within_locusts_heartbeat_limit_loses_no_worker(network: Network,
                                                                                tmp_path: Path) -> None:
    cluster = _cluster_with_worker0_cut_off(network, tmp_path)
    time.sleep(HEAL_AFTER_S)  # under the 3 missed heartbeats after which Locust marks a worker missing
    network.heal("worker0")
    run = finish_locust(cluster, tmp_path, timeout=RUN_TIMEOUT_S)
    assert "Traceback" not in run.stderr
    summary = run.summary
    assert summary["fleet_complete"] is True and summary["lost_partitions"] == [], run.stderr[-3000:]
    assert "sent no final report" not in run.stderr  # its reports, held back by the cut, all arrived
    assert run.returncode == summary["exit_code"] == 0  # the whole fleet checked in at its rate
    record(f"a worker cut off from the master for {HEAL_AFTER_S} s (healed)", run.returncode,
           f"no partition lost; {summary['checkins']['achieved_rps']:.1f} of {summary['checkins']['target_rps']:.1f}"
           " check-ins/s")


def test_workers_cut_off_from_their_master_end_after_its_silence_each_with_its_partitions_results(
        network: Network, tmp_path: Path) -> None:
    cluster, workers = _cluster_checking_in(network, tmp_path)
    cut = time.monotonic()
    network.firewall("master", "INPUT", "-p", "tcp", "--dport", str(MASTER_PORT), "-j", "DROP")
    network.firewall("master", "OUTPUT", "-p", "tcp", "--sport", str(MASTER_PORT), "-j", "DROP")
    codes = [worker.wait(timeout=MASTER_SILENT_S + RUN_TIMEOUT_S) for worker in workers]
    ended_s = time.monotonic() - cut
    run = finish_locust(cluster, tmp_path, timeout=RUN_TIMEOUT_S)
    assert "Traceback" not in run.stderr and run.summary is not None  # the master wrote its own
    # silent from the master's last answer, up to a heartbeat before the cut
    assert codes == [ExitCode.MASTER_LOST] * 2 and ended_s >= MASTER_SILENT_S - 1
    partitions = [json.loads((tmp_path / f"partition-{index}" / "summary.json").read_text()) for index in (0, 1)]
    for index, summary in enumerate(partitions):
        assert summary["partition"]["index"] == index and summary["exit_code"] == ExitCode.MASTER_LOST
        assert summary["ended_by"] == f"the master's silence ({MASTER_SILENT_S} s)"
        assert summary["checkins"]["count"] > 0 and summary["checkins"]["failed"] == 0  # the server was reachable
    record("the master cut off from both workers (iptables DROP)", ExitCode.MASTER_LOST,
           f"each worker ended {ended_s:.1f} s after the cut with its partition's summary "
           f"({', '.join(str(summary['checkins']['count']) for summary in partitions)} check-ins)")


def test_a_signal_to_the_master_on_its_host_ends_the_run_on_every_host_with_the_whole_fleets_results(
        network: Network, tmp_path: Path) -> None:
    cluster, workers = _cluster_checking_in(network, tmp_path)
    cluster.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    run = finish_locust(cluster, tmp_path, timeout=RUN_TIMEOUT_S)
    summary = run.summary
    assert "Traceback" not in run.stderr and summary is not None
    assert summary["ended_by"] == "the signal SIGTERM" and summary["duration_s"] < RUN_S
    assert summary["fleet_complete"] is True  # both workers sent their last reports across the network
    assert run.returncode == summary["exit_code"]
    for worker in workers:  # and left with their master
        worker.wait(timeout=10)  # raises TimeoutExpired while it still runs
    record("SIGTERM to the master on its own host", run.returncode,
           f"summary {time.monotonic() - signalled:.1f} s after the signal; both workers gone")


def test_a_threshold_that_aborts_on_the_master_ends_the_run_on_every_host(network: Network, tmp_path: Path) -> None:
    scenario = tmp_path / "abort.toml"  # the whole fleet's rate, judged on the master from both workers' reports
    aborting = '{ expr = "check.rps >= 2020", abort_on_fail = true, delay = "2s" },'
    scenario.write_text(SMOKE.read_text().replace('"errors.ratio < 1%",', f'"errors.ratio < 1%",\n  {aborting}'))
    cluster = _start_distributed(network, tmp_path, network.serve(SMOKE), scenario)
    workers = network.started[-3:-1]
    run = finish_locust(cluster, tmp_path, timeout=RUN_TIMEOUT_S)
    summary = run.summary
    assert "Traceback" not in run.stderr and summary is not None
    assert summary["aborted_by"] == "check.rps >= 2020" and summary["duration_s"] < RUN_S
    assert summary["fleet_complete"] is True and run.returncode == summary["exit_code"] == 1
    for worker in workers:
        worker.wait(timeout=10)  # raises TimeoutExpired while it still runs
    record("a threshold aborts the run on the master", run.returncode,
           f"ended after {summary['duration_s']} s of {RUN_S}; both workers gone")


def test_a_server_killed_on_its_host_costs_failed_check_ins_and_the_run_still_ends_on_time(
        network: Network, tmp_path: Path) -> None:
    url = network.serve(SMOKE)
    cluster = _start_distributed(network, tmp_path, url)
    server = network.started[0]
    _once_checking_in(network, url)
    server.kill()
    run = finish_locust(cluster, tmp_path, timeout=RUN_TIMEOUT_S)
    summary = run.summary
    assert "Traceback" not in run.stderr and summary is not None
    assert summary["ended_by"] == f"the run time limit (-t {RUN_S}s)" and summary["fleet_complete"] is True
    checkins = summary["checkins"]
    assert 0 < checkins["failed"] < checkins["count"] and summary["harness_errors"]["count"] == 0
    assert run.returncode == summary["exit_code"] == 1  # errors.ratio fails
    record("the server's process killed on its host", run.returncode,
           f"{checkins['failed']} of {checkins['count']} check-ins failed; ended on time, both workers reported")


def test_connections_reset_by_the_servers_host_are_failed_requests_with_their_reason_and_lose_no_machine(
        network: Network, tmp_path: Path) -> None:
    url = network.serve(SMOKE)
    network.firewall("server", "INPUT", "-p", "tcp", "--dport", str(SERVER_PORT), "-m", "statistic", "--mode", "nth",
                     "--every", str(RESET_EVERY), "--packet", "0", "-j", "REJECT", "--reject-with", "tcp-reset")
    run = finish_locust(network.locust("master", "--host", url, REMOTE, "--scenario", str(SMOKE), "-t", f"{RUN_S}s",
                                       results_dir=tmp_path),
                        tmp_path, timeout=RUN_TIMEOUT_S)
    assert "Traceback" not in run.stderr
    summary = run.summary
    checkins, reasons = summary["checkins"], _failures_reported(run, "POST check")
    assert checkins["failed"] > 0 and sum(reasons.values()) == checkins["failed"]
    assert all(reason.startswith("no response (") for reason in reasons)  # refused, reset or closed: said so
    assert summary["backoff"]["exponential"] == checkins["failed"]  # each failed check backed its machine off
    assert checkins["achieved_rps"] >= 0.97 * checkins["target_rps"]  # due check-ins made, and retries on top
    assert summary["harness_errors"]["count"] == 0
    unfinished = checkins["unfinished"]
    assert unfinished["count"] == unfinished["backlog"] + unfinished["queued"] + unfinished["in_flight"]
    assert run.returncode == summary["exit_code"] == 1  # errors.ratio < 1% fails
    record(f"1 in {RESET_EVERY} packets to the server reset (iptables REJECT)", run.returncode,
           f"{checkins['failed']} of {checkins['count']} check-ins failed, each backed off; "
           f"{summary['errors']['count']} failed requests in all")


def test_a_blackholed_server_costs_time_outs_at_the_scenarios_limit_a_capped_pool_and_an_on_time_end(
        network: Network, fault_scenario: Path, tmp_path: Path) -> None:
    # 5,000 machines (~50 check-ins/s) cap the pool at 51 agents, which it reaches in three ticks of late check-ins
    url = network.serve(SMOKE)
    network.firewall("server", "INPUT", "-j", "DROP")
    run = finish_locust(network.locust("master", "--host", url, REMOTE, "--scenario", str(fault_scenario),
                                       "--fleet-size", "5000", "-t", f"{RUN_S}s", results_dir=tmp_path),
                        tmp_path, timeout=RUN_TIMEOUT_S)
    assert "Traceback" not in run.stderr
    summary = run.summary
    assert summary["ended_by"] == f"the run time limit (-t {RUN_S}s)"
    assert run.returncode == summary["exit_code"] == 1
    checkins, agents = summary["checkins"], summary["agents"]
    timed_out = _failures_reported(run, "POST check")
    assert list(timed_out) == ["no response (timed out)"]
    # Those timing out while Locust stops the agents are in its figures too; the summary has them unfinished.
    in_flight = checkins["unfinished"]["in_flight"]
    assert checkins["failed"] <= timed_out["no response (timed out)"] <= checkins["failed"] + in_flight
    slowest_ms = _slowest_ms(run, "POST check")
    assert TIMEOUT_MS <= slowest_ms <= TIMEOUT_MS + TIMEOUT_SLACK_MS
    assert checkins["failed"] > 0 and checkins["late"] > 0
    assert agents["start"] < agents["size"] == agents["ceiling"]
    assert summary["harness_errors"]["count"] == 0
    record("server blackholed (iptables DROP)", run.returncode,
           f"{checkins['failed']} check-ins timed out, the slowest after {slowest_ms:.0f} ms; agents "
           f"{agents['start']} -> {agents['size']} (its cap); summary after {summary['duration_s']} s")
