"""The policy the reference server uses when no scenario configures it."""

from __future__ import annotations

from harness.config.schema import Editions, Rollouts, RolloutSpec, ServerSpec, Step
from harness.config.world import LAUNCH

DEFAULT_POLICY = ServerSpec(
    rollout=Rollouts(xpsp2=RolloutSpec(Editions(home=LAUNCH, pro=LAUNCH), (Step(LAUNCH, 100.0),))),
)
