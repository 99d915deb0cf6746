"""The run's live metrics for Prometheus, in its conventions: `fleetstorm_*`, units in the names, `_total` counters.

Collected at each scrape from a snapshot of the run (`Exported`), so the exposition always agrees with
the Fleet tab and, at the end, with summary.json: both read the same merged measurements (on a
master, the whole fleet's). Served at `/metrics` on Locust's web UI (behind its login when that is
on), or headless on `--metrics-port` (docs/observability.md lists every metric).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from gevent.pywsgi import WSGIServer
from hdrh.histogram import HdrHistogram
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from harness.config.errors import InputError
from harness.measure.metrics import Metrics, new_histogram, updates_in
from harness.measure.span import update_counters

# Due-time latency buckets, in seconds: from well inside a loopback answer to a stalled server's time-out.
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_FLEET_STATES = ("downloading", "install_pending", "installed")
_STATE_VALUES = {"PASS": 1.0, "FAIL": 0.0}
# Counters exported as they are: (metric family, help, the run's counter).
_COUNTERS = (
    ("fleetstorm_checkins_late", "Check-ins sent later than [agents] late_after after their due time", "late"),
    ("fleetstorm_http_503", "Answers refusing a check-in with 503 (server push-back)", "http_503"),
    ("fleetstorm_backoffs", "Machines backed off after a failed check-in", "backoffs"),
    ("fleetstorm_retry_after_honoured", "Machines that waited as a Retry-After asked", "retry_after_honoured"),
    ("fleetstorm_download_bytes", "Package bytes downloaded and verified", "download_bytes"),
    ("fleetstorm_real_download_bytes", "The real-world bytes the downloads stand for", "download_real_bytes"),
)


@dataclass(frozen=True)
class Exported:
    """The run as Prometheus sees it at one scrape."""

    totals: Metrics  # every measurement so far (the whole fleet's, on a master)
    machines: int  # emulated
    weight: float  # real machines each emulated one stands for
    time_scale: float  # scenario seconds per wall second now
    scenario_s: float  # scenario seconds since the timeline's start
    scenario_epoch_s: float  # the scenario date now, as Unix seconds
    target_rps: float  # check-ins per wall second the fleet asks for now
    achieved_rps: float  # over the last seconds
    agents: int
    thresholds: Sequence[tuple[str, str]]  # (expression, "PASS"/"FAIL"/"pending")


class RunCollector(Collector):
    """Yields the run's metric families from a fresh snapshot at each scrape."""

    def __init__(self, snapshot: Callable[[], Exported]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        run = self._snapshot()
        counters = run.totals.counters
        failed = counters["checkins_failed"]
        checkins = CounterMetricFamily("fleetstorm_checkins", "Check-ins carried out, by result", labels=["result"])
        checkins.add_metric(["ok"], counters["checkins"] - failed)
        checkins.add_metric(["failed"], failed)
        yield checkins
        yield GaugeMetricFamily("fleetstorm_checkins_unfinished", "Check-ins due and not done when the run stopped "
                                "(0 while it runs)", value=counters["unfinished"])
        yield _latency_histogram(run.totals.due_latency)
        requests = CounterMetricFamily("fleetstorm_requests", "Requests sent, by request name and result",
                                       labels=["request", "result"])
        for key, count in sorted(counters.items()):
            if key.startswith("requests_"):
                name = key.removeprefix("requests_")
                requests.add_metric([name, "ok"], count - counters[f"failures_{name}"])
                requests.add_metric([name, "failed"], counters[f"failures_{name}"])
        yield requests
        yield from (CounterMetricFamily(name, text, value=counters[key]) for name, text, key in _COUNTERS)
        yield from _rates(run)
        yield from _fleet(run)
        yield GaugeMetricFamily("fleetstorm_agents", "Agents (Locust users) carrying out check-ins", value=run.agents)
        thresholds = GaugeMetricFamily("fleetstorm_threshold_passing", "Each threshold now: 1 passing, 0 failing, "
                                       "NaN not judged yet", labels=["threshold"])
        for expr, state in run.thresholds:
            thresholds.add_metric([expr], _STATE_VALUES.get(state, math.nan))
        yield thresholds


def _rates(run: Exported) -> Iterator[Metric]:
    real_per_wall = run.weight / run.time_scale if run.time_scale else 0.0  # real-world seconds pass time_scale x
    yield GaugeMetricFamily("fleetstorm_target_checkins_per_second", "Check-ins per wall second the fleet asks for",
                            value=run.target_rps)
    yield GaugeMetricFamily("fleetstorm_achieved_checkins_per_second", "Check-ins per wall second over the last "
                            "10 s", value=run.achieved_rps)
    yield GaugeMetricFamily("fleetstorm_real_target_checkins_per_second", "The target as real-world check-ins per "
                            "second of the whole real fleet", value=run.target_rps * real_per_wall)
    yield GaugeMetricFamily("fleetstorm_real_achieved_checkins_per_second", "The achieved rate as real-world "
                            "check-ins per second of the whole real fleet", value=run.achieved_rps * real_per_wall)
    yield GaugeMetricFamily("fleetstorm_time_scale", "Scenario seconds per wall second now", value=run.time_scale)
    yield GaugeMetricFamily("fleetstorm_scenario_time_seconds", "Scenario seconds since the timeline's start",
                            value=run.scenario_s)
    yield GaugeMetricFamily("fleetstorm_scenario_date_seconds", "The scenario's date now, as Unix seconds",
                            value=run.scenario_epoch_s)


def _fleet(run: Exported) -> Iterator[Metric]:
    counters = run.totals.counters
    yield GaugeMetricFamily("fleetstorm_fleet_machines", "Machines emulated", value=run.machines)
    yield GaugeMetricFamily("fleetstorm_fleet_real_machines", "Real machines the emulated ones stand for",
                            value=run.machines * run.weight)
    yield GaugeMetricFamily("fleetstorm_fleet_online_machines", "Emulated machines switched on now",
                            value=counters["online_now"])
    offered = CounterMetricFamily("fleetstorm_fleet_offers", "Updates offered to machines", labels=["update"])
    by_state = GaugeMetricFamily("fleetstorm_fleet_update_machines", "Emulated machines by update and where they "
                                 "stand in it", labels=["update", "state"])
    coverage = GaugeMetricFamily("fleetstorm_fleet_coverage_ratio", "Share of the emulated machines that have the "
                                 "update, however they got it", labels=["update"])
    for update in updates_in(counters):
        offered.add_metric([update], counters[f"offered_{update}"])
        for state in _FLEET_STATES:
            by_state.add_metric([update, state], counters[f"{state}_{update}"])
        with_it = sum(counters[way] for way in update_counters("with", update))
        coverage.add_metric([update], with_it / run.machines if run.machines else 0.0)
    yield from (offered, by_state, coverage)


@cache
def _bucket_edges_us() -> np.ndarray:
    """For each index of a latency histogram's counts, the highest value (µs) it holds."""
    histogram = new_histogram()
    return np.array([histogram.get_highest_equivalent_value(histogram.get_value_from_index(i))
                     for i in range(histogram.counts_len)], dtype=np.float64)


def _latency_histogram(histogram: HdrHistogram) -> HistogramMetricFamily:
    """The due-time histogram in Prometheus's cumulative buckets (each exact to the HDR histogram's precision)."""
    cumulative = np.cumsum(np.ctypeslib.as_array(histogram.counts))
    positions = np.searchsorted(_bucket_edges_us(), np.array(LATENCY_BUCKETS_S) * 1e6, side="right") - 1
    buckets = [(f"{le:g}", float(cumulative[i]) if i >= 0 else 0.0) for le, i in zip(LATENCY_BUCKETS_S, positions,
                                                                                      strict=True)]
    total = histogram.get_total_count()
    return HistogramMetricFamily(
        "fleetstorm_checkin_latency_seconds", "Check-in latency from its due time (unfinished ones at their age "
        "when the run stopped)", buckets=[*buckets, ("+Inf", float(total))],
        sum_value=histogram.get_mean_value() * total / 1e6 if total else 0.0)


def registry_for(snapshot: Callable[[], Exported]) -> CollectorRegistry:
    """A registry holding only the run's metrics (not this process's own)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunCollector(snapshot))
    return registry


def serve_on_web_ui(web_ui: Any, registry: CollectorRegistry) -> None:
    """`/metrics` on Locust's web UI, behind its login when that is on."""
    @web_ui.app.route("/metrics")
    @web_ui.auth_required_if_enabled
    def metrics() -> tuple[bytes, int, dict[str, str]]:
        return generate_latest(registry), 200, {"Content-Type": CONTENT_TYPE_LATEST}


def serve_alone(host: str, port: int, registry: CollectorRegistry) -> WSGIServer:
    """`/metrics` on its own port (a headless run); InputError naming --metrics-port when it cannot listen."""
    server = WSGIServer((host, port), make_wsgi_app(registry), log=None, error_log=None)
    try:
        server.start()
    except OSError as error:
        raise InputError("--metrics-port", f"cannot listen on {host}:{port}: {error.strerror}",
                         "pick a free port (or 0 to serve none)") from None
    return server
