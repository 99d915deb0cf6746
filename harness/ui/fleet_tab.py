"""A Fleet tab in Locust's web UI, added the way Locust's own extension example does.

Locust renders extra tabs from `extended_tabs`/`extended_tables` in its template arguments and
fills them from `extended_stats` in the `/stats/requests` JSON it polls, so the tab refreshes with
the rest of the UI. `/fleetstorm/live` serves the same snapshot as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from flask import Response, jsonify, request

from harness.measure.metrics import updates_in
from harness.ui.progress import LiveState

TAB_KEY = "fleet"
STAGES_SHOWN = ("offered", "downloading", "install_pending", "installed")


def fleet_rows(state: LiveState) -> list[dict[str, str]]:
    """The Fleet tab's rows, group by group in the order a person reads them: the run, the fleet, the server, verdicts.

    The rows carry no `name` field: Locust's table sorts by that key, and rows without it keep this order.
    """
    run = [
        ("Scenario clock", f"{state.date} — day {state.day} of {state.days} ({state.progress:.0%})"),
        ("Check-ins/s", f"{state.achieved_rps:,.1f} achieved of {state.target_rps:,.1f} target"),
        ("Check-ins", f"{state.checkins:,} done"),
        ("Checked in, last scenario hour", f"{state.checked_last_hour:,}"),
        ("Latency p95 from due time", f"{state.p95_ms:.1f} ms"),
        ("Late", f"{state.late:,}"),
        ("Unfinished at the end", f"{state.unfinished:,}"),
        ("Errors", f"{state.errors:,}"),
    ]
    counters = state.counters
    real = state.machines * state.weight
    fleet = [("Machines", f"{state.machines:,} emulated × {state.weight:g} = {real:,.0f} real"),
             ("Online now", f"{counters.get('online_now', 0):,}")]
    fleet += [(f"{update}: offered → downloading → install pending → installed",
               " → ".join(f"{counters.get(f'{stage}_{update}', 0):,}" for stage in STAGES_SHOWN))
              for update in updates_in(counters)]
    if counters.get("packages_fetched"):
        fleet.append(("Network-install packages fetched", f"{counters['packages_fetched']:,}"))
    fleet += [(f"Rollout target: {expr}", f"{now:,.0f} real machines now, target {target:,.0f}")
              for expr, now, target in state.targets]
    server = [(name[0].upper() + name[1:], f"{count:,}") for name, count in state.push_back.items()]
    thresholds = [(expr, verdict) for expr, verdict in state.thresholds]
    return [{"group": group if i == 0 else "", "measure": measure, "value": value}
            for group, rows in (("Run", run), ("Fleet", fleet), ("Server push-back", server),
                                ("Thresholds", thresholds))
            for i, (measure, value) in enumerate(rows)]


def install(environment: Any, snapshot: Callable[[], LiveState]) -> None:
    """Add the Fleet tab and the /fleetstorm/live route to the running web UI; `snapshot` gives the run now."""
    web_ui = environment.web_ui
    web_ui.template_args["extended_tabs"] = [{"title": "Fleet", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [
        {"key": TAB_KEY, "structure": [{"key": "group", "title": "Group"}, {"key": "measure", "title": "Measure"},
                                       {"key": "value", "title": "Now"}]}
    ]

    @web_ui.app.after_request
    def add_fleet_rows(response: Response) -> Response:
        if request.path == "/stats/requests" and response.is_json:
            extended = [{"key": TAB_KEY, "data": fleet_rows(snapshot())}]
            response.set_data(json.dumps({**response.json, "extended_stats": extended}))
        return response

    @web_ui.app.route("/fleetstorm/live")
    @web_ui.auth_required_if_enabled
    def live() -> Response:
        return jsonify(asdict(snapshot()))
