"""Observations: the value of a threshold key (e.g. "check.p95") in a stretch of measurements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from harness.measure.metrics import Metrics, histogram_ms
from harness.measure.thresholds import AMONG, CHECK_REFUSALS, COUNTED_KEYS, FLEET_METRICS, is_latency


@dataclass(frozen=True)
class Span:
    """Measurements over `duration_s` wall seconds, with what turns them into real-world figures.

    `scenario_s` is the scenario time those wall seconds played (None: as many, real time).
    """

    metrics: Metrics
    duration_s: float
    weight: float = 1.0
    scenario_s: float | None = None
    server: Mapping[str, float] = field(default_factory=dict)  # scraped from the server's /metrics
    machines: int = 0  # the emulated fleet: what a coverage without prerequisites is a share of

    def per_second(self, amount: float, real: bool) -> float:
        """An amount as a rate: per wall second, or (real) per real-world second for the whole fleet."""
        if not real:
            return amount / max(self.duration_s, 1e-9)
        seconds = self.duration_s if self.scenario_s is None else self.scenario_s
        return amount * self.weight / max(seconds, 1e-9)


def _count(span: Span, key: str) -> float | None:
    family, _, stat = key.partition(".")
    counters = span.metrics.counters
    if family == "fleet":
        if stat in FLEET_METRICS:
            return float(counters[FLEET_METRICS[stat]])
        what, _, update = stat.partition(".")
        return float(_machines(counters, what, update))
    if key in COUNTED_KEYS:
        return float(counters[COUNTED_KEYS[key]])
    if family == "errors":
        return float(span.metrics.requests()[1])
    if family == "check":
        return float(counters["checkins"])
    return float(span.metrics.requests(family)[0])


def update_counters(what: str, update: str) -> tuple[str, ...]:
    """The counters that add up to fleet.WHAT.UPDATE: offered; installed through the client, by hand at
    the update site, either (delivered), or by administrators; or with it however it came (from the start too)."""
    client, site, network = f"installed_{update}", f"installed_{update}_site", f"installed_{update}_network"
    return {"offered": (f"offered_{update}",), "installed": (client,), "site_installed": (site,),
            "delivered": (client, site), "network_installed": (network,)}.get(
        what, (f"initial_{update}", client, site, network))


def _machines(counters: Mapping[str, int], what: str, update: str) -> int:
    return sum(counters[name] for name in update_counters(what, update))


def observed(span: Span, key: str, real: bool = False) -> float | None:
    """The observed value (ms for latency, 0..1 for ratios, per wall second for rates); None if unmeasured.

    Real-world equivalents multiply counts by the fleet's weight, and rates are per scenario second
    (a compressed wall second stands for as many real ones as the time scale says).
    """
    family, _, stat = key.partition(".")
    if family == "server":
        if stat in span.server:
            return span.server[stat]
        return 0.0 if span.server and stat.startswith("http_") else None  # scraped, but no such answer
    if family == "check" and stat in CHECK_REFUSALS:
        refused, checks = span.metrics.counters["http_503"], span.metrics.requests("check")[0]
        if stat.endswith("count"):
            return refused * (span.weight if real else 1.0)
        return refused / checks if checks else None
    if key.startswith("fleet.coverage."):
        update, _, among = stat.removeprefix("coverage.").partition(AMONG)
        base = _machines(span.metrics.counters, "with", among) if among else span.machines
        return _machines(span.metrics.counters, "with", update) / base if base else None
    if is_latency(stat):
        histogram = span.metrics.due_latency if family == "check" else span.metrics.service.get(family)
        return histogram_ms(histogram, stat) if histogram is not None else None
    if stat == "ratio":
        requests, failures = span.metrics.requests(None if family == "errors" else family)
        return failures / requests if requests else None
    if stat == "goodput":
        return span.per_second(span.metrics.counters["download_real_bytes" if real else "download_bytes"], real)
    count = _count(span, key)
    if stat == "rps":
        return span.per_second(count, real)
    return count * (span.weight if real else 1.0)
