"""Scenario files: strict loading of a TOML scenario, and of the scenarios it extends, into the schema's Structs.

Every problem is reported as one InputError naming the file, the field and the fix, before any
load starts. A file may say `extends = "other.toml"`: its tables are deep-merged over that file's,
and the merge is validated as one scenario.
"""

from __future__ import annotations

import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

from msgspec.structs import replace

from harness.config.decode import decode
from harness.config.errors import InputError
from harness.config.fields import Shares, did_you_mean
from harness.config.schema import FleetSpec, Scenario, ThresholdRule, Thresholds
from harness.config.units import parse_count
from harness.config.world import DEFAULT_WORLD, World, load_world, network_update

# Fields of scenarios written for the 2004 world alone, and what to write now.
_RENAMED = {
    ("fleet", "home_share"): "write [fleet.attributes] edition = { home = 0.6, pro = 0.4 }",
    ("fleet", "au"): "write [fleet.install] with the same shares (install policies)",
    ("server", "enterprise_block_until"): "write managed_block_until in the [server.rollout.<update>] it blocks",
}


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file (merged over the ones it extends); raise InputError on any problem."""
    path = str(path)
    data = _read(path, ())
    _refuse_weight(data.get("fleet"), path)
    _refuse_renamed(data, path)
    for filled_in in ("path", "loaded_world"):
        if filled_in in data:
            raise InputError(f"{path}: {filled_in}", "is not a known field", "leave it out: the loader fills it in")
    world = _world_of(data, path)
    scenario = decode(data | {"path": path}, Scenario, path)
    scenario = replace(scenario, world=world, fleet=in_world(scenario.fleet, world, path))
    _check_rollouts(scenario, path)
    for i, event in enumerate(scenario.events):
        if not scenario.timeline.start <= event.at < scenario.timeline.end:
            raise InputError(f"{path}: events[{i}].at", f"{event.at:%Y-%m-%d %H:%M} is outside the timeline",
                             "give a date within it")
    return scenario


def _world_of(data: dict[str, Any], path: str) -> World:
    """The world the scenario names (made a path by `_read`), or the 2004 XP world when it names none."""
    name = data.get("world", "")
    if not isinstance(name, str):
        raise InputError(f"{path}: world", f"{name!r} is not valid (must be a file name)",
                         'give a world file, e.g. world = "worlds/xp2004.toml"')
    return load_world(name or DEFAULT_WORLD)


def in_world(fleet: FleetSpec, world: World, path: str) -> FleetSpec:
    """The fleet with the world's shares where it gives none; a name the world does not know is an InputError."""
    population = world.population
    checks = (("languages", fleet.languages, world.language_codes, population_shares(population.languages)),
              ("connection", fleet.connections, world.connection_names, population_shares(population.connections)))
    for where, shares, known, _ in checks:
        _check_names(shares, known, f"{path}: fleet.{where}")
    attributes = dict(fleet.attributes)
    for name, shares in fleet.attributes:
        if name not in world.attribute_names:
            raise InputError(f"{path}: fleet.attributes.{name}", f"is not an attribute of world {world.name!r}",
                             did_you_mean(name, world.attribute_names))
        _check_names(shares, world.attribute_values(name), f"{path}: fleet.attributes.{name}")
    return replace(
        fleet,
        languages=fleet.languages or checks[0][3],
        connections=fleet.connections or checks[1][3],
        attributes=tuple((name, attributes.get(name) or shares) for name, shares in population.attributes),
        install_policies=fleet.install_policies or population.install,
        online_profiles=fleet.online_profiles or population.online,
    )


def population_shares(table: Any) -> Shares:
    """The shares of a world's keyed table (languages, connection classes)."""
    return Shares((name, entry.share) for name, entry in table)


def _check_names(shares: Shares, known: tuple[str, ...], where: str) -> None:
    for name, _ in shares:
        if name not in known:
            raise InputError(f"{where}.{name}", "is not a name the world gives", did_you_mean(name, known))


