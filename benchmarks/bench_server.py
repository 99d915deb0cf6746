"""The reference server's check endpoint against the fastest minimal gevent server, on one core.

Each server is pinned to core 0 and wrk to core 1; servers alternate over the rounds and the
medians (with their ranges) and their ratio to the minimal server are printed, with the server's CPU time per
request (user + system), which other work on a shared machine disturbs less than requests/s. The
default stack also runs with an app that computes nothing (benchmarks/fixed_answer_server.py), which
splits the reference server's cost into the stack's and the app's.
Needs Debian's wrk.

Run: make bench-server   (or: .venv/bin/python benchmarks/bench_server.py --rounds 3)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from fixed_answer_server import ANSWER

ROOT = Path(__file__).resolve().parent.parent
# The reference server plays the smoke scenario's throttled rollout (10 % -> 20 %), so every check
# computes the machine's gate; this machine's gate (1.9) is under the percentage: it is offered SP2.
SCENARIO = str(ROOT / "scenarios" / "smoke.toml")
CHECK = {"client_id": "6b0d549b-6f03-475a-9600-a35a099950d8", "hostname": "HOST-0001", "edition": "home",
         "language": "en", "enterprise": False, "installed": []}
SERVERS = {
    "minimal gevent StreamServer": [sys.executable, str(ROOT / "benchmarks" / "minimal_server.py")],
    "httptools stack, fixed answer": [sys.executable, str(ROOT / "benchmarks" / "fixed_answer_server.py")],
    "reference, pywsgi": [sys.executable, "-m", "harness.server", "--scenario", SCENARIO, "--stack", "pywsgi",
                          "--port"],
    "reference, httptools": [sys.executable, "-m", "harness.server", "--scenario", SCENARIO, "--stack", "httptools",
                             "--port"],
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _check_offers_sp2(port: int) -> None:
    """The reference server answers the benchmark's check with what the fixed-answer server sends."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/check", data=json.dumps(CHECK).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        answer = response.read()
    if answer != ANSWER[2]:
        raise SystemExit(f"the reference server answered {answer!r}, not the offer of SP2 the benchmark measures")


def measure(command: list[str], script: Path, seconds: int, connections: int) -> tuple[float, float]:
    """Requests/s wrk achieves against one freshly started server, and the server's CPU µs per request."""
    port = _free_port()
    server = subprocess.Popen(["taskset", "-c", "0", *command, str(port)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    try:
        server.stdout.readline()  # listening
        time.sleep(0.3)
        if "harness.server" in command:
            _check_offers_sp2(port)
        cpu_before = _cpu_seconds(server.pid)  # taskset execs the server: same pid
        done = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s",
                               str(script), f"http://127.0.0.1:{port}/v1/check"],
                              capture_output=True, text=True, timeout=seconds + 30, check=True)
        cpu = _cpu_seconds(server.pid) - cpu_before
    finally:
        server.kill()
        server.wait()
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    if errors:
        raise SystemExit(f"{command}: {errors.group(1)} error responses:\n{done.stdout}")
    requests = int(re.search(r"(\d+) requests in", done.stdout).group(1))
    return float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1)), cpu / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    script = Path(tempfile.mkdtemp()) / "check.lua"
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                      f"wrk.body = '{json.dumps(CHECK)}'\n")
    results: dict[str, list[float]] = {name: [] for name in SERVERS}
    cpu: dict[str, list[float]] = {name: [] for name in SERVERS}
    for round_number in range(args.rounds):
        for name, command in SERVERS.items():
            rate, cpu_us = measure(command, script, args.seconds, args.connections)
            results[name].append(rate)
            cpu[name].append(cpu_us)
            print(f"round {round_number + 1}  {name:<30} {rate:9.0f} req/s  {cpu_us:5.1f} µs CPU/request", flush=True)
    baseline = statistics.median(results["minimal gevent StreamServer"])
    cpu_baseline = statistics.median(cpu["minimal gevent StreamServer"])
    print(f"\nPOST /v1/check, medians of {args.rounds} rounds of {args.seconds} s, server on core 0, wrk on core 1, "
          f"{args.connections} connections:")
    for name in SERVERS:
        median, cpu_us = statistics.median(results[name]), statistics.median(cpu[name])
        print(f"  {name:<30} {median:9.0f} req/s ({min(results[name]):.0f}-{max(results[name]):.0f})   "
              f"ratio {median / baseline:.2f}   {cpu_us:5.1f} µs CPU/request "
              f"({min(cpu[name]):.1f}-{max(cpu[name]):.1f})   CPU ratio {cpu_baseline / cpu_us:.2f}")
    print("\nreproduce: make bench-server")


if __name__ == "__main__":
    main()
