"""A world: who the machines are, how their update client behaves, and what the server can offer them.

A world is a TOML file (docs/worlds.md, field by field): `scenarios/worlds/xp2004.toml` is the 2004
Windows XP fleet every scenario plays unless it names another with `world = "..."`;
`scenarios/worlds/browser2026.toml` is a modern browser's fleet speaking Omaha. It is read into the
frozen Structs below and checked as a whole (names that refer to each other, at most 8 updates)
with the same one-line errors as scenarios: file, field, fix.

What stays in code is the vocabulary of behaviours the model implements: the install policies and
the online profiles a world gives shares of.
"""

from __future__ import annotations

import tomllib
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from msgspec import Struct, field

from harness.config.decode import Keyed, decode
from harness.config.errors import InputError
from harness.config.fields import (
    Attributes,
    ByteRate,
    Count,
    Date,
    DateTable,
    FieldError,
    PositiveSeconds,
    Seconds,
    Share,
    Shares,
    Sizes,
    fix,
)

# How a machine installs what it is offered (Automatic Updates' AUOptions named them in 2004):
# download and install at the install hour; download, install when the user answers; ask the user
# before downloading; never check.
INSTALL_POLICIES: tuple[str, ...] = ("automatic", "download_notify", "notify", "off")
# When machines are on, as (start hour, end hour) windows for each day from Monday, local time; ours
# (docs/scenarios.md): home PCs in the evening and at weekends, office PCs in weekday working hours,
# always-on PCs never off (one window a day from 09:00, when its user sits down). model/online_hours.py.
ONLINE_WINDOWS: dict[str, tuple[tuple[tuple[float, float], ...], ...]] = {
    "home": (((18, 23),),) * 5 + (((10, 23),),) * 2,
    "office": (((8, 18),),) * 5 + ((),) * 2,
    "always_on": (((9, 33),),) * 7,
}
ONLINE_PROFILES: tuple[str, ...] = tuple(ONLINE_WINDOWS)
MAX_UPDATES = 8  # the installed updates are a bit set of one byte (harness/model/fleet.py)
MAX_ATTRIBUTES = 4  # each drawn from its own 16 bits of the machine's hashes
OMAHA_TARGETS = ("ap", "os.platform", "cohorthint")  # where an Omaha request can say an attribute
DEFAULT_WORLD = Path(__file__).resolve().parents[2] / "scenarios" / "worlds" / "xp2004.toml"


class _Table(Struct, frozen=True, forbid_unknown_fields=True):
    """A table of a world file: unknown fields are refused."""


class InstallPolicies(Shares):
    """Shares of the install policies."""

    known, what = INSTALL_POLICIES, "an install policy"


class OnlineProfiles(Shares):
    """Shares of the online profiles."""

    known, what = ONLINE_PROFILES, "an online profile"


class Zones(Shares):
    """A language's IANA time zones and their shares."""

    what = "an IANA time zone"

    @classmethod
    def parse(cls, raw: Any) -> Shares:
        zones = super().parse(raw)
        for name, _ in zones:
            if not _zone_exists(name):
                raise FieldError(name, "is not an IANA time zone", 'use a name such as "America/New_York"')
        return zones


@lru_cache(maxsize=512)
def _zone_exists(name: str) -> bool:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # noqa: PLC0415 - only when a world is read

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


