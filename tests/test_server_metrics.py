"""The reference server's /metrics: Prometheus text with the documented families, and what the harness reads."""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from harness.load.embedded_server import EmbeddedServer
from harness.measure.server_scrape import parse_server_metrics, scrape
from tests.conftest import ROOT, exposed_series

CHECK = {"client_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "edition": "home", "language": "en",
         "enterprise": False, "installed": []}
REPORT = {"client_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "update": "xpsp2", "result": "installed"}
EXPOSITION = """\
# HELP fleetstorm_server_requests_total Requests answered, by endpoint and status.
# TYPE fleetstorm_server_requests_total counter
fleetstorm_server_requests_total{code="200",endpoint="check"} 6.0
fleetstorm_server_requests_total{code="503",endpoint="check"} 2.0
fleetstorm_server_requests_total{code="206",endpoint="content"} 2.0
# HELP fleetstorm_server_bytes_sent_total Content bytes sent.
# TYPE fleetstorm_server_bytes_sent_total counter
fleetstorm_server_bytes_sent_total 1.2345678901234e+13
# HELP fleetstorm_server_in_flight Answers not yet written.
# TYPE fleetstorm_server_in_flight gauge
fleetstorm_server_in_flight 1.0
"""


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


def test_the_harness_reads_answers_by_status_and_bytes_sent() -> None:
    assert parse_server_metrics(EXPOSITION) == {
        "requests.count": 10, "bytes_sent.count": 12345678901234,
        "http_200.count": 6, "http_200.ratio": 0.6, "http_503.count": 2, "http_503.ratio": 0.2,
        "http_206.count": 2, "http_206.ratio": 0.2}


def test_samples_of_other_metrics_are_ignored() -> None:
    other = "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 3.5\nup 1\n"
    assert parse_server_metrics(other + EXPOSITION) == parse_server_metrics(EXPOSITION)
    assert parse_server_metrics(other) == {"requests.count": 0}


@example('fleetstorm_server_requests_total{code="200",\t=endpoint="check"} 3.0')  # trips the parser
@given(st.lists(st.one_of(st.sampled_from(EXPOSITION.splitlines()), st.text('{}"=,#\\ \tcode_01.+-eE', max_size=40)))
       .map("\n".join))
def test_text_that_is_not_an_exposition_is_refused_as_a_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        parse_server_metrics(text)


@pytest.fixture
def garbage_server() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 whose /metrics answers 200 with text that is no exposition."""

    class Garbage(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>fleetstorm_server_requests_total{code=\"200\" oops</html>\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Garbage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_answering_garbage_is_not_scraped(garbage_server: str) -> None:
    assert scrape(garbage_server) == {}


def test_the_reference_server_is_scraped_for_its_answers_by_status(reference_server: EmbeddedServer) -> None:
    with pytest.raises(urllib.error.HTTPError):
        _fetch(f"{reference_server.url}/v1/content/nosuch")
    observed = scrape(reference_server.url)
    assert observed["http_404.count"] == 1
    assert observed["requests.count"] == observed["http_200.count"] + 1  # the rest: its health checks
