"""Google's Omaha protocol v3: XML update checks and install events, as Chrome and Flatcar speak it.

Check: POST <update_path> with a `<request protocol="3.0">` holding one `<app>` per fleet update,
each with `<updatecheck/>` and `<ping/>`. An `<updatecheck status="ok">` answer becomes an Offer
whose URL is the first codebase plus the package name. Report: an `<event eventtype="3">` for the
app. The mapping of fleet updates to appids and versions is in APPS and docs/protocols.md.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from harness.config.schema import OmahaSpec
from harness.model.fleet import Machine
from harness.protocols.base import (
    CheckResult,
    Offer,
    ProtocolAdapter,
    WireRequest,
    WireResponse,
    header,
    retry_after,
    retry_after_clock,
)

EVENT_UPDATE_COMPLETE = 3
UPDATER = "fleetstorm"
UPDATER_VERSION = "0.1.0"
_XML = {"Content-Type": "application/xml", "X-GoogleUpdate-Interactivity": "bg"}


@dataclass(frozen=True)
class OmahaApp:
    """How one fleet update appears in Omaha: an app id and its version before and after install."""

    update: str
    appid: str
    version_before: str
    version_after: str


APPS = (
    OmahaApp("xpsp2", "{581378C3-BA92-5618-B242-4455EA42CF42}", "5.1.2600.1106", "5.1.2600.2180"),
    OmahaApp("kb884020", "{111D4E9A-DD7D-52ED-A357-3A6E0BBE7238}", "0.0.0.0", "1.0.0.0"),
)
APP_BY_ID = {app.appid.upper(): app for app in APPS}
APP_BY_UPDATE = {app.update: app for app in APPS}


def guid(text: str) -> str:
    """A GUID in Omaha's spelling: upper case in braces."""
    return "{" + str(uuid.UUID(text)).upper() + "}"


def parse_xml(body: bytes) -> ET.Element:
    """The root of an XML document; ValueError on malformed XML or any DTD.

    Refusing DTDs outright means no entity can be declared, so no entity expansion attack and no
    external entity fetch can happen; Omaha documents never carry one.
    """
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise ValueError("XML with a DTD is refused")
    try:
        return ET.fromstring(body)
    except (ET.ParseError, LookupError) as exc:  # LookupError: an unknown declared encoding
        raise ValueError(f"malformed XML ({exc})") from None


def attributes(pairs: dict[str, str]) -> str:
    """Attributes as XML text, values escaped."""
    return "".join(f" {key}={quoteattr(value)}" for key, value in pairs.items())


