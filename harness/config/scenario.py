"""Scenario files: strict loading of a TOML scenario into frozen dataclasses.

Every problem is reported as one InputError naming the file, the field and the fix, before any
load starts. The `[server]` table is parsed by the same code whether it comes from TOML or from
the JSON the harness sends to the embedded reference server.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from harness.config.errors import InputError
from harness.config.pace import Pace, Phases
from harness.config.units import parse_count, parse_duration
from harness.config.world import (
    AU_SETTINGS,
    CONNECTIONS,
    EDITIONS,
    LANGUAGE_CODES,
    LANGUAGES,
    MEAN_INTERVAL_S,
    UPDATES,
)
from harness.config.world import ONLINE_PROFILES as PROFILES

# Without a mix in the scenario, every machine installs automatically, is always on and on broadband:
# a steady rate, the simplest fleet to reason about.
MEAN_CHECK_INTERVAL_S = {"always_on": MEAN_INTERVAL_S, "home": 24 * 3600.0, "office": 7 / 5 * 24 * 3600.0}
DEFAULT_AU = (("automatic", 1.0),)
DEFAULT_ONLINE = (("always_on", 1.0),)
DEFAULT_CONNECTIONS = (("broadband", 1.0),)


@dataclass(frozen=True)
class Timeline:
    """The stretch of scenario time to play, and how fast."""

    start: datetime
    end: datetime
    time_scale: float  # scenario seconds per wall second, from the start
    phases: Phases = ()  # (scenario second, time scale): where the time scale changes

    @property
    def scenario_seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def pace(self) -> Pace:
        return Pace(self.time_scale, self.phases)

    @property
    def wall_seconds(self) -> float:
        return self.pace.wall_at(self.scenario_seconds)

    def with_time_scale(self, time_scale: float) -> Timeline:
        """The timeline played at one time scale throughout (its phases dropped)."""
        return replace(self, time_scale=time_scale, phases=())


@dataclass(frozen=True)
class NetworkInstallSpec:
    """Administrators deploying SP2 themselves from the network-install package, outside Automatic Updates."""

    share: float  # of organisations whose administrators deploy it
    since: datetime  # the package's release
    over_s: float  # deployments spread evenly over this long from `since`
    machines_per_download: int  # machines of one organisation: one download of the package each


NETWORK_INSTALL_RELEASE = datetime(2004, 8, 9, tzinfo=UTC)


@dataclass(frozen=True)
class FleetSpec:
    """Who the machines are: how many, drawn from which seed, in which mix, standing for which real fleet."""

    machines: int
    seed: int
    real_machines: int | None  # the real fleet the machines are a sample of; None: each machine is one
    home_share: float
    enterprise_share: float
    languages: tuple[tuple[str, float], ...]
    start_from: str | None = None  # a scenario whose simulated state at this one's start the fleet begins in
    au_settings: tuple[tuple[str, float], ...] = DEFAULT_AU
    online_profiles: tuple[tuple[str, float], ...] = DEFAULT_ONLINE
    connections: tuple[tuple[str, float], ...] = DEFAULT_CONNECTIONS
    network_install: NetworkInstallSpec | None = None

    @property
    def real_fleet(self) -> int:
        """Real machines the emulated ones stand for."""
        return self.machines if self.real_machines is None else self.real_machines

    @property
    def weight(self) -> float:
        """Real machines each emulated machine stands for: derived, so it follows the sample's size."""
        return self.real_fleet / self.machines

    def resized(self, machines: int, where: str, fix: str) -> FleetSpec:
        """The same real fleet sampled by `machines` emulated machines (the weight follows).

        A sample larger than the real fleet it stands for is refused as an InputError naming `where`.
        """
        if self.real_machines is not None and machines > self.real_machines:
            raise InputError(where, f"{machines:,} machines are more than the {self.real_machines:,} real machines "
                             "the scenario stands for (fleet.real_machines)", fix)
        return replace(self, machines=machines)

    def describe(self) -> str:
        """The sample and, when it is one, the real fleet it stands for, e.g. for the start-up log."""
        if self.real_machines is None:
            return f"{self.machines:,} machines"
        weight = f"{self.weight:,.2f}".rstrip("0").rstrip(".")
        return f"{self.machines:,} machines standing for {self.real_machines:,} (weight {weight})"

    def target_rps(self, time_scale: float) -> float:
        """Check-ins per wall second the fleet's schedule asks for at this time scale, averaged over a week.

        An always-on machine checks once per mean detection interval; one that is on only part of
        the day checks at most once per session: daily at home, on weekdays at the office.
        """
        checking = 1.0 - dict(self.au_settings).get("off", 0.0)
        per_second = sum(share / MEAN_CHECK_INTERVAL_S[profile] for profile, share in self.online_profiles)
        return self.machines * checking * per_second * time_scale


