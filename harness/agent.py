"""The Automatic Updates client: one check-in of one machine, carried out by a Locust user.

A check-in asks the server what applies; each offer is downloaded in ranged chunks (as BITS
does), verified by checksum, installed and reported. On 503/429 the machine honours Retry-After,
otherwise backs off exponentially with jitter; either way its next check moves accordingly.
Latency is measured from the check-in's `due_at`, not from when an agent got to it.
"""

from __future__ import annotations

import hashlib
import random
import time
import zlib
from collections.abc import Callable

from harness.clock import ScenarioClock
from harness.fleet import Fleet
from harness.metrics import Metrics
from harness.protocols.base import Offer, ProtocolAdapter, WireRequest, WireResponse

BACKOFF_BASE_S = 60.0
BACKOFF_CAP_S = 4 * 3600.0
Send = Callable[[WireRequest, str], WireResponse]


class Agent:
    """Carries out check-ins for one process's fleet."""

    def __init__(
        self,
        fleet: Fleet,
        clock: ScenarioClock,
        adapter: ProtocolAdapter,
        metrics: Metrics,
        schedule: Callable[[int, float], None],
        chunk_bytes: int,
    ) -> None:
        self.fleet = fleet
        self.clock = clock
        self.adapter = adapter
        self.metrics = metrics
        self.schedule = schedule
        self.chunk_bytes = chunk_bytes
        self._failures: dict[int, int] = {}  # consecutive failed checks, only for machines backing off

    def check_in(self, send: Send, index: int, due_at: float) -> None:
        """Machine `index`'s check-in that was due at scenario second `due_at`."""
        machine = self.fleet.machine(index)
        response = send(self.adapter.check_request(machine), "check")
        result = self.adapter.parse_check(response)
        self.metrics.record_checkin(time.time() - self.clock.wall_at(due_at), result.error is None)
        if result.error is not None:
            self._back_off(index, result.retry_after_s)
            return
        self._failures.pop(index, None)
        for offer in result.offers:
            self.metrics.count(f"offered_{offer.update}")
            installed = self._download(send, offer)
            send(self.adapter.report_request(machine, offer, "installed" if installed else "failed"), "report")
            if not installed:
                break
            self.fleet.mark_installed(index, offer.update)
            self.metrics.count(f"installed_{offer.update}")
            machine = self.fleet.machine(index)
        self.schedule(index, due_at + self.fleet.next_interval(index, due_at))

    def _download(self, send: Send, offer: Offer) -> bool:
        """Fetch the offer in Range chunks and verify its SHA-256 when given, else its CRC-32."""
        crc = 0
        sha256 = hashlib.sha256() if offer.sha256 else None
        for first in range(0, offer.size, self.chunk_bytes):
            last = min(first + self.chunk_bytes, offer.size) - 1
            response = send(self.adapter.download_request(offer, first, last), "download")
            if response.status != 206 or len(response.body) != last - first + 1:
                self.metrics.count("downloads_failed")
                return False
            if sha256 is None:
                crc = zlib.crc32(response.body, crc)
            else:
                sha256.update(response.body)
            self.metrics.count("download_bytes", len(response.body))
        self.metrics.count("download_real_bytes", offer.real_size)
        if (sha256.hexdigest() != offer.sha256.lower()) if sha256 is not None else crc != offer.crc32:
            self.metrics.count("downloads_corrupt")
            return False
        return True

    def _back_off(self, index: int, retry_after_s: float | None) -> None:
        failures = self._failures.get(index, 0) + 1
        self._failures[index] = failures
        if retry_after_s is None:
            retry_after_s = random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**failures))
            self.metrics.count("backoffs")
        else:
            self.metrics.count("retry_after_honoured")
        self.schedule(index, self.clock.now() + retry_after_s)

