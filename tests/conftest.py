"""Shared fixtures: a real reference server on loopback, and real `locust` runs against it."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.load.embedded_server import EmbeddedServer

ROOT = Path(__file__).resolve().parent.parent
LOCUST_TIMEOUT_S = 120
START_TIMEOUT_S = 30


@dataclass(frozen=True)
class LocustRun:
    """A finished `locust` process: its exit code, output and summary.json (if written)."""

    returncode: int
    stdout: str
    stderr: str
    summary: dict[str, Any] | None


def start_locust(*args: str, results_dir: Path, prefix: Sequence[str] = ()) -> subprocess.Popen[str]:
    """Start real `locust -f locustfile.py --headless` with fleetstorm options, its output piped.

    `prefix` runs it through another program (e.g. `ip netns exec NAME`). It leads a process group of
    its own, so that it and whatever it starts can be killed together.
    """
    command = [*prefix, sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--headless",
               "--only-summary", "--results-dir", str(results_dir), *args]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def finish_locust(process: subprocess.Popen[str], results_dir: Path, timeout: float = LOCUST_TIMEOUT_S) -> LocustRun:
    """Wait for a `locust` from start_locust, `timeout` seconds at most (then it is killed), and read its results."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except BaseException:
        process.kill()
        process.communicate()
        raise
    summary_path = results_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return LocustRun(process.returncode, stdout, stderr, summary)


def run_locust(*args: str, results_dir: Path, timeout: float = LOCUST_TIMEOUT_S) -> LocustRun:
    """Run real `locust -f locustfile.py --headless` with fleetstorm options, bounded in time."""
    return finish_locust(start_locust(*args, results_dir=results_dir), results_dir, timeout)


def locust_stats(prefix: Path, name: str) -> dict[str, str]:
    """The row of the requests called `name` in the statistics Locust wrote with `--csv prefix`."""
    with open(f"{prefix}_stats.csv", newline="") as handle:
        return next(row for row in csv.DictReader(handle) if row["Name"] == name)


@pytest.fixture
def reference_server() -> Iterator[EmbeddedServer]:
    """A real reference server process on a free 127.0.0.1 port."""
    server = EmbeddedServer.start()
    try:
        yield server
    finally:
        server.stop()


def exposed_series(text: str) -> dict[str, float]:
    """Prometheus exposition text, read by prometheus_client's parser, as {series: value}.

    A series is written `name{label="value",...}`, its labels ordered by name, as the server exposes them.
    """
    series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{name}="{value}"' for name, value in sorted(sample.labels.items()))
            series[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return series


def server_metrics(url: str) -> dict[str, float]:
    """A reference server's /metrics, as {series: value}."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        return exposed_series(response.read().decode())


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, form: dict[str, object] | None = None) -> bytes:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    with urllib.request.urlopen(url, data=data, timeout=10) as response:
        return response.read()


def wait_until_serving(url: str, timeout: float = START_TIMEOUT_S) -> None:
    """Poll `url` until it answers (failing the test if it never does within `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            http_get(url)
            return
        except OSError:
            assert time.monotonic() < deadline, f"{url} never came up"
            time.sleep(0.2)


@contextmanager
def serving_web_ui(results_dir: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """Plain `locust -f locustfile.py` serving its web UI on a free loopback port; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", "locustfile.py", "--web-port", str(port),
         "--results-dir", str(results_dir), *args],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def web_ui(tmp_path: Path) -> Iterator[str]:
    with serving_web_ui(tmp_path) as url:
        yield url


SMOKE = ROOT / "scenarios" / "smoke.toml"


@pytest.fixture
def fault_scenario(tmp_path: Path) -> Path:
    """The smoke scenario with a 1 s request time-out, so stalls surface within a short run."""
    path = tmp_path / "faults.toml"
    path.write_text(SMOKE.read_text() + '\n[agents]\ntimeout = "1s"\n')
    return path

# The fault matrix: each fault, how the run ended and what it counted; printed after the suite.
MATRIX: list[tuple[str, str, str]] = []


def record(fault: str, exit_code: int, counted: str) -> None:
    """Add one fault's outcome to the matrix printed after the suite."""
    MATRIX.append((fault, str(exit_code), counted))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not MATRIX:
        return
    terminalreporter.section("fleetstorm fault matrix")
    width = max(len(fault) for fault, _, _ in MATRIX)
    terminalreporter.write_line(f"{'fault':<{width}}  exit  counted")
    for fault, code, counted in MATRIX:
        terminalreporter.write_line(f"{fault:<{width}}  {code:>4}  {counted}")

