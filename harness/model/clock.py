"""Scenario time against wall time: the clock every agent, surge and server reads.

Scenario time is counted in seconds from the timeline's start and runs at the timeline's `Pace`
(harness/config/pace.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from harness.config.pace import Pace, Phases


@dataclass(frozen=True)
class ScenarioClock:
    """Scenario seconds since `origin`: fixed to wall time (time.time()) when made, then counted on time.monotonic().

    Reading the wall clock only once keeps scenario time and the latencies measured against it steady when
    the wall clock is stepped during the run (NTP); `wall_at` still answers on the wall clock's scale.
    """

    origin: datetime  # the scenario date at scenario second 0
    wall_start: float  # time.time() at scenario second 0
    time_scale: float  # from scenario second 0
    phases: Phases = ()  # later changes of the time scale
    pace: Pace = field(init=False, repr=False, compare=False)
    _monotonic_start: float = field(init=False, repr=False, compare=False)  # time.monotonic() at second 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "pace", Pace(self.time_scale, self.phases))
        object.__setattr__(self, "_monotonic_start", time.monotonic() - (time.time() - self.wall_start))

    @classmethod
    def starting_now(cls, origin: datetime, time_scale: float, phases: Phases = ()) -> ScenarioClock:
        return cls(origin, time.time(), time_scale, phases)

    def now(self) -> float:
        """Scenario seconds elapsed now."""
        if not self.phases:  # the usual case, on every check-in's path
            return (time.monotonic() - self._monotonic_start) * self.time_scale
        return self.pace.scenario_at(time.monotonic() - self._monotonic_start)

    def wall_at(self, scenario_seconds: float) -> float:
        """The wall time (time.time() scale) at which a scenario second falls."""
        if not self.phases:
            return self.wall_start + scenario_seconds / self.time_scale
        return self.wall_start + self.pace.wall_at(scenario_seconds)

    def seconds_since(self, scenario_seconds: float) -> float:
        """Seconds elapsed since a scenario second fell (negative before it), a monotonic duration."""
        if not self.phases:  # on every check-in's path
            return time.monotonic() - self._monotonic_start - scenario_seconds / self.time_scale
        return time.monotonic() - self._monotonic_start - self.pace.wall_at(scenario_seconds)

    def seconds_until(self, scenario_seconds: float) -> float:
        """Seconds to wait until a scenario second falls (negative once it has)."""
        return -self.seconds_since(scenario_seconds)

    def after_wall_seconds(self, wall_seconds: float) -> float:
        """The scenario second that falls `wall_seconds` of wall time from now."""
        return self.pace.scenario_at(time.monotonic() - self._monotonic_start + wall_seconds)

    def seconds_since_each(self, scenario_seconds: np.ndarray) -> np.ndarray:
        """seconds_since of many scenario seconds at once."""
        return time.monotonic() - self._monotonic_start - self.pace.walls_at(scenario_seconds)

    def scale_at(self, scenario_seconds: float) -> float:
        """The time scale in force at a scenario second."""
        return self.pace.scale_at(scenario_seconds)

    def date_at(self, scenario_seconds: float) -> datetime:
        """The scenario date of a scenario second."""
        return self.origin + timedelta(seconds=scenario_seconds)

    def seconds_at(self, when: datetime) -> float:
        """The scenario second of a scenario date."""
        return (when - self.origin).total_seconds()

    def to_json(self) -> dict[str, object]:
        return {"origin": self.origin.isoformat(), "wall_start": self.wall_start, "time_scale": self.time_scale,
                "phases": [list(phase) for phase in self.phases]}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ScenarioClock:
        phases = tuple((float(second), float(scale)) for second, scale in data.get("phases") or ())  # type: ignore[attr-defined]
        return cls(datetime.fromisoformat(str(data["origin"])), float(data["wall_start"]),  # type: ignore[arg-type]
                   float(data["time_scale"]), phases)  # type: ignore[arg-type]
