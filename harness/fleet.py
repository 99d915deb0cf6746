"""The fleet: N machines as rows of a few bytes in numpy arrays.

Static attributes (edition, language, enterprise management) are pure functions of
(seed, index) and cost no memory. Dynamic state is one float32 due time and one byte of
installed-update bits per machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.domain import DETECTION_HOURS, DETECTION_JITTER
from harness.hashing import unit, unit_array
from harness.identity import IdentityPool
from harness.scenario import UPDATES, FleetSpec

_SALT_EDITION, _SALT_LANGUAGE, _SALT_ENTERPRISE, _SALT_PHASE, _SALT_INTERVAL = 1, 2, 3, 4, 5
_DETECTION_S = DETECTION_HOURS * 3600
UPDATE_BITS = {update: 1 << i for i, update in enumerate(UPDATES)}


@dataclass(frozen=True)
class Machine:
    """One machine as the agent and the protocol adapter see it."""

    index: int
    client_id: str
    hostname: str
    user_agent: str
    edition: str
    language: str
    enterprise: bool
    installed: frozenset[str]


def detection_interval(seed: int, index: int, cycle_key: int) -> float:
    """Seconds to the next detection: 22 h minus a uniform 0-20 %, drawn anew for each cycle."""
    return _DETECTION_S * (1.0 - DETECTION_JITTER * unit(seed, _SALT_INTERVAL, index ^ (cycle_key << 32)))


class Fleet:
    """The machines of one process, with their schedule and update state."""

    def __init__(self, spec: FleetSpec) -> None:
        self.spec = spec
        indices = np.arange(spec.machines, dtype=np.uint32)
        first_interval = _DETECTION_S * (1.0 - DETECTION_JITTER * unit_array(spec.seed, _SALT_INTERVAL, indices))
        # A random phase in the first cycle: machines were switched on at arbitrary times.
        phase = unit_array(spec.seed, _SALT_PHASE, indices)
        self.next_check = (first_interval * phase).astype(np.float32)
        self.installed = np.zeros(spec.machines, dtype=np.uint8)
        self._language_codes = tuple(code for code, _ in spec.languages)
        self._language_bounds = np.cumsum([share for _, share in spec.languages])
        self.identities = IdentityPool(spec.seed)

    def __len__(self) -> int:
        return self.spec.machines

    def edition(self, index: int) -> str:
        return "home" if unit(self.spec.seed, _SALT_EDITION, index) < self.spec.home_share else "pro"

    def language(self, index: int) -> str:
        pick = unit(self.spec.seed, _SALT_LANGUAGE, index) * self._language_bounds[-1]
        position = int(np.searchsorted(self._language_bounds, pick, side="right"))
        return self._language_codes[min(position, len(self._language_codes) - 1)]

    def enterprise(self, index: int) -> bool:
        return unit(self.spec.seed, _SALT_ENTERPRISE, index) < self.spec.enterprise_share

    def installed_updates(self, index: int) -> frozenset[str]:
        bits = int(self.installed[index])
        return frozenset(update for update, bit in UPDATE_BITS.items() if bits & bit)

    def machine(self, index: int) -> Machine:
        """Everything the agent sends about machine `index`."""
        identity = self.identities.identity(index)
        return Machine(
            index=index,
            client_id=identity.client_id,
            hostname=identity.hostname,
            user_agent=identity.user_agent,
            edition=self.edition(index),
            language=self.language(index),
            enterprise=self.enterprise(index),
            installed=self.installed_updates(index),
        )

    def mark_installed(self, index: int, update: str) -> None:
        self.installed[index] |= UPDATE_BITS[update]

    def next_interval(self, index: int, due: float) -> float:
        """The detection interval that follows the check-in due at scenario second `due`."""
        return detection_interval(self.spec.seed, index, int(due) & 0xFFFFFFFF)

    def installed_count(self, update: str) -> int:
        return int(np.count_nonzero(self.installed & UPDATE_BITS[update]))
