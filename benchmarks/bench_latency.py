"""The harness's own added latency: check-ins' due-time latency against a server that answers at once.

The minimal server (benchmarks/minimal_server.py, a fixed reply, nothing computed) runs pinned to
core 0. Two senders alternate over the rounds on core 1, each asking for --rate requests/s, far under
what one core can send:

- the harness, a real headless Locust run of locustfile.py with smoke.toml's fleet: each check-in's
  due-time latency runs from the moment it was due to the moment its answer was read (summary.json);
- a bare paced sender (benchmarks/paced_sender.py): the same request on a fixed schedule from a bare
  gevent loop on a raw geventhttpclient client, its due-time latency measured the same way.

The server computes nothing, so the bare sender's latency is what the machine, gevent's timers and the
loopback round trip cost, and the harness's is that plus the harness's own work: its dispatcher, an
agent taking the check-in, building and encoding the request, parsing the answer, and its
once-a-second work holding up the gevent loop. The harness's added latency at a percentile is the
harness's due-time latency minus the bare sender's, in the same round. Percentiles are over each
whole run; medians and ranges over the rounds are printed, with each sender's mean service time
(sent to answer read).

Run: make bench-latency   (or: .venv/bin/python benchmarks/bench_latency.py --rounds 3)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_headline import LOAD_CORE, LOCUST, SERVER_CORE, _free_port

ROOT = Path(__file__).resolve().parent.parent
MINIMAL_SERVER = ROOT / "benchmarks" / "minimal_server.py"
DUE_STATS = ("p50", "p99", "p99.9", "max")
GOAL_MS = 1.0  # added by the harness at p99.9
HARNESS, BARE = "harness", "bare paced sender"


def start_minimal_server(port: int) -> subprocess.Popen[str]:
    """The minimal server on SERVER_CORE, once it listens."""
    server = subprocess.Popen(["taskset", "-c", SERVER_CORE, sys.executable, str(MINIMAL_SERVER), str(port)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    server.stdout.readline()  # listening
    return server


def run_harness(host: str, fleet_size: str, rate: float, seconds: int) -> dict[str, float]:
    """One harness run on LOAD_CORE: due-time latency percentiles and mean service time (ms)."""
    results = Path(tempfile.mkdtemp(prefix="fleetstorm-bench-"))
    subprocess.run(["taskset", "-c", LOAD_CORE, *LOCUST, "-f", str(ROOT / "locustfile.py"),
                    "--scenario", str(ROOT / "scenarios" / "smoke.toml"), "--fleet-size", fleet_size,
                    "--target-rps", f"{rate:g}", "--host", host, "-t", f"{seconds}s", "--results-dir", str(results),
                    "--json-file", str(results / "locust")],
                   cwd=ROOT, capture_output=True, text=True, timeout=seconds + 120, check=True)
    summary = json.loads((results / "summary.json").read_text())
    if summary["errors"]["count"]:
        raise SystemExit(f"the harness saw {summary['errors']['count']} errors: see {results}")
    check = next(e for e in json.loads((results / "locust.json").read_text()) if e["name"] == "check")
    return {**{stat: summary["latency_ms"][stat] for stat in DUE_STATS},
            "service mean": check["total_response_time"] / check["num_requests"]}


def run_bare(host: str, rate: float, seconds: int) -> dict[str, float]:
    """One run of the bare paced sender on LOAD_CORE: the same figures."""
    done = subprocess.run(["taskset", "-c", LOAD_CORE, sys.executable, str(ROOT / "benchmarks" / "paced_sender.py"),
                           host, "--rate", f"{rate:g}", "--seconds", str(seconds)],
                          cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60, check=True)
    return json.loads(done.stdout)


def _line(label: str, values: list[float]) -> str:
    values = sorted(values)
    return f"  {label:<42} {statistics.median(values):8.3f} ms  ({values[0]:.3f}-{values[-1]:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=60, help="length of each run")
    parser.add_argument("--rate", type=float, default=300, help="check-ins (and bare requests)/s asked for")
    parser.add_argument("--fleet-size", default="1M", help="machines in the fleet (default 1M)")
    args = parser.parse_args()
    port = _free_port()
    host = f"http://127.0.0.1:{port}"
    server = start_minimal_server(port)
    runs: dict[str, list[dict[str, float]]] = {HARNESS: [], BARE: []}
    try:
        for round_number in range(args.rounds):
            for sender, run in ((HARNESS, lambda: run_harness(host, args.fleet_size, args.rate, args.seconds)),
                                (BARE, lambda: run_bare(host, args.rate, args.seconds))):
                runs[sender].append(run())
                print(f"round {round_number + 1}  {sender:<18} " +
                      "  ".join(f"{key} {value:.3f}" for key, value in runs[sender][-1].items()), flush=True)
    finally:
        server.kill()
        server.wait()
    print(f"\n{args.rounds} rounds of {args.seconds} s at {args.rate:g} requests/s (the harness: {args.fleet_size} "
          f"machines), senders on core {LOAD_CORE}, minimal server on core {SERVER_CORE}; median (range) over the "
          "rounds:")
    for sender in runs:
        for key in (*DUE_STATS, "service mean"):
            label = f"due-time latency {key}" if key in DUE_STATS else "service time mean"
            print(_line(f"{sender}, {label}", [run[key] for run in runs[sender]]))
    added = {stat: [h[stat] - b[stat] for h, b in zip(runs[HARNESS], runs[BARE], strict=True)] for stat in DUE_STATS}
    for stat, values in added.items():
        print(_line(f"added by the harness, {stat}", values))
    p999 = statistics.median(added["p99.9"])
    verdict = "met" if p999 < GOAL_MS else "not met"
    if p999 < 0:  # the bare sender's rounds were held up more: the machine's noise swamps the harness's share
        verdict = "not measurable in this run"
    print(f"goal: added by the harness at p99.9 < {GOAL_MS:g} ms: {verdict} ({p999:.3f} ms)")
    print("\nreproduce: make bench-latency")


if __name__ == "__main__":
    main()
