"""The protocol adapter for examples/tiny_update_server.py: `--protocol examples.tiny_adapter:TinyAdapter`."""

from __future__ import annotations

from urllib.parse import urlencode

from harness.model.fleet import Machine
from harness.protocols.base import CheckResult, Offer, ProtocolAdapter, WireRequest, WireResponse, retry_after


class TinyAdapter(ProtocolAdapter):
    """Check: GET /api/updates; download: GET the listed URL with Range; report: POST /api/installed."""

    name = "tiny"

    def check_request(self, machine: Machine) -> WireRequest:
        query = urlencode({"id": machine.client_id, "lang": machine.language, "have": ",".join(machine.installed)})
        return WireRequest("GET", f"/api/updates?{query}")

    def parse_check(self, response: WireResponse) -> CheckResult:
        if response.status == 503:
            return CheckResult(retry_after_s=retry_after(response.headers), error="HTTP 503")
        if response.status != 200:
            return CheckResult(error=f"HTTP {response.status}")
        offers = []
        for line in response.body.decode("utf-8", "replace").splitlines():
            try:
                name, size, crc, url = line.split()
                offers.append(Offer(name, name, int(size), int(size), int(crc), url))
            except ValueError:
                return CheckResult(error=f"unusable line {line[:60]!r}")
        return CheckResult(offers=tuple(offers))

    def download_request(self, offer: Offer, first: int, last: int) -> WireRequest:
        return WireRequest("GET", offer.url, None, {"Range": f"bytes={first}-{last}"})

    def report_request(self, machine: Machine, offer: Offer, result: str) -> WireRequest:
        body = urlencode({"id": machine.client_id, "name": offer.update, "result": result}).encode()
        return WireRequest("POST", "/api/installed", body, {"Content-Type": "application/x-www-form-urlencoded"})
