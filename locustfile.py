"""fleetstorm's Locust entry point: the agent user and the fleet's load shape.

All logic lives in `harness/`; importing harness.runtime registers the options and event hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from locust import FastHttpUser, LoadTestShape, constant, task

from harness.protocols.base import WireRequest, WireResponse, transport_failure
from harness.runtime import Harness

QUEUE_POLL_S = 1.0


class UpdateAgent(FastHttpUser):
    """An agent: carries out whichever machine's check-in is due next (it is not a machine)."""

    wait_time = constant(0)

    def __init__(self, environment) -> None:  # noqa: ANN001 (Locust's signature)
        timeout = environment.fleetstorm.scenario.agents.timeout_s
        self.network_timeout = self.connection_timeout = timeout
        super().__init__(environment)

    @task
    def carry_out_checkin(self) -> None:
        harness: Harness = self.environment.fleetstorm
        item = harness.next_checkin(timeout=QUEUE_POLL_S)
        if item is not None and harness.agent is not None:
            harness.agent.wake(self.send, *item)

    def send(self, request: WireRequest, name: str,
             failure_of: Callable[[WireResponse], str | None] | None) -> WireResponse:
        """Send one adapter request through Locust's client, so it lands in Locust's stats."""
        with self.client.request(request.method, request.path, data=request.body, headers=dict(request.headers),
                                 name=name, catch_response=True) as response:
            wire = WireResponse(response.status_code or 0, response.headers or {}, response.content or b"")
            reason = transport_failure(wire, request.method) or (failure_of(wire) if failure_of else None)
            if not reason:
                response.success()
                return wire
            response.failure(reason if wire.status else f"{reason} ({response.error})")
            return replace(wire, failure=reason)


class FleetShape(LoadTestShape):
    """Keeps the agent pool sized for the fleet's rate until the timeline (or --run-time) ends."""

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        environment = self.runner.environment
        harness: Harness = environment.fleetstorm
        limit = environment.parsed_options.run_time or harness.scenario.timeline.wall_seconds
        if harness.running and harness.elapsed_s() >= limit:
            return None
        return harness.pool_size, float(harness.pool_size)  # every agent in Locust's first spawn step