@dataclass(frozen=True)
class RolloutSpec:
    """The throttle of one update: when each edition is eligible, and the growing percentage."""

    update: str
    editions: tuple[tuple[str, datetime], ...]
    steps: tuple[tuple[datetime, float], ...]  # (when, percent), percent interpolated linearly


@dataclass(frozen=True)
class ServerSpec:
    """The reference server's policy and capacity for this scenario."""

    payload_scale: float = 0.001
    capacity: int = 1000
    retry_after_s: int = 60
    enterprise_block_until: datetime | None = None
    rollouts: tuple[RolloutSpec, ...] = ()
    offers_per_hour: int = 0  # new offers per scenario hour, per update; 0: no cap
    max_rps: int = 0  # requests per wall second served before 503; 0: no limit


@dataclass(frozen=True)
class AgentSpec:
    """How the agents (Locust users) carry out check-ins."""

    users: int = 0  # 0: sized by harness.load.pool.AgentPool
    chunk_bytes: int = 65536
    timeout_s: float = 10.0
    late_after_s: float = 0.1  # wall seconds between due time and sending past which a check-in is late


@dataclass(frozen=True)
class OmahaSpec:
    """Options of the `omaha` protocol: the update path and extra attributes a server's dialect wants."""

    update_path: str = "/service/update2"
    request_attributes: tuple[tuple[str, str], ...] = ()  # added to <request>
    os_attributes: tuple[tuple[str, str], ...] = ()  # added to (or overriding) <os>
    app_attributes: tuple[tuple[str, str], ...] = ()  # added to each <app>


@dataclass(frozen=True)
class ThresholdRule:
    """One pass/fail rule as written in the scenario or on the command line."""

    expr: str
    abort_on_fail: bool = False
    delay_s: float = 0.0


EVENT_KINDS = ("detect_now", "boot_storm")


@dataclass(frozen=True)
class Event:
    """Something that moves many machines' next check at once.

    detect_now: at `at`, a `share` of the machines check within `within_s` (a pushed "detect now").
    boot_storm: a `share` of the machines boot at `at` local time in their own time zone and check
    within `within_s` (overdue machines check a few minutes after boot).
    """

    kind: str
    at: datetime
    share: float
    within_s: float


@dataclass(frozen=True)
class Scenario:
    """A validated scenario."""

    path: str
    name: str
    timeline: Timeline
    fleet: FleetSpec
    server: ServerSpec
    agents: AgentSpec = field(default_factory=AgentSpec)
    thresholds: tuple[ThresholdRule, ...] = ()
    protocol: str = "reference"
    omaha: OmahaSpec = field(default_factory=OmahaSpec)
    events: tuple[Event, ...] = ()

    @property
    def protocol_options(self) -> dict[str, object]:
        """Per-protocol options, keyed by protocol name, for `load_adapter`."""
        return {"omaha": self.omaha}


