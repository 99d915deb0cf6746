"""The whole 2004 XP fleet (210 M machines) in real time from one core of load, against bare Locust users.

One reference server (`python -m harness.server`, pinned to core 0) serves every run; each load
generator is pinned to core 1. Four configurations alternate over the rounds:

- the harness at real time: smoke.toml's fleet at --fleet-size (default 210M), --time-scale 1;
- the harness's ceiling: the same fleet at a time scale whose target (--ceiling-rps) is far above
  what one core can send;
- a bare Locust FastHttpUser (benchmarks/bare_fasthttpuser.py) sending the same check request with
  no wait, 50 users: Locust's own way of sending;
- a bare raw-client User (benchmarks/bare_rawuser.py) sending the same request on a raw
  geventhttpclient connection and reporting it to Locust's `request` event, as the harness's agents
  do, 50 users: the like-for-like baseline, whose difference from the harness is the check-in's own work.

The server's policy offers no update, so every check-in is exactly one POST /v1/check, as in the bare
users. Check-ins/s are Locust's per-second counts of completed check requests over the last --seconds
whole seconds of each run, so start-up is never in a rate: a harness run lasts --lead seconds more,
counted from the scenario clock's start (which waits for the fleet and its schedule to be built), so
that the agents have settled. The harness's own figures (results/summary.json and series.json) give
its real-time target and achieved rate over the same seconds, and Locust's log the start-up: from the
test's start to the agents' spawn, building the fleet and its schedule. Medians over the rounds are
printed with their ratios to both bare users.

Run: make bench   (or: .venv/bin/python benchmarks/bench_headline.py --fleet-size 10M --rounds 1)
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from harness.config.units import parse_count
from harness.config.world import default_world

ROOT = Path(__file__).resolve().parent.parent
LOAD_CORE, SERVER_CORE = "1", "0"
LOCUST = [sys.executable, "-m", "locust", "--headless", "--only-summary"]
SERVER_SCENARIO = """
name = "bench-headline-server"
[timeline]
start = 2004-08-18T00:00:00Z
end = 2004-08-25T00:00:00Z
time_scale = 1
[fleet]
machines = 1
[server]
capacity = 100000        # no rollout: every check is answered with no offer, never with a 503
"""
BUILD_TIMEOUT_S = 900  # 210 M machines and their schedule take about a minute to build; allow for a loaded machine
LEAD_S = 15  # seconds of a harness run, from its scenario clock's start, before the measured ones
LOG_TIME = r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\].*"
REAL_TIME, CEILING = "harness, real time", "harness, ceiling"
BARE, RAW = "bare FastHttpUser", "bare raw-client User"
BASELINES = {BARE: "bare_fasthttpuser.py", RAW: "bare_rawuser.py"}  # in benchmarks/


@dataclass(frozen=True)
class Run:
    """One run's figures: Locust's check-ins/s; for the harness its own target, rate, late check-ins, start-up."""

    rps: float
    target_rps: float = 0.0
    harness_rps: float = 0.0
    late: int = 0
    startup_s: float = 0.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, scenario: Path) -> subprocess.Popen[bytes]:
    """The reference server on SERVER_CORE, once it answers its health check."""
    server = subprocess.Popen(["taskset", "-c", SERVER_CORE, sys.executable, "-m", "harness.server", "--port",
                               str(port), "--scenario", str(scenario), "--exit-with-parent"],
                              cwd=ROOT, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=1):
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    server.wait()
    raise SystemExit("the reference server did not answer its health check within 30 s")


def locust_rps(stats_file: Path, seconds: int) -> tuple[float, int]:
    """Completed check requests per second over the run's last `seconds` whole seconds, and the failures."""
    entries = [e for e in json.loads(stats_file.read_text()) if e["name"] == "check"]
    if not entries:
        raise SystemExit(f"{stats_file}: no check request was sent")
    per_second = {int(second): count for second, count in entries[0]["num_reqs_per_sec"].items()}
    first, last = min(per_second), max(per_second)  # both partly outside the run: never counted
    if last - first <= seconds:
        raise SystemExit(f"{stats_file}: checks were sent for {last - first} s only, not over {seconds} s")
    window = range(last - seconds, last)
    return sum(per_second.get(second, 0) for second in window) / seconds, entries[0]["num_failures"]


def _log_time(log: str, message: str) -> datetime:
    match = re.search(LOG_TIME + re.escape(message), log, re.MULTILINE)
    if match is None:
        raise SystemExit(f"Locust's log has no line {message!r}:\n{log[-2000:]}")
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")


def run_harness(host: str, fleet_size: str, time_scale: float, lead_s: int, seconds: int) -> Run:
    """One harness run on LOAD_CORE: Locust's rate, the harness's own figures, the start-up time."""
    results = Path(tempfile.mkdtemp(prefix="fleetstorm-bench-"))
    run_s = lead_s + seconds + 1
    done = subprocess.run(["taskset", "-c", LOAD_CORE, *LOCUST, "-f", str(ROOT / "locustfile.py"),
                           "--scenario", str(ROOT / "scenarios" / "smoke.toml"), "--fleet-size", fleet_size,
                           "--time-scale", f"{time_scale:.6g}", "--host", host, "-t", f"{run_s}s",
                           "--results-dir", str(results), "--json-file", str(results / "locust")],
                          cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S + run_s + 120)
    if done.returncode not in (0, 1):  # 1: the smoke scenario's thresholds failed, which is no concern here
        raise SystemExit(f"the harness exited with {done.returncode}:\n{done.stderr[-3000:]}")
    summary = json.loads((results / "summary.json").read_text())
    rows = json.loads((results / "series.json").read_text())
    rps, failures = locust_rps(results / "locust.json", seconds)
    if failures or summary["errors"]["count"]:
        raise SystemExit(f"the harness saw {summary['errors']['count']} errors: see {results}")
    end = rows[-1]
    start = next(row for row in rows if row["wall_s"] >= end["wall_s"] - seconds)
    startup = _log_time(done.stderr, "Ramping to") - _log_time(done.stderr, "Shape test updating to")
    return Run(rps, summary["checkins"]["target_rps"],
               (end["checkins"] - start["checkins"]) / (end["wall_s"] - start["wall_s"]), end["late"] - start["late"],
               startup.total_seconds())


