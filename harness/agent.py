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
from harness.protocols.base import CheckResult, Offer, ProtocolAdapter, WireRequest, WireResponse

BACKOFF_BASE_S = 300.0  # the first retry within 10 minutes, as BITS retries a transient error after 600 s
BACKOFF_CAP_S = 4 * 3600.0
RETRY_AFTER_JITTER = 0.5
# send(request, name, failure_of): sends through Locust's client; `failure_of` may name a reason to
# count an answered request as failed (a garbled body), so Locust's statistics see it.
Send = Callable[[WireRequest, str, Callable[[WireResponse], str | None] | None], WireResponse]


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
        parsed: list[CheckResult] = []

        def failure_of(response: WireResponse) -> str | None:
            parsed.append(self.adapter.parse_check(response))
            return parsed[0].error

        response = send(self.adapter.check_request(machine), "check", failure_of)
        result = parsed[0] if parsed else self.adapter.parse_check(response)  # e.g. a 503 and its Retry-After
        self.metrics.record_checkin(time.time() - self.clock.wall_at(due_at), response.failure is None)
        if response.status == 503:
            self.metrics.count("http_503")
        if response.failure is not None:
            self._back_off(index, result.retry_after_s)
            return
        self._failures.pop(index, None)
        for offer in result.offers:
            self.metrics.count(f"offered_{offer.update}")
            self.metrics.count(f"downloading_{offer.update}")  # a gauge: +1 now, -1 when done
            try:
                installed = self._download(send, offer)
            finally:
                self.metrics.count(f"downloading_{offer.update}", -1)
            send(self.adapter.report_request(machine, offer, "installed" if installed else "failed"), "report", None)
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
            response = send(self.adapter.download_request(offer, first, last), "download", _range_failure(first, last))
            if response.failure is not None:
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
            # Retry-After is the least wait; clients that all came back exactly then would be the
            # next thundering herd, so each adds up to half again at random.
            retry_after_s *= random.uniform(1.0, 1.0 + RETRY_AFTER_JITTER)
            self.metrics.count("retry_after_honoured")
        self.schedule(index, self.clock.now() + retry_after_s)



def _range_failure(first: int, last: int) -> Callable[[WireResponse], str | None]:
    """A download chunk fails unless it is a 206 carrying exactly bytes first..last."""

    def failure_of(response: WireResponse) -> str | None:
        if response.status != 206:
            return f"expected 206 Partial Content, got {response.status}"
        if len(response.body) != last - first + 1:
            return f"expected {last - first + 1} bytes, got {len(response.body)}"
        return None

    return failure_of
