"""The reference server's Omaha v3 dialect: POST /service/update2, under the same rollout policy.

An update check is answered per <app>: `ok` with <urls> and a <manifest> when the rollout offers
that app's update, else `noupdate`. An <event eventtype="3"> is counted as an install report.
Packages are the catalog's, served by the reference server's ranged content endpoint.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from harness.config.world import EDITIONS, LANGUAGE_CODES
from harness.protocols.omaha import APP_BY_ID, EVENT_UPDATE_COMPLETE, OmahaApp, attributes, parse_xml
from harness.server.catalog import Item, content_id
from harness.server.content import BLOCK, payload_range
from harness.server.handler import Answer, HttpError, Request, request_body
from harness.server.rollout import OfferThrottle, RolloutPolicy

UPDATE_PATH = "/service/update2"
# Omaha counts elapsed_days from 2007-01-01; the scenario's dates are earlier, so this dialect
# counts from 2004-01-01 to keep the numbers positive.
DAY_ZERO = datetime(2004, 1, 1, tzinfo=UTC)
_XML = (("Content-Type", "application/xml"),)


class OmahaServer(Protocol):
    """What the Omaha dialect uses of the server it answers for (harness/server/app.py's ReferenceServer)."""

    catalog: dict[str, Item]
    rollout: RolloutPolicy
    throttle: OfferThrottle
    reports: Counter[tuple[str, str]]  # (update, result)

    def now(self) -> datetime:
        """The scenario date now."""

    def count_offers(self, updates: Iterable[str], times: int = 1) -> None:
        """Count offers made."""


@lru_cache(maxsize=256)
def payload_sha256(cid: str, size: int) -> str:
    """The hex SHA-256 of a whole package of `size` bytes."""
    digest = hashlib.sha256()
    for first in range(0, size, BLOCK):
        digest.update(payload_range(cid, first, min(first + BLOCK, size) - 1))
    return digest.hexdigest()


def update2(server: OmahaServer, request: Request) -> Answer:
    """Answer one Omaha request: update checks and events, app by app."""

    body = request_body(request)
    host = request.header("HOST") or request.server_address()
    try:
        request = parse_xml(body)
    except ValueError as exc:
        raise HttpError("400 Bad Request", str(exc)) from None
    if request.tag != "request" or request.get("protocol") != "3.0":
        raise HttpError("400 Bad Request", 'expected <request protocol="3.0">')
    userid = (request.get("userid") or "").strip("{}")
    if not userid:
        raise HttpError("400 Bad Request", "request has no userid")
    now = server.now()
    apps = request.findall("app")
    installed = [known.update for app in apps if (known := _known(app)) and app.get("version") == known.version_after]
    answers = [_answer_app(server, request, app, userid, installed, now, host) for app in apps]
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    daystart = {"elapsed_seconds": str(int((now - day_start).total_seconds())),
                "elapsed_days": str((now - DAY_ZERO).days)}
    text = (f'<?xml version="1.0" encoding="UTF-8"?>\n<response protocol="3.0" server="fleetstorm">'
            f"<daystart{attributes(daystart)}/>{''.join(answers)}</response>")
    return "200 OK", _XML, text.encode()


def _known(app: ET.Element) -> OmahaApp | None:
    return APP_BY_ID.get((app.get("appid") or "").upper())


def _answer_app(server: OmahaServer, request: ET.Element, app: ET.Element, userid: str,
                installed: list[str], now: datetime, host: str) -> str:
    known = _known(app)
    appid = app.get("appid") or ""
    if known is None:
        return f'<app appid="{_safe(appid)}" status="error-unknownApplication"/>'
    children = []
    if app.find("updatecheck") is not None:
        children.append(_updatecheck(server, request, app, known, userid, installed, now, host))
    if app.find("ping") is not None:
        children.append('<ping status="ok"/>')
    for event in app.findall("event"):
        if event.get("eventtype") == str(EVENT_UPDATE_COMPLETE):
            result = "installed" if event.get("eventresult") == "1" else "failed"
            server.reports[known.update, result] += 1
        children.append('<event status="ok"/>')
    return f'<app appid="{known.appid}" status="ok">{"".join(children)}</app>'


def _updatecheck(server: OmahaServer, request: ET.Element, app: ET.Element, known: OmahaApp, userid: str,
                 installed: list[str], now: datetime, host: str) -> str:
    edition, lang = app.get("ap") or "", app.get("lang") or ""
    if edition not in EDITIONS or lang not in LANGUAGE_CODES:
        return '<updatecheck status="error-invalidArgs"/>'  # ap must be an edition, lang an SP2 language
    client_id, when = userid.lower(), now.timestamp()
    offered = server.rollout.offered(client_id, edition, lang, request.get("domainjoined") == "1", installed, when)
    if known.update not in offered or not server.throttle.admitted((known.update,), client_id, when):
        return '<updatecheck status="noupdate"/>'
    server.count_offers((known.update,))
    item = server.catalog[content_id(known.update, edition, lang)]
    package: dict[str, Any] = {"name": item.content_id, "size": str(item.size), "required": "true",
                               "hash_sha256": payload_sha256(item.content_id, item.size)}
    return (f'<updatecheck status="ok"><urls><url codebase="http://{_safe(host)}/v1/content/"/></urls>'
            f'<manifest version="{known.version_after}"><packages><package{attributes(package)}/></packages>'
            f'<actions><action event="install" run="{item.content_id}"/></actions></manifest></updatecheck>')


def _safe(text: str) -> str:
    return "".join(c for c in text if c.isalnum() or c in "{}-.:[]")[:100]