def run_bare(host: str, locustfile: str, users: int, warmup_s: int, seconds: int) -> Run:
    """One run of a bare user (`locustfile` in benchmarks/) on LOAD_CORE: Locust's rate."""
    results = Path(tempfile.mkdtemp(prefix="fleetstorm-bench-"))
    run_s = warmup_s + seconds + 1
    subprocess.run(["taskset", "-c", LOAD_CORE, *LOCUST, "-f", str(ROOT / "benchmarks" / locustfile),
                    "-u", str(users), "-r", str(users), "--host", host, "-t", f"{run_s}s",
                    "--json-file", str(results / "locust")],
                   cwd=ROOT, capture_output=True, text=True, timeout=run_s + 60, check=True)
    rps, failures = locust_rps(results / "locust.json", seconds)
    if failures:
        raise SystemExit(f"{locustfile} saw {failures} failures: see {results}")
    return Run(rps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fleet-size", default="210M", help="machines in the fleet (default 210M)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=20, help="measured seconds at the end of each run")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of the bare users' runs not measured")
    parser.add_argument("--lead", type=int, default=LEAD_S,
                        help=f"seconds of the harness's runs not measured, from its clock's start (default {LEAD_S})")
    parser.add_argument("--ceiling-rps", type=float, default=12_000,
                        help="check-ins/s the ceiling run asks for (its time scale follows)")
    parser.add_argument("--users", type=int, default=50, help="users of each bare user class")
    args = parser.parse_args()
    machines = parse_count(args.fleet_size)
    lead_s = args.lead
    real_time_rps = machines / default_world().client.mean_interval_s
    ceiling_scale = args.ceiling_rps / real_time_rps
    labels = {REAL_TIME: f"{REAL_TIME} (x1)", CEILING: f"{CEILING} (x{ceiling_scale:.3g})",
              **{config: f"{config}, {args.users} users" for config in BASELINES}}
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as handle:
        handle.write(SERVER_SCENARIO)
    port = _free_port()
    host = f"http://127.0.0.1:{port}"
    server = start_server(port, Path(handle.name))
    measured: dict[str, list[Run]] = {config: [] for config in labels}
    try:
        for round_number in range(args.rounds):
            for config in labels:
                if config in BASELINES:
                    run = run_bare(host, BASELINES[config], args.users, args.warmup, args.seconds)
                else:
                    scale = 1.0 if config == REAL_TIME else ceiling_scale
                    run = run_harness(host, args.fleet_size, scale, lead_s, args.seconds)
                measured[config].append(run)
                extra = f"  (target {run.target_rps:,.0f}, start-up {run.startup_s:.1f} s)" if run.startup_s else ""
                print(f"round {round_number + 1}  {labels[config]:<34} {run.rps:9,.0f} check-ins/s{extra}", flush=True)
    finally:
        server.kill()
        server.wait()
    rps = {config: statistics.median(run.rps for run in runs) for config, runs in measured.items()}
    print(f"\nfleet of {args.fleet_size} machines; medians of {args.rounds} rounds, the last {args.seconds} s of "
          f"each run (harness runs {lead_s} s longer, the bare users' {args.warmup} s); load on core {LOAD_CORE}, "
          f"reference server on core {SERVER_CORE}:")
    print(f"{'configuration':<34} {'check-ins/s':>11} {'ratio to FastHttpUser':>21} {'ratio to raw User':>17}")
    for config, label in labels.items():
        print(f"{label:<34} {rps[config]:11,.0f} {rps[config] / rps[BARE]:21.2f} {rps[config] / rps[RAW]:17.2f}")
    real = measured[REAL_TIME]
    target = statistics.median(run.target_rps for run in real)
    achieved = statistics.median(run.harness_rps for run in real)
    late = statistics.median(run.late for run in real)
    print(f"\nharness at real time (its own figures): target {target:,.0f}/s, achieved {achieved:,.0f}/s, "
          f"ratio {achieved / target:.2f}, late check-ins in those seconds {late:,.0f}, "
          f"start-up (fleet and schedule built) {statistics.median(r.startup_s for r in real):.1f} s")
    for baseline in BASELINES:
        ratios = sorted(c.rps / b.rps for c, b in zip(measured[CEILING], measured[baseline], strict=True))
        print(f"harness ceiling / {baseline}: {rps[CEILING] / rps[baseline]:.2f} "
              f"(each round's own ratio: {ratios[0]:.2f}-{ratios[-1]:.2f})")
    ratio = rps[CEILING] / rps[BARE]
    print(f"goal: harness ceiling >= 1.0x bare FastHttpUser: {'met' if ratio >= 1.0 else 'not met'} ({ratio:.2f}x)")
    print("\nreproduce: make bench")


if __name__ == "__main__":
    main()
