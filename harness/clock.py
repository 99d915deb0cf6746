"""Scenario time against wall time.

Scenario time is counted in seconds from the timeline's start: `t = (wall - wall_start) * scale`.
A time scale of 1 is real time; 8,784 plays the 61 days of the SP2 ramp in 10 minutes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class ScenarioClock:
    """Maps wall time (time.time()) to scenario seconds since `origin`, and back."""

    origin: datetime  # the scenario date at scenario second 0
    wall_start: float  # time.time() at scenario second 0
    time_scale: float

    @classmethod
    def starting_now(cls, origin: datetime, time_scale: float) -> ScenarioClock:
        return cls(origin, time.time(), time_scale)

    def now(self) -> float:
        """Scenario seconds elapsed now."""
        return (time.time() - self.wall_start) * self.time_scale

    def wall_at(self, scenario_seconds: float) -> float:
        """The wall time (time.time() scale) at which a scenario second falls."""
        return self.wall_start + scenario_seconds / self.time_scale

    def date_at(self, scenario_seconds: float) -> datetime:
        """The scenario date of a scenario second."""
        return self.origin + timedelta(seconds=scenario_seconds)

    def seconds_at(self, when: datetime) -> float:
        """The scenario second of a scenario date."""
        return (when - self.origin).total_seconds()

    def to_json(self) -> dict[str, object]:
        return {"origin": self.origin.isoformat(), "wall_start": self.wall_start, "time_scale": self.time_scale}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ScenarioClock:
        return cls(datetime.fromisoformat(str(data["origin"])), float(data["wall_start"]),  # type: ignore[arg-type]
                   float(data["time_scale"]))  # type: ignore[arg-type]
