"""Check-ins/s with 1 worker, 2 workers and --processes 2, side by side, and the master's CPU share.

The target rate is far above what this machine can send, so each configuration runs at its ceiling.
Configurations alternate over the rounds so that noise from other work on the machine spreads
evenly; medians are printed with their ratios to the 1-worker figure.

Run: make bench-distributed   (or: .venv/bin/python benchmarks/bench_distributed.py --rounds 3)
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
LOCUST = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py")]
SCENARIO = """
name = "bench-distributed"
[timeline]
start = 2004-08-18T00:00:00Z
end = 2004-08-25T00:00:00Z
time_scale = 720
[fleet]
machines = 2000000       # ~20,000 check-ins/s asked for: far above one small machine's ceiling
[agents]
users = 64
[server]
payload_scale = 0.0001
capacity = 100000
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu_share(process: psutil.Process, seconds: float) -> float:
    """CPU seconds the process used per wall second over the next `seconds`."""
    before = sum(process.cpu_times()[:2])
    time.sleep(seconds)
    return (sum(process.cpu_times()[:2]) - before) / seconds


def run(config: str, scenario: Path, run_s: int) -> tuple[float, float]:
    """One run: (check-ins/s achieved, master CPU share)."""
    results = Path(tempfile.mkdtemp(prefix="fleetstorm-bench-"))
    port = str(_free_port())
    common = ["--headless", "--only-summary", "--scenario", str(scenario), "-t", f"{run_s}s",
              "--results-dir", str(results)]
    workers: list[subprocess.Popen[bytes]] = []
    if config == "processes-2":
        master = subprocess.Popen([*LOCUST, *common, "--processes", "2"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
    else:
        count = int(config.split("-")[0])
        workers = [subprocess.Popen([*LOCUST, "--worker", "--master-port", port], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL) for _ in range(count)]
        master = subprocess.Popen([*LOCUST, *common, "--master", "--expect-workers", str(count),
                                   "--master-bind-host", "127.0.0.1", "--master-bind-port", port],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(4)  # workers connect, fleets are built, the clock starts
        share = _cpu_share(psutil.Process(master.pid), run_s - 4)
        master.wait(timeout=120)
    finally:
        for process in [master, *workers]:
            process.kill()
            process.wait()
    summary = json.loads((results / "summary.json").read_text())
    return summary["checkins"]["achieved_rps"], share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()
    configs = ("1-worker", "2-workers", "processes-2")
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as handle:
        handle.write(SCENARIO)
    measured: dict[str, list[tuple[float, float]]] = {c: [] for c in configs}
    for round_number in range(args.rounds):
        for config in configs:
            measured[config].append(run(config, Path(handle.name), args.seconds))
            rps, share = measured[config][-1]
            print(f"round {round_number + 1} {config:<12} {rps:9.0f} check-ins/s  master CPU {share:.0%}", flush=True)
    base = statistics.median(r for r, _ in measured["1-worker"])
    print(f"\nmedians of {args.rounds} rounds, {args.seconds} s each, on {psutil.cpu_count()} cores:")
    print(f"{'configuration':<14} {'check-ins/s':>11} {'ratio':>6} {'master CPU':>10}")
    for config in configs:
        rps = statistics.median(r for r, _ in measured[config])
        share = statistics.median(s for _, s in measured[config])
        print(f"{config:<14} {rps:11.0f} {rps / base:6.2f} {share:10.0%}")
    print("\nreproduce: make bench-distributed")


if __name__ == "__main__":
    main()
