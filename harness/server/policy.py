"""The policy the reference server uses when no scenario configures it."""

from __future__ import annotations

from harness.config.scenario import RolloutSpec, ServerSpec
from harness.config.world import LAUNCH

DEFAULT_POLICY = ServerSpec(
    rollouts=(RolloutSpec("xpsp2", (("home", LAUNCH), ("pro", LAUNCH)), ((LAUNCH, 100.0),)),),
)
