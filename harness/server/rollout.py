"""The throttled rollout policy: which updates a machine is offered at a given scenario date.

Pure decisions (RolloutPolicy, on epoch seconds), plus the one piece of state a cap needs
(OfferThrottle). A machine's gate is a
fixed hash of (client id, update) in [0, 100); it is offered an update once the rollout percentage
passes its gate. Percentages never fall, so a machine once offered stays offered (sticky), as in
staged rollouts that raise a throttle over time.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable

from harness.domain import LANGUAGES
from harness.scenario import RolloutSpec, ServerSpec


def percent_at(steps: tuple[tuple[float, float], ...], when: float) -> float:
    """The rollout percentage at epoch second `when`: 0 before the first step, linear between steps."""
    if not steps or when < steps[0][0]:
        return 0.0
    for (t0, p0), (t1, p1) in zip(steps, steps[1:], strict=False):
        if when < t1:
            return p0 + (p1 - p0) * (when - t0) / (t1 - t0)
    return steps[-1][1]


def gate(client_id: str, update: str) -> float:
    """The machine's fixed position in [0, 100) for this update's rollout."""
    digest = hashlib.blake2b(f"{update}:{client_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100


class RolloutPolicy:
    """A policy's offer decisions, with its dates turned into epoch seconds once.

    The reference server decides on every check; comparing numbers instead of `datetime`s there cut
    its CPU time per check (docs/server.md has the measurements).
    """

    def __init__(self, spec: ServerSpec) -> None:
        self._rollouts = tuple((rollout.update, _edition_starts(rollout),
                                tuple((t.timestamp(), percent) for t, percent in rollout.steps))
                               for rollout in spec.rollouts)
        block = spec.enterprise_block_until
        self._blocked_until = block.timestamp() if block is not None else -math.inf
        self._releases = {lang.code: lang.sp2_release.timestamp() for lang in LANGUAGES}

    def offered(self, *, client_id: str, edition: str, language_code: str, enterprise: bool,
                installed: Iterable[str], when: float) -> list[str]:
        """The updates this machine is offered at epoch second `when`, in install order."""
        have = set(installed)
        offers = []
        for update, starts, steps in self._rollouts:
            start = starts.get(edition)
            if update in have or start is None or when < start:
                continue
            if update == "kb884020" and "xpsp2" not in have:
                continue  # the SP2 hotfix applies only to SP2 machines
            if update == "xpsp2" and (when < self._releases[language_code]
                                      or (enterprise and when < self._blocked_until)):
                continue
            if gate(client_id, update) < percent_at(steps, when):
                offers.append(update)
        return offers


def _edition_starts(rollout: RolloutSpec) -> dict[str, float]:
    """Each edition's first eligible epoch second (the earliest, if an edition is named twice)."""
    starts: dict[str, float] = {}
    for name, start in rollout.editions:
        starts[name] = min(starts.get(name, math.inf), start.timestamp())
    return starts


class OfferThrottle:
    """At most `per_hour` new offers per update in each scenario hour; an offered machine stays offered.

    It remembers the client ids it has offered each update to: memory grows with the emulated
    machines offered (about 100 bytes each), never with requests.
    """

    def __init__(self, per_hour: int) -> None:
        self.per_hour = per_hour
        self.offered: dict[str, set[str]] = {}
        self._hourly: Counter[tuple[str, int]] = Counter()

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
