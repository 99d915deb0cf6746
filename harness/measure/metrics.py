"""What was measured, as plain data that merges exactly.

Latency lives in HDR histograms (microseconds, 1 µs to 1 h, 3 significant digits): the check-in's
latency from its *due* time, and the service time of every request, by request name. Check-ins
still unfinished when the run stops enter the due-time histogram at their age then (and a histogram
of their own). Counters hold requests, failures, check-ins, offers, installs and bytes; harness
errors are counted by source and reason, a bounded number of distinct reasons. Every process records into its own
Metrics; deltas are encoded, shipped (Locust's worker reports) and added into the master's, so the
merged histogram is exactly the histogram of all recorded values.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from hdrh.histogram import HdrHistogram

# Where a machine stands in an update, as the fleet's counters name it (`offered_xpsp2`, ...).
UPDATE_STAGES = ("offered", "downloading", "install_pending", "installed", "initial")
LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS = 1, 3_600_000_000, 3
MAX_REASONS = 20  # distinct harness-error reasons kept; the rest are counted as "other reasons"
MAX_REASON_CHARS = 200
# Where a harness error came from: the server under test, the protocol adapter, or fleetstorm itself.
ErrorSource = Literal["target", "adapter", "harness"]
# Where a check-in was when the run stopped: due but not yet queued, queued for an agent, or in an agent's hands.
Unfinished = Literal["backlog", "queued", "in_flight"]


def new_histogram() -> HdrHistogram:
    """A latency histogram in microseconds, 1 µs to 1 h, 3 significant digits."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def updates_in(counters: Mapping[str, int]) -> list[str]:
    """The updates the fleet's counters speak of (offered, under way, installed), in the order first counted."""
    found: dict[str, None] = {}
    for key in counters:
        stage, _, update = key.partition("_")
        if stage == "install" and update.startswith("pending_"):
            stage, update = "install_pending", update.removeprefix("pending_")
        if stage in UPDATE_STAGES and update:
            found[update.removesuffix("_network").removesuffix("_site") if stage == "installed" else update] = None
    return list(found)


def describe(error: BaseException) -> str:
    """An exception as a one-line reason: its type and message."""
    return f"{type(error).__name__}: {error}"


def _clamped_us(seconds: float) -> int:
    return min(max(int(seconds * 1e6), LOWEST_US), HIGHEST_US)


def histogram_ms(histogram: HdrHistogram, stat: str) -> float | None:
    """A stat of a histogram in milliseconds: pNN, avg, min or max; None when it is empty."""
    if histogram.get_total_count() == 0:
        return None
    if stat == "max":
        return histogram.get_max_value() / 1000.0
    if stat == "min":
        return histogram.get_min_value() / 1000.0
    if stat == "avg":
        return histogram.get_mean_value() / 1000.0
    return _value_at_percentile(histogram, float(stat[1:])) / 1000.0


def _difference(later: HdrHistogram, earlier: HdrHistogram) -> HdrHistogram:
    """The values `later` holds beyond `earlier` (a copy taken before): counts subtracted, min and max found again."""
    difference = new_histogram()
    counts = np.ctypeslib.as_array(difference.counts)
    counts[:] = np.ctypeslib.as_array(later.counts) - np.ctypeslib.as_array(earlier.counts)
    filled = np.flatnonzero(counts)
    first, last = (int(filled[0]), int(filled[-1])) if len(filled) else (-1, -1)
    difference.set_internal_tacking_values(first, last, int(counts.sum()))
    return difference


def _value_at_percentile(histogram: HdrHistogram, percentile: float) -> int:
    """hdrh's get_value_at_percentile, with numpy walking the counts instead of a Python loop.

    The harness takes percentiles in the gevent loop every second (time series, thresholds, progress
    line): hdrh's loop runs up to the percentile's bucket, 0.07 ms for a p99 of 1 ms and 0.8 ms for one
    of a few hundred ms; this takes 0.01 ms either way (`timeit`).
    """
    cumulative = np.cumsum(np.ctypeslib.as_array(histogram.counts))
    target = np.uint64(histogram.get_target_count_at_percentile(percentile))  # a Python int: the array is converted
    value = histogram.get_value_from_index(int(cumulative.searchsorted(target)))
    if percentile:
        return histogram.get_highest_equivalent_value(value)
    return histogram.get_lowest_equivalent_value(value)


