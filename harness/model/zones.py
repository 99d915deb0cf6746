"""Time zones over a stretch of time: each IANA zone's UTC offset, looked up for arrays of machines.

A machine's local time decides when it is on and when it installs; zoneinfo knows each zone's
daylight saving rules (the year's, 2004's included), but asks for one datetime at a time. A ZoneClock
finds every zone's transitions in its span once and answers for arrays in one numpy lookup.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np

SPAN_DAYS = 800  # from a day before the origin: the longest timeline a fleet is played over
_DAY_S = 86400


def _offset_s(zone: ZoneInfo, epoch_s: float) -> float:
    offset = datetime.fromtimestamp(epoch_s, UTC).astimezone(zone).utcoffset()
    return offset.total_seconds() if offset is not None else 0.0


def _transitions(zone: ZoneInfo, start_s: float, days: int) -> list[tuple[float, float]]:
    """(epoch second, offset from then) of each change of the zone's offset within the span, to the second."""
    changes = []
    before = _offset_s(zone, start_s)
    for day in range(1, days + 1):
        after = _offset_s(zone, start_s + day * _DAY_S)
        if after != before:
            low, high = start_s + (day - 1) * _DAY_S, start_s + day * _DAY_S
            while high - low > 1:  # the offset is `before` at low and `after` at high
                middle = (low + high) // 2
                low, high = (middle, high) if _offset_s(zone, middle) == before else (low, middle)
            changes.append((high, after))
            before = after
    return changes


class ZoneClock:
    """The UTC offsets of some zones from a day before `origin_s` for SPAN_DAYS days (the last offset after)."""

    def __init__(self, zones: tuple[str, ...], origin_s: float, days: int = SPAN_DAYS) -> None:
        start = float(int(origin_s) - _DAY_S)
        infos = [ZoneInfo(name) for name in zones]
        transitions = [_transitions(info, start, days) for info in infos]
        self._breaks = np.array(sorted({when for changes in transitions for when, _ in changes}), dtype=np.float64)
        # _table[k, z]: zone z's offset between breaks k-1 and k (row 0: before the first break).
        table = np.empty((len(self._breaks) + 1, len(zones)), dtype=np.float64)
        for z, (info, changes) in enumerate(zip(infos, transitions, strict=True)):
            table[:, z] = _offset_s(info, start)
            for when, offset in changes:
                table[np.searchsorted(self._breaks, when, side="right"):, z] = offset
        self._table = table

    def offsets_s(self, zones: np.ndarray, epoch_s: np.ndarray | float) -> np.ndarray:
        """Each zone's offset from UTC in seconds at each epoch second (zones: positions in the clock's zones)."""
        return self._table[np.searchsorted(self._breaks, epoch_s, side="right"), zones]
