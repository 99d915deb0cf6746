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
from harness.config.schema import Scenario, ThresholdRule, Thresholds
from harness.config.units import parse_count


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file (merged over the ones it extends); raise InputError on any problem."""
    path = str(path)
    data = _read(path, ())
    _refuse_weight(data.get("fleet"), path)
    if "path" in data:
        raise InputError(f"{path}: path", "is not a known field", "leave it out: a scenario's path is its file's")
    scenario = decode(data | {"path": path}, Scenario, path)
    for i, event in enumerate(scenario.events):
        if not scenario.timeline.start <= event.at < scenario.timeline.end:
            raise InputError(f"{path}: events[{i}].at", f"{event.at:%Y-%m-%d %H:%M} is outside the timeline",
                             "give a date within it")
    return scenario


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
    if not isinstance(fleet, dict) or not isinstance(fleet.get("start_from"), str):
        return
    start_from = Path(path).parent / fleet["start_from"]
    if not start_from.is_file():
        raise InputError(f"{path}: fleet.start_from", f"{start_from} is not a scenario file",
                         "give a path relative to this scenario's folder")
    fleet["start_from"] = str(start_from)


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
