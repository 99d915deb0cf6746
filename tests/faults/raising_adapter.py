"""A protocol adapter with bugs, for the fault suite: it raises for some machines and some answers."""

from __future__ import annotations

from harness.model.fleet import Machine
from harness.protocols.base import CheckResult, Offer, WireRequest, WireResponse
from harness.protocols.reference import ReferenceAdapter


class RaisingAdapter(ReferenceAdapter):
    """The reference adapter, but building a check fails for one machine in 7 and reading an offer always fails."""

    name = "raising"

    def check_request(self, machine: Machine) -> WireRequest:
        if machine.index % 7 == 0:
            raise KeyError("no such machine field")
        return super().check_request(machine)

    def parse_check(self, response: WireResponse) -> CheckResult:
        result = super().parse_check(response)
        if result.offers:
            raise ValueError("cannot read this offer")
        return result


class RaisingAtStartAdapter(ReferenceAdapter):
    """The reference adapter, but asked at the run's start whether it can fetch a package, it raises."""

    name = "raising-at-start"

    def package_request(self, package: str, language: str) -> WireRequest | None:
        raise RuntimeError("cannot build a package request")


class RaisingDownloadAdapter(ReferenceAdapter):
    """The reference adapter, but asked for a download's chunk, it raises."""

    name = "raising-download"

    def download_request(self, offer: Offer, first: int, last: int) -> WireRequest:
        raise RuntimeError("cannot build a range request")
