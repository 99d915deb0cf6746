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
from collections.abc import Sequence

from harness.config.schema import ServerSpec
from harness.config.world import LANGUAGES
from harness.model.rollout_gate import gate_from_seed, gate_seed


class Ramp:
    """A rollout's percentage over epoch seconds: 0 before the first step, linear between steps, flat after."""

    __slots__ = ("_times", "_percents", "_slopes")

    def __init__(self, steps: Sequence[tuple[float, float]]) -> None:
        """`steps`: (epoch second, percent) pairs, in strictly increasing time."""
        self._times = tuple(when for when, _ in steps)
        self._percents = tuple(percent for _, percent in steps)
        self._slopes = tuple((p1 - p0) / (t1 - t0) for (t0, p0), (t1, p1) in zip(steps, steps[1:], strict=False))

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

    def __init__(self, spec: ServerSpec) -> None:
        self._rollouts = tuple((update, gate_seed(update),
                                {edition: when.timestamp() for edition, when in rollout.editions.dates().items()},
                                Ramp([(step.at.timestamp(), step.percent) for step in rollout.steps]))
                               for update, rollout in spec.rollouts)
        block = spec.enterprise_block_until
        self._blocked_until = block.timestamp() if block is not None else -math.inf
        self._releases = {lang.code: lang.sp2_release.timestamp() for lang in LANGUAGES}

    def offered(self, client_id: str, edition: str, language_code: str, enterprise: bool,
                installed: Sequence[object], when: float) -> tuple[str, ...]:
        """The updates this machine is offered at epoch second `when`, in install order.

        `installed` is the machine's list as it sent it: items that are not update names never match.
        """
        offers: tuple[str, ...] = ()
        for update, seed, starts, ramp in self._rollouts:
            start = starts.get(edition)
            if start is None or when < start or update in installed:
                continue
            if update == "kb884020" and "xpsp2" not in installed:
                continue  # the SP2 hotfix applies only to SP2 machines
            if update == "xpsp2" and (when < self._releases[language_code]
                                      or (enterprise and when < self._blocked_until)):
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