class OmahaAdapter(ProtocolAdapter):
    """Omaha v3 over HTTP POST; the scenario's `[omaha]` table adds each server dialect's attributes."""

    name = "omaha"

    def __init__(self, options: OmahaSpec | None = None) -> None:
        self.options = options or OmahaSpec()
        # The server's elapsed_days from its last <daystart>, shared by the process's machines so
        # that no per-machine state is kept; see _ping.
        self.elapsed_days: int | None = None

    def _request(self, machine: Machine, apps: str) -> bytes:
        request = {"protocol": "3.0", "version": f"{UPDATER}-{UPDATER_VERSION}", "dedup": "cr",
                   "requestid": guid(str(uuid.uuid4())), "sessionid": guid(str(uuid.uuid4())),
                   "userid": guid(machine.client_id), "installsource": "scheduler", "ismachine": "1",
                   "domainjoined": "1" if machine.enterprise else "0",
                   **dict(self.options.request_attributes)}
        service_pack = "Service Pack 2" if "xpsp2" in machine.installed else "Service Pack 1"
        os_attributes = {"platform": "win", "version": "5.1", "sp": service_pack, "arch": "x86",
                         **dict(self.options.os_attributes)}
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<request{attributes(request)}>'
                f"<os{attributes(os_attributes)}/>{apps}</request>").encode()

    def _app(self, machine: Machine, app: OmahaApp, version: str, children: str, **extra: str) -> str:
        pairs = {"appid": app.appid, "version": version, "lang": machine.language, "ap": machine.edition,
                 **extra, **dict(self.options.app_attributes)}
        return f"<app{attributes(pairs)}>{children}</app>"

    def _ping(self) -> str:
        # Every machine checks at least once in 22 hours and is on when it does, so its previous
        # (active) ping was on the previous day: r = a = 1, and rd = ad = the server's day before
        # the latest <daystart> it sent; until one arrives rd/ad are left out (the spec's "-2").
        if self.elapsed_days is None:
            return '<ping r="1" a="1"/>'
        previous = str(self.elapsed_days - 1)
        return f'<ping r="1" a="1" rd="{previous}" ad="{previous}"/>'

    def check_request(self, machine: Machine) -> WireRequest:
        ping = self._ping()
        apps = "".join(
            self._app(machine, app, app.version_after if app.update in machine.installed else app.version_before,
                      f"<updatecheck/>{ping}")
            for app in APPS
        )
        headers = {**_XML, "User-Agent": machine.user_agent}
        return WireRequest("POST", self.options.update_path, self._request(machine, apps), headers)

    def parse_check(self, response: WireResponse) -> CheckResult:
        if response.status in (429, 503):
            return CheckResult(retry_after_s=retry_after_omaha(response.headers), error=f"HTTP {response.status}",
                               retry_after_clock=retry_after_clock(response.headers))
        if response.status != 200:
            return CheckResult(error=f"HTTP {response.status}")
        try:
            root = parse_xml(response.body)
            if root.tag != "response" or root.get("protocol") != "3.0":
                raise ValueError("not an Omaha 3.0 <response>")
            self._note_daystart(root)
            offers = tuple(offer for app in root.findall("app") if (offer := _offer(app)) is not None)
        except (ValueError, KeyError, TypeError) as exc:
            return CheckResult(error=f"unusable Omaha response ({exc})")
        return CheckResult(offers=offers)

    def _note_daystart(self, root: ET.Element) -> None:
        daystart = root.find("daystart")
        if daystart is not None and daystart.get("elapsed_days") is not None:
            self.elapsed_days = int(daystart.get("elapsed_days", ""))

    def download_request(self, offer: Offer, first: int, last: int) -> WireRequest:
        return WireRequest("GET", offer.url, None, {"Range": f"bytes={first}-{last}"})

    def report_request(self, machine: Machine, offer: Offer, result: str) -> WireRequest:
        app = APP_BY_UPDATE[offer.update]
        succeeded = result == "installed"
        event = {"eventtype": str(EVENT_UPDATE_COMPLETE), "eventresult": "1" if succeeded else "0",
                 "errorcode": "0" if succeeded else "1", "previousversion": app.version_before,
                 "nextversion": app.version_after}
        version = app.version_after if succeeded else app.version_before
        body = self._request(machine, self._app(machine, app, version, f"<event{attributes(event)}/>",
                                                nextversion=app.version_after))
        return WireRequest("POST", self.options.update_path, body, {**_XML, "User-Agent": machine.user_agent})


def _offer(app: ET.Element) -> Offer | None:
    """The Offer in one response <app>, or None when it offers nothing we asked about."""
    known = APP_BY_ID.get((app.get("appid") or "").upper())
    check = app.find("updatecheck")
    if known is None or check is None or check.get("status") != "ok":
        return None  # noupdate, an app we did not ask about, or an app-level error: nothing to install
    codebase = next((url.get("codebase") for url in check.findall("urls/url") if url.get("codebase")), None)
    package = check.find("manifest/packages/package")
    if codebase is None or package is None:
        raise ValueError(f"updatecheck for {known.appid} has no <urls> codebase or no <package>")
    name = package.get("name") or ""
    size = int(package.get("size") or "")
    if not name or size < 1:
        raise ValueError(f"package of {known.appid} lacks a name or a positive size")
    return Offer(update=known.update, content_id=name, size=size, real_size=size, crc32=0,
                 url=codebase + name, sha256=package.get("hash_sha256") or "")


def retry_after_omaha(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `X-Retry-After` (Omaha) or `Retry-After`, capped at one day as Omaha clients do."""
    for name in ("X-Retry-After", "Retry-After"):
        if header(headers, name) is not None:
            seconds = retry_after(headers, name)
            return None if seconds is None else min(86400.0, seconds)
    return None