class Language(_Table):
    """A language or locale of the fleet: its share, its machines' time zones, the Faker locale of their names."""

    share: Annotated[Share, fix("give the language's share of the fleet, between 0 and 1")]
    faker: Annotated[str, fix('give a Faker locale, e.g. faker = "en_US"', pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")]
    zones: Annotated[Zones, fix('give IANA zones and shares, e.g. zones = { "Europe/Berlin" = 1 }')]


class Languages(Keyed):
    """The languages, by code."""

    schema, what = Language, "language"


class Connection(_Table):
    """A connection class: its share and the bandwidth a background download gets."""

    share: Annotated[Share, fix("give the class's share of the fleet, between 0 and 1")]
    bandwidth: Annotated[ByteRate, fix('give bytes per second, e.g. bandwidth = "100KB/s"')]


class Connections(Keyed):
    """The connection classes, by name."""

    schema, what = Connection, "connection class"


class Attribute(Shares):
    """One named attribute's values and their shares."""

    what = "a value"


class AttributeTable(Keyed):
    """The population's named attributes (edition, platform, channel...), by name."""

    schema, what = Attribute, "attribute"


class Population(_Table):
    """Who the machines are, as shares; a scenario's `[fleet]` may give other shares of the same names."""

    languages: Annotated[Languages, fix("write [population.languages.<code>] tables")]
    connections: Annotated[Connections, fix("write [population.connections.<name>] tables")]
    attributes: Annotated[AttributeTable, fix("write [population.attributes] with one table of shares per "
                                              "attribute")] = AttributeTable()
    install: Annotated[InstallPolicies, fix("give shares of install policies, e.g. install = { automatic = 1 }")] \
        = InstallPolicies((("automatic", 1.0),))
    online: Annotated[OnlineProfiles, fix("give shares of online profiles, e.g. online = { always_on = 1 }")] \
        = OnlineProfiles((("always_on", 1.0),))
    # Managed (domain-joined) machines have these attribute values, e.g. { edition = "pro" }.
    managed: Annotated[Attributes, fix('give attribute values, e.g. managed = { edition = "pro" }')] = Attributes()


class Client(_Table):
    """How the update client behaves: when it checks, installs and retries."""

    check_interval_s: Annotated[PositiveSeconds, fix('give the period between checks, e.g. check_interval = "22h"')] \
        = field(name="check_interval")
    # Each interval is the period minus a uniform random share of it up to this much.
    check_jitter: Annotated[Share, fix("give the share of the period drawn off at random, e.g. 0.2")] = 0.0
    boot_delay_s: Annotated[tuple[Seconds, Seconds], fix('give [shortest, longest], e.g. ["2m", "10m"]')] = field(
        name="boot_delay", default=(Seconds(120.0), Seconds(600.0)))
    install_hour: Annotated[int, fix("give the local hour of scheduled installs, 0-23", ge=0, le=23)] = 3
    reschedule_wait_s: Annotated[tuple[Seconds, Seconds], fix('give [shortest, longest], e.g. ["1m", "5m"]')] \
        = field(name="reschedule_wait", default=(Seconds(60.0), Seconds(300.0)))
    user_delay_s: Annotated[tuple[Seconds, Seconds], fix('give [shortest, longest], e.g. ["1m", "30m"]')] = field(
        name="user_delay", default=(Seconds(60.0), Seconds(1800.0)))
    # After the n-th failed check in a row, the next is a random wait up to retry x 2^n later (at most retry_cap).
    retry_s: Annotated[PositiveSeconds, fix('give the back-off unit after a failed check, e.g. retry = "5m"')] \
        = field(name="retry", default=Seconds(300.0))
    retry_cap_s: Annotated[PositiveSeconds, fix('give the longest back-off, e.g. retry_cap = "4h"')] = field(
        name="retry_cap", default=Seconds(4 * 3600.0))
    honours_retry_after: Annotated[bool, fix("write true or false")] = True
    # A download that fails on the way (no answer, an error status, a short chunk) is tried again this
    # much later, while the machine is on, until it has failed for download_give_up (BITS: 600 s, 14 days).
    download_retry_s: Annotated[PositiveSeconds, fix('give the wait before a failed download is tried again, '
                                                     'e.g. download_retry = "10m"')] = field(
        name="download_retry", default=Seconds(600.0))
    download_give_up_s: Annotated[PositiveSeconds, fix('give how long a failing download is tried, e.g. '
                                                       'download_give_up = "14d"')] = field(
        name="download_give_up", default=Seconds(14 * 86400.0))
    user_agent: Annotated[str, fix('give the client\'s User-Agent, e.g. "MyUpdater/1.0"', min_length=1)] = \
        "fleetstorm/0.1"

    def __post_init__(self) -> None:
        for name in ("boot_delay", "reschedule_wait", "user_delay"):
            low, high = getattr(self, f"{name}_s")
            if high < low:
                raise FieldError(name, f"[{low:g}s, {high:g}s] is not [shortest, longest]",
                                 "give the shortest wait first")

    @property
    def mean_interval_s(self) -> float:
        """The mean seconds between two checks of an always-on machine."""
        return self.check_interval_s * (1 - self.check_jitter / 2)


class Differential(_Table):
    """A smaller package for machines that have an earlier update."""

    base: Annotated[str, fix('give the update it patches, e.g. from = "v131"', min_length=1)] = field(name="from")
    size: Annotated[Sizes, fix('give a size, e.g. size = "9MB", or sizes by the update\'s variant')]


class Update(_Table):
    """One update of the catalog: its package sizes, what it needs, where and when it is available, its version."""

    version: Annotated[str, fix('give the version a machine has after installing it, e.g. "5.1.2600.2180"',
                                min_length=1)]
    size: Annotated[Sizes, fix('give a size, e.g. size = "400KB", or sizes by variant, e.g. { home = "80MB" }')]
    title: str = ""
    variant: Annotated[str, fix("name the attribute whose values the sizes are given for, e.g. \"edition\"")] = ""
    requires: Annotated[tuple[str, ...], fix('list updates it needs installed, e.g. requires = ["xpsp2"]')] = ()
    available: Annotated[DateTable, fix("give languages and dates, e.g. available = { pl = 2004-09-01 }")] = \
        DateTable()
    per_language: Annotated[bool, fix("write true (a package per language) or false (one for all)")] = True
    differential: Differential | None = None
    network_size: Annotated[Sizes | None, fix('give the network-install package\'s size, e.g. "265MB"')] = None
    app: Annotated[str, fix("name the Omaha app it updates, one of [apps]")] = ""  # default: the update's name


class Updates(Keyed):
    """The catalog, in install order."""

    schema, what = Update, "update"


class App(_Table):
    """How the client names a product in Omaha: its appid and the version it has before any update."""

    appid: Annotated[str, fix('give a GUID in braces, e.g. appid = "{8A69D345-D564-463C-AFF1-A69D9E530F96}"',
                              pattern=r"^\{[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}\}$")]
    version: Annotated[str, fix('give the version before any update, e.g. "5.1.2600.1106"', min_length=1)]


class Apps(Keyed):
    """The products, by name."""

    schema, what = App, "app"


_MAP_FIX = 'map attributes to ap, os.platform or cohorthint, e.g. attributes = { edition = "ap" }'


class OmahaNames(_Table):
    """How an Omaha request says the machine's attributes, and its fixed <os> attributes."""

    os: Annotated[Attributes, fix('give <os> attributes, e.g. os = { platform = "win", version = "5.1" }')] \
        = Attributes((("platform", "win"),))
    attributes: Annotated[Attributes, fix(_MAP_FIX)] = Attributes()


class Figure(_Table):
    """A published figure a replay is held to: real machines that installed an update through the client
    (and, `site`, by hand at the update site too) by a date.

    `fitted`: `make calibrate` fits a rollout's throttle to it, so agreement with it is by
    construction; `held_out`: nothing is fitted to it, so agreement with it is a check of the model.
    """

    at: Annotated[Date, fix("give the date of the figure")]
    update: Annotated[str, fix("name the update the figure counts")]
    machines: Annotated[Count, fix('give the real machines, e.g. "20M"')]
    what: Annotated[str, fix("say what was published, and by whom")] = ""
    role: Annotated[Literal["fitted", "held_out"], fix('write role = "fitted" or role = "held_out"')] = "held_out"
    site: Annotated[bool, fix("write true when the figure counts installs from the update site too")] = False


class World(_Table, kw_only=True):
    """A validated world file."""

    path: str = ""  # the file it was read from
    name: Annotated[str, fix('give the world a name, e.g. name = "xp2004"', min_length=1)]
    population: Population
    client: Client
    updates: Annotated[Updates, fix("write one [updates.<name>] table per update, in install order")]
    apps: Apps = Apps()
    omaha: OmahaNames = OmahaNames()
    figures: Annotated[tuple[Figure, ...], fix("write [[figures]] tables")] = ()

    def __post_init__(self) -> None:
        _check_world(self)

    # -- lookups ------------------------------------------------------------------------------------
    @property
    def update_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.updates)

    def update(self, name: str) -> Update:
        return dict(self.updates)[name]

    def app_of(self, update: str) -> str:
        """The name of the Omaha app `update` updates."""
        return self.update(update).app or update

    @property
    def language_codes(self) -> tuple[str, ...]:
        return tuple(code for code, _ in self.population.languages)

    def language(self, code: str) -> Language:
        return dict(self.population.languages)[code]

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.population.attributes)

    def attribute_values(self, name: str) -> tuple[str, ...]:
        return tuple(value for value, _ in dict(self.population.attributes)[name])

    @property
    def connection_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.population.connections)

    def package_size(self, update: str, variant_value: str, differential: bool = False) -> int:
        """The real bytes of `update`'s package for a machine whose variant attribute has `variant_value`."""
        spec = self.update(update)
        sizes = spec.differential.size if differential and spec.differential is not None else spec.size
        return round(dict(sizes).get(variant_value, dict(sizes).get("", 0.0)))

    def available_from(self, update: str, language: str) -> datetime | None:
        """When `update` is available in `language` (None: whenever its rollout offers it)."""
        return dict(self.update(update).available).get(language)

    def prerequisites(self, update: str) -> tuple[str, ...]:
        return self.update(update).requires


