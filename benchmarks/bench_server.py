"""The reference server's check endpoint against the fastest minimal gevent server, on one core.

Each server is pinned to core 0 and wrk to core 1; servers alternate over the rounds and the
medians (with their ranges) and their ratio to the minimal server are printed, with the server's CPU time per
request (user + system), which other work on a shared machine disturbs less than requests/s. The
default stack also runs with an app that computes nothing (benchmarks/fixed_answer_server.py), which
splits the reference server's cost into the stack's and the app's, and the same app runs under two
maintained servers, uvicorn and granian (benchmarks/maintained_servers.py), each with one worker and
one thread. A server's CPU time is that of all its processes (granian serves from a worker process).
Needs Debian's wrk, and uvicorn and granian (`pip install -e '.[bench]'`, which make bench-server runs).

Run: make bench-server   (or: .venv/bin/python benchmarks/bench_server.py --rounds 3)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
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
MINIMAL = "minimal gevent StreamServer"
MAINTAINED = [sys.executable, str(ROOT / "benchmarks" / "maintained_servers.py")]
SERVERS = {
    MINIMAL: [sys.executable, str(ROOT / "benchmarks" / "minimal_server.py")],
    "httptools stack, fixed answer": [sys.executable, str(ROOT / "benchmarks" / "fixed_answer_server.py")],
    "reference, pywsgi": [sys.executable, "-m", "harness.server", "--scenario", SCENARIO, "--stack", "pywsgi",
                          "--port"],
    "reference, httptools": [sys.executable, "-m", "harness.server", "--scenario", SCENARIO, "--stack", "httptools",
                             "--port"],
    "reference, uvicorn + uvloop": [*MAINTAINED, "uvicorn", SCENARIO],
    "reference, granian (WSGI)": [*MAINTAINED, "granian-wsgi", SCENARIO],
}
# Granian's other interfaces, slower here than its WSGI one: with --granian-interfaces.
GRANIAN_ASYNC = {f"reference, granian ({name.upper()})": [*MAINTAINED, f"granian-{name}", SCENARIO]
                 for name in ("rsgi", "asgi")}
STARTUP_S = 15.0  # granian's worker process imports and configures the app after the main process listens


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu_seconds(group: int) -> float:
    """User + system CPU time the processes of a process group have used so far."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[2]) == group:  # pgrp
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + STARTUP_S
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _check_offers_sp2(name: str, port: int) -> None:
    """The server answers the benchmark's check with what the fixed-answer server sends."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/check", data=json.dumps(CHECK).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=STARTUP_S) as response:
        answer = response.read()
    if answer != ANSWER[2]:
        raise SystemExit(f"{name} answered {answer!r}, not the offer of SP2 the benchmark measures")


def measure(name: str, command: list[str], script: Path, seconds: int, connections: int) -> tuple[float, float]:
    """Requests/s wrk achieves against one freshly started server, and the server's CPU µs per request.

    The server runs in a process group of its own, which is measured and stopped whole.
    """
    port = _free_port()
    server = subprocess.Popen(["taskset", "-c", "0", *command, str(port)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        server.stdout.readline()  # listening
        _wait_listening(port)
        time.sleep(0.3)
        if name != MINIMAL:  # the minimal server's reply is not an offer
            _check_offers_sp2(name, port)
        cpu_before = _cpu_seconds(server.pid)  # taskset execs the server: its pid is the group's
        done = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s",
                               str(script), f"http://127.0.0.1:{port}/v1/check"],
                              capture_output=True, text=True, timeout=seconds + 30, check=True)
        cpu = _cpu_seconds(server.pid) - cpu_before
    finally:
        with contextlib.suppress(ProcessLookupError):  # the group is gone if the server failed to start
            os.killpg(server.pid, signal.SIGKILL)
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
    parser.add_argument("--granian-interfaces", action="store_true",
                        help="also run the app under granian's RSGI and ASGI interfaces")
    args = parser.parse_args()
    servers = {**SERVERS, **GRANIAN_ASYNC} if args.granian_interfaces else SERVERS
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    script = Path(tempfile.mkdtemp()) / "check.lua"
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                      f"wrk.body = '{json.dumps(CHECK)}'\n")
    results: dict[str, list[float]] = {name: [] for name in servers}
    cpu: dict[str, list[float]] = {name: [] for name in servers}
    for round_number in range(args.rounds):
        for name, command in servers.items():
            rate, cpu_us = measure(name, command, script, args.seconds, args.connections)
            results[name].append(rate)
            cpu[name].append(cpu_us)
            print(f"round {round_number + 1}  {name:<33} {rate:9.0f} req/s  {cpu_us:5.1f} µs CPU/request", flush=True)
    baseline = statistics.median(results[MINIMAL])
    cpu_baseline = statistics.median(cpu[MINIMAL])
    print(f"\nPOST /v1/check, medians of {args.rounds} rounds of {args.seconds} s, server on core 0, wrk on core 1, "
          f"{args.connections} connections:")
    for name in servers:
        median, cpu_us = statistics.median(results[name]), statistics.median(cpu[name])
        print(f"  {name:<33} {median:9.0f} req/s ({min(results[name]):.0f}-{max(results[name]):.0f})   "
              f"ratio {median / baseline:.2f}   {cpu_us:5.1f} µs CPU/request "
              f"({min(cpu[name]):.1f}-{max(cpu[name]):.1f})   CPU ratio {cpu_baseline / cpu_us:.2f}")
    print("\nreproduce: make bench-server")


if __name__ == "__main__":
    main()
