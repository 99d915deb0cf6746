"""The load shape: Locust's user count follows the agent pool until the run's time is up."""

from __future__ import annotations

from typing import Protocol

from locust import LoadTestShape


class ShapedRun(Protocol):
    """What the shape asks the run (harness/run.py's Harness) on each of Locust's shape ticks."""

    def agents_wanted(self, run_time: float | None) -> tuple[int, float] | None:
        """(agents, spawn rate) while the run goes on; None once it is over (Locust then stops)."""


class FleetShape(LoadTestShape):
    """Keeps the agent pool sized for the fleet's rate until the timeline or --run-time ends, whichever is first."""

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        environment = self.runner.environment
        run: ShapedRun = environment.fleetstorm
        return run.agents_wanted(environment.parsed_options.run_time)
