"""The reference update server as a portable WSGI application, with a native interface for speed.

Endpoints: POST /v1/check, GET|HEAD /v1/content/<id> (single Range, If-Range), POST /v1/report,
GET /v1/health, GET /metrics (Prometheus text), POST /v1/admin/configure (the harness sets the
scenario clock, policy and world; only with the run's admin token). Bad requests get a 4xx with a
one-line reason, never a 500.
Any WSGI server can serve it; harness/server/httpserver.py calls `answer` directly instead
(harness/server/handler.py), which skips building a WSGI environ for every request.
"""

from __future__ import annotations

import hmac
import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from functools import partial
from typing import Any, Literal

import msgspec
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest

from harness.config.decode import decode
from harness.config.errors import InputError
from harness.config.schema import ServerSpec, parse_server
from harness.config.world import World, default_world
from harness.model.clock import ScenarioClock
from harness.protocols.base import CLOCK_HEADER
from harness.protocols.omaha import OmahaNaming
from harness.server import omaha
from harness.server.catalog import Item, build_catalog, content_id
from harness.server.content import payload_crc32, payload_range
from harness.server.exposition import ServerCollector
from harness.server.handler import Answer, HttpError, Request, read_body, request_body
from harness.server.policy import LAUNCH
from harness.server.rollout import OfferThrottle, RolloutPolicy

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
StartResponse = Callable[..., Any]
_JSON = (("Content-Type", "application/json"),)
_TEXT = (("Content-Type", "text/plain"),)
_PROMETHEUS = (("Content-Type", CONTENT_TYPE_PLAIN_0_0_4),)
_NO_HEADERS = ()
_CONTENT = "/v1/content/"
_PACKAGES = "/v1/packages/"
MIN_BURST = 10.0  # requests a bucket of `max_real_rps` holds at least: see ReferenceServer._budget


class _Endpoint:
    """One endpoint: its metrics label, whether the capacity limits refuse it, its handlers, its answers."""

    __slots__ = ("name", "limited", "handlers", "answered")

    def __init__(self, name: str, limited: bool, handlers: dict[str, Callable[[Request], Answer]]) -> None:
        self.name = name
        self.limited = limited
        self.handlers = handlers
        self.answered: Counter[str] = Counter()  # by status line


class _CheckAnswer:
    """The bytes answering checks offered `offers` in one edition and language, and how many were sent."""

    __slots__ = ("offers", "body", "sent")

    def __init__(self, offers: tuple[str, ...], body: bytes) -> None:
        self.offers = offers
        self.body = body
        self.sent = 0


