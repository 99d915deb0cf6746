"""The update client: one wake-up of one machine (or an administrator's package download), by a Locust user.

A check-in asks the server what applies; an offer is downloaded in ranged chunks (as BITS does),
verified by checksum, installed when the machine's install policy says, and reported. On 503/429 a
client that honours Retry-After (the world says) waits as asked, otherwise it backs off
exponentially with jitter from the world's first retry up to its cap; either way its next check
moves accordingly.
Latency is measured from the check-in's `due_at`, not from when an agent got to it; a check-in whose
request is sent more than `late_after_s` wall seconds after it was due is counted late.

No wake-up loses its machine: whatever goes wrong in one (an offer of an update the fleet does not
know, an adapter that raises, a bug here), the machine is backed off as after a failed check, the
failure is counted in Locust's statistics with its reason, and the harness error is counted by source.
"""

from __future__ import annotations

import base64
import hashlib
import random
import zlib
from collections.abc import Callable
from dataclasses import replace
from typing import Literal, Protocol

from harness.load.schedule import Dispatcher
from harness.load.surges import SiteVisit
from harness.measure.metrics import MAX_REASON_CHARS, ErrorSource, Metrics, describe
from harness.model.clock import ScenarioClock
from harness.model.fleet import DOWNLOADING, IDLE, INSTALL_PENDING, WAITING_FOR_USER, Fleet, Machine, WakeRule
from harness.model.network_install import PackageFetch
from harness.protocols.base import CheckResult, Offer, ProtocolAdapter, WireRequest, WireResponse

RETRY_AFTER_JITTER = 0.5
FailureOf = Callable[[WireResponse], str | None]
DownloadFailure = Literal["failed", "corrupt"]  # on the way (tried again later), or bytes that fail the checksum


class Client(Protocol):
    """How an agent reaches the server: every request, and every failed wake-up, lands in Locust's statistics."""

    def send(self, request: WireRequest, name: str, failure_of: FailureOf | None) -> WireResponse:
        """Send a request; `failure_of` may name a reason to count an answered request as failed (a garbled body)."""

    def error(self, name: str, reason: str) -> None:
        """Count a failure of a wake-up for `name` that no request of its own carried (the harness's or adapter's)."""


