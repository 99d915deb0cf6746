"""Decoding a scenario's tables into the schema's Structs: every problem one InputError naming file, field and fix.

msgspec reports a problem with a `$.fleet.machines`-style path; the fix is the one the field's
`fix` metadata gives, or one for the kind of problem (an unknown field gets "did you mean").
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

import msgspec
from msgspec import inspect as schema_info

from harness.config.errors import InputError
from harness.config.fields import FieldError, read_field
from harness.config.units import to_datetime

T = TypeVar("T")


def decode(data: Any, schema: type[T], file: str, prefix: str = "") -> T:
    """`data` (from TOML or JSON) as `schema`; any problem is an InputError naming `file`, the field and the fix.

    `prefix` is where `data` sits in the file (e.g. "server"), for the field's name.
    """
    try:
        return msgspec.convert(_dates_read(data, schema_info.type_info(schema)), schema, dec_hook=read_field)
    except msgspec.ValidationError as exc:
        where, problem, fix_text = _problem(exc, data, schema, prefix)
        raise InputError(f"{file}: {where}", problem, fix_text) from None


def decode_value(data: Any, schema: type[T]) -> T:
    """`data` as `schema`, within a value being decoded: a problem is a FieldError naming the field under it."""
    try:
        return msgspec.convert(_dates_read(data, schema_info.type_info(schema)), schema, dec_hook=read_field)
    except msgspec.ValidationError as exc:
        raise FieldError(*_problem(exc, data, schema, "")) from None


def _dates_read(data: Any, node: schema_info.Type) -> Any:
    """Where the schema has a date: a TOML date or local time, or an ISO string, as an aware UTC datetime.

    A value that is no date is left for msgspec to refuse.
    """
    node, _ = _unwrapped(node, "")
    if isinstance(node, schema_info.DateTimeType):
        try:
            return to_datetime(data)
        except (TypeError, ValueError):
            return data
    if isinstance(node, schema_info.StructType) and isinstance(data, Mapping):
        fields = {info.encode_name: info.type for info in node.fields}
        return {key: _dates_read(value, fields[key]) if key in fields else value for key, value in data.items()}
    if isinstance(node, schema_info.VarTupleType) and isinstance(data, list):
        return [_dates_read(item, node.item_type) for item in data]
    return data


_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_EXPECTED = re.compile(r"Expected `(?P<kind>[^`]+)`(?P<length> of length)?(?: (?P<op>[<>]=?) (?P<bound>\S+))?"
                       r"(?:, got `[^`]+`)?")
_KINDS = {"int": "a whole number", "float": "a number", "str": "a string", "bool": "true or false",
          "object": "a table", "array": "a list", "datetime": "a date", "null": "nothing"}
_FILLED_IN = ("path",)  # fields the loader fills in, not the file
_BOUNDS = {">": "greater than", ">=": "at least", "<": "less than", "<=": "at most"}


def _problem(exc: msgspec.ValidationError, data: Any, schema: type, prefix: str) -> tuple[str, str, str]:
    """Where (under `prefix`) a decoding problem is, what it is, and its fix."""
    message, _, at = str(exc).partition(" - at `$")
    steps: list[str | int] = [int(index) if index else name for name, index in _STEP.findall(at.rstrip("`"))]
    node, field_fix = _schema_at(schema, steps)
    where = _dotted([prefix, *steps] if prefix else steps)
    cause = exc.__cause__
    if isinstance(cause, FieldError):
        return _joined(where, cause.key), cause.problem, cause.fix
    if match := re.fullmatch(r"Object contains unknown field `(.+)`", message):
        known = [info.encode_name for info in node.fields if info.encode_name not in _FILLED_IN]
        close = difflib.get_close_matches(match[1], known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known fields: {', '.join(known)}"
        return _joined(where, match[1]), "is not a known field", hint
    if match := re.fullmatch(r"Object missing required field `(.+)`", message):
        missing = _joined(where, match[1])
        field_node, missing_fix = _schema_at(schema, [*steps, match[1]])
        if not missing_fix and isinstance(field_node, schema_info.StructType):
            missing_fix = f"add a [{missing}] table"
        return missing, "is missing", missing_fix or "see docs/scenarios.md"
    table_fix = f"write [{where}] with its fields" if isinstance(node, schema_info.StructType) else ""
    return (where, f"{_raw_at(data, steps)!r} is not valid ({_reason(message, node)})",
            field_fix or table_fix or "see docs/scenarios.md")


def _reason(message: str, node: schema_info.Type) -> str:
    """msgspec's complaint in the words of the scenario file."""
    if isinstance(node, schema_info.LiteralType):
        return f"must be one of: {', '.join(map(str, node.values))}"
    match = _EXPECTED.fullmatch(message)
    if not match:
        return message[:1].lower() + message[1:]
    kinds = " or ".join(_KINDS.get(kind, kind) for kind in match["kind"].split(" | "))
    bound = f" {_BOUNDS[match['op']]} {float(match['bound']):g}" if match["op"] else ""
    return f"must be {kinds}{' of length' if match['length'] else ''}{bound}"