class ReferenceServer:
    """WSGI app holding the policy, the catalog, the scenario clock and the counters."""

    def __init__(self, policy: ServerSpec, clock: ScenarioClock | None = None, world: World | None = None,
                 admin_token: str = "", weight: float = 1.0) -> None:
        self.clock = clock or ScenarioClock.starting_now(LAUNCH, 1.0)
        self.world = world or default_world()
        self._admin_token = admin_token  # "": the admin door is closed
        # Offers counted before the last configuration, and by Omaha; the JSON check counts its own
        # through its answers (`offers_made` adds them up).
        self._offers_counted: Counter[str] = Counter()
        self._check_answers: dict[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]], _CheckAnswer] = {}
        self.reports: Counter[tuple[str, str]] = Counter()  # (update, result)
        self.bytes_sent = 0
        self.in_flight = 0
        # Routing by exact path is one dictionary lookup on every request.
        self._exact = {
            "/v1/check": _Endpoint("check", True, {"POST": self._check}),
            "/v1/report": _Endpoint("report", True, {"POST": self._report}),
            omaha.UPDATE_PATH: _Endpoint("service/update2", True, {"POST": partial(omaha.update2, self)}),
            "/v1/health": _Endpoint("health", False, {"GET": _health}),
            "/metrics": _Endpoint("metrics", False, {"GET": self._metrics}),
            "/v1/admin/configure": _Endpoint("admin", False, {"POST": self._configure}),
        }
        self._content_endpoint = _Endpoint("content", True, {"GET": self._content, "HEAD": self._content})
        self._packages_endpoint = _Endpoint("packages", True, {"GET": self._package})
        self._other = _Endpoint("other", False, {})  # unknown paths: one label, whatever clients send
        self._registry = CollectorRegistry()
        self._registry.register(ServerCollector(self))
        self.configure(policy, self.clock, weight=weight)

    def configure(self, policy: ServerSpec, clock: ScenarioClock, world: World | None = None,
                  weight: float = 1.0) -> None:
        """Play `policy` on `clock`, in `world` (None: the world it plays already).

        `weight` is the real machines each client stands for: with it and the clock's time scale the
        server turns a capacity in real-world requests per second (`max_real_rps`) into wall seconds.
        """
        self.policy = policy
        self.clock = clock
        self.world = world = world or self.world
        self.catalog = build_catalog(world, policy.payload_scale)
        self.throttle = OfferThrottle(policy.offers_per_hour)
        self.rollout = RolloutPolicy(policy, world)
        self._check_decoder = _check_decoder(world)
        self.omaha = OmahaNaming(world)
        self._languages = frozenset(world.language_codes)
        self._attributes = tuple((name, frozenset(world.attribute_values(name))) for name in world.attribute_names)
        # What picks an update's package for a machine: its variant attribute, language, what it patches.
        self._packaging = {name: (update.variant, update.per_language,
                                  update.differential.base if update.differential else None)
                           for name, update in world.updates}
        self._origin_s = clock.origin.timestamp()
        self._capacity = policy.capacity
        # Requests per wall second per unit of time scale: a compressed wall second stands for as many
        # real seconds as the time scale says, and each request for `weight` real ones.
        self._real_rps_per_scale = policy.max_real_rps / weight
        self._max_rps, self._depth = self._budget()
        self._tokens, self._refilled = self._depth, time.monotonic()
        # This server plays the scenario's clock, so its Retry-After is in scenario seconds, and it says so.
        self._overloaded = (("Retry-After", str(policy.retry_after_s)), (CLOCK_HEADER, "scenario"))
        # The check's JSON depends only on the offered updates, edition and language (and the
        # catalog, rebuilt above): which machine is offered what is still decided per request.
        for answer in self._check_answers.values():
            self.count_offers(answer.offers, answer.sent)
        self._check_answers = {}

    def _over_capacity(self) -> bool:
        """Past the concurrency capacity, or out of this second's request budget (a token bucket)."""
        return self.in_flight >= self._capacity or (self._max_rps > 0 and self._out_of_tokens())

    def _budget(self) -> tuple[float, float]:
        """(requests served per wall second now, the most the bucket holds): `max_rps` and a wall second of
        it, or `max_real_rps` at the phase's time scale and a real second of it.

        A real second of a sampled fleet's requests may be less than one request (each stands for
        `weight` real ones), so the bucket holds at least MIN_BURST: a burst of a few requests is the
        sample's coarseness, not the fleet's.
        """
        if not self._real_rps_per_scale:
            return float(self.policy.max_rps), float(self.policy.max_rps)
        per_real_second = self._real_rps_per_scale
        return per_real_second * self.clock.pace.scale_at(self.clock.now()), max(per_real_second, MIN_BURST)

    def _out_of_tokens(self) -> bool:
        now = time.monotonic()
        if self._real_rps_per_scale:  # the phase may have changed its time scale
            self._max_rps, self._depth = self._budget()
        self._tokens = min(self._depth, self._tokens + (now - self._refilled) * self._max_rps)
        self._refilled = now
        if self._tokens < 1:
            return True
        self._tokens -= 1
        return False

    def now(self) -> datetime:
        return self.clock.date_at(self.clock.now())

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI interface: the same answers as `answer`, for any WSGI server.

        The answer is in flight until the server closes it, as WSGI servers do once it is written.
        """
        request = _WsgiRequest(environ)
        status, headers, body = self.answer(request)
        start_response(status, [*headers, ("Content-Length", str(len(body)))])
        return _Written(b"" if request.method == "HEAD" else body, self.writing)

    def writing(self, answers: int) -> None:
        """The HTTP server's count of answers not yet written: the requests in flight that `capacity` limits.

        Answers are computed without waiting, so only answers to clients that read slowly (large
        downloads) stay in flight.
        """
        self.in_flight += answers

    def answer(self, request: Request) -> Answer:
        """The native interface (harness/server/handler.py): status, headers without Content-Length, body.

        A HEAD request gets the body a GET would: the server sends its length and drops the bytes.
        """
        path = request.path
        endpoint = self._exact.get(path) or self._endpoint_under(path)
        if endpoint.limited and self._over_capacity():
            status, headers, body = "503 Service Unavailable", self._overloaded, b""
        else:
            try:
                handler = endpoint.handlers.get(request.method)
                if handler is None:
                    raise HttpError("404 Not Found", f"no such endpoint: {request.method} {path[:100]}")
                status, headers, body = handler(request)
            except HttpError as exc:
                status, headers, body = exc.status, _TEXT, exc.reason.encode() + b"\n"
        endpoint.answered[status] += 1
        return status, headers, body

    def _endpoint_under(self, path: str) -> _Endpoint:
        if path.startswith(_CONTENT):
            return self._content_endpoint
        if path.startswith(_PACKAGES):
            return self._packages_endpoint
        return self._other

    def _check(self, request: Request) -> Answer:
        raw = request_body(request)
        try:
            check = self._check_decoder.decode(raw)
            client_id, lang, installed, enterprise = check.client_id, check.language, check.installed, check.enterprise
            attributes, by_hand = {name: getattr(check, name) for name, _ in self._attributes}, check.by_hand
        except (msgspec.DecodeError, RecursionError):  # the field rules name what is wrong
            client_id, lang, installed, enterprise, attributes, by_hand = self._check_fields(_json_object(raw))
        when = self._origin_s + self.clock.now()  # epoch seconds: no datetime on every check
        updates = self.rollout.offered(client_id, attributes, lang, bool(enterprise), installed, when, by_hand is True)
        if updates and self.throttle.per_hour:
            updates = self.throttle.admitted(updates, client_id, when)
        key = (updates, tuple(attributes.values()), (lang, *(u for u in updates if self._patches(u, installed))))
        answer = self._check_answers.get(key)
        if answer is None:
            items = [self.catalog[self.package_of(update, attributes, lang, installed)] for update in updates]
            answer = self._check_answers[key] = _CheckAnswer(updates, _offers_body(items))
        answer.sent += 1
        return "200 OK", _JSON, answer.body

    def _patches(self, update: str, installed: list[Any]) -> bool:
        """Whether the machine has what `update`'s differential package patches."""
        base = self._packaging[update][2]
        return base is not None and base in installed

    def package_of(self, update: str, attributes: Mapping[str, str], language: str, installed: list[Any]) -> str:
        """The content id of the package of `update` this machine gets."""
        variant, per_language, _ = self._packaging[update]
        return content_id(update, attributes.get(variant, "") if variant else "", language if per_language else "",
                          self._patches(update, installed))

    def _check_fields(self, body: dict[str, Any]) -> tuple[str, str, list[Any], Any, dict[str, str], Any]:
        """A check's fields, or an HttpError naming the first wrong one."""
        client_id = _field(body, "client_id", str)
        lang = _field(body, "language", str)
        installed = _field(body, "installed", list)
        if lang not in self._languages:
            raise HttpError("400 Bad Request", f"language is not one of world {self.world.name}'s")
        attributes = {}
        for name, values in self._attributes:
            value = _field(body, name, str)
            if value not in values:
                raise HttpError("400 Bad Request", f"{name} must be one of {', '.join(sorted(values))}")
            attributes[name] = value
        return client_id, lang, installed, body.get("enterprise", False), attributes, body.get("by_hand", False)

    def count_offers(self, updates: Iterable[str], times: int = 1) -> None:
        """Count offers not counted by the JSON check's current answers (Omaha's, and those of answers dropped)."""
        for update in updates:
            self._offers_counted[update] += times

    def offers_made(self) -> Counter[str]:
        """Offers made so far, by update."""
        made = Counter(self._offers_counted)
        for answer in self._check_answers.values():
            for update in answer.offers:
                made[update] += answer.sent
        return made

    def _package(self, request: Request) -> Answer:
        """Any package of the catalog by its id, as an offer: how administrators fetch the network install."""
        item = self.catalog.get(request.path.removeprefix(_PACKAGES))
        if item is None:
            raise HttpError("404 Not Found", "no such package")
        return "200 OK", _JSON, _offers_body([item])

    def _content(self, request: Request) -> Answer:
        cid = request.path.removeprefix(_CONTENT)
        item = self.catalog.get(cid)
        if item is None:
            raise HttpError("404 Not Found", "no such content")
        etag = f'"{payload_crc32(cid, item.size):08x}-{item.size}"'
        headers = (("Accept-Ranges", "bytes"), ("ETag", etag), ("Content-Type", "application/octet-stream"))
        requested = request.header("RANGE")
        if_range = request.header("IF_RANGE")
        if requested is None or (if_range is not None and if_range != etag):
            return "200 OK", headers, self._sent(payload_range(cid, 0, item.size - 1))
        first, last = parse_range(requested, item.size)
        headers += (("Content-Range", f"bytes {first}-{last}/{item.size}"),)
        return "206 Partial Content", headers, self._sent(payload_range(cid, first, last))

    def _sent(self, body: bytes) -> bytes:
        self.bytes_sent += len(body)
        return body

    def _report(self, request: Request) -> Answer:
        body = _json_body(request)
        _field(body, "client_id", str)
        update = _field(body, "update", str)
        result = _field(body, "result", str)
        if result not in ("installed", "failed"):
            raise HttpError("400 Bad Request", "result must be installed or failed")
        if update not in self._packaging:
            raise HttpError("400 Bad Request", "unknown update")
        self.reports[update, result] += 1
        return "204 No Content", _NO_HEADERS, b""

    def _configure(self, request: Request) -> Answer:
        self._check_admin(request)
        body = _json_body(request)
        try:
            clock = ScenarioClock.from_json(_field(body, "clock", dict))
            policy = parse_server(_field(body, "server", dict), "server", "configure request")
            world = decode(body["world"], World, "configure request", "world") if "world" in body else None
            weight = body.get("weight", 1.0)
            if type(weight) not in (int, float) or not 1.0 <= float(weight) < math.inf:
                raise ValueError(f"weight {weight!r} is not a number of real machines, at least 1")
        except (InputError, KeyError, ValueError, TypeError, OverflowError) as exc:
            raise HttpError("400 Bad Request", f"bad configuration: {exc}") from None
        self.configure(policy, clock, world, weight)
        return "204 No Content", _NO_HEADERS, b""

    def _check_admin(self, request: Request) -> None:
        """Only the holder of the run's admin token reconfigures the server: 401 without one, 403 with another."""
        if not self._admin_token:
            raise HttpError("403 Forbidden", "the admin door is closed: this server was started without an admin "
                            "token (--admin-token or FLEETSTORM_ADMIN_TOKEN)")
        given = request.header("AUTHORIZATION")
        if given is None or not given.startswith("Bearer "):
            raise HttpError("401 Unauthorized", "give the admin token: Authorization: Bearer <token>")
        if not hmac.compare_digest(given.removeprefix("Bearer ").encode(), self._admin_token.encode()):
            raise HttpError("403 Forbidden", "wrong admin token")

    def _metrics(self, request: Request) -> Answer:
        return "200 OK", _PROMETHEUS, generate_latest(self._registry)

    def answers(self) -> Counter[tuple[str, str]]:
        """Answers so far, by endpoint label and status code."""
        endpoints = [*self._exact.values(), self._content_endpoint, self._packages_endpoint, self._other]
        answered: Counter[tuple[str, str]] = Counter()
        for endpoint in endpoints:
            for status, count in endpoint.answered.items():
                answered[endpoint.name, status[:3]] += count
        return answered


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


