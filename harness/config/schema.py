"""The scenario schema: frozen msgspec Structs that validate a scenario's tables and are what the harness uses.

Each field says its bounds and the fix a user is told when it is wrong (harness.config.fields.fix);
harness.config.decode reads tables into them. The `[server]` table goes to the reference server as
JSON through the same Structs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import Struct, field

from harness.config.decode import decode
from harness.config.errors import InputError
from harness.config.fields import (
    Attributes,
    AuSettings,
    Connections,
    Count,
    Date,
    FieldError,
    Languages,
    OnlineProfiles,
    PositiveCount,
    PositiveSeconds,
    Seconds,
    Share,
    fix,
    plain,
)
from harness.config.pace import Pace, Phases
from harness.config.world import EDITIONS, MEAN_INTERVAL_S, UPDATES

# Without a mix in the scenario, every machine installs automatically, is always on and on broadband:
# a steady rate, the simplest fleet to reason about.
MEAN_CHECK_INTERVAL_S = {"always_on": MEAN_INTERVAL_S, "home": 24 * 3600.0, "office": 7 / 5 * 24 * 3600.0}
NETWORK_INSTALL_RELEASE = datetime(2004, 8, 9, tzinfo=UTC)


class _Table(Struct, frozen=True, forbid_unknown_fields=True):
    """A table of a scenario file: unknown fields are refused."""


class Phase(_Table):
    """From a date on, the timeline plays at another time scale."""

    since: Annotated[Date, fix("give the date the phase starts, e.g. from = 2004-09-21T00:00:00Z")] = field(name="from")
    time_scale: Annotated[float, fix("give scenario seconds per wall second, e.g. 60", gt=0)]


class Timeline(_Table):
    """The stretch of scenario time to play, and how fast."""

    start: Annotated[Date, fix("give a date, e.g. start = 2004-08-18T00:00:00Z")]
    end: Annotated[Date, fix("give a date after start, e.g. end = 2004-08-18T06:00:00Z")]
    time_scale: Annotated[float, fix("give scenario seconds per wall second, e.g. 720", gt=0)]  # from the start
    phase_dates: Annotated[tuple[Phase, ...], fix("write [[timeline.phases]] tables")] = field(name="phases",
                                                                                               default=())

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise FieldError("end", f"{self.end.isoformat()} is not after start {self.start.isoformat()}",
                             "set end later")
        previous = self.start
        for i, phase in enumerate(self.phase_dates):
            if not previous < phase.since < self.end:
                raise FieldError(f"phases[{i}].from", f"{phase.since:%Y-%m-%d %H:%M} is not after the previous "
                                 "phase's start and before the timeline's end",
                                 "list phases in date order, within the timeline")
            previous = phase.since

    @property
    def phases(self) -> Phases:
        """(scenario second, time scale) where the time scale changes."""
        return tuple(((phase.since - self.start).total_seconds(), phase.time_scale) for phase in self.phase_dates)

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
        return msgspec.structs.replace(self, time_scale=time_scale, phase_dates=())

    def until(self, end: datetime) -> Timeline:
        """The timeline cut at `end` (within it), with the phases that start before."""
        return msgspec.structs.replace(self, end=end, phase_dates=tuple(p for p in self.phase_dates if p.since < end))


class NetworkInstallSpec(_Table):
    """Administrators deploying SP2 themselves from the network-install package, outside Automatic Updates."""

    share: Annotated[Share, fix("give the share of organisations that deploy it, between 0 and 1")]
    since: Annotated[Date, fix("give the package's release date, e.g. from = 2004-08-09")] = field(
        name="from", default=NETWORK_INSTALL_RELEASE)
    over_s: Annotated[PositiveSeconds, fix('give how long deployments take to spread, e.g. over = "60d"')] = field(
        name="over", default=60 * 86400.0)  # deployments spread evenly over this long from `since`
    machines_per_download: Annotated[PositiveCount, fix("give machines per organisation, e.g. 500")] = 500


class FleetSpec(_Table):
    """Who the machines are: how many, drawn from which seed, in which mix, standing for which real fleet."""

    machines: Annotated[PositiveCount, fix("give a whole number of machines, e.g. 20000 or 1.5M")]
    seed: Annotated[int, fix("give a whole number, e.g. seed = 42", ge=0)] = 42
    # The real fleet the machines are a sample of; None: each machine is one.
    real_machines: Annotated[PositiveCount | None, fix('give the real fleet the machines stand for, e.g. "210M"')] \
        = None
    home_share: Annotated[Share, fix("give the share of XP Home, e.g. 0.6")] = 0.6
    enterprise_share: Annotated[Share, fix("give a share between 0 and 1")] = 0.0
    languages: Languages = Languages.default
    # A scenario whose simulated state at this one's start the fleet begins in.
    start_from: Annotated[str | None, fix('give a scenario file, e.g. start_from = "throttled_ramp.toml"')] = None
    au_settings: AuSettings = field(name="au", default=AuSettings.default)
    online_profiles: OnlineProfiles = field(name="online", default=OnlineProfiles.default)
    connections: Connections = field(name="connection", default=Connections.default)
    network_install: NetworkInstallSpec | None = None

    def __post_init__(self) -> None:
        if self.real_machines is not None and self.real_machines < self.machines:
            raise FieldError("real_machines", f"{self.real_machines:,} is fewer than the {self.machines:,} machines "
                             "emulated", "give the real fleet the machines are a sample of, at least fleet.machines")

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
        return msgspec.structs.replace(self, machines=machines)

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


class Editions(_Table):
    """When machines of each edition become eligible for an update; an edition left out never is."""

    home: Annotated[Date | None, fix("give the date home machines are eligible")] = None
    pro: Annotated[Date | None, fix("give the date pro machines are eligible")] = None

    def dates(self) -> dict[str, datetime]:
        """The eligibility date of each edition given."""
        return {edition: when for edition in EDITIONS if (when := getattr(self, edition)) is not None}


class Step(_Table):
    """From `at`, the rollout's percentage, interpolated linearly to the next step's."""

    at: Annotated[Date, fix("give the date this percentage applies from")]
    percent: Annotated[float, fix("give a percentage between 0 and 100", ge=0, le=100)]


class RolloutSpec(_Table):
    """The throttle of one update: when each edition is eligible, and the growing percentage."""

    editions: Editions
    steps: Annotated[tuple[Step, ...], fix("give steps = [{ at = 2004-08-18, percent = 5 }, ...]", min_length=1)]

    def __post_init__(self) -> None:
        for i, (before, step) in enumerate(zip(self.steps, self.steps[1:], strict=False), start=1):
            if step.at <= before.at or step.percent < before.percent:
                raise FieldError(f"steps[{i}].at", "steps must go forward in time with a percentage that never falls",
                                 "order the steps by date; a sticky rollout never lowers its percentage")


class Rollouts(_Table):
    """The throttle of each update rolled out, by update (harness.config.world.UPDATES)."""

    xpsp2: RolloutSpec | None = None
    kb884020: RolloutSpec | None = None


class ServerSpec(_Table):
    """The reference server's policy and capacity for this scenario."""

    payload_scale: Annotated[Share, fix("give a share of the true sizes, e.g. 0.001")] = 0.001
    capacity: Annotated[PositiveCount, fix("give the requests in flight (answers not yet written) before 503")] = 1000
    retry_after_s: Annotated[PositiveCount, fix("give whole seconds, e.g. 60")] = 60
    enterprise_block_until: Annotated[Date | None, fix("give a date, e.g. 2004-12-14")] = None
    rollout: Rollouts = Rollouts()
    # New offers per scenario hour, per update; 0: no cap.
    offers_per_hour: Annotated[Count, fix("give new offers per scenario hour, or 0 for no cap")] = 0
    # Requests per wall second served before 503; 0: no limit.
    max_rps: Annotated[Count, fix("give requests per second, or 0 for no limit")] = 0

    @property
    def rollouts(self) -> tuple[tuple[str, RolloutSpec], ...]:
        """(update, its throttle) of each update rolled out, in install order."""
        return tuple((update, spec) for update in UPDATES if (spec := getattr(self.rollout, update)) is not None)


