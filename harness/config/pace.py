"""The time scale over scenario time: how many scenario seconds one wall second plays, phase by phase.

Scenario time is counted in seconds from the timeline's start. At a time scale of 1 it runs as
real time; at 10,080 the 70 days of the SP2 ramp play in 10 minutes. A timeline may change its
scale in phases (e.g. the quiet days fast, a surge's hours slower), so the mapping is piecewise
linear.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

Phases = tuple[tuple[float, float], ...]  # (scenario second from which, time scale), ascending, after second 0


@dataclass(frozen=True)
class Pace:
    """The time scale over scenario time: `time_scale` from second 0, then each phase's from its second."""

    time_scale: float
    phases: Phases = ()
    _seconds: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _walls: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _scales: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.time_scale > 0:
            raise ValueError(f"time scale {self.time_scale:g} is not above 0")
        seconds, scales, walls = [0.0], [self.time_scale], [0.0]
        for second, scale in self.phases:
            if not (scale > 0 and second > seconds[-1]):
                raise ValueError(f"time scale {scale:g} from scenario second {second:g}: scales must be above 0 "
                                 "and phases in order after second 0")
            walls.append(walls[-1] + (second - seconds[-1]) / scales[-1])
            seconds.append(second)
            scales.append(scale)
        object.__setattr__(self, "_seconds", tuple(seconds))
        object.__setattr__(self, "_walls", tuple(walls))
        object.__setattr__(self, "_scales", tuple(scales))

    def _phase_of_second(self, scenario_s: float) -> int:
        return max(0, bisect.bisect_right(self._seconds, scenario_s) - 1)

    def scale_at(self, scenario_s: float) -> float:
        """The time scale in force at a scenario second."""
        return self._scales[self._phase_of_second(scenario_s)]

    def wall_at(self, scenario_s: float) -> float:
        """Wall seconds from scenario second 0 to `scenario_s`."""
        i = self._phase_of_second(scenario_s)
        return self._walls[i] + (scenario_s - self._seconds[i]) / self._scales[i]

    def walls_at(self, scenario_s: np.ndarray) -> np.ndarray:
        """wall_at of many scenario seconds at once."""
        i = np.maximum(np.searchsorted(self._seconds, scenario_s, side="right") - 1, 0)
        return np.take(self._walls, i) + (scenario_s - np.take(self._seconds, i)) / np.take(self._scales, i)

    def scenario_at(self, wall_s: float) -> float:
        """The scenario second reached `wall_s` wall seconds after scenario second 0."""
        i = max(0, bisect.bisect_right(self._walls, wall_s) - 1)
        return self._seconds[i] + (wall_s - self._walls[i]) * self._scales[i]

    @property
    def fastest(self) -> float:
        """The largest time scale of any phase: what the agent pool and the schedule are sized for."""
        return max(self._scales)
