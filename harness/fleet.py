"""The fleet: N machines as rows of a few bytes in numpy arrays.

Static attributes (edition, language, enterprise management) are pure functions of
(seed, index) and cost no memory. Dynamic state is one float32 due time and one byte of
installed-update bits per machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.domain import DETECTION_HOURS, DETECTION_JITTER, language
from harness.hashing import unit, unit_array
from harness.identity import IdentityPool
from harness.scenario import UPDATES, FleetSpec

_SALT_EDITION, _SALT_LANGUAGE, _SALT_ENTERPRISE, _SALT_PHASE, _SALT_INTERVAL = 1, 2, 3, 4, 5
_DETECTION_S = DETECTION_HOURS * 3600
UPDATE_BITS = {update: 1 << i for i, update in enumerate(UPDATES)}


@dataclass(frozen=True)
class Partition:
    """Worker `index` of `count` owns the machines whose global index % count == index."""

    index: int = 0
    count: int = 1


WHOLE_FLEET = Partition()


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


def detection_intervals(seed: int, indices: np.ndarray, due: np.ndarray) -> np.ndarray:
    """detection_interval over arrays of global indices and due times (scenario seconds)."""
    keys = (due.astype(np.int64).astype(np.uint64) & np.uint64(0xFFFFFFFF)) << np.uint64(32)
    return _DETECTION_S * (1.0 - DETECTION_JITTER * unit_array(seed, _SALT_INTERVAL,
                                                                indices.astype(np.uint64) ^ keys))


class Fleet:
    """The machines of one process (its partition), with their schedule and update state.

    Arrays are indexed by *local* index i, the machine with global index partition.index +
    i * partition.count; every attribute, identity and interval is drawn from the global index, so
    the union of W partitions is exactly the fleet of one process.
    """

    def __init__(self, spec: FleetSpec, partition: Partition = WHOLE_FLEET) -> None:
        self.spec = spec
        self.partition = partition
        indices = self.global_indices()
        first_interval = _DETECTION_S * (1.0 - DETECTION_JITTER * unit_array(spec.seed, _SALT_INTERVAL, indices))
        # A random phase in the first cycle: machines were switched on at arbitrary times.
        phase = unit_array(spec.seed, _SALT_PHASE, indices)
        self.next_check = (first_interval * phase).astype(np.float32)
        self.installed = np.zeros(len(indices), dtype=np.uint8)
        self._language_codes = tuple(code for code, _ in spec.languages)
        self._language_bounds = np.cumsum([share for _, share in spec.languages])
        self.identities = IdentityPool(spec.seed)

    def __len__(self) -> int:
        return len(self.next_check)

    def global_index(self, local: int) -> int:
        return self.partition.index + local * self.partition.count

    def global_indices(self) -> np.ndarray:
        """The global index of every machine of this partition, by local index."""
        return np.arange(self.partition.index, self.spec.machines, self.partition.count, dtype=np.uint32)

    def utc_offsets_s(self, indices: np.ndarray) -> np.ndarray:
        """Each global index's time zone (its language's region) as seconds from UTC."""
        offsets = np.array([language(code).utc_offset_hours * 3600.0 for code in self._language_codes])
        return offsets[self.language_positions(indices)]

    def home_mask(self, indices: np.ndarray) -> np.ndarray:
        """Which of these global indices are XP Home machines (the rest are Pro)."""
        return unit_array(self.spec.seed, _SALT_EDITION, indices) < self.spec.home_share

    def language_positions(self, indices: np.ndarray) -> np.ndarray:
        """The position in spec.languages of each global index's language."""
        pick = unit_array(self.spec.seed, _SALT_LANGUAGE, indices) * self._language_bounds[-1]
        return np.minimum(np.searchsorted(self._language_bounds, pick, side="right"), len(self._language_codes) - 1)

    def enterprise_mask(self, indices: np.ndarray) -> np.ndarray:
        return unit_array(self.spec.seed, _SALT_ENTERPRISE, indices) < self.spec.enterprise_share

    def edition(self, index: int) -> str:
        return "home" if unit(self.spec.seed, _SALT_EDITION, index) < self.spec.home_share else "pro"

    def language(self, index: int) -> str:
        pick = unit(self.spec.seed, _SALT_LANGUAGE, index) * self._language_bounds[-1]
        position = int(np.searchsorted(self._language_bounds, pick, side="right"))
        return self._language_codes[min(position, len(self._language_codes) - 1)]

    def enterprise(self, index: int) -> bool:
        return unit(self.spec.seed, _SALT_ENTERPRISE, index) < self.spec.enterprise_share

    def installed_updates(self, local: int) -> frozenset[str]:
        bits = int(self.installed[local])
        return frozenset(update for update, bit in UPDATE_BITS.items() if bits & bit)

    def machine(self, local: int) -> Machine:
        """Everything the agent sends about the machine at local index `local`."""
        index = self.global_index(local)
        identity = self.identities.identity(index)
        return Machine(
            index=index,
            client_id=identity.client_id,
            hostname=identity.hostname,
            user_agent=identity.user_agent,
            edition=self.edition(index),
            language=self.language(index),
            enterprise=self.enterprise(index),
            installed=self.installed_updates(local),
        )

    def mark_installed(self, local: int, update: str) -> None:
        self.installed[local] |= UPDATE_BITS[update]

    def next_interval(self, local: int, due: float) -> float:
        """The detection interval that follows the check-in due at scenario second `due`."""
        return detection_interval(self.spec.seed, self.global_index(local), int(due) & 0xFFFFFFFF)
