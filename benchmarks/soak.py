"""A soak: the harness and the embedded reference server at ~80 % of their ceiling for half an hour.

First a one-minute probe asks for --probe-rps against the embedded server and takes what it achieved
as the ceiling here; then the soak runs at --share of it for --minutes, with a steady fleet (every
machine always on, installing automatically: benchmarks/soak.toml) so any drift is the harness's.
Every minute it prints the resident memory of every process (the Locust process and the server it
started), the check-ins done in that minute and the late ones, read from the run's own Prometheus
metrics (--metrics-port). At the end: the memory slope after warm-up (goal < 1 MB per 10 minutes),
the rate's drift between the first and the last five minutes after warm-up, and the lateness.

Run: make soak   (or: .venv/bin/python benchmarks/soak.py --minutes 30)
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench_headline import _free_port

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "benchmarks" / "soak.toml"
LOCUST = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--headless", "--only-summary",
          "--scenario", str(SCENARIO)]
WARM_UP_MIN = 5
GOAL_MB_PER_10_MIN = 1.0
_SAMPLE = re.compile(r"^(fleetstorm_checkins_total|fleetstorm_checkins_late_total)(\{[^}]*\})? (\S+)$", re.MULTILINE)


def _rss_mb(pid: int) -> float:
    """A process's resident memory in MB (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def _processes(root: int) -> dict[int, str]:
    """The process and its descendants, by pid, each with its command's short name."""
    found, todo = {}, [root]
    while todo:
        pid = todo.pop()
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        found[pid] = "server" if b"harness.server" in command else "locust"
        todo += [int(child) for child in children]
    return found


def _counts(port: int) -> tuple[float, float]:
    """(check-ins, late check-ins) so far, from the run's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    checkins = sum(float(v) for name, _, v in _SAMPLE.findall(text) if name == "fleetstorm_checkins_total")
    late = sum(float(v) for name, _, v in _SAMPLE.findall(text) if name == "fleetstorm_checkins_late_total")
    return checkins, late


def probe_ceiling(rps: float, fleet_size: str) -> float:
    """Check-ins per second achieved in one minute when asked for `rps`."""
    results = Path(tempfile.mkdtemp(prefix="fleetstorm-soak-probe-"))
    subprocess.run([*LOCUST, "--fleet-size", fleet_size, "--target-rps", f"{rps:g}", "-t", "60s",
                    "--results-dir", str(results)], cwd=ROOT, capture_output=True, timeout=300, check=False)
    return json.loads((results / "summary.json").read_text())["checkins"]["achieved_rps"]


def soak(rps: float, fleet_size: str, minutes: int) -> dict[str, float]:
    """Run the soak, printing a line a minute; its figures."""
    port, results = _free_port(), Path(tempfile.mkdtemp(prefix="fleetstorm-soak-"))
    run = subprocess.Popen([*LOCUST, "--fleet-size", fleet_size, "--target-rps", f"{rps:g}", "-t", f"{minutes}m",
                            "--metrics-port", str(port), "--results-dir", str(results)],
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows: list[tuple[int, float, float, float]] = []  # (minute, total RSS MB, check-ins, late) in that minute
    started, last = time.monotonic(), (0.0, 0.0)
    try:
        for minute in range(1, minutes + 1):
            time.sleep(max(0.0, started + 60 * minute - time.monotonic()))
            if run.poll() is not None:
                break
            counts = _counts(port)
            memory = {f"{name} {pid}": _rss_mb(pid) for pid, name in _processes(run.pid).items()}
            rows.append((minute, sum(memory.values()), counts[0] - last[0], counts[1] - last[1]))
            last = counts
            print(f"min {minute:3d}  " + "  ".join(f"{k} {v:,.1f} MB" for k, v in sorted(memory.items()))
                  + f"  check-ins/s {rows[-1][2] / 60:,.1f} (target {rps:,.0f})  late {rows[-1][3]:,.0f}", flush=True)
    finally:
        run.wait(timeout=minutes * 60 + 300)
    summary = json.loads((results / "summary.json").read_text())
    steady = [row for row in rows if row[0] > WARM_UP_MIN]
    if len(steady) < 2:
        raise SystemExit(f"{len(rows)} minutes are too few to say: the first {WARM_UP_MIN} are warm-up")
    slope = statistics.linear_regression([r[0] for r in steady], [r[1] for r in steady]).slope
    first, end = steady[:5], steady[-5:]
    drift = (statistics.mean(r[2] for r in end) - statistics.mean(r[2] for r in first)) / 60 / rps
    return {"slope_mb_per_10_min": slope * 10, "rate_drift": drift, "late": summary["checkins"]["late"],
            "p99_ms": summary["latency_ms"]["p99"], "achieved_rps": summary["checkins"]["achieved_rps"],
            "unfinished": summary["checkins"]["unfinished"]["count"], "exit_code": summary["exit_code"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=30)
    # Small enough that every machine checks in within the warm-up (about every 5 minutes at 3,500/s):
    # the schedule's first round moves each machine from the arrays it was built in to those of
    # rescheduled machines.
    parser.add_argument("--fleet-size", default="1M")
    parser.add_argument("--probe-rps", type=float, default=12_000, help="asked of the one-minute ceiling probe")
    parser.add_argument("--share", type=float, default=0.8, help="of the probed ceiling to soak at")
    args = parser.parse_args()
    ceiling = probe_ceiling(args.probe_rps, args.fleet_size)
    rps = round(ceiling * args.share)
    print(f"ceiling here: {ceiling:,.0f} check-ins/s (asked {args.probe_rps:,.0f}); soaking at {rps:,} "
          f"({args.share:.0%}) for {args.minutes} minutes with {args.fleet_size} machines", flush=True)
    figures = soak(rps, args.fleet_size, args.minutes)
    verdict = "met" if figures["slope_mb_per_10_min"] < GOAL_MB_PER_10_MIN else "NOT met"
    print(f"memory slope after {WARM_UP_MIN} min: {figures['slope_mb_per_10_min']:+.2f} MB per 10 minutes "
          f"(goal < {GOAL_MB_PER_10_MIN:g}: {verdict}); rate drift {figures['rate_drift']:+.2%}; "
          f"achieved {figures['achieved_rps']:,.1f}/s of {rps:,}/s; late {figures['late']:,}; "
          f"p99 {figures['p99_ms']:.1f} ms; unfinished {figures['unfinished']:,}; exit code {figures['exit_code']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