class _Written:
    """A WSGI answer's body, in flight from its return until the server closes it."""

    def __init__(self, body: bytes, writing: Callable[[int], None]) -> None:
        self._body = body
        self._writing: Callable[[int], None] | None = writing
        writing(1)

    def __iter__(self) -> Iterator[bytes]:
        yield self._body

    def close(self) -> None:
        if self._writing is not None:  # once, however often the server closes it
            self._writing(-1)
            self._writing = None


class _WsgiRequest(Request):
    """A WSGI environ seen through the native interface, read the way a WSGI app reads it."""

    __slots__ = ("_environ",)

    def __init__(self, environ: dict[str, Any]) -> None:
        # The path and method are all the routing needs; headers and body are read on demand.
        self.method = environ.get("REQUEST_METHOD", "GET")
        self.path = environ.get("PATH_INFO", "")
        self._environ = environ

    def header(self, name: str) -> str | None:
        return self._environ.get(f"HTTP_{name}")

    def body(self) -> bytes:
        return read_body(self._environ)

    def server_address(self) -> str:
        return f"{self._environ.get('SERVER_NAME', '127.0.0.1')}:{self._environ.get('SERVER_PORT', '80')}"


def _offers_body(items: list[Item]) -> bytes:
    """The JSON answer offering these catalog items (a check's, or a package's)."""
    return json.dumps({"offers": [{"update": item.update, "content_id": item.content_id, "size": item.size,
                                   "real_size": item.real_size, "crc32": payload_crc32(item.content_id, item.size),
                                   "url": f"/v1/content/{item.content_id}"} for item in items]}).encode()