def _check_rollouts(scenario: Scenario, path: str) -> None:
    """Rollouts name the world's updates, eligibility its attributes and their values; a network install needs
    an update with a network-install package."""
    world = scenario.world
    for update, _ in scenario.fleet.installed:
        if update not in world.update_names:
            raise InputError(f"{path}: fleet.installed.{update}", f"is not an update of world {world.name!r}",
                             did_you_mean(update, world.update_names))
    fleet_attributes = dict(scenario.fleet.attributes)
    for attribute, value in world.population.managed:
        among = dict(fleet_attributes[attribute])[value]
        if scenario.fleet.enterprise_share > among:
            raise InputError(f"{path}: fleet.enterprise_share", f"{scenario.fleet.enterprise_share:g} is more than "
                             f"the {among:g} of machines with {attribute} {value}, which managed machines are in "
                             f"world {world.name!r}", f"give at most {among:g}")
    if scenario.fleet.network_install is not None and network_update(world) is None:
        raise InputError(f"{path}: fleet.network_install", f"world {world.name!r} has no update with a "
                         "network-install package", "leave it out, or give an update of the world a network_size")
    for update, rollout in scenario.server.rollout:
        where = f"{path}: server.rollout.{update}"
        if update not in world.update_names:
            raise InputError(where, f"is not an update of world {world.name!r}",
                             did_you_mean(update, world.update_names))
        for attribute, dates in rollout.eligible:
            if attribute not in world.attribute_names:
                raise InputError(f"{where}.eligible.{attribute}", "is not an attribute of the world",
                                 did_you_mean(attribute, world.attribute_names))
            for value, _ in dates:
                if value not in world.attribute_values(attribute):
                    raise InputError(f"{where}.eligible.{attribute}.{value}", f"is not a value of {attribute}",
                                     did_you_mean(value, world.attribute_values(attribute)))


def _refuse_renamed(data: dict[str, Any], path: str) -> None:
    for (table, name), fix in _RENAMED.items():
        if isinstance(data.get(table), dict) and name in data[table]:
            raise InputError(f"{path}: {table}.{name}", "is no longer a field", fix)
    rollouts = data.get("server", {}).get("rollout", {}) if isinstance(data.get("server"), dict) else {}
    for update, rollout in rollouts.items() if isinstance(rollouts, dict) else ():
        if isinstance(rollout, dict) and "editions" in rollout:
            raise InputError(f"{path}: server.rollout.{update}.editions", "is no longer a field",
                             "write eligible = { edition = { home = <date>, pro = <date> } }")


def _read(path: str, extending: tuple[Path, ...]) -> dict[str, Any]:
    """A file's tables merged over those of the file it extends; `extending`: the files that extend it, in turn."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise InputError(path, "no such scenario file", "give an existing file, e.g. scenarios/smoke.toml") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory", "give a .toml scenario file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(path, f"is not valid TOML ({exc})", "fix the TOML syntax at that line") from None
    _resolve_start_from(data.get("fleet"), path)
    _resolve_world(data, path)
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise InputError(f"{path}: extends", f"{base!r} is not valid (must be a file name)",
                         'give a scenario file, e.g. extends = "throttled_ramp.toml"')
    base_path = Path(path).parent / base
    chain = (*extending, Path(path).resolve())
    if base_path.resolve() in chain:
        raise InputError(f"{path}: extends", f"{base_path} is this file or one that extends it (a cycle)",
                         "let only one of the two files extend the other")
    if not base_path.is_file():
        raise InputError(f"{path}: extends", f"{base_path} is not a scenario file",
                         "give a path relative to this scenario's folder")
    return _merged(_read(str(base_path), chain), data)


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` deep-merged onto `base`: tables merge key by key; arrays and values replace."""
    merged = dict(base)
    for key, value in over.items():
        both_tables = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = _merged(base[key], value) if both_tables else value
    return merged


def _resolve_start_from(fleet: Any, path: str) -> None:
    """A `start_from` is relative to the file that writes it: made a path from here, or refused if it is none."""
    if isinstance(fleet, dict):
        _resolve_file(fleet, "start_from", path, "fleet.start_from", "a scenario file", "")


def _resolve_world(data: dict[str, Any], path: str) -> None:
    """A `world` is relative to the file that writes it: made a path from here, or refused if it is no file."""
    _resolve_file(data, "world", path, "world", "a world file", ", e.g. worlds/xp2004.toml")


def _resolve_file(table: dict[str, Any], key: str, path: str, where: str, what: str, example: str) -> None:
    if not isinstance(table.get(key), str) or not table[key]:
        return
    named = Path(path).parent / table[key]
    if not named.is_file():
        raise InputError(f"{path}: {where}", f"{named} is not {what}",
                         f"give a path relative to this scenario's folder{example}")
    table[key] = str(named)


def _refuse_weight(fleet: Any, path: str) -> None:
    """Files written before the weight was derived give it: say what to write instead."""
    if not isinstance(fleet, dict) or "weight" not in fleet:
        return
    try:
        real = f"{round(parse_count(fleet['machines']) * parse_count(fleet['weight'])):_} (machines x weight)"
    except (KeyError, TypeError, ValueError, AttributeError):
        real = '"210M", for example'
    raise InputError(f"{path}: fleet.weight", "is derived (real_machines / machines), not written",
                     f"write the real fleet the machines stand for instead: real_machines = {real}")


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
        timeline = timeline.until(until)
    rules = scenario.thresholds + tuple(ThresholdRule(expr) for expr in thresholds)
    return replace(
        scenario,
        fleet=fleet,
        timeline=timeline,
        threshold_table=Thresholds(rules),
        protocol=protocol or scenario.protocol,
    )
