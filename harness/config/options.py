"""The harness's command-line options (added to Locust's parser) and their resolution."""

from __future__ import annotations

import ipaddress
import socket
from argparse import Namespace
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

from msgspec.structs import replace

from harness.config.errors import InputError
from harness.config.scenario import load_scenario, with_overrides
from harness.config.schema import Scenario
from harness.config.units import parse_count, to_datetime

DEFAULT_SCENARIO = "scenarios/smoke.toml"


def add_arguments(parser: Any) -> None:
    """Add the harness's options to Locust's argument parser (shown in --help and the web UI)."""
    # Locust's web UI listens on every interface by default; a load generator's controls should not.
    parser.set_defaults(web_host="127.0.0.1")
    parser.add_argument("--scenario", default=DEFAULT_SCENARIO,
                        help=f"scenario TOML file (default: {DEFAULT_SCENARIO})")
    parser.add_argument("--fleet-size", default="", help="machines to emulate, e.g. 20000, 1.5e6, 210M "
                       "(default: the scenario's); they stand for the scenario's real fleet, the weight follows")
    parser.add_argument("--time-scale", default="", help="scenario seconds per wall second (default: the scenario's)")
    parser.add_argument("--until", default="", help="end the scenario at this date, e.g. 2004-09-17 "
                        "(default: the scenario's end)")
    parser.add_argument("--target-rps", default="", help="check-ins per second to aim at: derives the time scale "
                        "(or, with --time-scale, the fleet size) and says so at start-up")
    parser.add_argument("--seed", default="", help="fleet seed (default: the scenario's)")
    parser.add_argument("--threshold", action="append", default=[], include_in_web_ui=False,
                       help="pass/fail rule, e.g. 'check.p95 < 400ms' (repeatable; added to the scenario's)")
    parser.add_argument("--protocol", default="", include_in_web_ui=False,
                       help="protocol adapter: a built-in name or package.module:Class (default: the scenario's)")
    parser.add_argument("--results-dir", default="results", include_in_web_ui=False,
                       help="where summary.json is written (default: results)")
    parser.add_argument("--metrics-port", type=int, default=0, include_in_web_ui=False,
                        help="headless: serve the run's Prometheus metrics on this port (default 0: none; with the "
                        "web UI they are at its /metrics)")
    parser.add_argument("--metrics-host", default="127.0.0.1", include_in_web_ui=False,
                        help="the address --metrics-port listens on (default 127.0.0.1)")
    parser.add_argument("--allow-remote-target", action="store_true", default=False, include_in_web_ui=False,
                       help="allow --host to name a non-loopback server (load goes only to loopback otherwise)")


def _optional(options: Namespace, name: str, flag: str, convert: Any, fix: str) -> Any:
    raw = getattr(options, name, "")
    if raw in ("", None):
        return None
    try:
        return convert(raw)
    except (TypeError, ValueError):
        raise InputError(flag, f"{raw!r} is not valid", fix) from None


def _whole(minimum: int) -> Any:
    def convert(raw: Any) -> int:
        value = parse_count(str(raw))
        if value != int(value) or value < minimum:
            raise ValueError(f"not a whole number of at least {minimum}")
        return int(value)

    return convert


def _positive(raw: Any) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("not greater than 0")
    return value


def resolve_scenario(options: Namespace) -> Scenario:
    """The scenario named by --scenario with the command-line overrides applied (see derive_from_rate)."""
    return derive_from_rate(_overridden(options), options)[0]


def rate_line(options: Namespace) -> str:
    """What the fleet's rate is, and what --target-rps derived, for the start-up log."""
    return derive_from_rate(_overridden(options), options)[1]


def derive_from_rate(scenario: Scenario, options: Namespace) -> tuple[Scenario, str]:
    """Apply --target-rps: of fleet size, time scale and rate, given any two the third follows.

    Returns the scenario and a line saying what was derived (or what the rate is), for start-up.
    """
    target = _optional(options, "target_rps", "--target-rps", _positive, "give check-ins per second, e.g. 2950")
    fleet, timeline = scenario.fleet, scenario.timeline
    if target is None:
        line = (f"{fleet.describe()} at time scale {timeline.time_scale:g}: "
                f"{scenario.target_rps(timeline.time_scale):,.1f} check-ins/s")
        for second, scale in timeline.phases:
            line += (f"; from {timeline.start + timedelta(seconds=second):%Y-%m-%d %H:%M} at time scale {scale:g}: "
                     f"{scenario.target_rps(scale):,.1f}/s")
        return scenario, line
    per_machine = scenario.target_rps(1.0) / fleet.machines
    if getattr(options, "time_scale", ""):
        if getattr(options, "fleet_size", ""):
            raise InputError("--target-rps", "--fleet-size, --time-scale and --target-rps are all given",
                             "give any two of them: the third is derived")
        machines = round(target / (per_machine * timeline.time_scale))
        if machines < 1:
            raise InputError("--target-rps", f"{target:g}/s at time scale {timeline.time_scale:g} is less than one "
                             "machine", "raise --target-rps or --time-scale")
        fleet = fleet.resized(machines, "--target-rps", "lower --target-rps or raise --time-scale")
        return replace(scenario, fleet=fleet), (f"--target-rps {target:g} at time scale {timeline.time_scale:g}: "
                                                f"fleet size derived, {fleet.describe()}")
    time_scale = target / (per_machine * fleet.machines)
    scenario = replace(scenario, timeline=timeline.with_time_scale(time_scale))
    replaced = ", for the whole timeline instead of its phases" if timeline.phases else ""
    return scenario, (f"--target-rps {target:g} with {fleet.describe()}: time scale {time_scale:g} "
                      f"(derived{replaced})")


def _overridden(options: Namespace) -> Scenario:
    scenario = load_scenario(options.scenario)
    return with_overrides(
        scenario,
        fleet_size=_optional(options, "fleet_size", "--fleet-size", _whole(1),
                             "give a whole number of machines of at least 1, e.g. 20000 or 210M"),
        time_scale=_optional(options, "time_scale", "--time-scale", _positive,
                             "give scenario seconds per wall second, greater than 0, e.g. 720"),
        seed=_optional(options, "seed", "--seed", _whole(0), "give a whole number of at least 0, e.g. 42"),
        until=_optional(options, "until", "--until", to_datetime, "give a date within the timeline, e.g. 2004-09-17"),
        thresholds=tuple(options.threshold or ()),
        protocol=options.protocol or None,
    )


def is_loopback(host: str) -> bool:
    """True when a host name or address resolves only to loopback (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def check_target(host: str | None, allow_remote: bool) -> None:
    """Refuse a non-loopback --host unless the user opted in with --allow-remote-target."""
    if not host:
        return
    parsed = urlparse(host)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InputError("--host", f"{host!r} is not an http(s) URL", "give e.g. --host http://127.0.0.1:8080")
    if not allow_remote and not is_loopback(parsed.hostname):
        raise InputError("--host", f"{parsed.hostname} is not a loopback address",
                         "load a remote server only on purpose: add --allow-remote-target")