def _health(request: Request) -> Answer:
    return "200 OK", _JSON, b'{"status": "ok"}'


def _check_decoder(world: World) -> msgspec.json.Decoder:
    """A decoder of well-formed checks in this world, which decodes and checks them in one pass.

    Decoding a check into typed fields costs a third of decoding a dict and checking its fields. Any
    other body goes the slow way, through the field rules, which accept unknown fields and name the
    first wrong one.
    """
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = [
        ("client_id", str), ("language", Literal[world.language_codes]), ("installed", list[Any])]
    fields += [(name, Literal[world.attribute_values(name)]) for name in world.attribute_names]
    fields += [("enterprise", Any, False), ("by_hand", Any, False), ("hostname", Any, None)]  # the hostname: not used
    return msgspec.json.Decoder(msgspec.defstruct("CheckBody", fields, gc=False, forbid_unknown_fields=True))


def _json_body(request: Request) -> dict[str, Any]:
    return _json_object(request_body(request))


def _json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object body, or a 400.

    Strict UTF-8 JSON, as msgspec reads it: no other encoding or byte-order mark, no NaN or Infinity,
    no number beyond a float's range.
    """
    try:
        body = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        raise HttpError("400 Bad Request", "body is not valid JSON") from None
    if not isinstance(body, dict):
        raise HttpError("400 Bad Request", "body must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if not isinstance(value, kind):
        raise HttpError("400 Bad Request", f"field {name!r} is missing or not a {kind.__name__}")
    return value
