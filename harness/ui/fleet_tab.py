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

from harness.ui.progress import LiveState

TAB_KEY = "fleet"


def fleet_rows(state: LiveState) -> list[dict[str, str]]:
    """The Fleet tab's rows: one name and value each."""
    rows = [
        ("Scenario clock", f"{state.date} — day {state.day} of {state.days} ({state.progress:.0%})"),
        ("Machines", f"{state.machines:,} emulated × {state.weight:g} = {state.machines * state.weight:,.0f} real"),
        ("Check-ins/s", f"{state.achieved_rps:,.1f} achieved of {state.target_rps:,.1f} target"),
        ("Check-ins", f"{state.checkins:,} done, {state.late:,} late"),
        ("Checked in, last scenario hour", f"{state.checked_last_hour:,}"),
        ("Latency p95 from due time", f"{state.p95_ms:.1f} ms"),
        ("Errors", f"{state.errors:,}"),
    ]
    rows += [(name.replace("_", " "), f"{count:,}") for name, count in state.counters.items()]
    rows += [(f"rollout target: {expr}", f"{now:,.0f} real machines now, target {target:,.0f}")
             for expr, now, target in state.targets]
    rows += [(f"threshold: {expr}", verdict) for expr, verdict in state.thresholds]
    return [{"name": name, "value": value} for name, value in rows]


def install(environment: Any, snapshot: Callable[[], LiveState]) -> None:
    """Add the Fleet tab and the /fleetstorm/live route to the running web UI; `snapshot` gives the run now."""
    web_ui = environment.web_ui
    web_ui.template_args["extended_tabs"] = [{"title": "Fleet", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [
        {"key": TAB_KEY, "structure": [{"key": "name", "title": "Fleet"}, {"key": "value", "title": "Now"}]}
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
