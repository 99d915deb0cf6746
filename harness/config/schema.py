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

from harness.config.decode import Keyed, decode, to_tables
from harness.config.errors import InputError
from harness.config.fields import (
    Attributes,
    Count,
    Date,
    DateTable,
    FieldError,
    PositiveCount,
    PositiveSeconds,
    Seconds,
    Share,
    Shares,
    ShareTable,
    fix,
)
from harness.config.pace import Pace, Phases
from harness.config.world import ONLINE_WINDOWS, AttributeTable, InstallPolicies, OnlineProfiles, World, default_world

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
    # Managed machines: domain-joined, under their administrators' policy (a rollout may block them).
    enterprise_share: Annotated[Share, fix("give a share between 0 and 1")] = 0.0
    # Shares of the world's names; a table left out takes the world's (harness.config.scenario fills them in).
    attributes: Annotated[AttributeTable, fix("give shares per attribute, e.g. attributes = { edition = { home = 0.55, "
                                              "pro = 0.45 } }")] = AttributeTable()
    languages: Annotated[Shares, fix("give shares of the world's languages, e.g. languages = { en = 1 }")] = Shares()
    # A scenario whose simulated state at this one's start the fleet begins in.
    start_from: Annotated[str | None, fix('give a scenario file, e.g. start_from = "throttled_ramp.toml"')] = None
    install_policies: Annotated[InstallPolicies, fix("give shares of install policies, e.g. install = { "
                                                     "automatic = 1 }")] = field(name="install",
                                                                                 default=InstallPolicies())
    online_profiles: Annotated[OnlineProfiles, fix("give shares of online profiles, e.g. online = { always_on = 1 }")] \
        = field(name="online", default=OnlineProfiles())
    connections: Annotated[Shares, fix("give shares of the world's connection classes")] = field(name="connection",
                                                                                                  default=Shares())
    network_install: NetworkInstallSpec | None = None
    # The share of machines that have each update at the start (a fleet already on last month's release).
    installed: Annotated[ShareTable, fix("give shares of machines per update, e.g. installed = { m142 = 0.9 }")] \
        = ShareTable()

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

    def target_rps(self, time_scale: float, world: World) -> float:
        """Check-ins per wall second the fleet's schedule asks for at this time scale, averaged over a week.

        An always-on machine checks once per mean check interval. One on only in sessions checks when
        it boots (a check is overdue by then when the interval is longer than the time off) and once
        more per interval the session lasts beyond the first.
        """
        interval = world.client.mean_interval_s
        checking = 1.0 - dict(self.install_policies).get("off", 0.0)
        per_second = sum(share * _checks_per_second(profile, interval) for profile, share in self.online_profiles)
        return self.machines * checking * per_second * time_scale


def _checks_per_second(profile: str, interval_s: float) -> float:
    windows = [(start, end) for day in ONLINE_WINDOWS[profile] for start, end in day]
    if all(end - start >= 24 for start, end in windows):  # never off
        return 1.0 / interval_s
    checks = sum(1 + max(0.0, (end - start) * 3600 - interval_s) / interval_s for start, end in windows)
    return checks / (7 * 86400.0)


class Eligibility(Keyed):
    """When machines become eligible, by attribute and value: `eligible = { edition = { home = 2004-08-18 } }`."""

    schema, what = DateTable, "attribute"


class Step(_Table):
    """From `at`, the rollout's percentage, interpolated linearly to the next step's."""

    at: Annotated[Date, fix("give the date this percentage applies from")]
    percent: Annotated[float, fix("give a percentage between 0 and 100", ge=0, le=100)]


class RolloutSpec(_Table, kw_only=True):
    """The throttle of one update: who is eligible from when, and the growing percentage."""

    # Machines whose value of an attribute named here is left out are never eligible; attributes
    # not named do not restrict.
    eligible: Annotated[Eligibility, fix("give dates by attribute value, e.g. eligible = { edition = { home = "
                                         "2004-08-18 } }")] = Eligibility()
    # Managed (enterprise) machines are not offered the update before this date.
    managed_block_until: Annotated[Date | None, fix("give a date, e.g. 2004-12-14")] = None
    steps: Annotated[tuple[Step, ...], fix("give steps = [{ at = 2004-08-18, percent = 5 }, ...]", min_length=1)]
    # linear: the percentage rises linearly from step to step (a throttle turned up steadily);
    # stages: each step's percentage holds until the next (a staged rollout: 1 %, 10 %, 50 %, 100 %).
    ramp: Annotated[Literal["linear", "stages"], fix('write ramp = "linear" or ramp = "stages"')] = "linear"
    # Whether a check made by hand (a user at the update site) is held to the percentage too; false:
    # every eligible machine whose user asks is offered the update.
    gate_by_hand: Annotated[bool, fix("write true or false")] = True

    def __post_init__(self) -> None:
        for i, (before, step) in enumerate(zip(self.steps, self.steps[1:], strict=False), start=1):
            if step.at <= before.at or step.percent < before.percent:
                raise FieldError(f"steps[{i}].at", "steps must go forward in time with a percentage that never falls",
                                 "order the steps by date; a sticky rollout never lowers its percentage")


