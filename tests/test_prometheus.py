"""A real Prometheus scraping a real run and the reference server sees what summary.json says.

Prometheus (Debian's, installed by `make test`) scrapes both every second on loopback; its HTTP API
is then asked what an operator's dashboard would ask (deploy/grafana/fleetstorm.json).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.load.embedded_server import EmbeddedServer
from harness.ui.exporter import LATENCY_BUCKETS_S
from tests.conftest import ROOT, SMOKE, LocustRun, free_port, run_locust, wait_until_serving

PROMETHEUS = shutil.which("prometheus")
RUN_S = 20
# Queries at the end look back this far for each series' last scrape: once a target is gone,
# Prometheus marks its series stale and a plain instant query returns nothing.
LAST_S = 15
DASHBOARD = ROOT / "deploy" / "grafana" / "fleetstorm.json"
_METRIC_NAME = re.compile(r"\bfleetstorm_[a-z0-9_]+")
_SUFFIXES = ("_bucket", "_count", "_sum")

pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="needs Debian's prometheus (make test installs it)")


@dataclass(frozen=True)
class Scraped:
    """A finished run, and the Prometheus that scraped it and its server."""

    run: LocustRun
    prometheus: str  # its URL
    started: float  # Unix time the run started
    ended: float


def _query(prometheus: str, expr: str, at: float) -> list[dict[str, Any]]:
    """An instant query's result vector."""
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
    with urllib.request.urlopen(url, timeout=10) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def _config(tmp_path: Path, harness_port: int, server_port: int) -> Path:
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n"
        f"  - job_name: fleetstorm\n    static_configs: [{{targets: ['127.0.0.1:{harness_port}']}}]\n"
        f"  - job_name: fleetstorm-server\n    static_configs: [{{targets: ['127.0.0.1:{server_port}']}}]\n")
    return config


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    tmp_path = tmp_path_factory.mktemp("prometheus")
    server = EmbeddedServer.start()
    harness_port, prometheus_port = free_port(), free_port()
    server_port = int(server.url.rsplit(":", 1)[1])
    prometheus = subprocess.Popen(
        [PROMETHEUS, f"--config.file={_config(tmp_path, harness_port, server_port)}",
         f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{prometheus_port}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("w"), stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{prometheus_port}"
    try:
        wait_until_serving(f"{url}/-/ready")
        started = time.time()
        run = run_locust("--scenario", str(SMOKE), "-t", f"{RUN_S}s", "--host", server.url,
                         "--metrics-port", str(harness_port), results_dir=tmp_path / "results")
        yield Scraped(run, url, started, time.time())
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)
        server.stop()


def test_the_scraped_check_in_rate_is_the_target_rate(scraped: Scraped) -> None:
    assert scraped.run.returncode == 0, scraped.run.stderr[-2000:]
    target = scraped.run.summary["checkins"]["target_rps"]
    # Mid-run, past the start-up: ten seconds of one-second scrapes.
    rates = _query(scraped.prometheus, "sum(rate(fleetstorm_checkins_total[10s]))", scraped.started + RUN_S / 2 + 5)
    assert rates, "no check-ins scraped"
    assert float(rates[0]["value"][1]) == pytest.approx(target, rel=0.10)


def test_the_scraped_latency_histogram_agrees_with_the_summary_within_a_bucket(scraped: Scraped) -> None:
    p95_s = scraped.run.summary["latency_ms"]["p95"] / 1000
    estimate = _query(scraped.prometheus, "histogram_quantile(0.95, last_over_time("
                      f"fleetstorm_checkin_latency_seconds_bucket[{LAST_S}s]))", scraped.ended)
    edges = (0.0, *LATENCY_BUCKETS_S)
    bucket = next((low, high) for low, high in zip(edges, edges[1:], strict=False) if low < p95_s <= high)
    assert bucket[0] <= float(estimate[0]["value"][1]) <= bucket[1]


def test_every_threshold_is_scraped_with_its_state(scraped: Scraped) -> None:
    states = {sample["metric"]["threshold"]: float(sample["value"][1])
              for sample in _query(scraped.prometheus, f"last_over_time(fleetstorm_threshold_passing[{LAST_S}s])",
                                   scraped.ended)}
    assert states == {verdict["expr"]: 1.0 for verdict in scraped.run.summary["thresholds"]}


def _family(name: str) -> str:
    """A series name's metric family: a histogram's buckets, count and sum are one."""
    return next((name.removesuffix(suffix) for suffix in _SUFFIXES if name.endswith(suffix)), name)


def test_every_query_of_the_shipped_dashboard_names_a_metric_the_harness_or_the_server_exports(
        scraped: Scraped) -> None:
    with urllib.request.urlopen(f"{scraped.prometheus}/api/v1/label/__name__/values", timeout=10) as response:
        exported = {_family(name) for name in json.load(response)["data"] if name.startswith("fleetstorm_")}
    queried = {_family(name) for panel in json.loads(DASHBOARD.read_text())["panels"]
               for target in panel["targets"] for name in _METRIC_NAME.findall(target["expr"])}
    assert "fleetstorm_server_requests_total" in exported, "the reference server was not scraped"
    assert queried - exported == set()
