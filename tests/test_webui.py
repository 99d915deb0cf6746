"""Plain `locust -f locustfile.py` serves Locust's web UI with the scenario options in its start form."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT

START_TIMEOUT_S = 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, form: dict[str, object] | None = None) -> bytes:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    with urllib.request.urlopen(url, data=data, timeout=10) as response:
        return response.read()


@pytest.fixture
def web_ui(tmp_path) -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", "locustfile.py", "--web-port", str(port),
         "--results-dir", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            try:
                _get(url)
                break
            except OSError:
                assert time.monotonic() < deadline, "the web UI never came up"
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_start_form_offers_the_scenario_options_and_a_run_from_it_checks_in(web_ui: str) -> None:
    page = _get(web_ui).decode()
    for option in ("scenario", "fleet_size", "time_scale", "seed"):
        assert f'"{option}": {{' in page
    form = {"user_count": 1, "spawn_rate": 1, "fleet_size": "5000", "time_scale": "2000"}
    assert json.loads(_get(f"{web_ui}/swarm", form))["success"]
    deadline = time.monotonic() + 20
    checks = 0
    while checks < 50 and time.monotonic() < deadline:
        time.sleep(0.5)
        stats = json.loads(_get(f"{web_ui}/stats/requests"))["stats"]
        checks = sum(row["num_requests"] for row in stats if row["name"] == "check")
    assert checks >= 50
    _get(f"{web_ui}/stop", {})