class Rollouts(Keyed):
    """The throttle of each update rolled out, by the world's update name."""

    schema, what = RolloutSpec, "update"


class ServerSpec(_Table):
    """The reference server's policy and capacity for this scenario."""

    payload_scale: Annotated[Share, fix("give a share of the true sizes, e.g. 0.001")] = 0.001
    capacity: Annotated[PositiveCount, fix("give the requests in flight (answers not yet written) before 503")] = 1000
    retry_after_s: Annotated[PositiveCount, fix("give whole seconds, e.g. 60")] = 60
    rollout: Annotated[Rollouts, fix("write [server.rollout.<update>] tables")] = Rollouts()
    # New offers per scenario hour, per update; 0: no cap.
    offers_per_hour: Annotated[Count, fix("give new offers per scenario hour, or 0 for no cap")] = 0
    # Requests per wall second served before 503; 0: no limit.
    max_rps: Annotated[Count, fix("give requests per second, or 0 for no limit")] = 0
    # Requests per real-world second served before 503, whatever the time scale and sample size;
    # 0: no limit. The server turns it into wall seconds with the fleet's weight and the phase's scale.
    max_real_rps: Annotated[Count, fix("give real-world requests per second, or 0 for no limit")] = 0

    def __post_init__(self) -> None:
        if self.max_rps and self.max_real_rps:
            raise FieldError("max_real_rps", "is given with max_rps: the capacity would be said twice",
                             "keep max_real_rps (the same server at any time scale) and remove max_rps")

    @property
    def rollouts(self) -> tuple[tuple[str, RolloutSpec], ...]:
        """(update, its throttle) of each update rolled out, in the order written."""
        return tuple(self.rollout)

    def rollout_of(self, update: str) -> RolloutSpec | None:
        return dict(self.rollout).get(update)


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


EventKind = Literal["site_rush", "site_visits", "boot_storm", "detect_now"]
BY_HAND: tuple[str, ...] = ("site_rush", "site_visits")  # the kinds that are users at the update site
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)


class Event(_Table):
    """Something that makes many machines check at once.

    site_rush: from `at`, the users of a `share` of the machines visit the update site by hand (the
    news of a release sends them), fewer and fewer over `within_s`; a visit checks, downloads what it
    is offered and installs it at once, whatever the machine's install policy.
    site_visits: the same visits by hand, spread evenly over `within_s` from `at`: users who check
    the update site now and then, with no news to send them.
    boot_storm: a `share` of the machines boot at `at` local time in their own time zone and check
    within `within_s` (overdue machines check a few minutes after boot).
    detect_now: at `at`, a `share` of the machines check within `within_s`: a server-pushed "detect
    now", which modern update clients obey and 2004's Automatic Updates could not receive.
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
    # The world file, relative to the scenario's folder; "" (left out): the 2004 XP world.
    world_file: Annotated[str, fix('give a world file, e.g. world = "worlds/xp2004.toml"')] = field(name="world",
                                                                                                  default="")
    world: World = field(name="loaded_world", default_factory=default_world)  # filled in by the loader
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

    def target_rps(self, time_scale: float) -> float:
        """Check-ins per wall second the fleet asks for at this time scale (FleetSpec.target_rps in this world)."""
        return self.fleet.target_rps(time_scale, self.world)

    @property
    def protocol_options(self) -> dict[str, object]:
        """Per-protocol options, keyed by protocol name, for `load_adapter`."""
        return {"omaha": self.omaha}


def parse_server(data: Any, where: str, path: str) -> ServerSpec:
    """The `[server]` table (from TOML, or the JSON `server_spec_to_json` makes) as a ServerSpec."""
    return decode(data, ServerSpec, path, where)


def server_spec_to_json(spec: ServerSpec) -> dict[str, Any]:
    """A ServerSpec in the `[server]` table's own shape, as JSON types (parse_server reads it back)."""
    return to_tables(spec)