class Agent:
    """Carries out the machines' wake-ups for one process's fleet: check-ins, finished downloads, installs.

    A machine's phase says what its next wake-up is for (the AUState of a real client): a check-in
    when idle or when its user answers a notification; the end of a background download; the
    scheduled install. The bytes of a download travel at the check-in; the machine's connection
    class sets when, in scenario time, the download is complete.
    """

    def __init__(self, fleet: Fleet, clock: ScenarioClock, adapter: ProtocolAdapter, metrics: Metrics,
                 dispatcher: Dispatcher, chunk_bytes: int, late_after_s: float) -> None:
        self.fleet = fleet
        self.clock = clock
        self.adapter = adapter
        self.metrics = metrics
        self.dispatcher = dispatcher
        self.chunk_bytes = chunk_bytes
        self.late_after_s = late_after_s
        self.in_flight: dict[object, float] = {}  # the due times of the check-ins under way, by check-in
        self.closed = False
        # The last offer per update, language and attributes: what an install reports, a retry fetches.
        self._offers: dict[tuple[str, str, tuple[tuple[str, str], ...]], Offer] = {}
        # Machines whose download failed and is to be tried again: since when (scenario seconds), and the
        # offer they fetch (their own: a machine with the update a package patches takes another one).
        self._retrying: dict[int, tuple[float, Offer]] = {}

    def wake(self, client: Client, index: int, due_at: float) -> None:
        """Machine `index`'s wake-up, due at scenario second `due_at`; it always leaves the machine scheduled."""
        if self.closed:
            return
        phase = IDLE
        try:
            phase, update = self.fleet.phase(index)
            if phase == DOWNLOADING:
                self._downloaded(client, index, update, due_at)
            elif phase == INSTALL_PENDING:
                self._install(client, index, update, due_at)
            else:
                self._check_in(client, index, due_at, user_present=phase == WAITING_FOR_USER)
        except Exception as error:
            name = {DOWNLOADING: "download", INSTALL_PENDING: "install"}.get(phase, "check")
            client.error(name, self._harness_error(self._source_of(error), describe(error)))
            self._back_off(index)

    def visit(self, client: Client, visit: SiteVisit) -> None:
        """A user at the update site by hand: a check, and what it offers downloaded and installed at once.

        A machine with an update already under way is left to it (the site shows it so). The client's
        own schedule is left as it was: a visit that fails is given up by its user, not retried.
        """
        if self.closed or self.fleet.phase(visit.index)[0] != IDLE:
            return
        self.metrics.count("site_visits")
        try:
            self._check_in(client, visit.index, visit.due_at, user_present=False, by_hand=True)
        except Exception as error:
            client.error("check", self._harness_error(self._source_of(error), describe(error)))

    def close(self) -> list[float]:
        """The run stops: the due times of the check-ins under way, which are its unfinished ones; record no more.

        A check-in that finishes after this (Locust stops the agents a moment later) is not recorded
        again: it was counted here.
        """
        self.closed = True
        due, self.in_flight = list(self.in_flight.values()), {}
        return due

    def _source_of(self, error: Exception) -> ErrorSource:
        """Whose code raised: the adapter's, when one of its methods is on the way to the raise; else fleetstorm's."""
        traceback = error.__traceback__
        while traceback is not None:
            if traceback.tb_frame.f_locals.get("self") is self.adapter:
                return "adapter"
            traceback = traceback.tb_next
        return "harness"

    def _harness_error(self, source: ErrorSource, reason: str) -> str:
        """Count a harness error; the reason, as Locust's statistics show it."""
        self.metrics.record_harness_error(source, reason)
        reason = reason[:MAX_REASON_CHARS]
        return reason if source == "target" else f"{source} error: {reason}"

    def _check_in(self, client: Client, index: int, due_at: float, user_present: bool, by_hand: bool = False) -> None:
        """A check and what follows from it; `by_hand`: a visit to the update site (Agent.visit)."""
        check_in = object()
        self.in_flight[check_in] = due_at
        if self.clock.seconds_since(due_at) > self.late_after_s:
            self.metrics.count("late")
        try:
            machine = self.fleet.machine(index)
            if by_hand:
                machine = machine._replace(by_hand=True)
            response, result = self._ask(client, self.adapter.check_request(machine), "check")
        except Exception:
            self._checked_in(check_in, due_at, ok=False)
            raise
        if not self._checked_in(check_in, due_at, ok=response.failure is None):
            return  # the run stopped while it was under way: it is one of the unfinished
        if response.status == 503:
            self.metrics.count("http_503")
        if by_hand:
            if response.failure is None and result.offers:
                self._install_by_hand(client, index, machine, self._offer_of(result, machine))
            return
        if response.failure is not None:
            self._back_off(index, result)
            return
        self.fleet.set_failures(index, 0)
        if not result.offers:
            self.fleet.set_phase(index, IDLE)
            self.dispatcher.reschedule(index, due_at, WakeRule.AFTER_DETECTION)
            return
        offer = self._offer_of(result, machine)
        if not user_present:
            self.metrics.count(f"offered_{offer.update}")
        if machine.install_policy == "notify" and not user_present:  # ask before downloading
            self.fleet.set_phase(index, WAITING_FOR_USER, offer.update)
            self.dispatcher.reschedule(index, self.clock.now(), WakeRule.WHEN_USER_ANSWERS)
            return
        self.metrics.count(f"downloading_{offer.update}")  # a gauge: +1 now, -1 when done or given up
        self.fleet.set_phase(index, DOWNLOADING, offer.update)
        try:
            self._fetch(client, index, machine, offer)
        except Exception:  # no download under way: the wake-up's back-off brings the machine to a check
            self._retrying.pop(index, None)
            self.metrics.count(f"downloading_{offer.update}", -1)
            self.fleet.set_phase(index, IDLE)
            raise

    def _fetch(self, client: Client, index: int, machine: Machine, offer: Offer) -> None:
        """Download an offer in the background, as BITS does: done once the machine has been on long enough;
        after a failure on the way, tried again `download_retry` later while it is on, until it has
        failed for `download_give_up`. Bytes that fail the checksum are dropped: the client asks again at
        its next detection.
        """
        now, failed = self.clock.now(), self._download(client, offer)
        if failed is None:
            self._retrying.pop(index, None)
            self.dispatcher.reschedule(index, self.fleet.downloaded_at1(index, now, offer.real_size), WakeRule.WHEN_ON)
            return
        client_spec = self.fleet.client
        first_failure = self._retrying.setdefault(index, (now, offer))[0]
        if failed == "corrupt" or now - first_failure >= client_spec.download_give_up_s:
            self._retrying.pop(index, None)
            self.metrics.count(f"downloading_{offer.update}", -1)
            client.send(self.adapter.report_request(machine, offer, "failed"), "report", None)
            self.fleet.set_phase(index, IDLE)
            self.dispatcher.reschedule(index, now, WakeRule.AFTER_DETECTION)
            return
        self.metrics.count("download_retries")
        self.dispatcher.reschedule(index, now + client_spec.download_retry_s, WakeRule.WHEN_ON)

    def _offer_of(self, result: CheckResult, machine: Machine) -> Offer:
        """The offer a check-in takes (one update at a time; the next is offered at the next check-in)."""
        offer = result.offers[0]
        if not offer.real_size:  # the protocol does not say what the package stands for: the world does
            offer = replace(offer, real_size=self.fleet.package_size(offer.update, machine))
        self._offers[(offer.update, machine.language, machine.attributes)] = offer
        return offer

    def _install_by_hand(self, client: Client, index: int, machine: Machine, offer: Offer) -> None:
        """A site visitor's download, with its user waiting, and the install straight after."""
        self.metrics.count(f"offered_{offer.update}")
        if offer.update in self.fleet.installed_updates(index):  # another visit of its user's installed it meanwhile
            return
        if self._download(client, offer) is not None:
            client.send(self.adapter.report_request(machine, offer, "failed"), "report", None)
            return
        self.fleet.mark_installed(index, offer.update)
        self.metrics.count(f"installed_{offer.update}_site")
        client.send(self.adapter.report_request(machine, offer, "installed"), "report", None)

    def _checked_in(self, check_in: object, due_at: float, ok: bool) -> bool:
        """Record a check-in's end, unless the run's stop counted it as unfinished already; whether it was recorded."""
        if self.in_flight.pop(check_in, None) is None:
            return False
        self.metrics.record_checkin(self.clock.seconds_since(due_at), ok)
        return True

    def fetch_package(self, client: Client, fetch: PackageFetch) -> None:
        """An administrator's download of a package outside Automatic Updates (no machine's check-in)."""
        try:
            request = self.adapter.package_request(fetch.package, fetch.language)
            if request is None:
                return
            response, result = self._ask(client, request, "package", needs_offer=True)
            if response.failure is None and self._download(client, result.offers[0]) is None:
                self.metrics.count("packages_fetched")
        except Exception as error:
            client.error("package", self._harness_error(self._source_of(error), describe(error)))

    def _ask(self, client: Client, request: WireRequest, name: str,
             needs_offer: bool = False) -> tuple[WireResponse, CheckResult]:
        """Send a request answered with offers, and its parsed answer (of a 503 too: its Retry-After).

        An answer that does not parse, offers an update the fleet does not know, or has no offer when
        one is needed, is a failure in Locust's statistics as well as here.
        """
        parsed: list[CheckResult] = []

        def failure_of(response: WireResponse) -> str | None:
            parsed.append(self._parse(response))
            if parsed[0].error or not needs_offer:
                return parsed[0].error
            return None if parsed[0].offers else f"no {name} in the answer"

        response = client.send(request, name, failure_of)
        return response, parsed[0] if parsed else self._parse(response)

    def _parse(self, response: WireResponse) -> CheckResult:
        """The adapter's reading of an answer; an adapter that raises, or an unknown update, makes it unusable."""
        try:
            result = self.adapter.parse_check(response)
        except Exception as error:
            return CheckResult(error=self._harness_error("adapter", describe(error)))
        for offer in result.offers:
            if not self.fleet.knows(offer.update):
                return CheckResult(error=self._harness_error("target", f"unknown update {offer.update!r}"))
        return result

    def _downloaded(self, client: Client, index: int, update: str, due_at: float) -> None:
        """A background download's wake-up: it is done, or (after a failure) to be tried again."""
        if index in self._retrying:
            self._fetch(client, index, self.fleet.machine(index), self._retrying[index][1])
            return
        self.metrics.count(f"downloading_{update}", -1)
        if self.fleet.install_policy(index) == "notify":  # its user already said yes: install at once
            self._install(client, index, update, due_at)
            return
        self.metrics.count(f"install_pending_{update}")  # a gauge: -1 at the install
        self.fleet.set_phase(index, INSTALL_PENDING, update)
        self.dispatcher.reschedule(index, due_at, WakeRule.AT_INSTALL_TIME)

    def _install(self, client: Client, index: int, update: str, due_at: float) -> None:
        if self.fleet.phase(index)[0] == INSTALL_PENDING:
            self.metrics.count(f"install_pending_{update}", -1)
        self.fleet.set_phase(index, IDLE)
        if update in self.fleet.installed_updates(index):  # its administrator installed it meanwhile
            self.dispatcher.reschedule(index, due_at, WakeRule.AFTER_DETECTION)
            return
        self.fleet.mark_installed(index, update)
        self.metrics.count(f"installed_{update}")
        machine = self.fleet.machine(index)
        offer = self._offers.get((update, machine.language, machine.attributes))
        if offer is not None:
            client.send(self.adapter.report_request(machine, offer, "installed"), "report", None)
        self.dispatcher.reschedule(index, due_at, WakeRule.AFTER_DETECTION)

    def _download(self, client: Client, offer: Offer) -> DownloadFailure | None:
        """Fetch the offer in Range chunks and verify its SHA-256 when given, else its SHA-1, else its CRC-32;
        None when done, else how it failed."""
        crc = 0
        digest = hashlib.sha256() if offer.sha256 else hashlib.sha1() if offer.sha1 else None  # noqa: S324
        for first in range(0, offer.size, self.chunk_bytes):
            last = min(first + self.chunk_bytes, offer.size) - 1
            response = client.send(self.adapter.download_request(offer, first, last), "download",
                                   _range_failure(first, last))
            if response.failure is not None:
                self.metrics.count("downloads_failed")
                return "failed"
            if digest is None:
                crc = zlib.crc32(response.body, crc)
            else:
                digest.update(response.body)
            self.metrics.count("download_bytes", len(response.body))
        self.metrics.count("download_real_bytes", offer.real_size)
        if not _verified(offer, digest, crc):
            self.metrics.count("downloads_corrupt")
            return "corrupt"
        return None

    def _back_off(self, index: int, result: CheckResult | None = None) -> None:
        """Schedule a failed machine's retry: when the server asked (Retry-After), else exponentially later.

        The client's own back-off is in scenario seconds, as all its timers are. A server's Retry-After
        is in the server's own time: wall seconds, unless the server says it plays the scenario's clock.
        """
        failures = self.fleet.failures(index) + 1
        self.fleet.set_failures(index, failures)
        client = self.fleet.client
        if result is None or result.retry_after_s is None or not client.honours_retry_after:
            due = self.clock.now() + random.uniform(0, min(client.retry_cap_s, client.retry_s * 2**failures))
            self.metrics.count("backoffs")
        else:
            # Retry-After is the least wait; clients that all came back exactly then would be the
            # next thundering herd, so each adds up to half again at random.
            wait = result.retry_after_s * random.uniform(1.0, 1.0 + RETRY_AFTER_JITTER)
            scenario = result.retry_after_clock == "scenario"
            due = self.clock.now() + wait if scenario else self.clock.after_wall_seconds(wait)
            self.metrics.count("retry_after_honoured")
        self.dispatcher.reschedule(index, due, WakeRule.WHEN_ON)


def _verified(offer: Offer, digest: hashlib._Hash | None, crc: int) -> bool:
    """Whether a downloaded package matches the checksum its offer gave."""
    if digest is None:
        return crc == offer.crc32
    if offer.sha256:
        return digest.hexdigest() == offer.sha256.lower()
    return base64.b64encode(digest.digest()).decode() == offer.sha1


def _range_failure(first: int, last: int) -> Callable[[WireResponse], str | None]:
    """A download chunk fails unless it is a 206 carrying exactly bytes first..last."""

    def failure_of(response: WireResponse) -> str | None:
        if response.status != 206:
            return f"expected 206 Partial Content, got {response.status}"
        if len(response.body) != last - first + 1:
            return f"expected {last - first + 1} bytes, got {len(response.body)}"
        return None

    return failure_of
