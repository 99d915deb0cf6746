"""The throttled rollout policy: which updates a machine is offered at a given scenario date.

Pure decisions (RolloutPolicy, on epoch seconds), plus the one piece of state a cap needs
(OfferThrottle). A machine's gate is a fixed hash of (client id, update) in [0, 100)
(harness/model/rollout_gate.py); it is offered an update once the rollout percentage passes its gate.
Percentages never fall, so a machine once offered stays offered (sticky), as in staged rollouts that
raise a throttle over time.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Mapping, Sequence

from harness.config.schema import ServerSpec
from harness.config.world import World
from harness.model.rollout_gate import gate_from_seed, gate_seed


class Ramp:
    """A rollout's percentage over epoch seconds: 0 before the first step, linear between steps (or, in stages,
    each step's until the next), flat after."""

    __slots__ = ("_times", "_percents", "_slopes")

    def __init__(self, steps: Sequence[tuple[float, float]], stages: bool = False) -> None:
        """`steps`: (epoch second, percent) pairs, in strictly increasing time."""
        self._times = tuple(when for when, _ in steps)
        self._percents = tuple(percent for _, percent in steps)
        self._slopes = tuple(0.0 if stages else (p1 - p0) / (t1 - t0)
                             for (t0, p0), (t1, p1) in zip(steps, steps[1:], strict=False))

    @property
    def starts(self) -> float:
        """The epoch second of the first step: nothing is offered before it."""
        return self._times[0]

    def at(self, when: float) -> float:
        """The percentage at epoch second `when`."""
        after = bisect_right(self._times, when)  # the steps at or before `when`
        if after == 0:
            return 0.0
        if after == len(self._times):
            return self._percents[-1]
        return self._percents[after - 1] + self._slopes[after - 1] * (when - self._times[after - 1])


class RolloutPolicy:
    """A policy's offer decisions, with its dates turned into epoch seconds once.

    The reference server decides on every check; comparing numbers instead of `datetime`s there cut
    its CPU time per check (docs/server.md has the measurements).
    """

    def __init__(self, spec: ServerSpec, world: World) -> None:
        rolled = dict(spec.rollouts)
        self._rollouts = tuple(
            (update, gate_seed(update), world.prerequisites(update),
             tuple((attribute, {value: when.timestamp() for value, when in dates})
                   for attribute, dates in rolled[update].eligible),
             {code: when.timestamp() for code, when in world.update(update).available},
             rolled[update].managed_block_until.timestamp() if rolled[update].managed_block_until else -math.inf,
             Ramp([(step.at.timestamp(), step.percent) for step in rolled[update].steps],
                  rolled[update].ramp == "stages"),
             rolled[update].gate_by_hand)
            for update in world.update_names if update in rolled)

    def offered(self, client_id: str, attributes: Mapping[str, str], language: str, enterprise: bool,
                installed: Sequence[object], when: float, by_hand: bool = False) -> tuple[str, ...]:
        """The updates this machine is offered at epoch second `when`, in the world's order.

        `installed` is the machine's list as it sent it: items that are not update names never match.
        `by_hand`: its user asked (the update site); a rollout whose `gate_by_hand` is false offers it
        the update once eligible, whatever the percentage.
        """
        offers: tuple[str, ...] = ()
        for update, seed, requires, eligible, available, blocked_until, ramp, gate_by_hand in self._rollouts:
            if update in installed or any(needed not in installed for needed in requires):
                continue
            if any(when < dates.get(attributes.get(attribute), math.inf) for attribute, dates in eligible):
                continue  # a value left out of the eligibility dates is never eligible
            if when < available.get(language, -math.inf) or (enterprise and when < blocked_until):
                continue
            if by_hand and not gate_by_hand:  # past the percentage, not before the rollout starts
                if when >= ramp.starts:
                    offers += (update,)
                continue
            percent = ramp.at(when)
            if percent >= 100 or (percent > 0 and gate_from_seed(client_id, seed) < percent):  # every gate is < 100
                offers += (update,)  # one or two: a tuple is the answer's cache key as it is
        return offers


class OfferThrottle:
    """At most `per_hour` new offers per update in each scenario hour; an offered machine stays offered.

    It remembers the client ids it has offered each update to: memory grows with the emulated
    machines offered (about 100 bytes each), never with requests.
    """

    def __init__(self, per_hour: int) -> None:
        self.per_hour = per_hour
        self.offered: dict[str, set[str]] = {}
        self._hourly: Counter[tuple[str, int]] = Counter()

    def admitted(self, updates: tuple[str, ...], client_id: str, when: float) -> tuple[str, ...]:
        """Those of `updates`, which the rollout would offer this machine, that it gets at epoch second `when`."""
        return tuple(update for update in updates if self.admit(update, client_id, when))

    def admit(self, update: str, client_id: str, when: float) -> bool:
        """Whether this machine, which the rollout would offer `update`, gets the offer at epoch second `when`."""
        if not self.per_hour:
            return True  # without a cap, the rising percentage alone keeps offers sticky
        offered = self.offered.setdefault(update, set())
        if client_id in offered:
            return True
        hour = (update, int(when // 3600))
        if self._hourly[hour] >= self.per_hour:
            return False
        self._hourly[hour] += 1
        offered.add(client_id)
        return True
