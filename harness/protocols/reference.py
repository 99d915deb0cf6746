"""The reference protocol: JSON over HTTP, as spoken by harness.server."""

from __future__ import annotations

import msgspec

from harness.model.fleet import Machine
from harness.protocols.base import (
    CheckResult,
    Offer,
    ProtocolAdapter,
    WireRequest,
    WireResponse,
    retry_after,
    retry_after_clock,
)

_JSON = {"Content-Type": "application/json"}


class ReferenceAdapter(ProtocolAdapter):
    """Check: POST /v1/check; download: GET /v1/content/<id> with Range; report: POST /v1/report."""

    name = "reference"

    def check_request(self, machine: Machine) -> WireRequest:
        body = {
            "client_id": machine.client_id,
            "hostname": machine.hostname,
            **dict(machine.attributes),  # the world's attributes, each a field: "edition": "pro"
            "language": machine.language,
            "enterprise": machine.enterprise,
            "installed": sorted(machine.installed),
        }
        if machine.by_hand:
            body["by_hand"] = True
        headers = {**_JSON, "User-Agent": machine.user_agent}
        return WireRequest("POST", "/v1/check", msgspec.json.encode(body), headers)

    def parse_check(self, response: WireResponse) -> CheckResult:
        if response.status in (429, 503):
            return CheckResult(retry_after_s=retry_after(response.headers), error=f"HTTP {response.status}",
                               retry_after_clock=retry_after_clock(response.headers))
        if response.status != 200:
            return CheckResult(error=f"HTTP {response.status}")
        try:
            offers = tuple(
                Offer(
                    update=str(item["update"]),
                    content_id=str(item["content_id"]),
                    size=int(item["size"]),
                    real_size=int(item["real_size"]),
                    crc32=int(item["crc32"]),
                    url=str(item["url"]),
                )
                for item in msgspec.json.decode(response.body)["offers"]
            )
        except (ValueError, KeyError, TypeError) as exc:
            return CheckResult(error=f"unusable check response ({type(exc).__name__}: {exc})")
        return CheckResult(offers=offers)

    def download_request(self, offer: Offer, first: int, last: int) -> WireRequest:
        return WireRequest("GET", offer.url, None, {"Range": f"bytes={first}-{last}"})

    def report_request(self, machine: Machine, offer: Offer, result: str) -> WireRequest:
        body = {"client_id": machine.client_id, "update": offer.update, "content_id": offer.content_id,
                "result": result}
        return WireRequest("POST", "/v1/report", msgspec.json.encode(body), _JSON)

    def package_request(self, package: str, language: str) -> WireRequest | None:
        return WireRequest("GET", f"/v1/packages/{package}-{language}")