class Metrics:
    """Due-time latency of check-ins, service time by request name, and named counters."""

    def __init__(self) -> None:
        self.due_latency = new_histogram()
        self.unfinished_age = new_histogram()
        self.service: dict[str, HdrHistogram] = {}
        self.counters: Counter[str] = Counter()
        self.harness_errors: Counter[str] = Counter()  # "source: reason" -> count

    def record_harness_error(self, source: ErrorSource, reason: str, count: int = 1) -> None:
        """Something a client would not have had go wrong (a wake-up backed off for it, an internal error), and why."""
        self._add_harness_errors({f"{source}: {reason[:MAX_REASON_CHARS]}": count})

    def _add_harness_errors(self, errors: Mapping[str, int]) -> None:
        for key, count in errors.items():
            if key not in self.harness_errors and len(self.harness_errors) >= MAX_REASONS:
                key = f"{key.partition(': ')[0]}: other reasons"
            self.harness_errors[key] += count

    def record_unfinished(self, where: Unfinished, ages_s: np.ndarray) -> None:
        """Check-ins due but not done when the run stopped, with their ages then (in whole milliseconds)."""
        self.counters["unfinished"] += len(ages_s)
        self.counters[f"unfinished_{where}"] += len(ages_s)
        # Grouped by millisecond: a stalled server can leave millions in the backlog.
        values, counts = np.unique(np.round(np.asarray(ages_s) * 1000.0), return_counts=True)
        for ms, count in zip(values.tolist(), counts.tolist(), strict=True):
            age_us = _clamped_us(ms / 1000.0)
            self.due_latency.record_value(age_us, count)
            self.unfinished_age.record_value(age_us, count)

    def record_checkin(self, latency_s: float, ok: bool) -> None:
        """One check-in answered (or failed) `latency_s` after it was due.

        A check-in answered before it was due cannot happen on one steady clock; it is recorded as 1 µs
        and counted, so that a broken measurement shows instead of passing for a fast answer.
        """
        if latency_s < 0:
            self.counters["latency_negative"] += 1
        self.due_latency.record_value(_clamped_us(latency_s))
        self.counters["checkins"] += 1
        if not ok:
            self.counters["checkins_failed"] += 1

    def record_request(self, name: str, response_time_ms: float, failed: bool, timed: bool = True) -> None:
        """One request's service time, as Locust's `request` event reports it (`timed`: it has one)."""
        if timed:
            histogram = self.service.get(name)
            if histogram is None:
                histogram = self.service[name] = new_histogram()
            histogram.record_value(_clamped_us(response_time_ms / 1000.0))
        self.counters[f"requests_{name}"] += 1
        if failed:
            self.counters[f"failures_{name}"] += 1

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount

    def requests(self, name: str | None = None) -> tuple[int, int]:
        """(requests, failures) of one request name, or of all names."""
        if name is not None:
            return self.counters[f"requests_{name}"], self.counters[f"failures_{name}"]
        total = sum(v for k, v in self.counters.items() if k.startswith("requests_"))
        return total, sum(v for k, v in self.counters.items() if k.startswith("failures_"))

    def fleet_counters(self) -> dict[str, int]:
        """Machines online now; offers, downloads under way, installs pending and done, by update; package fetches."""
        return {k: v for k, v in sorted(self.counters.items())
                if k in ("online_now", "packages_fetched", "site_visits")
                or k.startswith(("offered_", "installed_", "downloading_", "install_pending_"))}

    def latency_ms(self, percentile: float) -> float:
        """A due-time latency percentile in milliseconds (0 when nothing was recorded)."""
        return histogram_ms(self.due_latency, f"p{percentile:g}") or 0.0

    def max_latency_ms(self) -> float:
        return histogram_ms(self.due_latency, "max") or 0.0

    def encode(self) -> dict[str, Any]:
        """A msgpack-friendly snapshot, for Locust's worker report."""
        return {
            "due_latency": self.due_latency.encode().decode("ascii"),
            "unfinished_age": self.unfinished_age.encode().decode("ascii"),
            "service": {name: h.encode().decode("ascii") for name, h in self.service.items()},
            "counters": dict(self.counters),
            "harness_errors": dict(self.harness_errors),
        }

    def merge(self, encoded: dict[str, Any]) -> None:
        """Add a snapshot from encode() into this one."""
        self.due_latency.decode_and_add(encoded["due_latency"])
        self.unfinished_age.decode_and_add(encoded["unfinished_age"])
        for name, histogram in encoded["service"].items():
            self.service.setdefault(name, new_histogram()).decode_and_add(histogram)
        self.counters.update(encoded["counters"])
        self._add_harness_errors(encoded["harness_errors"])

    def add(self, other: Metrics) -> None:
        """Add another Metrics of this process into this one."""
        self.due_latency.add(other.due_latency)
        self.unfinished_age.add(other.unfinished_age)
        for name, histogram in other.service.items():
            self.service.setdefault(name, new_histogram()).add(histogram)
        self.counters.update(other.counters)
        self._add_harness_errors(other.harness_errors)

    def since(self, earlier: Metrics) -> Metrics:
        """What was recorded after `earlier`, a copy of this Metrics taken before (both of this run's process)."""
        between = Metrics()
        between.due_latency = _difference(self.due_latency, earlier.due_latency)
        between.unfinished_age = _difference(self.unfinished_age, earlier.unfinished_age)
        between.service = {name: _difference(histogram, earlier.service.get(name, new_histogram()))
                           for name, histogram in self.service.items()}
        between.counters, between.harness_errors = self.counters.copy(), self.harness_errors.copy()
        between.counters.subtract(earlier.counters)  # gauges kept as counts of changes may fall: kept below 0
        between.harness_errors.subtract(earlier.harness_errors)
        return between

    def drain(self) -> Metrics:
        """What was recorded since the last drain, leaving this one empty, recording into fresh histograms.

        The filled histograms and counters are handed over rather than copied and cleared: clearing a
        histogram is a Python loop over its 23,552 counts (0.69 ms, `timeit`), a new one costs 0.08 ms,
        and a drain runs in the gevent loop, ahead of every check-in due meanwhile. Whoever records
        into this Metrics keeps its reference to it; nothing holds on to its histograms.
        """
        taken = copy.copy(self)  # shallow: it takes these histograms and counters as they are
        self.due_latency, self.unfinished_age, self.service = new_histogram(), new_histogram(), {}
        self.counters, self.harness_errors = Counter(), Counter()
        return taken
