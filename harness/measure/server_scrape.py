"""The server's own view: its Prometheus /metrics, read into `server.*` observations."""

from __future__ import annotations

import http.client
import urllib.request
from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

SCRAPE_TIMEOUT_S = 2.0


def parse_server_metrics(text: str) -> dict[str, float]:
    """`server.*` observations from the reference server's exposition text; ValueError if it is not one.

    Keys: `http_NNN.count`, `http_NNN.ratio` (share of all requests), `requests.count`,
    `bytes_sent.count`. Samples that are not fleetstorm_server_* are ignored.
    """
    codes: Counter[str] = Counter()
    observed: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "fleetstorm_server_requests_total" and "code" in sample.labels:
                    codes[sample.labels["code"]] += sample.value
                elif sample.name == "fleetstorm_server_bytes_sent_total":
                    observed["bytes_sent.count"] = sample.value
    except IndexError as exc:  # the parser trips over some malformed lines instead of refusing them
        raise ValueError(f"malformed exposition: {exc}") from None
    total = sum(codes.values())
    observed["requests.count"] = total
    for code, count in codes.items():
        observed[f"http_{code}.count"] = count
        observed[f"http_{code}.ratio"] = count / total if total else 0.0
    return observed


def scrape(base_url: str) -> dict[str, float]:
    """GET base_url/metrics and parse it; empty when the server has no such endpoint, is gone or answers garbage."""
    try:
        with urllib.request.urlopen(f"{base_url.rstrip('/')}/metrics", timeout=SCRAPE_TIMEOUT_S) as response:
            return parse_server_metrics(response.read().decode("utf-8", "replace"))
    except (OSError, ValueError, http.client.HTTPException):  # a broken server must not break the verdict
        return {}
