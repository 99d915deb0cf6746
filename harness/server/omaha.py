"""The reference server's Omaha v3 dialect: POST /service/update2, under the same rollout policy.

An update check is answered per <app>: `ok` with <urls> and a <manifest> when the rollout offers
one of that app's updates (the first in the world's order), else `noupdate`. What a machine has
installed follows from its apps' versions; its attributes from where the world's `[omaha]` table puts
them. A package carries both `hash_sha256` (Omaha 3.1) and `hash` (SHA-1, base64, 3.0). An
<event eventtype="3"> is counted as an install report. Packages are the catalog's, served by the
reference server's ranged content endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from harness.protocols.omaha import EVENT_UPDATE_COMPLETE, OmahaApp, OmahaNaming, attributes, parse_xml
from harness.server.catalog import Item
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
    omaha: OmahaNaming  # the world's apps and attributes in Omaha, built once per configuration
    rollout: RolloutPolicy
    throttle: OfferThrottle
    reports: Counter[tuple[str, str]]  # (update, result)

    def now(self) -> datetime:
        """The scenario date now."""

    def count_offers(self, updates: Iterable[str], times: int = 1) -> None:
        """Count offers made."""

    def package_of(self, update: str, attributes: Mapping[str, str], language: str, installed: list[Any]) -> str:
        """The content id of the package of `update` this machine gets."""


@lru_cache(maxsize=256)
def payload_hashes(cid: str, size: int) -> tuple[str, str]:
    """The hex SHA-256 and the base64 SHA-1 of a whole package of `size` bytes."""
    sha256, sha1 = hashlib.sha256(), hashlib.sha1()  # noqa: S324 - Omaha 3.0's `hash` is SHA-1
    for first in range(0, size, BLOCK):
        block = payload_range(cid, first, min(first + BLOCK, size) - 1)
        sha256.update(block)
        sha1.update(block)
    return sha256.hexdigest(), base64.b64encode(sha1.digest()).decode()


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
    naming = server.omaha
    apps = request.findall("app")
    installed = [update for app in apps if (known := _known(naming, app)) is not None
                 for update in known.installed_at(app.get("version") or "")]
    answers = [_answer_app(server, naming, request, app, userid, installed, now, host) for app in apps]
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    daystart = {"elapsed_seconds": str(int((now - day_start).total_seconds())),
                "elapsed_days": str((now - DAY_ZERO).days)}
    text = (f'<?xml version="1.0" encoding="UTF-8"?>\n<response protocol="3.0" server="fleetstorm">'
            f"<daystart{attributes(daystart)}/>{''.join(answers)}</response>")
    return "200 OK", _XML, text.encode()


def _known(naming: OmahaNaming, app: ET.Element) -> OmahaApp | None:
    return naming.by_appid.get((app.get("appid") or "").upper())


def _answer_app(server: OmahaServer, naming: OmahaNaming, request: ET.Element, app: ET.Element, userid: str,
                installed: list[str], now: datetime, host: str) -> str:
    known = _known(naming, app)
    appid = app.get("appid") or ""
    if known is None:
        return f'<app appid="{_safe(appid)}" status="error-unknownApplication"/>'
    children = []
    if app.find("updatecheck") is not None:
        children.append(_updatecheck(server, naming, request, app, known, userid, installed, now, host))
    if app.find("ping") is not None:
        children.append('<ping status="ok"/>')
    for event in app.findall("event"):
        if event.get("eventtype") == str(EVENT_UPDATE_COMPLETE):
            result = "installed" if event.get("eventresult") == "1" else "failed"
            update = next((name for name, after in known.updates if after == event.get("nextversion")), None)
            if update is not None:
                server.reports[update, result] += 1
        children.append('<event status="ok"/>')
    return f'<app appid="{known.appid}" status="ok">{"".join(children)}</app>'


def _machine_attributes(naming: OmahaNaming, request: ET.Element, app: ET.Element) -> dict[str, str] | None:
    """The machine's attributes from where the world puts them; None when one is missing or not the world's."""
    os = request.find("os")
    found = {"ap": app.get("ap"), "cohorthint": app.get("cohorthint"),
             "os.platform": os.get("platform") if os is not None else None}
    values = {}
    for attribute, target in naming.targets.items():
        value = found[target]
        if value not in naming.values[attribute]:
            return None
        values[attribute] = value
    return values


def _updatecheck(server: OmahaServer, naming: OmahaNaming, request: ET.Element, app: ET.Element, known: OmahaApp,
                 userid: str, installed: list[str], now: datetime, host: str) -> str:
    lang = app.get("lang") or ""
    machine = _machine_attributes(naming, request, app)
    if machine is None or lang not in naming.languages:
        return '<updatecheck status="error-invalidArgs"/>'  # attributes and lang must be the world's
    client_id, when = userid.lower(), now.timestamp()
    offered = server.rollout.offered(client_id, machine, lang, request.get("domainjoined") == "1", installed, when,
                                     by_hand=request.get("installsource") == "ondemand")
    update = next((name for name, _ in known.updates if name in offered), None)
    if update is None or not server.throttle.admitted((update,), client_id, when):
        return '<updatecheck status="noupdate"/>'
    server.count_offers((update,))
    item = server.catalog[server.package_of(update, machine, lang, installed)]
    sha256, sha1 = payload_hashes(item.content_id, item.size)
    package: dict[str, Any] = {"name": item.content_id, "size": str(item.size), "required": "true",
                               "hash": sha1, "hash_sha256": sha256}
    return (f'<updatecheck status="ok"><urls><url codebase="http://{_safe(host)}/v1/content/"/></urls>'
            f'<manifest version="{dict(known.updates)[update]}"><packages><package{attributes(package)}/></packages>'
            f'<actions><action event="install" run="{item.content_id}"/></actions></manifest></updatecheck>')


def _safe(text: str) -> str:
    return "".join(c for c in text if c.isalnum() or c in "{}-.:[]")[:100]
