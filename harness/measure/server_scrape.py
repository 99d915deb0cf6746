"""The server's own view: its Prometheus /metrics, read into `server.*` observations."""

from __future__ import annotations

import http.client
import re
import urllib.request
from collections import Counter

SCRAPE_TIMEOUT_S = 2.0
_SAMPLE = re.compile(r'(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)')
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def parse_server_metrics(text: str) -> dict[str, float]:
    """`server.*` observations from the reference server's exposition text.

    Keys: `http_NNN.count`, `http_NNN.ratio` (share of all requests), `requests.count`,
    `bytes_sent.count`. Lines that are not fleetstorm_server_* samples are ignored.
    """
    codes: Counter[str] = Counter()
    observed: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.fullmatch(line.strip())
        if not match or line.startswith("#"):
            continue
        try:
            value = float(match.group("value"))
        except ValueError:
            continue
        labels = dict(_LABEL.findall(match.group("labels") or ""))
        if match.group("name") == "fleetstorm_server_requests_total" and "code" in labels:
            codes[labels["code"]] += value
        elif match.group("name") == "fleetstorm_server_bytes_sent_total":
            observed["bytes_sent.count"] = value
    total = sum(codes.values())
    observed["requests.count"] = total
    for code, count in codes.items():
        observed[f"http_{code}.count"] = count
        observed[f"http_{code}.ratio"] = count / total if total else 0.0
    return observed


def scrape(base_url: str) -> dict[str, float]:
    """GET base_url/metrics and parse it; empty when the server has no such endpoint or is gone."""
    try:
        with urllib.request.urlopen(f"{base_url.rstrip('/')}/metrics", timeout=SCRAPE_TIMEOUT_S) as response:
            return parse_server_metrics(response.read().decode("utf-8", "replace"))
    except (OSError, ValueError, http.client.HTTPException):  # a broken server must not break the verdict
        return {}