class AgentSpec(_Table):
    """How the agents (Locust users) carry out check-ins."""

    # 0: sized by harness.load.pool.AgentPool.
    users: Annotated[PositiveCount, fix("give a whole number of agents, or leave it out")] = 0
    chunk_bytes: Annotated[PositiveCount, fix("give a chunk size in bytes, e.g. 65536")] = 65536
    timeout_s: Annotated[Seconds, fix("give a duration, e.g. 10s")] = field(name="timeout", default=10.0)
    # Wall seconds between due time and sending past which a check-in is late.
    late_after_s: Annotated[Seconds, fix("give a duration, e.g. 100ms")] = field(name="late_after", default=0.1)


class OmahaSpec(_Table):
    """Options of the `omaha` protocol: the update path and extra attributes a server's dialect wants."""

    update_path: Annotated[str, fix('give a path, e.g. update_path = "/service/update2"', pattern=r"^/\S*$")] = \
        "/service/update2"
    request_attributes: Attributes = field(name="request", default=())  # added to <request>
    os_attributes: Attributes = field(name="os", default=())  # added to (or overriding) <os>
    app_attributes: Attributes = field(name="app", default=())  # added to each <app>


class ThresholdRule(_Table):
    """One pass/fail rule as written in the scenario or on the command line."""

    expr: Annotated[str, fix('give the expression, e.g. expr = "check.p95 < 400ms"', min_length=1)]
    abort_on_fail: Annotated[bool, fix("write true or false")] = False
    delay_s: Annotated[Seconds, fix("give a duration, e.g. 30s")] = field(name="delay", default=0.0)


