"""When machines are switched on: weekly online windows per profile, in each machine's local time.

A machine checks for updates only while it is on. Each online profile is a set of windows over a
local week (Monday 00:00 = 0); each machine shifts its profile by a hashed offset of up to an hour
either way, so a time zone's machines do not all boot in the same second. The always-on profile is
one long window a day, starting at 09:00: its "session start" is when its user sits down, which is
when a user-driven install happens.

All functions are vectorised over numpy arrays of local times in seconds since the Unix epoch.
"""

from __future__ import annotations

import numpy as np

from harness.config.world import ONLINE_PROFILES as PROFILES
from harness.config.world import ONLINE_WINDOWS

DAY_S = 86400.0
WEEK_S = 7 * DAY_S
_MONDAY_OFFSET_S = 3 * DAY_S  # 1970-01-01 was a Thursday: shift so that a week starts on Monday


def _weekly(windows_by_day: tuple[tuple[tuple[float, float], ...], ...]) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) in seconds of the week, between the previous week's last window and the next's first."""
    starts = [day * DAY_S + begin * 3600 for day, windows in enumerate(windows_by_day) for begin, _ in windows]
    ends = [day * DAY_S + end * 3600 for day, windows in enumerate(windows_by_day) for _, end in windows]
    return (np.array([starts[-1] - WEEK_S, *starts, starts[0] + WEEK_S]),
            np.array([ends[-1] - WEEK_S, *ends, ends[0] + WEEK_S]))


WINDOWS: dict[str, tuple[np.ndarray, np.ndarray]] = {profile: _weekly(days) for profile, days in ONLINE_WINDOWS.items()}


def _within_week(windows_by_day: tuple[tuple[tuple[float, float], ...], ...]) -> tuple[np.ndarray, ...]:
    """(starts, ends, time on before each start) of the windows within one week, a window over its end split."""
    pieces = []
    for day, windows in enumerate(windows_by_day):
        for begin, end in windows:
            start, stop = day * DAY_S + begin * 3600, day * DAY_S + end * 3600
            pieces += [(start, WEEK_S), (0.0, stop - WEEK_S)] if stop > WEEK_S else [(start, stop)]
    starts, ends = (np.array(column) for column in zip(*sorted(pieces), strict=True))
    return starts, ends, np.concatenate(([0.0], np.cumsum(ends - starts)[:-1]))


_WITHIN_WEEK = {profile: _within_week(days) for profile, days in ONLINE_WINDOWS.items()}


def week_position(local_s: np.ndarray) -> np.ndarray:
    """Seconds since the local Monday 00:00."""
    return np.mod(local_s + _MONDAY_OFFSET_S, WEEK_S)


def _window_after(profile: str, local_s: np.ndarray) -> np.ndarray:
    """The local start of the first window of `profile` that ends after each local time."""
    starts, ends = WINDOWS[profile]
    position = week_position(local_s)
    return local_s - position + starts[np.searchsorted(ends, position, side="right")]


def _by_profile(profiles: np.ndarray, local_s: np.ndarray, rule, dtype: type = float) -> np.ndarray:  # noqa: ANN001
    result = np.empty(len(local_s), dtype=dtype)
    for number, profile in enumerate(PROFILES):
        mask = profiles == number
        if mask.any():
            result[mask] = rule(profile, local_s[mask])
    return result


def online(profiles: np.ndarray, local_s: np.ndarray) -> np.ndarray:
    """Whether each machine (profile number: its index in PROFILES) is on at its local time."""
    return _by_profile(profiles, local_s, lambda p, t: _window_after(p, t) <= t, bool)


def next_online(profiles: np.ndarray, local_s: np.ndarray) -> np.ndarray:
    """The local time itself when the machine is on then, else the start of its next window (its boot)."""
    return _by_profile(profiles, local_s, lambda p, t: np.maximum(t, _window_after(p, t)))


def after_time_on(profiles: np.ndarray, local_s: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """The local time at which each machine, from `local_s`, has been on for `seconds` more (a background
    download that progresses only while the machine is on)."""
    result = np.empty(len(local_s))
    for number, profile in enumerate(PROFILES):
        mask = profiles == number
        if not mask.any():
            continue
        starts, ends, before = _WITHIN_WEEK[profile]
        weekly = before[-1] + ends[-1] - starts[-1]
        local = local_s[mask]
        position = week_position(local)
        window = np.searchsorted(ends, position, side="right")  # the first window ending after `position`
        last = np.minimum(window, len(starts) - 1)
        on_so_far = np.where(window < len(starts), before[last] + np.maximum(position - starts[last], 0.0), weekly)
        target = on_so_far + seconds[mask]
        weeks = np.ceil(target / weekly) - 1  # whole weeks on, leaving (0, weekly] to place in a week
        rest = target - weeks * weekly
        reached = np.searchsorted(before + ends - starts, rest, side="left")
        result[mask] = local - position + weeks * WEEK_S + starts[reached] + rest - before[reached]
    return np.where(seconds > 0, result, local_s)  # nothing left to do: done now, on or off


def next_session(profiles: np.ndarray, local_s: np.ndarray) -> np.ndarray:
    """The start of the first window that begins after each local time: the next time its user sits down."""

    def rule(profile: str, local: np.ndarray) -> np.ndarray:
        starts, _ = WINDOWS[profile]
        position = week_position(local)
        return local - position + starts[np.searchsorted(starts, position, side="right")]

    return _by_profile(profiles, local_s, rule)
