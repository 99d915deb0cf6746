"""The Automatic Updates client: one wake-up of one machine (or an administrator's package download), by a Locust user.

A check-in asks the server what applies; an offer is downloaded in ranged chunks (as BITS does),
verified by checksum, installed when the machine's AU setting says, and reported. On 503/429 the
machine honours Retry-After, otherwise backs off exponentially with jitter; either way its next
check moves accordingly.
Latency is measured from the check-in's `due_at`, not from when an agent got to it.
"""

from __future__ import annotations

import hashlib
import random
import zlib
from collections.abc import Callable

from harness.clock import ScenarioClock
from harness.fleet import BANDWIDTH, DOWNLOADING, IDLE, INSTALL_PENDING, WAITING_FOR_USER, Fleet
from harness.metrics import Metrics
from harness.network_install import PackageFetch
from harness.protocols.base import CheckResult, Offer, ProtocolAdapter, WireRequest, WireResponse
from harness.schedule import AFTER_DETECTION, AT_INSTALL_TIME, WHEN_ON, WHEN_USER_ANSWERS, Dispatcher

BACKOFF_BASE_S = 300.0  # the first retry within 10 minutes, as BITS retries a transient error after 600 s
BACKOFF_CAP_S = 4 * 3600.0
RETRY_AFTER_JITTER = 0.5
# send(request, name, failure_of): sends through Locust's client; `failure_of` may name a reason to
# count an answered request as failed (a garbled body), so Locust's statistics see it.
Send = Callable[[WireRequest, str, Callable[[WireResponse], str | None] | None], WireResponse]