_CHECK_FIELDS = ("client_id", "hostname", "language", "enterprise", "installed")  # a check's own fields


def _check_world(world: World) -> None:
    """What one table cannot check alone: names that refer to each other, and the limits of the model."""
    names = world.update_names
    attributes = dict(world.population.attributes)
    for table, entries in (("languages", world.population.languages),
                           ("connections", world.population.connections)):
        total = sum(entry.share for _, entry in entries)
        if not entries or abs(total - 1.0) > 1e-6:
            raise FieldError(f"population.{table}", f"shares sum to {total:g}, not 1",
                             f"give at least one and make the {table}' shares add up to 1")
    for name in attributes:
        if name in _CHECK_FIELDS:
            raise FieldError(f"population.attributes.{name}", "is a name a check uses for itself",
                             "call the attribute something else")
    if not names:
        raise FieldError("updates", "has no update", "write at least one [updates.<name>] table")
    if len(names) > MAX_UPDATES:
        raise FieldError("updates", f"has {len(names)} updates, more than {MAX_UPDATES}",
                         f"keep at most {MAX_UPDATES}: a machine's installed updates are one byte")
    if len(attributes) > MAX_ATTRIBUTES:
        raise FieldError("population.attributes", f"has {len(attributes)} attributes, more than {MAX_ATTRIBUTES}",
                         f"keep at most {MAX_ATTRIBUTES}")
    for name, spec in world.updates:
        where = f"updates.{name}"
        for i, needed in enumerate(spec.requires):
            if needed not in names[:names.index(name)]:
                raise FieldError(f"{where}.requires[{i}]", f"{needed!r} is not an update listed before {name!r}",
                                 f"name one of {', '.join(names[:names.index(name)]) or '(none: it is first)'}")
        _check_sizes(attributes, f"{where}.size", spec.variant, spec.size, where)
        if spec.differential is not None:
            if spec.differential.base not in names:
                raise FieldError(f"{where}.differential.from", f"{spec.differential.base!r} is not an update",
                                 f"name one of {', '.join(names)}")
            _check_sizes(attributes, f"{where}.differential.size", spec.variant, spec.differential.size, where)
        for code, _ in spec.available:
            if code not in world.language_codes:
                raise FieldError(f"{where}.available.{code}", "is not a language of the population",
                                 f"use one of {', '.join(world.language_codes)}")
        if world.apps and (spec.app or name) not in dict(world.apps):
            raise FieldError(f"{where}.app", f"{spec.app or name!r} is not an app",
                             f"add [apps.{spec.app or name}] or name one of {', '.join(dict(world.apps))}")
    for attribute, value in world.population.managed:
        if value not in dict(attributes.get(attribute, ())):
            raise FieldError(f"population.managed.{attribute}", f"{value!r} is not a value of an attribute "
                             f"{attribute!r}", "name an attribute of the population and one of its values")
    for attribute, target in world.omaha.attributes:
        if attribute not in attributes:
            raise FieldError(f"omaha.attributes.{attribute}", "is not an attribute of the population",
                             f"use one of {', '.join(attributes) or '(none)'}")
        if target not in OMAHA_TARGETS:
            raise FieldError(f"omaha.attributes.{attribute}", f"{target!r} is not a place in an Omaha request",
                             f"use one of {', '.join(OMAHA_TARGETS)}")
    for i, figure in enumerate(world.figures):
        if figure.update not in names:
            raise FieldError(f"figures[{i}].update", f"{figure.update!r} is not an update",
                             f"name one of {', '.join(names)}")


