"""Every Windows PC of 2004 in real time on this machine: 600 M machines, two load processes and the
reference server, all on its 2 cores.

Starts the reference server (`python -m harness.server`, the smoke scenario's policy), then `locust
--processes 2` (a master and two workers, each with half the fleet) at time scale 1 against it, and
prints:
- the time from Locust's start to the first check-in the server answers (its /metrics read every 50 ms);
- achieved / target check-ins per second over each 60 s window after --warm-up-s (the run's own /metrics,
  --metrics-port on the master, which merges the workers' reports);
- the due-time lateness p99 over those windows (the run's latency histogram, last window's end less the
  first's start);
- the peak total resident memory of every process (master, workers, server), read each second.
Goals: achieved / target >= 0.98 in every window, lateness p99 < 50 ms, memory < 6 GB, first check-in
within 5 s. When a window falls short the run is profiled (--profile): py-spy samples one worker.

Run: make bench-world   (or: .venv/bin/python benchmarks/bench_world.py --fleet-size 600M --windows 3)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from bench_headline import _free_port
from prometheus_client.parser import text_string_to_metric_families
from soak import _processes, _rss_mb

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "smoke.toml"
LOCUST = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--headless", "--only-summary"]
WINDOW_S = 60
GOALS = {"ratio": 0.98, "p99_ms": 50.0, "memory_gb": 6.0, "first_checkin_s": 5.0}


def _samples(port: int) -> Iterator[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample a /metrics page exposes."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            yield sample.name, sample.labels, sample.value


def _server_checks(port: int) -> float:
    """Check requests the reference server has answered."""
    return sum(value for name, labels, value in _samples(port)
               if name == "fleetstorm_server_requests_total" and labels.get("endpoint") == "check")


class Reading:
    """The run's check-ins, target and latency buckets at one moment."""

    def __init__(self, port: int) -> None:
        self.at = time.monotonic()
        self.checkins = self.target_rps = 0.0
        self.buckets: dict[float, float] = {}
        for name, labels, value in _samples(port):
            if name == "fleetstorm_checkins_total":
                self.checkins += value
            elif name == "fleetstorm_target_checkins_per_second":
                self.target_rps = value
            elif name == "fleetstorm_checkin_latency_seconds_bucket":
                self.buckets[float(labels["le"])] = value


def p99_ms(first: Reading, last: Reading) -> float:
    """The latency bucket's upper edge holding the 99th percentile of the check-ins between two readings."""
    edges = sorted(last.buckets)
    counts = [last.buckets[edge] - first.buckets.get(edge, 0.0) for edge in edges]
    for edge, count in zip(edges, counts, strict=True):
        if count >= 0.99 * counts[-1]:
            return edge * 1000
    return float("inf")