class _Table:
    """A TOML table being read: each field is taken once; leftovers are unknown fields."""

    def __init__(self, data: Any, where: str, path: str) -> None:
        if not isinstance(data, Mapping):
            raise InputError(f"{path}: {where}", "must be a table", f"write [{where}] with its fields")
        self._data = dict(data)
        self.where = where
        self.path = path

    def name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, problem: str, fix: str) -> InputError:
        return InputError(f"{self.path}: {self.name(key)}", problem, fix)

    def take(self, key: str, convert: Callable[[Any], Any], fix: str, default: Any = ...) -> Any:
        if key not in self._data:
            if default is ...:
                typo = difflib.get_close_matches(key, list(self._data), n=1)
                if typo:
                    raise self.fail(typo[0], "is not a known field", f"did you mean '{key}'?")
                raise self.fail(key, "is missing", fix)
            return default
        raw = self._data.pop(key)
        try:
            return convert(raw)
        except (TypeError, ValueError) as exc:
            raise self.fail(key, f"{raw!r} is not valid ({exc})", fix) from None

    def table(self, key: str, required: bool = False) -> _Table:
        if key not in self._data and not required:
            return _Table({}, self.name(key), self.path)
        if key not in self._data:
            raise self.fail(key, "is missing", f"add a [{self.name(key)}] table")
        return _Table(self._data.pop(key), self.name(key), self.path)

    def has(self, key: str) -> bool:
        return key in self._data

    def take_raw(self, key: str, default: Any) -> Any:
        """A field's raw value, for sub-tables parsed by their own function."""
        return self._data.pop(key, default)

    def rest(self) -> dict[str, Any]:
        """The fields not taken yet, for tables whose keys are data (e.g. language shares)."""
        rest, self._data = self._data, {}
        return rest

    def done(self, known: tuple[str, ...]) -> None:
        for key in self._data:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known fields: {', '.join(known)}"
            raise self.fail(key, "is not a known field", hint)


def _positive_int(raw: Any) -> int:
    value = parse_count(raw)
    if value != int(value) or value < 1:
        raise ValueError("must be a whole number of at least 1")
    return int(value)


