"""On target from the first second: `make run`'s first five seconds and a 6 s run, against their target.

Runs what `make run` runs (the smoke scenario on the embedded reference server) for 6 s, --rounds
times, and prints from each run's per-second series (results/series.json) the check-ins of the first
five seconds of the scenario clock against the target's, and the whole run's achieved rate against
its target (summary.json); medians over the rounds with their ranges.
Goals: the first 5 s window >= 95 % of its target, a 6 s run within 3 % of its target.

Run: make bench-first-second   (or: .venv/bin/python benchmarks/bench_first_second.py --rounds 5)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCUST = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--headless", "--only-summary",
          "--scenario", str(ROOT / "scenarios" / "smoke.toml")]
FIRST_WINDOW_S = 5


def one_run(run_s: int) -> tuple[float, float]:
    """(first 5 s window's check-ins over its target's, the run's achieved rate over its target)."""
    results = Path(tempfile.mkdtemp(prefix="fleetstorm-bench-first-"))
    subprocess.run([*LOCUST, "-t", f"{run_s}s", "--results-dir", str(results)], cwd=ROOT, capture_output=True,
                   timeout=run_s + 120, check=False)
    rows = json.loads((results / "series.json").read_text())
    summary = json.loads((results / "summary.json").read_text())["checkins"]
    window = [row for row in rows if row["wall_s"] <= FIRST_WINDOW_S + 0.5]
    if not window or window[-1]["wall_s"] < FIRST_WINDOW_S - 0.5:
        raise SystemExit(f"{results}: the run has no whole first {FIRST_WINDOW_S} s")
    target = sum(row["target_rps"] for row in window)  # one row a second
    return window[-1]["checkins"] / target, summary["achieved_rps"] / summary["target_rps"]


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.1%} ({min(values):.1%}-{max(values):.1%})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=6, help="each run's -t")
    args = parser.parse_args()
    runs = [one_run(args.seconds) for _ in range(args.rounds)]
    print(f"make run's smoke scenario, {args.rounds} runs of {args.seconds} s: medians (ranges)")
    print(f"  first {FIRST_WINDOW_S} s of the clock: {_median([first for first, _ in runs])} of the target's "
          f"check-ins (goal >= 95%)")
    print(f"  whole run: achieved {_median([whole for _, whole in runs])} of the target rate (goal within 3%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