def run(scenario: str, fleet_size: str, processes: int, warm_up_s: int, windows: int,
        profile: bool) -> dict[str, object]:
    """One run; its figures."""
    server_port, metrics_port = _free_port(), _free_port()
    server = subprocess.Popen([sys.executable, "-m", "harness.server", "--port", str(server_port), "--scenario",
                               str(SCENARIO), "--exit-with-parent"], cwd=ROOT, stdout=subprocess.DEVNULL)
    results = Path(tempfile.mkdtemp(prefix="fleetstorm-bench-world-"))
    run_s = warm_up_s + windows * WINDOW_S + 5
    log = (results / "locust.log").open("w")
    try:
        while True:
            try:
                _server_checks(server_port)
                break
            except OSError:
                time.sleep(0.1)
        started = time.monotonic()
        split = ["--processes", str(processes)] if processes else []
        locust = subprocess.Popen([*LOCUST, "--scenario", scenario, "--fleet-size", fleet_size, "--time-scale", "1",
                                   *split,
                                   "--host", f"http://127.0.0.1:{server_port}", "-t", f"{run_s}s",
                                   "--metrics-port", str(metrics_port), "--results-dir", str(results)],
                                  cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
        while _server_checks(server_port) == 0:
            if locust.poll() is not None:
                raise SystemExit(f"the run ended before its first check-in: see {results / 'locust.log'}")
            time.sleep(0.05)
        first_checkin_s = time.monotonic() - started
        readings, memory_gb, profiled = [], 0.0, None
        next_reading = started + warm_up_s
        while len(readings) <= windows and locust.poll() is None:
            pids = {**_processes(locust.pid), server.pid: "server"}
            memory_gb = max(memory_gb, sum(_rss_mb(pid) for pid in pids) / 1024)
            if time.monotonic() >= next_reading:
                readings.append(Reading(metrics_port))
                next_reading += WINDOW_S
                if profile and profiled is None and len(readings) == 2:
                    profiled = _profile([pid for pid in pids if pid != server.pid][-1:], results)
            time.sleep(1.0)
        locust.wait(timeout=run_s + 600)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    if len(readings) < 2:
        raise SystemExit(f"the run ended before a whole window was measured: see {results / 'locust.log'}")
    ratios = [(b.checkins - a.checkins) / (b.at - a.at) / b.target_rps
              for a, b in zip(readings, readings[1:], strict=False)]
    return {"first_checkin_s": first_checkin_s, "target_rps": readings[-1].target_rps, "ratios": ratios,
            "p99_ms": p99_ms(readings[0], readings[-1]), "memory_gb": memory_gb, "profile": profiled,
            "summary": json.loads((results / "summary.json").read_text())["checkins"]}


def _profile(workers: list[int], results: Path) -> str | None:
    """The functions a worker spent most of 20 s in (py-spy, if installed), as text."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not workers or not Path(py_spy).exists():
        return None
    out = results / "profile.txt"
    subprocess.run([py_spy, "record", "--pid", str(workers[0]), "--duration", "20", "--format", "raw", "--rate",
                    "100", "--output", str(out)], capture_output=True, timeout=120, check=False)
    return str(out) if out.exists() else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=str(SCENARIO), help="the load's scenario (default: the smoke "
                        "scenario's; the server always plays the smoke scenario's policy)")
    parser.add_argument("--fleet-size", default="600M")
    parser.add_argument("--processes", type=int, default=2, help="Locust workers (--processes; 0: one process)")
    parser.add_argument("--warm-up-s", type=int, default=60, help="seconds after Locust's start before the windows")
    parser.add_argument("--windows", type=int, default=3, help="60 s windows measured")
    parser.add_argument("--profile", action="store_true", help="py-spy a worker during the second window")
    args = parser.parse_args()
    figures = run(args.scenario, args.fleet_size, args.processes, args.warm_up_s, args.windows, args.profile)
    ratios = figures["ratios"]
    print(f"{Path(args.scenario).name}, {args.fleet_size} machines in real time, --processes {args.processes}, "
          f"reference server on the same machine: target {figures['target_rps']:,.1f} check-ins/s")
    print(f"  first check-in      {figures['first_checkin_s']:.1f} s after Locust's start "
          f"(goal <= {GOALS['first_checkin_s']:g} s)")
    print(f"  achieved / target   {', '.join(f'{r:.3f}' for r in ratios)} per {WINDOW_S} s window "
          f"(goal >= {GOALS['ratio']:g})")
    print(f"  lateness p99        <= {figures['p99_ms']:g} ms over the windows (goal < {GOALS['p99_ms']:g} ms)")
    print(f"  memory, all processes  {figures['memory_gb']:.2f} GB at the peak (goal < {GOALS['memory_gb']:g} GB)")
    summary = figures["summary"]
    print(f"  whole run: {summary['count']:,} check-ins, {summary['achieved_rps']:,.1f}/s, {summary['late']:,} late")
    if figures["profile"]:
        print(f"  profile of a worker (py-spy raw): {figures['profile']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