class Thresholds(_Table):
    """The `[thresholds]` table: rules as expressions, or as tables with options."""

    rules: Annotated[tuple[str | ThresholdRule, ...], fix('give rules = ["check.p95 < 400ms", ...]')] = ()


EventKind = Literal["detect_now", "boot_storm"]
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)


class Event(_Table):
    """Something that moves many machines' next check at once.

    detect_now: at `at`, a `share` of the machines check within `within_s` (a pushed "detect now").
    boot_storm: a `share` of the machines boot at `at` local time in their own time zone and check
    within `within_s` (overdue machines check a few minutes after boot).
    """

    kind: Annotated[EventKind, fix(f"use one of: {', '.join(EVENT_KINDS)}")]
    at: Annotated[Date, fix("give the date, e.g. at = 2004-09-21T18:00:00Z")]
    share: Annotated[Share, fix("give the share of machines, between 0 and 1")]
    within_s: Annotated[PositiveSeconds, fix('give a duration, e.g. within = "15m"')] = field(name="within",
                                                                                              default=600.0)


class Scenario(_Table, kw_only=True):
    """A validated scenario."""

    path: str = ""  # the file it was loaded from
    name: Annotated[str, fix('give the scenario a name, e.g. name = "smoke"', min_length=1)]
    timeline: Timeline
    fleet: FleetSpec
    server: ServerSpec = ServerSpec()
    agents: AgentSpec = AgentSpec()
    threshold_table: Thresholds = field(name="thresholds", default=Thresholds())
    protocol: Annotated[str, fix('give a protocol name, e.g. "reference"', min_length=1)] = "reference"
    omaha: OmahaSpec = OmahaSpec()
    events: Annotated[tuple[Event, ...], fix("write [[events]] tables")] = ()

    @property
    def thresholds(self) -> tuple[ThresholdRule, ...]:
        """The pass/fail rules, those written as bare expressions with the default options."""
        return tuple(ThresholdRule(rule) if isinstance(rule, str) else rule for rule in self.threshold_table.rules)

    @property
    def protocol_options(self) -> dict[str, object]:
        """Per-protocol options, keyed by protocol name, for `load_adapter`."""
        return {"omaha": self.omaha}


def parse_server(data: Any, where: str, path: str) -> ServerSpec:
    """The `[server]` table (from TOML, or the JSON `server_spec_to_json` makes) as a ServerSpec."""
    return decode(data, ServerSpec, path, where)


def server_spec_to_json(spec: ServerSpec) -> dict[str, Any]:
    """A ServerSpec in the `[server]` table's own shape, as JSON types (parse_server reads it back)."""
    return msgspec.to_builtins(spec, enc_hook=plain)
