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


def next_session(profiles: np.ndarray, local_s: np.ndarray) -> np.ndarray:
    """The start of the first window that begins after each local time: the next time its user sits down."""

    def rule(profile: str, local: np.ndarray) -> np.ndarray:
        starts, _ = WINDOWS[profile]
        position = week_position(local)
        return local - position + starts[np.searchsorted(starts, position, side="right")]

    return _by_profile(profiles, local_s, rule)
