"""The policy the reference server uses when no scenario configures it: every update of its world offered to all."""

from __future__ import annotations

from datetime import UTC, datetime

from harness.config.schema import Rollouts, RolloutSpec, ServerSpec, Step
from harness.config.world import World

LAUNCH = datetime(2004, 8, 18, tzinfo=UTC)  # SP2 on Windows Update: where the server's own clock starts


def default_policy(world: World) -> ServerSpec:
    """Every update of the world at 100 % from LAUNCH."""
    return ServerSpec(rollout=Rollouts((update, RolloutSpec(steps=(Step(LAUNCH, 100.0),)))
                                       for update in world.update_names))
