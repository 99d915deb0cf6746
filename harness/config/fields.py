"""The kinds of field a scenario writes that msgspec does not read by itself, and the fix each field gives.

Counts ("210M") and durations ("15m") are written with units; shares by name and XML attributes are
tables whose keys are data. `read_field` is msgspec's dec_hook for them; a problem found inside a
table is a FieldError naming its key.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from msgspec import Meta

from harness.config.units import parse_count, parse_duration, parse_size, to_datetime


def fix(text: str, **bounds: Any) -> Meta:
    """A field's bounds, and the fix a user is told when its value is missing or wrong."""
    return Meta(**bounds, extra={"fix": text})


Date = Annotated[datetime, Meta(tz=True)]
Share = Annotated[float, Meta(ge=0, le=1)]


class FieldError(ValueError):
    """A problem found inside a value being decoded: the key under the value's field, the problem and the fix."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.key, self.problem, self.fix = key, problem, fix


def _number(raw: Any, what: str) -> Any:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise TypeError(f"must be {what}")
    return raw


class Count(int):
    """A whole number written as 20000, 1.5e6 or "210M", at least `least`."""

    least = 0

    @classmethod
    def parse(cls, raw: Any) -> Count:
        value = parse_count(_number(raw, "a count"))
        if value != int(value) or value < cls.least:
            raise ValueError(f"must be a whole number of at least {cls.least}")
        return cls(int(value))


class PositiveCount(Count):
    """A Count of at least 1."""

    least = 1


class Seconds(float):
    """A duration written as 400ms, 30s, "5m", 2h, 1d or a bare number of seconds, in seconds."""

    @classmethod
    def parse(cls, raw: Any) -> Seconds:
        return cls(parse_duration(_number(raw, "a duration")))


class PositiveSeconds(Seconds):
    """A duration longer than 0."""

    @classmethod
    def parse(cls, raw: Any) -> Seconds:
        value = super().parse(raw)
        if value <= 0:
            raise ValueError("must be longer than 0")
        return value


class Shares(tuple[tuple[str, float], ...]):
    """A table of shares keyed by name summing to 1, as (name, share) pairs in the order written.

    A subclass may name the `known` names; without them any name is taken, and what it must be one
    of is checked against the world (harness.config.scenario).
    """

    known: tuple[str, ...] = ()
    what = "a known name"

    @classmethod
    def parse(cls, raw: Any) -> Shares:
        for name in _shares_read(raw):
            if cls.known and name not in cls.known:
                raise FieldError(name, f"is not {cls.what}", did_you_mean(name, cls.known))
        total = sum(raw.values())
        if raw and abs(total - 1.0) > 1e-6:
            raise FieldError("", f"shares sum to {total:g}, not 1", "make the shares add up to 1")
        return cls((name, float(share)) for name, share in raw.items())


def _shares_read(raw: Any) -> Mapping[str, float]:
    """A table of shares, each a number between 0 and 1; a FieldError names the first that is not."""
    if not isinstance(raw, Mapping):
        raise TypeError("must be a table")
    for name, share in raw.items():
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
            raise FieldError(name, f"{share!r} is not valid (must be a number between 0 and 1)",
                             "give a share between 0 and 1")
    return raw


class ShareTable(tuple[tuple[str, float], ...]):
    """A table of shares keyed by name, each on its own (they need not sum to 1), as (name, share) pairs."""

    @classmethod
    def parse(cls, raw: Any) -> ShareTable:
        return cls((name, float(share)) for name, share in _shares_read(raw).items())


def did_you_mean(name: str, known: tuple[str, ...] | list[str]) -> str:
    """The fix for a name that is not one of `known`: the closest, or the list."""
    close = difflib.get_close_matches(name, known, n=1)
    return f"did you mean '{close[0]}'?" if close else f"use one of: {', '.join(known)}"


class Sizes(tuple[tuple[str, float], ...]):
    """Package sizes: one ("", bytes) for `size = "400KB"`, or (variant value, bytes) pairs for a table of them."""

    @classmethod
    def parse(cls, raw: Any) -> Sizes:
        if isinstance(raw, Mapping):
            return cls((key, _size(value, key)) for key, value in raw.items())
        return cls((("", _size(raw, "")),))


def _size(raw: Any, key: str) -> float:
    try:
        value = parse_size(raw) if isinstance(raw, str) else float(_number(raw, "a size"))
    except (TypeError, ValueError):
        raise FieldError(key, f"{raw!r} is not a size", 'write e.g. "80MB" or "400KB"') from None
    if value < 1:
        raise FieldError(key, f"{raw!r} is not a size", "give at least 1 byte")
    return value


class ByteRate(float):
    """Bytes per second, written as "100KB/s" or a number."""

    @classmethod
    def parse(cls, raw: Any) -> ByteRate:
        value = parse_size(raw.removesuffix("/s")) if isinstance(raw, str) else float(_number(raw, "a rate"))
        if value <= 0:
            raise ValueError("must be more than 0 bytes per second")
        return cls(value)


class DateTable(tuple[tuple[str, datetime], ...]):
    """A table of dates keyed by name, as (name, UTC datetime) pairs."""

    @classmethod
    def parse(cls, raw: Any) -> DateTable:
        if not isinstance(raw, Mapping):
            raise TypeError("must be a table")
        pairs = []
        for key, value in raw.items():
            try:
                pairs.append((key, to_datetime(value)))
            except (TypeError, ValueError):
                raise FieldError(key, f"{value!r} is not a date", "write e.g. 2004-09-01T00:00:00Z") from None
        return cls(pairs)


_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


class Attributes(tuple[tuple[str, str], ...]):
    """A table of XML attributes to add, as (name, value) pairs in the order written."""

    @classmethod
    def parse(cls, raw: Any) -> Attributes:
        if not isinstance(raw, Mapping):
            raise TypeError("must be a table")
        for key, value in raw.items():
            if not _XML_NAME.fullmatch(key):
                raise FieldError(key, "is not a valid XML attribute name", "use letters, digits, _ . -")
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise FieldError(key, f"{value!r} is not valid (must be a string or a number)",
                                 'write e.g. key = "value"')
        return cls((key, str(value)) for key, value in raw.items())


def read_field(kind: type, raw: Any) -> Any:
    """msgspec's dec_hook: the types above (and any with a `parse` class method) from what a file writes."""
    parse = getattr(kind, "parse", None)
    if parse is not None:
        return parse(raw)
    raise NotImplementedError
