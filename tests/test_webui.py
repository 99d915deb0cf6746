"""Plain `locust -f locustfile.py` serves Locust's web UI with the scenario options in its start form."""

from __future__ import annotations

import json
import re
import time

from tests.conftest import http_get


def test_the_start_form_offers_the_scenario_options_and_a_run_from_it_checks_in(web_ui: str) -> None:
    page = http_get(web_ui).decode()
    for option in ("scenario", "fleet_size", "time_scale", "seed"):
        assert f'"{option}": {{' in page
    form = {"user_count": 1, "spawn_rate": 1, "fleet_size": "5000", "time_scale": "2000"}
    assert json.loads(http_get(f"{web_ui}/swarm", form))["success"]
    deadline = time.monotonic() + 20
    checks = 0
    while checks < 50 and time.monotonic() < deadline:
        time.sleep(0.5)
        stats = json.loads(http_get(f"{web_ui}/stats/requests"))["stats"]
        checks = sum(row["num_requests"] for row in stats if row["name"] == "check")
    assert checks >= 50
    scraped = http_get(f"{web_ui}/metrics").decode()  # the run's Prometheus metrics, on the web UI's port
    done = re.search(r'^fleetstorm_checkins_total\{result="ok"\} (\S+)$', scraped, re.MULTILINE)
    assert done and float(done.group(1)) > 0
    http_get(f"{web_ui}/stop", {})