def _schema_at(schema: type, steps: list[str | int]) -> tuple[schema_info.Type, str]:
    """The schema's type at a path of field names and indices, and the fix its field gives ("" if none)."""
    node, fix_text = _unwrapped(schema_info.type_info(schema), "")
    for step in steps:
        if isinstance(step, int) and isinstance(node, schema_info.VarTupleType):
            node, fix_text = _unwrapped(node.item_type, "")
        elif isinstance(node, schema_info.StructType):
            info = next((info for info in node.fields if info.encode_name == step), None)
            if info is None:
                break
            node, fix_text = _unwrapped(info.type, "")
    return node, fix_text


def _unwrapped(node: schema_info.Type, fix_text: str) -> tuple[schema_info.Type, str]:
    """The type under its metadata (keeping the fix it gives) and under `| None`, preferring a table in a union."""
    while isinstance(node, schema_info.Metadata | schema_info.UnionType):
        if isinstance(node, schema_info.Metadata):
            fix_text = (node.extra or {}).get("fix", fix_text)
            node = node.type
        else:
            node = next((kind for kind in node.types if isinstance(kind, schema_info.StructType)), node.types[0])
    return node, fix_text


def _raw_at(data: Any, steps: list[str | int]) -> Any:
    for step in steps:
        try:
            data = data[step]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _dotted(steps: list[str | int]) -> str:
    return "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in steps).lstrip(".")


def _joined(where: str, key: str) -> str:
    return ".".join(part for part in (where, key) if part).replace(".[", "[")


_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class Keyed(tuple[tuple[str, Any], ...]):
    """A table of tables keyed by name (`[updates.xpsp2]`, `[population.languages.en]`), each read as `schema`.

    Kept as (name, value) pairs in the order written, so that a problem names its key (msgspec's own
    dict decoding would not) and order means something (updates install in it).
    """

    schema: type = dict
    what = "entry"

    @classmethod
    def parse(cls, raw: Any) -> Keyed:
        if not isinstance(raw, Mapping):
            raise TypeError("must be a table")
        pairs = []
        for key, value in raw.items():
            if not _KEY.fullmatch(key):
                raise FieldError(key, f"is not a valid {cls.what} name", "use letters, digits, _ . -")
            try:
                pairs.append((key, decode_value(value, cls.schema)))
            except FieldError as error:
                raise FieldError(_joined(key, error.key), error.problem, error.fix) from None
            except (TypeError, ValueError) as error:  # a parsed type (shares, sizes) refusing the value
                raise FieldError(key, f"is not valid ({error})", f"see docs/worlds.md for the {cls.what}") from None
        return cls(pairs)


def to_tables(value: Any) -> Any:
    """A decoded value as the tables a file writes, in JSON types: what `decode` reads back into the same value.

    Keyed tables, shares and the other tables read by a `parse` class method become objects again;
    dates become ISO strings.
    """
    if isinstance(value, msgspec.Struct):
        return {info.encode_name: to_tables(getattr(value, info.name)) for info in msgspec.structs.fields(value)}
    if isinstance(value, tuple) and hasattr(type(value), "parse"):
        return {key: to_tables(item) for key, item in value}
    if isinstance(value, tuple | list):
        return [to_tables(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    return int(value) if isinstance(value, int) else float(value)