def _positive_float(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise TypeError("must be a number")
    value = float(raw)
    if not value > 0:
        raise ValueError("must be greater than 0")
    return value


def _share(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise TypeError("must be a number between 0 and 1")
    if not 0 <= raw <= 1:
        raise ValueError("must be between 0 and 1")
    return float(raw)


def _percent(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise TypeError("must be a number between 0 and 100")
    if not 0 <= raw <= 100:
        raise ValueError("must be between 0 and 100")
    return float(raw)


def _seed(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise TypeError("must be a whole number of at least 0")
    return raw


def _text(raw: Any) -> str:
    if not isinstance(raw, str) or not raw:
        raise TypeError("must be a non-empty string")
    return raw


def _bool(raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise TypeError("must be true or false")
    return raw


def to_datetime(raw: Any) -> datetime:
    """A TOML date/datetime or ISO-8601 string as an aware UTC datetime."""
    if isinstance(raw, str):
        raw = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if isinstance(raw, date) and not isinstance(raw, datetime):
        raw = datetime(raw.year, raw.month, raw.day)
    if not isinstance(raw, datetime):
        raise TypeError("must be a date such as 2004-08-18 or 2004-08-18T00:00:00Z")
    return raw.replace(tzinfo=UTC) if raw.tzinfo is None else raw.astimezone(UTC)


def _timeline(table: _Table) -> Timeline:
    start = table.take("start", to_datetime, "give a date, e.g. start = 2004-08-18T00:00:00Z")
    end = table.take("end", to_datetime, "give a date after start, e.g. end = 2004-08-18T06:00:00Z")
    scale = table.take("time_scale", _positive_float, "give scenario seconds per wall second, e.g. 720")
    raw_phases = table.take("phases", _list_of("timeline.phases"), "write [[timeline.phases]] tables", default=[])
    table.done(("start", "end", "time_scale", "phases"))
    if end <= start:
        raise table.fail("end", f"{end.isoformat()} is not after start {start.isoformat()}", "set end later")
    phases: list[tuple[float, float]] = []
    for i, item in enumerate(raw_phases):
        phase = _Table(item, f"{table.name('phases')}[{i}]", table.path)
        since = phase.take("from", to_datetime, "give the date the phase starts, e.g. from = 2004-09-21T00:00:00Z")
        phase_scale = phase.take("time_scale", _positive_float, "give scenario seconds per wall second, e.g. 60")
        phase.done(("from", "time_scale"))
        second = (since - start).total_seconds()
        earliest = phases[-1][0] if phases else 0.0
        if not earliest < second < (end - start).total_seconds():
            raise phase.fail("from", f"{since:%Y-%m-%d %H:%M} is not after the previous phase's start and "
                             "before the timeline's end", "list phases in date order, within the timeline")
        phases.append((second, phase_scale))
    return Timeline(start, end, scale, tuple(phases))


def _mix(table: _Table, known: tuple[str, ...], what: str,
         default: tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...]:
    """A table of shares keyed by name (languages, AU settings, ...), checked to sum to 1."""
    raw = table.rest()
    if not raw:
        return default
    shares = []
    for name, share in raw.items():
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"use one of: {', '.join(known)}"
            raise table.fail(name, f"is not {what}", hint)
        shares.append((name, _checked_share(table, name, share)))
    total = sum(share for _, share in shares)
    if abs(total - 1.0) > 1e-6:
        raise InputError(
            f"{table.path}: {table.where}", f"shares sum to {total:g}, not 1", "make the shares add up to 1"
        )
    return tuple(shares)


def _checked_share(table: _Table, code: str, raw: Any) -> float:
    try:
        return _share(raw)
    except (TypeError, ValueError) as exc:
        raise table.fail(code, f"{raw!r} is not valid ({exc})", "give a share between 0 and 1") from None


def _fleet(table: _Table) -> FleetSpec:
    machines = table.take("machines", _positive_int, "give a whole number of machines, e.g. 20000 or 1.5M")
    seed = table.take("seed", _seed, "give a whole number, e.g. seed = 42", default=42)
    if table.has("weight"):
        raise table.fail("weight", "is derived (real_machines / machines), not written",
                         "write the real fleet the machines stand for instead: real_machines = "
                         f"{_real_from_weight(machines, table.take_raw('weight', None))}")
    real = table.take("real_machines", _positive_int, 'give the real fleet the machines stand for, e.g. "210M"',
                      default=None)
    if real is not None and real < machines:
        raise table.fail("real_machines", f"{real:,} is fewer than the {machines:,} machines emulated",
                         "give the real fleet the machines are a sample of, at least fleet.machines")
    home = table.take("home_share", _share, "give the share of XP Home, e.g. 0.6", default=0.6)
    enterprise = table.take("enterprise_share", _share, "give a share between 0 and 1", default=0.0)
    languages = _mix(table.table("languages"), LANGUAGE_CODES, "an SP2 language",
                     tuple((lang.code, lang.share) for lang in LANGUAGES))
    au = _mix(table.table("au"), AU_SETTINGS, "an Automatic Updates setting", DEFAULT_AU)
    profiles = _mix(table.table("online"), PROFILES, "an online profile", DEFAULT_ONLINE)
    connections = _mix(table.table("connection"), CONNECTIONS, "a connection class", DEFAULT_CONNECTIONS)
    start_from = table.take("start_from", _text, 'give a scenario file, e.g. start_from = "throttled_ramp.toml"',
                            default=None)
    network_install = _network_install(table.table("network_install")) if table.has("network_install") else None
    table.done(("machines", "seed", "real_machines", "home_share", "enterprise_share", "languages", "au", "online",
                "connection", "start_from", "network_install"))
    if start_from is not None:
        start_from = str(Path(table.path).parent / start_from)
        if not Path(start_from).is_file():
            raise table.fail("start_from", f"{start_from} is not a scenario file",
                             "give a path relative to this scenario's folder")
    return FleetSpec(machines, seed, real, home, enterprise, languages, start_from, au, profiles, connections,
                     network_install)


def _real_from_weight(machines: int, weight: Any) -> str:
    """What a file that still gives `weight` should write for real_machines (machines x weight)."""
    try:
        return f"{round(machines * _positive_float(weight)):_} (machines x weight)"
    except (TypeError, ValueError):
        return '"210M", for example'


def _network_install(table: _Table) -> NetworkInstallSpec:
    share = table.take("share", _share, "give the share of organisations that deploy it, between 0 and 1")
    since = table.take("from", to_datetime, "give the package's release date, e.g. from = 2004-08-09",
                       default=NETWORK_INSTALL_RELEASE)
    over = table.take("over", parse_duration, 'give how long deployments take to spread, e.g. over = "60d"',
                      default=60 * 86400.0)
    per = table.take("machines_per_download", _positive_int, "give machines per organisation, e.g. 500",
                     default=500)
    table.done(("share", "from", "over", "machines_per_download"))
    if over <= 0:
        raise table.fail("over", "must be longer than 0", 'give a duration, e.g. over = "60d"')
    return NetworkInstallSpec(share, since, over, per)


def _rollout(update: str, table: _Table) -> RolloutSpec:
    editions_table = table.table("editions", required=True)
    editions = []
    for edition in EDITIONS:
        when = editions_table.take(edition, to_datetime, f"give the date {edition} machines are eligible",
                                   default=None)
        if when is not None:
            editions.append((edition, when))
    editions_table.done(EDITIONS)
    raw_steps = table.take("steps", _step_list, "give steps = [{ at = 2004-08-18, percent = 5 }, ...]")
    steps = []
    for i, raw in enumerate(raw_steps):
        step = _Table(raw, f"{table.name('steps')}[{i}]", table.path)
        at = step.take("at", to_datetime, "give the date this percentage applies from")
        percent = step.take("percent", _percent, "give a percentage between 0 and 100")
        step.done(("at", "percent"))
        if steps and (at <= steps[-1][0] or percent < steps[-1][1]):
            raise step.fail("at", "steps must go forward in time with a percentage that never falls",
                            "order the steps by date; a sticky rollout never lowers its percentage")
        steps.append((at, percent))
    table.done(("editions", "steps"))
    return RolloutSpec(update, tuple(editions), tuple(steps))


def _step_list(raw: Any) -> list[Any]:
    if not isinstance(raw, list) or not raw:
        raise TypeError("must be a non-empty list of { at, percent } tables")
    return raw


def parse_server(data: Mapping[str, Any], where: str, path: str) -> ServerSpec:
    """The `[server]` table (from TOML or JSON) as a ServerSpec."""
    table = _Table(data, where, path)
    defaults = ServerSpec()
    scale = table.take("payload_scale", _share, "give a share of the true sizes, e.g. 0.001",
                       default=defaults.payload_scale)
    capacity = table.take("capacity", _positive_int, "give the requests in flight (answers not yet written) before 503",
                          default=defaults.capacity)
    retry = table.take("retry_after_s", _positive_int, "give whole seconds, e.g. 60",
                       default=defaults.retry_after_s)
    block = table.take("enterprise_block_until", to_datetime, "give a date, e.g. 2004-12-14", default=None)
    rollout_table = table.table("rollout")
    rollouts = []
    for update in UPDATES:
        if rollout_table.has(update):
            rollouts.append(_rollout(update, rollout_table.table(update)))
    rollout_table.done(UPDATES)
    cap = table.take("offers_per_hour", _whole_or_zero, "give new offers per scenario hour, or 0 for no cap",
                     default=0)
    max_rps = table.take("max_rps", _whole_or_zero, "give requests per second, or 0 for no limit", default=0)
    table.done(("payload_scale", "capacity", "retry_after_s", "enterprise_block_until", "rollout",
                "offers_per_hour", "max_rps"))
    return ServerSpec(scale, capacity, retry, block, tuple(rollouts), cap, max_rps)


def _whole_or_zero(raw: Any) -> int:
    value = parse_count(raw)
    if value != int(value) or value < 0:
        raise ValueError("must be a whole number of at least 0")
    return int(value)


def _agents(table: _Table) -> AgentSpec:
    users = table.take("users", _positive_int, "give a whole number of agents, or leave it out", default=0)
    chunk = table.take("chunk_bytes", _positive_int, "give a chunk size in bytes, e.g. 65536", default=65536)
    timeout = table.take("timeout", parse_duration, "give a duration, e.g. 10s", default=10.0)
    late_after = table.take("late_after", parse_duration, "give a duration, e.g. 100ms", default=0.1)
    table.done(("users", "chunk_bytes", "timeout", "late_after"))
    return AgentSpec(users, chunk, timeout, late_after)


def _thresholds(table: _Table) -> tuple[ThresholdRule, ...]:
    rules = table.take("rules", _rule_list, 'give rules = ["check.p95 < 400ms", ...]', default=[])
    table.done(("rules",))
    parsed = []
    for i, raw in enumerate(rules):
        if isinstance(raw, str):
            parsed.append(ThresholdRule(raw))
            continue
        rule = _Table(raw, f"{table.name('rules')}[{i}]", table.path)
        expr = rule.take("expr", _text, 'give the expression, e.g. expr = "check.p95 < 400ms"')
        abort = rule.take("abort_on_fail", _bool, "write true or false", default=False)
        delay = rule.take("delay", parse_duration, "give a duration, e.g. 30s", default=0.0)
        rule.done(("expr", "abort_on_fail", "delay"))
        parsed.append(ThresholdRule(expr, abort, delay))
    return tuple(parsed)


def _rule_list(raw: Any) -> list[Any]:
    if not isinstance(raw, list):
        raise TypeError("must be a list of expressions")
    return raw


_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def _attributes(table: _Table) -> tuple[tuple[str, str], ...]:
    attributes = []
    for key, raw in table.rest().items():
        if not _XML_NAME.fullmatch(key):
            raise table.fail(key, "is not a valid XML attribute name", "use letters, digits, _ . -")
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise table.fail(key, f"{raw!r} is not valid (must be a string or a number)", 'write e.g. key = "value"')
        attributes.append((key, str(raw)))
    return tuple(attributes)


def _update_path(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.startswith("/") or any(c.isspace() for c in raw):
        raise ValueError("must be a URL path starting with /")
    return raw


def parse_omaha(table: _Table) -> OmahaSpec:
    """The `[omaha]` table: the update path and extra attributes for <request>, <os> and <app>."""
    path = table.take("update_path", _update_path, 'give a path, e.g. update_path = "/service/update2"',
                      default=OmahaSpec.update_path)
    request = _attributes(table.table("request"))
    os_attributes = _attributes(table.table("os"))
    app = _attributes(table.table("app"))
    table.done(("update_path", "request", "os", "app"))
    return OmahaSpec(path, request, os_attributes, app)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; raise InputError on any problem."""
    path = str(path)
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise InputError(path, "no such scenario file", "give an existing file, e.g. scenarios/smoke.toml") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory", "give a .toml scenario file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(path, f"is not valid TOML ({exc})", "fix the TOML syntax at that line") from None
    root = _Table(data, "", path)
    name = root.take("name", _text, 'give the scenario a name, e.g. name = "smoke"')
    protocol = root.take("protocol", _text, 'give a protocol name, e.g. "reference"', default="reference")
    timeline = _timeline(root.table("timeline", required=True))
    fleet = _fleet(root.table("fleet", required=True))
    server = parse_server(root.take_raw("server", {}), "server", path)
    agents = _agents(root.table("agents"))
    thresholds = _thresholds(root.table("thresholds"))
    omaha = parse_omaha(root.table("omaha"))
    events = _events(root.take("events", _list_of("events"), "write [[events]] tables", default=[]), timeline, path)
    root.done(("name", "protocol", "timeline", "fleet", "server", "agents", "thresholds", "omaha", "events"))
    return Scenario(path, name, timeline, fleet, server, agents, thresholds, protocol, omaha, events)


def _list_of(tables: str) -> Callable[[Any], list[Any]]:
    """A converter that accepts only a list (of [[tables]])."""

    def convert(raw: Any) -> list[Any]:
        if not isinstance(raw, list):
            raise TypeError(f"must be a list of [[{tables}]] tables")
        return raw

    return convert


def _events(raw: list[Any], timeline: Timeline, path: str) -> tuple[Event, ...]:
    events = []
    for i, item in enumerate(raw):
        table = _Table(item, f"events[{i}]", path)
        kind = table.take("kind", _text, f"give one of: {', '.join(EVENT_KINDS)}")
        if kind not in EVENT_KINDS:
            raise table.fail("kind", f"{kind!r} is not an event kind", f"use one of: {', '.join(EVENT_KINDS)}")
        at = table.take("at", to_datetime, "give the date, e.g. at = 2004-09-21T18:00:00Z")
        share = table.take("share", _share, "give the share of machines, between 0 and 1")
        within = table.take("within", parse_duration, 'give a duration, e.g. within = "15m"', default=600.0)
        table.done(("kind", "at", "share", "within"))
        if not timeline.start <= at < timeline.end:
            raise table.fail("at", f"{at:%Y-%m-%d %H:%M} is outside the timeline", "give a date within it")
        if within <= 0:
            raise table.fail("within", "must be longer than 0", 'give a duration, e.g. within = "15m"')
        events.append(Event(kind, at, share, within))
    return tuple(events)


def with_overrides(
    scenario: Scenario,
    *,
    fleet_size: int | None = None,
    time_scale: float | None = None,
    seed: int | None = None,
    until: datetime | None = None,
    thresholds: tuple[str, ...] = (),
    protocol: str | None = None,
) -> Scenario:
    """The scenario with command-line overrides applied (None leaves a field as written)."""
    fleet = scenario.fleet
    if fleet_size is not None:
        fleet = fleet.resized(fleet_size, "--fleet-size",
                              f"give at most {fleet.real_fleet:,} machines: a sample of the real fleet")
    if seed is not None:
        fleet = replace(fleet, seed=seed)
    timeline = scenario.timeline
    if time_scale is not None:
        timeline = timeline.with_time_scale(time_scale)
    if until is not None:
        if not timeline.start < until <= timeline.end:
            raise InputError("--until", f"{until:%Y-%m-%d %H:%M} is outside the timeline "
                             f"{timeline.start:%Y-%m-%d} .. {timeline.end:%Y-%m-%d}", "give a date within it")
        end_s = (until - timeline.start).total_seconds()
        timeline = replace(timeline, end=until, phases=tuple(p for p in timeline.phases if p[0] < end_s))
    rules = scenario.thresholds + tuple(ThresholdRule(expr) for expr in thresholds)
    return replace(
        scenario,
        fleet=fleet,
        timeline=timeline,
        thresholds=rules,
        protocol=protocol or scenario.protocol,
    )


def server_spec_to_json(spec: ServerSpec) -> dict[str, Any]:
    """A ServerSpec in the `[server]` table's own shape, as JSON (parse_server reads it back)."""
    data: dict[str, Any] = {
        "payload_scale": spec.payload_scale,
        "capacity": spec.capacity,
        "retry_after_s": spec.retry_after_s,
        "offers_per_hour": spec.offers_per_hour,
        "max_rps": spec.max_rps,
        "rollout": {
            rollout.update: {
                "editions": {edition: when.isoformat() for edition, when in rollout.editions},
                "steps": [{"at": at.isoformat(), "percent": percent} for at, percent in rollout.steps],
            }
            for rollout in spec.rollouts
        },
    }
    if spec.enterprise_block_until is not None:
        data["enterprise_block_until"] = spec.enterprise_block_until.isoformat()
    return data
