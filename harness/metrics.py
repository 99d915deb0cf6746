"""What was measured: due-time latency in an HDR histogram, and the fleet's counters.

Plain data that merges: a worker's Metrics can be encoded and added into the master's.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS = 1, 3_600_000_000, 3


def new_histogram() -> HdrHistogram:
    """A latency histogram in microseconds, 1 µs to 1 h, 3 significant digits."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


class Metrics:
    """Due-time latency of check-ins and named counters (check-ins, offers, installs, bytes...)."""

    def __init__(self) -> None:
        self.due_latency = new_histogram()
        self.counters: Counter[str] = Counter()

    def record_checkin(self, latency_s: float, ok: bool) -> None:
        """One check-in answered (or failed) `latency_s` after it was due."""
        self.due_latency.record_value(min(max(int(latency_s * 1e6), LOWEST_US), HIGHEST_US))
        self.counters["checkins"] += 1
        if not ok:
            self.counters["checkins_failed"] += 1

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount

    def fleet_counters(self) -> dict[str, int]:
        """The counters of offers and installs by update, in name order."""
        return {k: v for k, v in sorted(self.counters.items()) if k.startswith(("offered_", "installed_"))}

    def latency_ms(self, percentile: float) -> float:
        """A due-time latency percentile in milliseconds (0 when nothing was recorded)."""
        if self.due_latency.get_total_count() == 0:
            return 0.0
        return self.due_latency.get_value_at_percentile(percentile) / 1000.0

    def max_latency_ms(self) -> float:
        return self.due_latency.get_max_value() / 1000.0 if self.due_latency.get_total_count() else 0.0

    def encode(self) -> dict[str, Any]:
        """A msgpack-friendly snapshot for Locust's worker report."""
        return {"due_latency": self.due_latency.encode().decode("ascii"), "counters": dict(self.counters)}

    def merge(self, encoded: dict[str, Any]) -> None:
        """Add a snapshot from encode() into this one."""
        self.due_latency.decode_and_add(encoded["due_latency"])
        self.counters.update(encoded["counters"])