class Agent:
    """Carries out the machines' wake-ups for one process's fleet: check-ins, finished downloads, installs.

    A machine's phase says what its next wake-up is for (the AUState of a real client): a check-in
    when idle or when its user answers a notification; the end of a background download; the
    scheduled install. The bytes of a download travel at the check-in; the machine's connection
    class sets when, in scenario time, the download is complete.
    """

    def __init__(self, fleet: Fleet, clock: ScenarioClock, adapter: ProtocolAdapter, metrics: Metrics,
                 dispatcher: Dispatcher, chunk_bytes: int) -> None:
        self.fleet = fleet
        self.clock = clock
        self.adapter = adapter
        self.metrics = metrics
        self.dispatcher = dispatcher
        self.chunk_bytes = chunk_bytes
        self._offers: dict[tuple[str, str, str], Offer] = {}  # the last offer per update, language, edition

    def wake(self, send: Send, index: int, due_at: float) -> None:
        """Machine `index`'s wake-up that was due at scenario second `due_at`."""
        phase, update = self.fleet.phase(index)
        if phase == DOWNLOADING:
            self._downloaded(send, index, update, due_at)
        elif phase == INSTALL_PENDING:
            self._install(send, index, update, due_at)
        else:
            self._check_in(send, index, due_at, user_present=phase == WAITING_FOR_USER)

    def _check_in(self, send: Send, index: int, due_at: float, user_present: bool) -> None:
        machine = self.fleet.machine(index)
        response, result = self._ask(send, self.adapter.check_request(machine), "check")
        self.metrics.record_checkin(self.clock.seconds_since(due_at), response.failure is None)
        if response.status == 503:
            self.metrics.count("http_503")
        if response.failure is not None:
            self._back_off(index, result.retry_after_s)
            return
        self.fleet.set_failures(index, 0)
        if not result.offers:
            self.fleet.set_phase(index, IDLE)
            self.dispatcher.reschedule(index, due_at, AFTER_DETECTION)
            return
        offer = result.offers[0]  # one update at a time; the next is offered at the next check-in
        self._offers[(offer.update, machine.language, machine.edition)] = offer
        if not user_present:
            self.metrics.count(f"offered_{offer.update}")
        if machine.au_setting == "notify" and not user_present:  # AUOptions 2: ask before downloading
            self.fleet.set_phase(index, WAITING_FOR_USER, offer.update)
            self.dispatcher.reschedule(index, self.clock.now(), WHEN_USER_ANSWERS)
            return
        if not self._download(send, offer):
            send(self.adapter.report_request(machine, offer, "failed"), "report", None)
            self.fleet.set_phase(index, IDLE)
            self.dispatcher.reschedule(index, due_at, AFTER_DETECTION)
            return
        self.metrics.count(f"downloading_{offer.update}")  # a gauge: +1 now, -1 when the download is done
        self.fleet.set_phase(index, DOWNLOADING, offer.update)
        self.dispatcher.reschedule(index, self.clock.now() + offer.real_size / BANDWIDTH[machine.connection], WHEN_ON)

    def fetch_package(self, send: Send, fetch: PackageFetch) -> None:
        """An administrator's download of a package outside Automatic Updates (no machine's check-in)."""
        request = self.adapter.package_request(fetch.package, fetch.language)
        if request is None:
            return
        response, result = self._ask(send, request, "package", needs_offer=True)
        if response.failure is None and self._download(send, result.offers[0]):
            self.metrics.count("packages_fetched")

    def _ask(self, send: Send, request: WireRequest, name: str,
             needs_offer: bool = False) -> tuple[WireResponse, CheckResult]:
        """Send a request answered with offers, and its parsed answer (of a 503 too: its Retry-After).

        An answer that does not parse, or has no offer when one is needed, is a failure in Locust's
        statistics as well as here.
        """
        parsed: list[CheckResult] = []

        def failure_of(response: WireResponse) -> str | None:
            parsed.append(self.adapter.parse_check(response))
            if parsed[0].error or not needs_offer:
                return parsed[0].error
            return None if parsed[0].offers else f"no {name} in the answer"

        response = send(request, name, failure_of)
        return response, parsed[0] if parsed else self.adapter.parse_check(response)

    def _downloaded(self, send: Send, index: int, update: str, due_at: float) -> None:
        self.metrics.count(f"downloading_{update}", -1)
        if self.fleet.au_setting(index) == "notify":  # its user already said yes: install at once
            self._install(send, index, update, due_at)
            return
        self.metrics.count(f"install_pending_{update}")  # a gauge: -1 at the install
        self.fleet.set_phase(index, INSTALL_PENDING, update)
        self.dispatcher.reschedule(index, due_at, AT_INSTALL_TIME)

    def _install(self, send: Send, index: int, update: str, due_at: float) -> None:
        if self.fleet.phase(index)[0] == INSTALL_PENDING:
            self.metrics.count(f"install_pending_{update}", -1)
        self.fleet.set_phase(index, IDLE)
        if update in self.fleet.installed_updates(index):  # its administrator installed it meanwhile
            self.dispatcher.reschedule(index, due_at, AFTER_DETECTION)
            return
        self.fleet.mark_installed(index, update)
        self.metrics.count(f"installed_{update}")
        machine = self.fleet.machine(index)
        offer = self._offers.get((update, machine.language, machine.edition))
        if offer is not None:
            send(self.adapter.report_request(machine, offer, "installed"), "report", None)
        self.dispatcher.reschedule(index, due_at, AFTER_DETECTION)

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
        failures = self.fleet.failures(index) + 1
        self.fleet.set_failures(index, failures)
        if retry_after_s is None:
            retry_after_s = random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**failures))
            self.metrics.count("backoffs")
        else:
            # Retry-After is the least wait; clients that all came back exactly then would be the
            # next thundering herd, so each adds up to half again at random.
            retry_after_s *= random.uniform(1.0, 1.0 + RETRY_AFTER_JITTER)
            self.metrics.count("retry_after_honoured")
        self.dispatcher.reschedule(index, self.clock.now() + retry_after_s, WHEN_ON)


def _range_failure(first: int, last: int) -> Callable[[WireResponse], str | None]:
    """A download chunk fails unless it is a 206 carrying exactly bytes first..last."""

    def failure_of(response: WireResponse) -> str | None:
        if response.status != 206:
            return f"expected 206 Partial Content, got {response.status}"
        if len(response.body) != last - first + 1:
            return f"expected {last - first + 1} bytes, got {len(response.body)}"
        return None

    return failure_of
