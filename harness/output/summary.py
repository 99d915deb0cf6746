"""The end-of-run verdict as summary.json and the table printed on stdout."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from harness.config.errors import ExitCode
from harness.config.schema import Scenario
from harness.measure.metrics import histogram_ms
from harness.measure.span import Span, observed
from harness.measure.thresholds import Verdict
from harness.output.atomic import write_text_atomically

SHOWN_REASONS = 5


def exit_code(verdicts: list[Verdict], harness_errors: Mapping[str, int], aborted: bool = False) -> ExitCode:
    """3 for a bug in fleetstorm; 1 for a failed threshold, an abort, or errors from the target or adapter; else 0.

    A run with harness errors never passes silently, whatever its thresholds say.
    """
    if any(key.startswith("harness: ") for key in harness_errors):
        return ExitCode.HARNESS_ERROR
    if aborted or harness_errors or not all(v.passed for v in verdicts):
        return ExitCode.THRESHOLD_FAILED
    return ExitCode.PASSED


def _harness_errors(errors: Mapping[str, int]) -> dict[str, Any]:
    by_source: dict[str, int] = {}
    for key, count in errors.items():
        source = key.partition(": ")[0]
        by_source[source] = by_source.get(source, 0) + count
    reasons = [{"source": key.partition(": ")[0], "reason": key.partition(": ")[2], "count": count}
               for key, count in sorted(errors.items(), key=lambda item: -item[1])[:SHOWN_REASONS]]
    return {"count": sum(errors.values()), "by_source": by_source, "reasons": reasons}


def build_summary(scenario: Scenario, totals: Span, verdicts: list[Verdict], code: ExitCode, share: float = 1.0,
                  **extra: Any) -> dict[str, Any]:
    """The content of summary.json (keys documented in the README; keep them stable, add freely).

    `share` is the part of the fleet measured: a worker's partition alone is asked that share of the target.
    """
    metrics, counters = totals.metrics, totals.metrics.counters
    duration = max(totals.duration_s, 1e-9)
    requests, failures = metrics.requests()
    return {
        "scenario": scenario.name,
        "scenario_file": scenario.path,
        "exit_code": int(code),
        "duration_s": round(totals.duration_s, 3),
        "checkins": {
            "count": counters["checkins"],
            "failed": counters["checkins_failed"],
            "target_rps": round(scenario.target_rps(_mean_time_scale(scenario, totals)) * share, 2),
            "achieved_rps": round(counters["checkins"] / duration, 2),
            "late": counters["late"],
            "unfinished": {
                "count": counters["unfinished"],
                "backlog": counters["unfinished_backlog"],
                "queued": counters["unfinished_queued"],
                "in_flight": counters["unfinished_in_flight"],
                "age_ms": {stat: round(histogram_ms(metrics.unfinished_age, stat) or 0.0, 3)
                           for stat in ("p50", "p99", "max")},
            },
            "negative_latency": counters["latency_negative"],
        },
        "latency_ms": {f"p{p:g}": round(metrics.latency_ms(p), 3) for p in (50, 95, 99, 99.9)}
        | {"max": round(metrics.max_latency_ms(), 3), "measured_from": "due time"},
        "errors": {"count": failures, "ratio": round(failures / requests, 6) if requests else 0.0,
                   "requests": requests},
        "downloads": {"bytes": counters["download_bytes"], "real_bytes": counters["download_real_bytes"],
                      "failed": counters["downloads_failed"], "corrupt": counters["downloads_corrupt"],
                      "retries": counters["download_retries"]},
        "backoff": {"http_503": counters["http_503"], "retry_after_honoured": counters["retry_after_honoured"],
                    "exponential": counters["backoffs"]},
        "harness_errors": _harness_errors(metrics.harness_errors),
        "real": _real_rates(scenario, totals, share),
        "timeline": _timeline(scenario),
        "world": {"name": scenario.world.name, "updates": list(scenario.world.update_names)},
        "rollouts": {update: [[step.at.isoformat(), step.percent] for step in rollout.steps]
                     for update, rollout in scenario.server.rollouts},
        "fleet": {"machines": scenario.fleet.machines, "weight": scenario.fleet.weight,
                  "real_machines": scenario.fleet.real_fleet, "counters": metrics.fleet_counters()},
        "thresholds": [{"expr": v.expr, "observed": v.observed, "passed": v.passed, "detail": v.detail}
                       for v in verdicts],
        **extra,
    }


def _timeline(scenario: Scenario) -> dict[str, Any]:
    """The scenario time played, and its phases: from which date each time scale held."""
    timeline = scenario.timeline
    phases = [(0.0, timeline.time_scale), *timeline.phases]
    return {"start": timeline.start.isoformat(), "end": timeline.end.isoformat(),
            "phases": [{"from": (timeline.start + timedelta(seconds=second)).isoformat(), "time_scale": scale}
                       for second, scale in phases]}


def _real_rates(scenario: Scenario, totals: Span, share: float) -> dict[str, float]:
    """The run's rates as what they stand for: per real-world second, for the whole real fleet.

    `checkins.achieved_rps` and `target_rps` are emulated check-ins per wall second.
    """
    real_per_emulated = scenario.fleet.weight / _mean_time_scale(scenario, totals)
    goodput = observed(totals, "download.goodput", real=True)
    return {"checkins_per_s": round(totals.per_second(totals.metrics.counters["checkins"], real=True), 4),
            "target_checkins_per_s": round(scenario.target_rps(_mean_time_scale(scenario, totals))
                                           * real_per_emulated * share, 4),
            "download_bytes_per_s": round(goodput or 0.0, 1)}


def _mean_time_scale(scenario: Scenario, totals: Span) -> float:
    """Scenario seconds per wall second over the run (its phases may have changed the time scale)."""
    if totals.scenario_s is None or totals.duration_s <= 0:
        return scenario.timeline.time_scale
    return totals.scenario_s / totals.duration_s


def format_summary(summary: dict[str, Any]) -> str:
    """The human-readable table printed at the end of a run."""
    c, lat, err = summary["checkins"], summary["latency_ms"], summary["errors"]
    lines = [
        f"fleetstorm summary: {summary['scenario']} ({summary['duration_s']:.1f} s)",
        f"  check-ins     {c['count']} done, {c['achieved_rps']:.1f}/s achieved vs {c['target_rps']:.1f}/s target, "
        f"{c['late']} late, {c['unfinished']['count']} unfinished at the end"
        + (f" (oldest {c['unfinished']['age_ms']['max']:.0f} ms)" if c["unfinished"]["count"] else ""),
        f"  latency (ms from due time)  p50 {lat['p50']:.1f}  p95 {lat['p95']:.1f}  p99 {lat['p99']:.1f}  "
        f"max {lat['max']:.1f}",
        f"  errors        {err['count']} of {err['requests']} requests ({err['ratio']:.2%})",
        f"  downloads     {summary['downloads']['bytes']} bytes",
    ]
    if summary["harness_errors"]["count"]:
        errors = summary["harness_errors"]
        lines.append(f"  harness errors {errors['count']}: "
                     + "; ".join(f"{r['count']} x {r['source']}: {r['reason']}" for r in errors["reasons"]))
    if summary.get("ended_by"):
        lines.append(f"  ended by      {summary['ended_by']}")
    lines.append("  thresholds")
    for item in summary["thresholds"]:
        observed = "not measured" if item["observed"] is None else f"{item['observed']:.4g}"
        detail = f"  ({item['detail']})" if item["detail"] else ""
        lines.append(f"    {'PASS' if item['passed'] else 'FAIL'}  {item['expr']:<40} observed {observed}{detail}")
    if "partition" in summary:
        lines.append("    (not judged: they are the whole fleet's, and these measurements one partition's)")
    elif not summary["thresholds"]:
        lines.append("    (none)")
    lines.append(f"  exit code {summary['exit_code']}")
    return "\n".join(lines)


def write_json_atomically(path: Path, data: Any) -> None:
    """Write JSON so that readers see the old file or the new one, never half of one."""
    write_text_atomically(path, json.dumps(data, indent=2) + "\n")
