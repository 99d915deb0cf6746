"""The throttled rollout policy: which updates a machine is offered at a given scenario date.

Pure functions, plus the one piece of state a cap needs (OfferThrottle). A machine's gate is a
fixed hash of (client id, update) in [0, 100); it is offered an update once the rollout percentage
passes its gate. Percentages never fall, so a machine once offered stays offered (sticky), as in
staged rollouts that raise a throttle over time.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from harness.domain import language
from harness.scenario import RolloutSpec, ServerSpec


def percent_at(steps: tuple[tuple[datetime, float], ...], when: datetime) -> float:
    """The rollout percentage at `when`: 0 before the first step, linear between steps."""
    if not steps or when < steps[0][0]:
        return 0.0
    for (t0, p0), (t1, p1) in zip(steps, steps[1:], strict=False):
        if when < t1:
            return p0 + (p1 - p0) * (when - t0).total_seconds() / (t1 - t0).total_seconds()
    return steps[-1][1]


def gate(client_id: str, update: str) -> float:
    """The machine's fixed position in [0, 100) for this update's rollout."""
    digest = hashlib.blake2b(f"{update}:{client_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100


def _eligible(rollout: RolloutSpec, edition: str, when: datetime) -> bool:
    # A loop, not any() over a generator: this runs for every rollout of every check.
    for name, start in rollout.editions:  # noqa: SIM110
        if name == edition and when >= start:
            return True
    return False


def offered_updates(
    policy: ServerSpec,
    *,
    client_id: str,
    edition: str,
    language_code: str,
    enterprise: bool,
    installed: Iterable[str],
    when: datetime,
) -> list[str]:
    """The updates this machine is offered at `when`, in install order."""
    have = set(installed)
    offers = []
    for rollout in policy.rollouts:
        update = rollout.update
        if update in have or not _eligible(rollout, edition, when):
            continue
        if update == "kb884020" and "xpsp2" not in have:
            continue  # the SP2 hotfix applies only to SP2 machines
        if update == "xpsp2":
            if when < language(language_code).sp2_release:
                continue
            if enterprise and policy.enterprise_block_until is not None and when < policy.enterprise_block_until:
                continue
        if gate(client_id, update) < percent_at(rollout.steps, when):
            offers.append(update)
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

    def admit(self, update: str, client_id: str, when: datetime) -> bool:
        """Whether this machine, which the rollout would offer `update`, gets the offer now."""
        if not self.per_hour:
            return True  # without a cap, the rising percentage alone keeps offers sticky
        offered = self.offered.setdefault(update, set())
        if client_id in offered:
            return True
        hour = (update, int(when.timestamp() // 3600))
        if self._hourly[hour] >= self.per_hour:
            return False
        self._hourly[hour] += 1
        offered.add(client_id)
        return True
