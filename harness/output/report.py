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
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from harness.config.errors import InputError
from harness.config.scenario import ThresholdRule
from harness.measure.thresholds import parse_threshold
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
#verdict { border: 2px solid #ccc; padding: 0.5em 1em; }
#verdict.pass { border-color: #1a7f37; } #verdict.fail { border-color: #cf222e; }
#verdict .verdict { font-size: 2em; font-weight: bold; margin: 0; }
#verdict.pass .verdict { color: #1a7f37; } #verdict.fail .verdict { color: #cf222e; }
"""


@cache
def _pyplot() -> ModuleType:
    """matplotlib's pyplot drawing SVG, imported with the first plot: workers and the server never load it."""
    import matplotlib

    matplotlib.use("svg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, searchable, selectable
    import matplotlib.pyplot

    return matplotlib.pyplot


def _date(row: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(row["date"])


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    _pyplot().close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _lines(axes: Any, series: Series, lines: Sequence[tuple[str, str]], **style: Any) -> bool:
    """Draw each series key against the scenario date; whether any had a value."""
    plotted = False
    for key, label in lines:
        points = [(_date(row), row[key]) for row in series if row.get(key) is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            axes.plot(xs, ys, label=label, **style)
            plotted = True
    return plotted


def _shade_phases(axes: Any, summary: dict[str, Any]) -> None:
    """Shade every other phase of the timeline, each labelled with its time scale."""
    timeline = summary.get("timeline")
    if not timeline or len(timeline["phases"]) < 2:
        return
    starts = [datetime.fromisoformat(phase["from"]) for phase in timeline["phases"]]
    ends = [*starts[1:], datetime.fromisoformat(timeline["end"])]
    for number, (start, end, phase) in enumerate(zip(starts, ends, timeline["phases"], strict=True)):
        axes.axvspan(start, end, color="#888", alpha=0.12 if number % 2 else 0.04, linewidth=0)
        axes.text(start, 1.0, f" ×{phase['time_scale']:g}", transform=axes.get_xaxis_transform(), va="top",
                  fontsize="x-small", color="#555")


def _throttle(axes: Any, summary: dict[str, Any]) -> None:
    """Each update's rollout percentage, on a second axis."""
    rollouts = {update: steps for update, steps in summary.get("rollouts", {}).items() if steps}
    if not rollouts:
        return
    percent = axes.twinx()
    end = summary.get("timeline", {}).get("end")
    for update, steps in rollouts.items():
        # 0 before the first step, linear between steps, flat after the last (as the server applies it).
        points = [(datetime.fromisoformat(when), value) for when, value in steps]
        points = [(points[0][0], 0.0), *points] + ([(datetime.fromisoformat(end), points[-1][1])] if end else [])
        percent.plot(*zip(*points, strict=True), linestyle=":", label=f"throttle: {update} (%)")
    percent.set_ylabel("offered to (% of machines)")
    percent.set_ylim(0, 100)
    percent.legend(loc="lower right", fontsize="small")


def _targets(axes: Any, targets: Sequence[Target], summary: dict[str, Any]) -> None:
    """Each `at` target as a marker, green where its threshold passed and red where it failed."""
    passed = {t["expr"]: t["passed"] for t in summary.get("thresholds", [])}
    for when, value, label in targets:
        ok = passed.get(label)
        axes.plot([when], [value], marker="o", markersize=8, linestyle="none",
                  color={True: "#1a7f37", False: "#cf222e"}.get(ok, "#555"),
                  label=f"{label}: {'PASS' if ok else 'FAIL' if ok is False else 'not judged'}")


def _plot(summary: dict[str, Any], series: Series, plot: Plot, targets: Sequence[Target] = ()) -> str:
    """One plot over the scenario's dates, phases shaded; a note when the run recorded none of it."""
    figure, axes = _pyplot().subplots(figsize=PLOT_SIZE)
    plotted = _lines(axes, series, plot.lines)
    if plot.second is not None:
        second = axes.twinx()
        second.set_ylabel(plot.second[0])
        if _lines(second, series, plot.second[1], color="tab:orange", linestyle="--"):
            second.legend(loc="lower right", fontsize="small")
            plotted = True
    if plot.key == "rollout":
        _throttle(axes, summary)
        _targets(axes, targets, summary)
        plotted |= bool(targets)
    if not plotted:
        axes.text(0.5, 0.5, "not recorded in this run", ha="center", va="center", transform=axes.transAxes)
    _shade_phases(axes, summary)
    axes.set_title(plot.title)
    axes.set_xlabel("scenario date")
    axes.set_ylabel(plot.unit)
    axes.grid(alpha=0.3)
    figure.autofmt_xdate()
    if plotted:
        axes.legend(loc="upper left", fontsize="small")
    return _svg(figure)


@dataclass(frozen=True)
class Plot:
    """One plot: series keys and their labels on the left axis, and optionally some on a right axis."""

    key: str
    title: str
    unit: str
    lines: tuple[tuple[str, str], ...]
    second: tuple[str, tuple[tuple[str, str], ...]] | None = None  # (unit, lines)


PLOTS = (
    Plot("checkins", "Check-ins: target vs achieved", "emulated check-ins per wall second",
         (("target_rps", "target"), ("achieved_rps", "achieved")),
         ("real-world check-ins per real second", (("real_achieved_rps", "what it stands for"),))),
    Plot("latency", "Check-in latency from due time", "ms", (("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99"))),
    Plot("rollout", "Rollout: machines with each update vs the throttle and the targets", "real-world machines",
         ()),  # a line per update the run counted (_with_updates)
    Plot("pushback", "Server push-back and client back-off", "per wall second",
         (("http_503_rps", "503 answers"), ("backoff_rps", "clients backing off"))),
    Plot("goodput", "Download goodput", "bytes served per wall second", (("goodput_bps", "served"),),
         ("real-world bytes per real second", (("real_goodput_bps", "what it stands for"),))),
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


def _beyond(threshold: dict[str, Any]) -> str:
    """How far a failed threshold's observation is from its limit, e.g. "24% over 250 ms"."""
    try:
        rule = parse_threshold(ThresholdRule(threshold["expr"]), "report")
    except InputError:
        return ""
    observed = threshold["observed"]
    if observed is None:
        return "nothing measured"
    if not rule.value:
        return f"observed {observed:.4g}, limit {rule.value:g}"
    side = "over" if observed > rule.value else "under"
    return f"{abs(observed - rule.value) / abs(rule.value):.0%} {side} its limit"


def _verdict(summary: dict[str, Any]) -> str:
    """The run in one screen: the verdict, what failed by how much and where, how the run ended."""
    thresholds = summary.get("thresholds", [])
    failed = [t for t in thresholds if not t["passed"]]
    verdict = "PASS" if summary.get("exit_code") == 0 else "FAIL"
    items = "".join(f"<li><b>{html.escape(t['expr'])}</b>: observed {_observed(t['observed'])}, "
                    f"{html.escape(_beyond(t))}{' — ' + html.escape(t['detail']) if t['detail'] else ''}</li>"
                    for t in failed)
    checkins = summary.get("checkins", {})
    timeline = summary.get("timeline", {})
    played = f"{timeline.get('start', '?')[:16]} → {timeline.get('end', '?')[:16]}" if timeline else ""
    return (f"<section id='verdict' class='{verdict.lower()}'><p class='verdict'>{verdict}</p>"
            f"<p>{len(thresholds) - len(failed)} of {len(thresholds)} thresholds passed; exit code "
            f"{summary.get('exit_code')}; ended by {html.escape(str(summary.get('ended_by')))}.</p>"
            + (f"<ul>{items}</ul>" if items else "")
            + f"<p>{checkins.get('count', 0):,} check-ins, {checkins.get('achieved_rps', 0):,.1f}/s of "
            f"{checkins.get('target_rps', 0):,.1f}/s target (emulated, per wall second), "
            f"{checkins.get('late', 0):,} late; scenario time {html.escape(played)}.</p></section>")


def _with_updates(plot: Plot, series: Series) -> Plot:
    """The rollout plot with a line of machines with each update the time series counted, in the order counted."""
    if plot.key != "rollout":
        return plot
    updates = dict.fromkeys(key.removeprefix("real_with_") for row in series for key in row
                            if key.startswith("real_with_"))
    return replace(plot, lines=tuple((f"real_with_{update}", f"with {update}") for update in updates))


def render_report(summary: dict[str, Any], series: Series, targets: Sequence[Target] = ()) -> str:
    """The report page as one HTML string; `targets` are drawn on the rollout plot."""
    figures = "".join(f"<figure id='plot-{plot.key}'>{_plot(summary, series, _with_updates(plot, series), targets)}"
                      "</figure>" for plot in PLOTS)
    verdict = "PASS" if summary.get("exit_code") == 0 else "FAIL"
    name = html.escape(str(summary.get("scenario")))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fleetstorm report: {name}</title>
<style>{STYLE}</style></head><body>
<h1>fleetstorm: {name} — {verdict}</h1>
{_verdict(summary)}
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