def _check_sizes(attributes: dict[str, Attribute], where: str, variant: str, sizes: Sizes, update: str) -> None:
    if not variant:
        if len(sizes) != 1 or sizes[0][0] != "":
            raise FieldError(where, "gives sizes by variant but the update names no variant",
                             f'add variant = "<attribute>" to [{update}], or give one size')
        return
    if variant not in attributes:
        raise FieldError(f"{update}.variant", f"{variant!r} is not an attribute of the population",
                         f"use one of {', '.join(attributes) or '(none)'}")
    missing = [value for value, _ in attributes[variant] if value not in dict(sizes)]
    if (len(sizes) != 1 or sizes[0][0] != "") and missing:
        raise FieldError(where, f"has no size for {', '.join(missing)}", f"give a size for every {variant}")


def load_world(path: str | Path) -> World:
    """Read and validate a world file; InputError naming the file, field and fix on any problem."""
    path = str(path)
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise InputError(path, "no such world file",
                         f"give an existing file, e.g. world = \"worlds/{DEFAULT_WORLD.name}\"") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory", "give a .toml world file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(path, f"is not valid TOML ({exc})", "fix the TOML syntax at that line") from None
    if "path" in data:
        raise InputError(f"{path}: path", "is not a known field", "leave it out: a world's path is its file's")
    return decode(data | {"path": path}, World, path)


def network_update(world: World) -> str | None:
    """The update administrators deploy themselves from its network-install package (None: the world has none)."""
    return next((name for name, update in world.updates if update.network_size is not None), None)


@lru_cache(maxsize=1)
def default_world() -> World:
    """The 2004 Windows XP world, which every scenario plays unless it names another."""
    return load_world(DEFAULT_WORLD)

