"""The end-of-run verdict: observations, thresholds judged, summary.json and a printed table."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from locust.stats import RequestStats

from harness.errors import ExitCode
from harness.metrics import Metrics
from harness.scenario import Scenario
from harness.thresholds import LATENCY_STATS, Threshold, Verdict, judge


@dataclass(frozen=True)
class RunFacts:
    """Everything measured in one run that the verdict is drawn from."""

    scenario: Scenario
    metrics: Metrics
    stats: RequestStats
    duration_s: float
    late: int


def _request_totals(stats: RequestStats, name: str) -> tuple[int, int]:
    entries = [entry for (entry_name, _), entry in stats.entries.items() if entry_name == name]
    return sum(e.num_requests for e in entries), sum(e.num_failures for e in entries)


def observe(facts: RunFacts, key: str) -> float | None:
    """The observed value of a threshold key (e.g. "check.p95" in ms), or None if not measured."""
    family, _, stat = key.partition(".")
    duration = max(facts.duration_s, 1e-9)
    metrics = facts.metrics
    if family == "check" and (stat.startswith("p") or stat in LATENCY_STATS):
        return _due_latency(metrics, stat)
    if family == "errors":
        total = facts.stats.total
        return float(total.num_failures) if stat == "count" else total.fail_ratio
    if family == "schedule":
        return float(facts.late)
    if family == "fleet":
        return float(metrics.counters.get(stat, 0))
    if family == "download" and stat == "goodput":
        return metrics.counters["download_bytes"] / duration
    count, failures = _request_totals(facts.stats, family)
    if stat == "rps":
        return (metrics.counters["checkins"] if family == "check" else count) / duration
    if stat == "count":
        return float(count)
    if stat == "ratio":
        return failures / count if count else 0.0
    return _service_latency(facts.stats, family, stat)


def _due_latency(metrics: Metrics, stat: str) -> float | None:
    if metrics.due_latency.get_total_count() == 0:
        return None
    if stat == "max":
        return metrics.max_latency_ms()
    if stat == "min":
        return metrics.due_latency.get_min_value() / 1000.0
    if stat == "avg":
        return metrics.due_latency.get_mean_value() / 1000.0
    return metrics.latency_ms(float(stat[1:]))


def _service_latency(stats: RequestStats, name: str, stat: str) -> float | None:
    entries = [entry for (entry_name, _), entry in stats.entries.items() if entry_name == name]
    if not entries or entries[0].num_requests == 0:
        return None
    entry = entries[0]
    if stat == "max":
        return float(entry.max_response_time)
    if stat == "min":
        return float(entry.min_response_time or 0)
    if stat == "avg":
        return float(entry.avg_response_time)
    return float(entry.get_response_time_percentile(float(stat[1:]) / 100.0))


def verdicts(facts: RunFacts, thresholds: tuple[Threshold, ...]) -> list[Verdict]:
    """Every threshold judged against this run."""
    return judge(thresholds, {t.key: v for t in thresholds if (v := observe(facts, t.key)) is not None})


def exit_code(results: list[Verdict]) -> ExitCode:
    return ExitCode.PASSED if all(v.passed for v in results) else ExitCode.THRESHOLD_FAILED


def build_summary(facts: RunFacts, results: list[Verdict], code: ExitCode) -> dict[str, Any]:
    """The content of summary.json (keys documented in the README; keep them stable)."""
    scenario, metrics = facts.scenario, facts.metrics
    counters = metrics.counters
    target = scenario.fleet.target_rps(scenario.timeline.time_scale)
    errors, ratio = facts.stats.total.num_failures, facts.stats.total.fail_ratio
    return {
        "scenario": scenario.name,
        "scenario_file": scenario.path,
        "exit_code": int(code),
        "duration_s": round(facts.duration_s, 3),
        "checkins": {
            "count": counters["checkins"],
            "failed": counters["checkins_failed"],
            "target_rps": round(target, 2),
            "achieved_rps": round(counters["checkins"] / max(facts.duration_s, 1e-9), 2),
            "late": facts.late,
        },
        "latency_ms": {f"p{p:g}": round(metrics.latency_ms(p), 3) for p in (50, 95, 99)}
        | {"max": round(metrics.max_latency_ms(), 3), "measured_from": "due time"},
        "errors": {"count": errors, "ratio": round(ratio, 6)},
        "downloads": {"bytes": counters["download_bytes"], "real_bytes": counters["download_real_bytes"],
                      "failed": counters["downloads_failed"], "corrupt": counters["downloads_corrupt"]},
        "fleet": {"machines": scenario.fleet.machines, "weight": scenario.fleet.weight,
                  "counters": metrics.fleet_counters()},
        "thresholds": [{"expr": v.expr, "observed": v.observed, "passed": v.passed} for v in results],
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The human-readable table printed at the end of a run."""
    c, lat, err = summary["checkins"], summary["latency_ms"], summary["errors"]
    lines = [
        f"fleetstorm summary: {summary['scenario']} ({summary['duration_s']:.1f} s)",
        f"  check-ins     {c['count']} done, {c['achieved_rps']:.1f}/s achieved vs {c['target_rps']:.1f}/s target, "
        f"{c['late']} late",
        f"  latency (ms from due time)  p50 {lat['p50']:.1f}  p95 {lat['p95']:.1f}  p99 {lat['p99']:.1f}  "
        f"max {lat['max']:.1f}",
        f"  errors        {err['count']} ({err['ratio']:.2%})",
        f"  downloads     {summary['downloads']['bytes']} bytes",
        "  thresholds",
    ]
    for item in summary["thresholds"]:
        observed = "not measured" if item["observed"] is None else f"{item['observed']:.4g}"
        lines.append(f"    {'PASS' if item['passed'] else 'FAIL'}  {item['expr']:<36} observed {observed}")
    if not summary["thresholds"]:
        lines.append("    (none)")
    lines.append(f"  exit code {summary['exit_code']}")
    return "\n".join(lines)


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    """Write JSON so that readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
