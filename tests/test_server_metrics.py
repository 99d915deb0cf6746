"""The reference server's /metrics: Prometheus text with the documented families."""

from __future__ import annotations

import json
import re
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from harness.load.embedded_server import EmbeddedServer
from tests.conftest import ROOT, exposed_series

CHECK = {"client_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "edition": "home", "language": "en",
         "enterprise": False, "installed": []}
REPORT = {"client_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "update": "xpsp2", "result": "installed"}


def _documented() -> dict[str, set[str]]:
    """The series docs/server.md lists for /metrics, with their label names."""
    row = next(line for line in (ROOT / "docs" / "server.md").read_text().splitlines() if "`GET /metrics`" in line)
    return {name: set(labels.split(",")) if labels else set()
            for name, labels in re.findall(r"`(fleetstorm_server_\w+)(?:\{([\w,]+)\})?`", row)}


def _fetch(url: str, data: dict[str, object] | None = None, headers: dict[str, str] | None = None) -> bytes:
    request = urllib.request.Request(url, data=json.dumps(data).encode() if data else None, headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.read()


def test_metrics_is_prometheus_text_holding_every_documented_series_after_some_requests(
        reference_server: EmbeddedServer) -> None:
    url = reference_server.url
    assert b'"update": "xpsp2"' in _fetch(f"{url}/v1/check", CHECK)
    assert len(_fetch(f"{url}/v1/content/xpsp2-home-en", headers={"Range": "bytes=0-9"})) == 10
    _fetch(f"{url}/v1/report", REPORT)
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        content_type, text = response.headers["Content-Type"], response.read().decode()
    assert content_type.startswith("text/plain; version=0.0.4")
    exposed = {sample.name: set(sample.labels) for family in text_string_to_metric_families(text)
               for sample in family.samples}
    assert exposed == _documented()
    series = exposed_series(text)
    assert series['fleetstorm_server_requests_total{code="200",endpoint="check"}'] == 1
    assert series['fleetstorm_server_requests_total{code="206",endpoint="content"}'] == 1
    assert series['fleetstorm_server_requests_total{code="204",endpoint="report"}'] == 1
    assert series['fleetstorm_server_offers_total{update="xpsp2"}'] == 1
    assert series['fleetstorm_server_reports_total{result="installed",update="xpsp2"}'] == 1
    assert series["fleetstorm_server_bytes_sent_total"] == 10
    assert series["fleetstorm_server_in_flight"] == 0
