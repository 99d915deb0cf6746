"""The reference update server as a portable WSGI application.

Endpoints: POST /v1/check, GET|HEAD /v1/content/<id> (single Range, If-Range), POST /v1/report,
GET /v1/health, GET /metrics (Prometheus text), POST /v1/admin/configure (the harness sets the
scenario clock and policy). Bad requests get a 4xx with a one-line reason, never a 500.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from harness.clock import ScenarioClock
from harness.domain import EDITIONS, LANGUAGE_CODES, LAUNCH
from harness.errors import InputError
from harness.scenario import ServerSpec, parse_server
from harness.server import omaha
from harness.server.catalog import build_catalog, content_id
from harness.server.content import payload_crc32, payload_range
from harness.server.rollout import OfferThrottle, offered_updates

MAX_BODY = 64 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
StartResponse = Callable[..., Any]


class HttpError(Exception):
    """A 4xx answer with a short reason."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ReferenceServer:
    """WSGI app holding the policy, the catalog, the scenario clock and the counters."""

    def __init__(self, policy: ServerSpec, clock: ScenarioClock | None = None) -> None:
        self.clock = clock or ScenarioClock.starting_now(LAUNCH, 1.0)
        self.counters: Counter[tuple[str, ...]] = Counter()
        self.in_flight = 0
        self.configure(policy, self.clock)

    def configure(self, policy: ServerSpec, clock: ScenarioClock) -> None:
        self.policy = policy
        self.clock = clock
        self.catalog = build_catalog(policy.payload_scale)
        self.throttle = OfferThrottle(policy.offers_per_hour)
        self._tokens, self._refilled = float(policy.max_rps), time.monotonic()

    def _over_capacity(self) -> bool:
        """Past the concurrency capacity, or out of this second's request budget (a token bucket)."""
        if self.in_flight >= self.policy.capacity:
            return True
        if not self.policy.max_rps:
            return False
        now = time.monotonic()
        self._tokens = min(self.policy.max_rps, self._tokens + (now - self._refilled) * self.policy.max_rps)
        self._refilled = now
        if self._tokens < 1:
            return True
        self._tokens -= 1
        return False

    def now(self) -> datetime:
        return self.clock.date_at(self.clock.now())

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        endpoint = path.split("/")[2] if path.startswith("/v1/") else path.strip("/") or "root"
        if endpoint in ("check", "content", "report", "service/update2") and self._over_capacity():
            self.counters["requests", endpoint, "503"] += 1
            start_response("503 Service Unavailable", [("Retry-After", str(self.policy.retry_after_s)),
                                                       ("Content-Length", "0")])
            return [b""]
        self.in_flight += 1
        try:
            status, headers, body = self._route(method, path, environ)
        except HttpError as exc:
            status, headers, body = exc.status, [("Content-Type", "text/plain")], exc.reason.encode() + b"\n"
        finally:
            self.in_flight -= 1
        self.counters["requests", endpoint, status[:3]] += 1
        start_response(status, [*headers, ("Content-Length", str(len(body)))])
        return [b"" if method == "HEAD" else body]

    def _route(self, method: str, path: str, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        if path == "/v1/check" and method == "POST":
            return self._check(_json_body(environ))
        if path.startswith("/v1/content/") and method in ("GET", "HEAD"):
            return self._content(path.removeprefix("/v1/content/"), environ)
        if path == "/v1/report" and method == "POST":
            return self._report(_json_body(environ))
        if path == omaha.UPDATE_PATH and method == "POST":
            return omaha.update2(self, environ)
        if path == "/v1/health" and method == "GET":
            return "200 OK", [("Content-Type", "application/json")], b'{"status": "ok"}'
        if path == "/metrics" and method == "GET":
            return "200 OK", [("Content-Type", "text/plain; version=0.0.4")], self.metrics_text().encode()
        if path == "/v1/admin/configure" and method == "POST":
            return self._configure(_json_body(environ))
        raise HttpError("404 Not Found", f"no such endpoint: {method} {path[:100]}")

    def _check(self, body: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        client_id = _field(body, "client_id", str)
        edition = _field(body, "edition", str)
        lang = _field(body, "language", str)
        installed = _field(body, "installed", list)
        enterprise = bool(body.get("enterprise", False))
        if edition not in EDITIONS:
            raise HttpError("400 Bad Request", f"edition must be one of {', '.join(EDITIONS)}")
        if lang not in LANGUAGE_CODES:
            raise HttpError("400 Bad Request", "language is not an SP2 language")
        when = self.now()
        updates = [update for update in offered_updates(self.policy, client_id=client_id, edition=edition,
                                                        language_code=lang, enterprise=enterprise,
                                                        installed=[str(u) for u in installed], when=when)
                   if self.throttle.admit(update, client_id, when)]
        offers = []
        for update in updates:
            item = self.catalog[content_id(update, edition, lang)]
            self.counters["offers", update] += 1
            offers.append({"update": update, "content_id": item.content_id, "size": item.size,
                           "real_size": item.real_size, "crc32": payload_crc32(item.content_id, item.size),
                           "url": f"/v1/content/{item.content_id}"})
        return "200 OK", [("Content-Type", "application/json")], json.dumps({"offers": offers}).encode()

    def _content(self, cid: str, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        item = self.catalog.get(cid)
        if item is None:
            raise HttpError("404 Not Found", "no such content")
        etag = f'"{payload_crc32(cid, item.size):08x}-{item.size}"'
        headers = [("Accept-Ranges", "bytes"), ("ETag", etag), ("Content-Type", "application/octet-stream")]
        requested = environ.get("HTTP_RANGE")
        if_range = environ.get("HTTP_IF_RANGE")
        if requested is None or (if_range is not None and if_range != etag):
            return "200 OK", headers, self._sent(payload_range(cid, 0, item.size - 1))
        first, last = parse_range(requested, item.size)
        headers.append(("Content-Range", f"bytes {first}-{last}/{item.size}"))
        return "206 Partial Content", headers, self._sent(payload_range(cid, first, last))

    def _sent(self, body: bytes) -> bytes:
        self.counters["bytes_sent",] += len(body)
        return body

    def _report(self, body: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        _field(body, "client_id", str)
        update = _field(body, "update", str)
        result = _field(body, "result", str)
        if result not in ("installed", "failed"):
            raise HttpError("400 Bad Request", "result must be installed or failed")
        if update not in ("xpsp2", "kb884020"):
            raise HttpError("400 Bad Request", "unknown update")
        self.counters["reports", update, result] += 1
        return "204 No Content", [], b""

    def _configure(self, body: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        try:
            clock = ScenarioClock.from_json(_field(body, "clock", dict))
            policy = parse_server(_field(body, "server", dict), "server", "configure request")
        except (InputError, KeyError, ValueError, TypeError) as exc:
            raise HttpError("400 Bad Request", f"bad configuration: {exc}") from None
        self.configure(policy, clock)
        return "204 No Content", [], b""

    def metrics_text(self) -> str:
        """The counters in Prometheus text exposition format."""
        lines = ["# TYPE fleetstorm_server_requests_total counter"]
        lines += [f'fleetstorm_server_requests_total{{endpoint="{k[1]}",code="{k[2]}"}} {v}'
                  for k, v in sorted(self.counters.items()) if k[0] == "requests"]
        lines.append("# TYPE fleetstorm_server_offers_total counter")
        lines += [f'fleetstorm_server_offers_total{{update="{k[1]}"}} {v}'
                  for k, v in sorted(self.counters.items()) if k[0] == "offers"]
        lines.append("# TYPE fleetstorm_server_reports_total counter")
        lines += [f'fleetstorm_server_reports_total{{update="{k[1]}",result="{k[2]}"}} {v}'
                  for k, v in sorted(self.counters.items()) if k[0] == "reports"]
        lines += ["# TYPE fleetstorm_server_bytes_sent_total counter",
                  f"fleetstorm_server_bytes_sent_total {self.counters['bytes_sent',]}",
                  "# TYPE fleetstorm_server_in_flight gauge",
                  f"fleetstorm_server_in_flight {self.in_flight}"]
        return "\n".join(lines) + "\n"


def parse_range(header: str, size: int) -> tuple[int, int]:
    """The inclusive byte range of a single-range `Range` header; HttpError 416 if unsatisfiable."""
    match = _RANGE.fullmatch(header.strip())
    unsatisfiable = HttpError("416 Range Not Satisfiable", f"range must be bytes=first-last within 0-{size - 1}")
    if not match or match.group(1) == match.group(2) == "":
        raise unsatisfiable
    first_text, last_text = match.groups()
    if first_text == "":  # suffix range: the last N bytes
        first, last = max(0, size - int(last_text)), size - 1
    else:
        first = int(first_text)
        last = min(int(last_text), size - 1) if last_text else size - 1
    if first >= size or last < first:
        raise unsatisfiable
    return first, last


def read_body(environ: dict[str, Any]) -> bytes:
    """The request body, refused with a 4xx when its length is not a number or over MAX_BODY."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise HttpError("400 Bad Request", "Content-Length is not a number") from None
    if length > MAX_BODY:
        raise HttpError("413 Content Too Large", f"body over {MAX_BODY} bytes")
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _json_body(environ: dict[str, Any]) -> dict[str, Any]:
    raw = read_body(environ)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise HttpError("400 Bad Request", "body is not valid JSON") from None
    if not isinstance(body, dict):
        raise HttpError("400 Bad Request", "body must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if not isinstance(value, kind):
        raise HttpError("400 Bad Request", f"field {name!r} is missing or not a {kind.__name__}")
    return value
