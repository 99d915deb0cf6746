"""results/report.html: a self-contained report of one run, with plots drawn by matplotlib as inline SVG.

It reads only the summary and the time series, so it can be rebuilt from results/ after the run
(`python -m harness.output.report results/`). No network is needed to open it.
"""

from __future__ import annotations

import html
import io
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from harness.output.atomic import write_text_atomically

Series = Sequence[dict[str, Any]]
Target = tuple[datetime, float, str]  # (scenario date, value, label): a fleet figure to reach by a date
PLOT_SIZE = (9.0, 3.2)
STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: left; }
tr.pass td:last-child { color: #1a7f37; font-weight: bold; }
tr.fail td:last-child { color: #cf222e; font-weight: bold; }
figure { margin: 1em 0; }
svg { max-width: 100%; height: auto; }
"""


@cache
def _pyplot() -> ModuleType:
    """matplotlib's pyplot drawing SVG, imported with the first plot: workers and the server never load it."""
    import matplotlib

    matplotlib.use("svg")
    import matplotlib.pyplot

    return matplotlib.pyplot


def _x(row: dict[str, Any], by_date: bool) -> Any:
    return datetime.fromisoformat(row["date"]) if by_date else row["wall_s"]


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    _pyplot().close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _plot(series: Series, title: str, ylabel: str, lines: Sequence[tuple[str, str]],
          targets: Sequence[Target] = ()) -> str:
    """One plot of several series keys over time; a note when the run recorded none.

    With targets, the x axis is the scenario date and the targets are drawn as points.
    """
    figure, axes = _pyplot().subplots(figsize=PLOT_SIZE)
    plotted = False
    for key, label in lines:
        points = [(_x(row, bool(targets)), row[key]) for row in series if row.get(key) is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            axes.plot(xs, ys, label=label)
            plotted = True
    for when, value, label in targets:
        axes.plot([when], [value], marker="o", linestyle="none", label=f"target: {label}")
        plotted = True
    if not plotted:
        axes.text(0.5, 0.5, "not recorded in this run", ha="center", va="center", transform=axes.transAxes)
    axes.set_title(title)
    axes.set_xlabel("scenario date" if targets else "wall time (s)")
    if targets:
        figure.autofmt_xdate()
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    if plotted:
        axes.legend(loc="best", fontsize="small")
    return _svg(figure)


PLOTS: tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...] = (
    ("checkins", "Check-ins per second: target vs achieved", "check-ins/s",
     (("target_rps", "target"), ("achieved_rps", "achieved"))),
    ("latency", "Check-in latency from due time", "ms",
     (("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99"))),
    ("rollout", "Rollout: machines with SP2 and KB884020 (real-world equivalent) vs targets", "machines",
     (("real_installed_xpsp2", "SP2 installed"), ("real_installed_kb884020", "KB884020 installed"))),
    ("pushback", "Server push-back and client backoff", "per second",
     (("http_503_rps", "503 answers"), ("backoff_rps", "clients backing off"))),
    ("goodput", "Download goodput", "bytes/s", (("goodput_bps", "served"), ("real_goodput_bps", "real-world"))),
)


def _observed(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.4g}"


def _thresholds_table(summary: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr class='{'pass' if t['passed'] else 'fail'}'><td>{html.escape(t['expr'])}</td>"
        f"<td>{_observed(t['observed'])}</td><td>{'PASS' if t['passed'] else 'FAIL'}</td></tr>"
        for t in summary.get("thresholds", [])
    )
    return ("<table id='thresholds'><thead><tr><th>threshold</th><th>observed</th><th>verdict</th></tr></thead>"
            f"<tbody>{rows or '<tr><td colspan=3>no thresholds</td></tr>'}</tbody></table>")


def _flat(prefix: str, items: dict[str, Any]) -> dict[str, Any]:
    """Nested summary figures as one row each, e.g. "check-ins unfinished count"."""
    rows: dict[str, Any] = {}
    for key, value in items.items():
        rows |= _flat(f"{prefix} {key}", value) if isinstance(value, dict) else {f"{prefix} {key}": value}
    return rows


def _parameters(summary: dict[str, Any]) -> str:
    errors = summary.get("harness_errors", {})
    items = {"scenario": summary.get("scenario"), "scenario file": summary.get("scenario_file"),
             "duration (s)": summary.get("duration_s"), "ended by": summary.get("ended_by"),
             "exit code": summary.get("exit_code"),
             **{f"fleet {k}": v for k, v in summary.get("fleet", {}).items() if not isinstance(v, dict)},
             **_flat("check-ins", summary.get("checkins", {})),
             "harness errors": errors.get("count", 0),
             **{f"harness error ({r['source']})": f"{r['count']} x {r['reason']}" for r in errors.get("reasons", [])}}
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in items.items())
    return f"<table id='parameters'>{rows}</table>"


def render_report(summary: dict[str, Any], series: Series, targets: Sequence[Target] = ()) -> str:
    """The report page as one HTML string; `targets` are drawn on the rollout plot."""
    figures = "".join(
        f"<figure id='plot-{key}'>{_plot(series, title, unit, lines, targets if key == 'rollout' else ())}</figure>"
        for key, title, unit, lines in PLOTS)
    verdict = "PASS" if summary.get("exit_code") == 0 else "FAIL"
    name = html.escape(str(summary.get("scenario")))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fleetstorm report: {name}</title>
<style>{STYLE}</style></head><body>
<h1>fleetstorm: {name} — {verdict}</h1>
<h2>Thresholds</h2>{_thresholds_table(summary)}
<h2>Plots</h2>{figures}
<h2>Scenario and run</h2>{_parameters(summary)}
</body></html>
"""


def write_report(results_dir: Path, summary: dict[str, Any], series: Series, targets: Sequence[Target] = ()) -> Path:
    """Write results_dir/report.html atomically; its path."""
    path = results_dir / "report.html"
    write_text_atomically(path, render_report(summary, series, targets))
    return path


def main(argv: Sequence[str]) -> int:
    """`python -m harness.output.report RESULTS_DIR`: rebuild the report from summary.json and series.json."""
    results_dir = Path(argv[0] if argv else "results")
    summary = json.loads((results_dir / "summary.json").read_text())
    series_path = results_dir / "series.json"
    series = json.loads(series_path.read_text()) if series_path.exists() else []
    print(write_report(results_dir, summary, series))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
