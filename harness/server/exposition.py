"""The reference server's counters as Prometheus metric families, read from the server at each scrape.

The server counts in its hot path with plain integers; prometheus_client sees them only when
/metrics is asked for, so answering a request costs nothing more for being measured.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class CountingServer(Protocol):
    """What the collector reads of a server (harness/server/app.py's ReferenceServer)."""

    reports: Counter[tuple[str, str]]  # (update, result)
    bytes_sent: int
    in_flight: int

    def answers(self) -> Counter[tuple[str, str]]:
        """Answers so far, by endpoint label and status code."""

    def offers_made(self) -> Counter[str]:
        """Offers made so far, by update."""


class ServerCollector(Collector):
    """Collects one reference server's counters, under the names docs/server.md lists."""

    def __init__(self, server: CountingServer) -> None:
        self._server = server

    def collect(self) -> Iterator[Metric]:
        """The counters as they stand: requests, offers, reports, bytes sent and requests in flight."""
        server = self._server
        requests = CounterMetricFamily("fleetstorm_server_requests_total", "Requests answered, by endpoint and status.",
                                       labels=("endpoint", "code"))
        for (endpoint, code), count in sorted(server.answers().items()):
            requests.add_metric((endpoint, code), count)
        yield requests
        offers = CounterMetricFamily("fleetstorm_server_offers_total", "Updates offered, by update.",
                                     labels=("update",))
        for update, count in sorted(server.offers_made().items()):
            offers.add_metric((update,), count)
        yield offers
        reports = CounterMetricFamily("fleetstorm_server_reports_total", "Install reports, by update and result.",
                                      labels=("update", "result"))
        for (update, result), count in sorted(server.reports.items()):
            reports.add_metric((update, result), count)
        yield reports
        yield CounterMetricFamily("fleetstorm_server_bytes_sent_total", "Content bytes sent.", value=server.bytes_sent)
        yield GaugeMetricFamily("fleetstorm_server_in_flight", "Answers not yet written.", value=server.in_flight)
