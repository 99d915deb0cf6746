"""The pluggable-server contract: what a protocol adapter turns the agent's operations into.

An adapter is pure: it builds wire requests from a Machine and parses wire responses into
results. The agent sends the requests through Locust's client, so every request reaches
Locust's statistics; an adapter never does I/O itself, which keeps it testable on recorded
request/response samples.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import ClassVar, Literal

from harness.model.fleet import Machine


@dataclass(frozen=True)
class WireRequest:
    """One HTTP request as an adapter wants it sent."""

    method: str
    path: str
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WireResponse:
    """One HTTP response as the agent received it (status 0: no response at all).

    `failure` is set by the sender when the request counted as failed in the statistics: no answer,
    an error status, a truncated body, or an answer the adapter could not use.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
    failure: str | None = None


@dataclass(frozen=True)
class Offer:
    """An update the server offers a machine."""

    update: str  # the world's name of the update, e.g. "xpsp2"
    content_id: str
    size: int  # bytes served
    real_size: int  # bytes the real-world update weighs; 0 when the protocol does not say (the world's size is taken)
    crc32: int  # checksum of the served bytes
    url: str
    sha256: str = ""  # hex SHA-256 of the served bytes, verified instead of crc32 when given
    sha1: str = ""  # base64 SHA-1 of the served bytes (Omaha 3.0's `hash`), verified when no sha256 is given


# Which clock a server's Retry-After counts in: a real server's seconds are wall seconds; the reference
# server, which plays the scenario's clock, says with CLOCK_HEADER that its seconds are scenario seconds.
Clock = Literal["wall", "scenario"]
CLOCK_HEADER = "Fleetstorm-Clock"
# The environment variable a reference server started by the harness reads its admin token from.
TOKEN_VARIABLE = "FLEETSTORM_ADMIN_TOKEN"


@dataclass(frozen=True)
class CheckResult:
    """What a check-in learned: the offers, or that the server asked to come back later."""

    offers: tuple[Offer, ...] = ()
    retry_after_s: float | None = None
    error: str | None = None  # set when the response was unusable
    retry_after_clock: Clock = "wall"


class ProtocolAdapter(ABC):
    """Turns check / download-a-range / report into one server's wire format."""

    name: ClassVar[str]

    @abstractmethod
    def check_request(self, machine: Machine) -> WireRequest:
        """The request that asks the server what applies to this machine."""

    @abstractmethod
    def parse_check(self, response: WireResponse) -> CheckResult:
        """The offers in a check response; `error` set when the response is unusable."""

    @abstractmethod
    def download_request(self, offer: Offer, first: int, last: int) -> WireRequest:
        """The request for bytes first..last (inclusive) of an offered update."""

    @abstractmethod
    def report_request(self, machine: Machine, offer: Offer, result: str) -> WireRequest:
        """The request that reports an install result ("installed" or "failed")."""

    def package_request(self, package: str, language: str) -> WireRequest | None:
        """The request that describes a package outside any offer, answered as `parse_check` reads it.

        An administrator fetches the network-install package this way. None (the default): the
        protocol has no such request, and administrators' deployments send nothing.
        """
        return None


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value whichever case the HTTP client gave its name in (a lower-case name: its lower case)."""
    value = headers.get(name)
    return value if value is not None else headers.get(name.lower())


def retry_after(headers: Mapping[str, str], name: str = "Retry-After") -> float | None:
    """Seconds to wait from a Retry-After header in seconds or as an HTTP date; None when absent or unreadable."""
    value = header(headers, name)
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # an HTTP date names a moment on the server's wall clock
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def retry_after_clock(headers: Mapping[str, str]) -> Clock:
    """The clock a server's Retry-After seconds count in: wall, unless it says scenario (the reference server)."""
    return "scenario" if (header(headers, CLOCK_HEADER) or "").strip().lower() == "scenario" else "wall"


def transport_failure(response: WireResponse, method: str) -> str | None:
    """Why a response failed at the HTTP level (no answer, an error status, a truncated body), or None."""
    if response.status == 0:
        return "no response"
    if response.status >= 400:
        return f"HTTP {response.status}"
    length = header(response.headers, "Content-Length")
    if method != "HEAD" and length is not None and length.isdigit() and int(length) != len(response.body):
        return f"body of {len(response.body)} bytes, Content-Length said {length}"
    return None
