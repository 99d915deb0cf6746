"""Parsing of human-written quantities: counts (210M, 1.5e6), durations (400ms, 2h), sizes, dates."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

_COUNT_SUFFIX = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9}
_DURATION_SUFFIX = {"ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE_SUFFIX = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3}
_NUMBER = r"([0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)"


def parse_count(text: str | int | float) -> float:
    """A count such as 20000, 1.5e6, 210M or 2.5K, as a float (ValueError if malformed)."""
    if isinstance(text, bool):
        raise ValueError("a count, not true/false")
    if isinstance(text, int | float):
        return float(text)
    match = re.fullmatch(_NUMBER + r"\s*([KMBG]?)", text.strip(), flags=re.IGNORECASE)
    if not match:
        raise ValueError(f"{text!r} is not a count (examples: 20000, 1.5e6, 210M)")
    return float(match.group(1)) * _COUNT_SUFFIX[match.group(2).upper()]


def parse_duration(text: str | int | float) -> float:
    """A duration such as 400ms, 30s, 5m, 2h or 1d, in seconds; a bare number is seconds."""
    if isinstance(text, bool):
        raise ValueError("a duration, not true/false")
    if isinstance(text, int | float):
        return float(text)
    match = re.fullmatch(_NUMBER + r"\s*(ms|s|min|m|h|d)?", text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration (examples: 400ms, 30s, 5m, 2h)")
    return float(match.group(1)) * _DURATION_SUFFIX[match.group(2) or "s"]


def parse_size(text: str) -> float:
    """A byte size such as 512KB, 80MB or 1GiB, in bytes."""
    match = re.fullmatch(_NUMBER + r"\s*([KMG]?I?B)", text.strip(), flags=re.IGNORECASE)
    if not match:
        raise ValueError(f"{text!r} is not a size (examples: 512KB, 80MB)")
    return float(match.group(1)) * _SIZE_SUFFIX[match.group(2).upper()]


def to_datetime(raw: Any) -> datetime:
    """A TOML date/datetime or ISO-8601 string as an aware UTC datetime (a date or local time is read as UTC)."""
    if isinstance(raw, str):
        raw = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if isinstance(raw, date) and not isinstance(raw, datetime):
        raw = datetime(raw.year, raw.month, raw.day)
    if not isinstance(raw, datetime):
        raise TypeError("must be a date such as 2004-08-18 or 2004-08-18T00:00:00Z")
    return raw.replace(tzinfo=UTC) if raw.tzinfo is None else raw.astimezone(UTC)
