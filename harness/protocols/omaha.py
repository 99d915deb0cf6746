"""Google's Omaha protocol v3: XML update checks and install events, as Chrome and Flatcar speak it.

Check: POST <update_path> with a `<request protocol="3.0">` holding one `<app>` per app of the world,
at the version the machine has (the last of the app's updates it installed, else the app's own),
each with `<updatecheck/>` and `<ping/>`; the machine's attributes go where the world's `[omaha]`
table says (`ap`, `<os platform>`, `cohorthint`). An `<updatecheck status="ok">` answer becomes an
Offer of the update whose version its manifest names, with the URL of the first codebase plus the
package name, verified by `hash_sha256` (Omaha 3.1) or else `hash` (SHA-1, Omaha 3.0). Report: an
`<event eventtype="3">` for the app. docs/protocols.md has the mapping.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from harness.config.schema import OmahaSpec
from harness.config.world import World, default_world
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
    """One app of the world in Omaha: its appid, its version before any update, its updates and their versions."""

    name: str
    appid: str
    version: str
    updates: tuple[tuple[str, str], ...]  # (update, version after it), in install order

    def version_of(self, installed: frozenset[str] | list[str]) -> str:
        """The version a machine with these updates installed has."""
        return next((version for update, version in reversed(self.updates) if update in installed), self.version)

    def installed_at(self, version: str) -> list[str]:
        """The updates a machine reporting `version` has: those whose version is not above it."""
        have = version_key(version)
        return [update for update, after in self.updates if version_key(after) <= have]


def version_key(version: str) -> tuple[int, ...]:
    """A dotted version as numbers, to compare (parts that are no number count as 0)."""
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


class OmahaNaming:
    """How a world's apps, updates and attributes appear in Omaha requests and answers."""

    def __init__(self, world: World) -> None:
        apps = dict(world.apps)
        self.apps = tuple(OmahaApp(name, apps[name].appid, apps[name].version,
                                   tuple((update, world.update(update).version) for update in world.update_names
                                         if world.app_of(update) == name))
                          for name in apps if any(world.app_of(update) == name for update in world.update_names))
        self.by_appid = {app.appid.upper(): app for app in self.apps}
        self.by_update = {update: app for app in self.apps for update, _ in app.updates}
        self.os = dict(world.omaha.os)
        self.targets = dict(world.omaha.attributes)  # attribute -> where it goes
        # What a server checks a request's attributes and lang against.
        self.values = {name: frozenset(world.attribute_values(name)) for name in world.attribute_names}
        self.languages = frozenset(world.language_codes)

    def attribute_at(self, target: str) -> str | None:
        """The attribute the world sends at `target` (ap, os.platform, cohorthint), if any."""
        return next((attribute for attribute, where in self.targets.items() if where == target), None)


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

    def __init__(self, options: OmahaSpec | None = None, world: World | None = None) -> None:
        self.options = options or OmahaSpec()
        self.naming = OmahaNaming(world or default_world())
        # The server's elapsed_days from its last <daystart>, shared by the process's machines so
        # that no per-machine state is kept; see _ping.
        self.elapsed_days: int | None = None

    def _request(self, machine: Machine, apps: str) -> bytes:
        request = {"protocol": "3.0", "version": f"{UPDATER}-{UPDATER_VERSION}", "dedup": "cr",
                   "requestid": guid(str(uuid.uuid4())), "sessionid": guid(str(uuid.uuid4())),
                   "userid": guid(machine.client_id), "ismachine": "1",
                   "installsource": "ondemand" if machine.by_hand else "scheduler",
                   "domainjoined": "1" if machine.enterprise else "0",
                   **dict(self.options.request_attributes)}
        os_attributes = {**self.naming.os, **self._at(machine, "os.platform", "platform"),
                         **dict(self.options.os_attributes)}
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<request{attributes(request)}>'
                f"<os{attributes(os_attributes)}/>{apps}</request>").encode()

    def _at(self, machine: Machine, target: str, name: str) -> dict[str, str]:
        """{name: the machine's value of the attribute the world sends at `target`}, or {} when it sends none."""
        value = dict(machine.attributes).get(self.naming.attribute_at(target) or "")
        return {} if value is None else {name: value}

    def _app(self, machine: Machine, app: OmahaApp, version: str, children: str, **extra: str) -> str:
        pairs = {"appid": app.appid, "version": version, "lang": machine.language,
                 **self._at(machine, "ap", "ap"), **self._at(machine, "cohorthint", "cohorthint"),
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
        apps = "".join(self._app(machine, app, app.version_of(machine.installed), f"<updatecheck/>{ping}")
                       for app in self.naming.apps)
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
            offers = tuple(offer for app in root.findall("app") if (offer := self._offer(app)) is not None)
        except (ValueError, KeyError, TypeError) as exc:
            return CheckResult(error=f"unusable Omaha response ({exc})")
        return CheckResult(offers=offers)

    def _note_daystart(self, root: ET.Element) -> None:
        daystart = root.find("daystart")
        if daystart is not None and daystart.get("elapsed_days") is not None:
            self.elapsed_days = int(daystart.get("elapsed_days", ""))

    def _offer(self, app: ET.Element) -> Offer | None:
        """The Offer in one response <app>, or None when it offers nothing we asked about."""
        known = self.naming.by_appid.get((app.get("appid") or "").upper())
        check = app.find("updatecheck")
        if known is None or check is None or check.get("status") != "ok":
            return None  # noupdate, an app we did not ask about, or an app-level error: nothing to install
        codebase = next((url.get("codebase") for url in check.findall("urls/url") if url.get("codebase")), None)
        manifest = check.find("manifest")
        package = manifest.find("packages/package") if manifest is not None else None
        if codebase is None or manifest is None or package is None:
            raise ValueError(f"updatecheck for {known.appid} has no <urls> codebase or no <package>")
        name = package.get("name") or ""
        size = int(package.get("size") or "")
        if not name or size < 1:
            raise ValueError(f"package of {known.appid} lacks a name or a positive size")
        version = manifest.get("version") or ""
        update = next((update for update, after in known.updates if after == version), None)
        if update is None:
            raise ValueError(f"manifest version {version[:40]!r} of {known.appid} is none of the world's updates")
        # Omaha does not say what a package stands for in the real world: real_size 0, the world's (the agent).
        return Offer(update=update, content_id=name, size=size, real_size=0, crc32=0, url=codebase + name,
                     sha256=package.get("hash_sha256") or "", sha1=package.get("hash") or "")

    def download_request(self, offer: Offer, first: int, last: int) -> WireRequest:
        return WireRequest("GET", offer.url, None, {"Range": f"bytes={first}-{last}"})

    def report_request(self, machine: Machine, offer: Offer, result: str) -> WireRequest:
        app = self.naming.by_update[offer.update]
        # the version it had before this update: SP2 on XP with SP1 goes from 1106, on XP without from 0
        before, after = app.version_of(machine.installed - {offer.update}), dict(app.updates)[offer.update]
        succeeded = result == "installed"
        event = {"eventtype": str(EVENT_UPDATE_COMPLETE), "eventresult": "1" if succeeded else "0",
                 "errorcode": "0" if succeeded else "1", "previousversion": before, "nextversion": after}
        body = self._request(machine, self._app(machine, app, after if succeeded else before,
                                                f"<event{attributes(event)}/>", nextversion=after))
        return WireRequest("POST", self.options.update_path, body, {**_XML, "User-Agent": machine.user_agent})


def retry_after_omaha(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `X-Retry-After` (Omaha) or `Retry-After`, capped at one day as Omaha clients do."""
    for name in ("X-Retry-After", "Retry-After"):
        if header(headers, name) is not None:
            seconds = retry_after(headers, name)
            return None if seconds is None else min(86400.0, seconds)
    return None
