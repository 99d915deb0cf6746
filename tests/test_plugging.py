"""A third server with its own protocol plugs in through its own adapter, end to end."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, SMOKE, free_port, run_locust, wait_until_serving


@pytest.fixture
def tiny_server() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "examples.tiny_update_server", "--port", str(port)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{url}/api/updates")
        yield url
    finally:
        process.kill()
        process.wait()


def test_the_example_server_is_load_tested_through_its_own_adapter(tiny_server: str, tmp_path: Path) -> None:
    run = run_locust("--scenario", str(SMOKE), "--host", tiny_server, "--protocol",
                     "examples.tiny_adapter:TinyAdapter", "-t", "4s", "--threshold", "check.p95 < 10s",
                     results_dir=tmp_path)
    summary = run.summary
    assert summary is not None, run.stderr[-2000:]
    assert summary["checkins"]["count"] > 200
    assert summary["errors"]["count"] == 0
    # every machine checks once in so short a run, is offered the example's update and fetches it; it
    # installs at 03:00 local, so by the end some have and the others wait
    counters = summary["fleet"]["counters"]
    offered = counters["offered_xpsp2"]
    assert summary["checkins"]["count"] - 20 <= offered <= summary["checkins"]["count"]
    fetched = sum(counters.get(f"{gauge}_xpsp2", 0) for gauge in ("downloading", "install_pending", "installed"))
    # the run's stop cuts short at most one download an agent
    assert offered - summary["agents"]["size"] <= fetched <= offered
    assert summary["downloads"]["corrupt"] == 0
    assert summary["downloads"]["bytes"] >= 150_000 * (fetched - summary["agents"]["size"])
