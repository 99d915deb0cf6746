"""The fleet: N machines, each a few bytes of state in numpy arrays.

Static attributes (edition, language and its time zone, enterprise management, Automatic Updates
setting, connection class, online profile, the shift of its online hours, its boot delay) are pure
functions of (seed, index), sliced out of two 64-bit hashes: they cost no memory and are the same on
every run and every worker. Dynamic state is one status byte per machine (installed updates, where
the machine stands in an update's download and install, its consecutive failures); its due time
lives in the schedule (harness/load/schedule.py), six bytes more.

Times are scenario seconds from the timeline's start; local times are seconds since the Unix epoch
shifted by the machine's time zone and its personal shift of up to an hour.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import NamedTuple

import numpy as np

from harness.config.schema import FleetSpec
from harness.config.world import AU_SETTINGS, CONNECTIONS, DETECTION_HOURS, DETECTION_JITTER, UPDATES, language
from harness.model import online_hours as online
from harness.model.hashing import mix64, mix64_array, unit, unit_array
from harness.model.identity import IdentityPool

_SALT_STATIC_A, _SALT_STATIC_B, _SALT_PHASE, _SALT_INTERVAL, _SALT_USER = 1, 2, 4, 5, 6
_DETECTION_S = DETECTION_HOURS * 3600
BOOT_DELAY_S = (120.0, 600.0)  # AU detects a few minutes after the service starts when a check is overdue
INSTALL_HOUR = 3  # ScheduledInstallTime: 03:00 local
RESCHEDULE_WAIT_S = (60.0, 300.0)  # a missed scheduled install runs 1-5 minutes after the next boot
USER_DELAY_S = (60.0, 1800.0)  # a user answers the notification balloon within half an hour of sitting down
MAX_SHIFT_S = 3600.0
_SHIFT_BINS = 120  # the census counts shifts to the minute
# Bytes per second a background (BITS) download gets: ours, for a 56k modem and 2004 DSL/cable.
BANDWIDTH = {"dialup": 4_000.0, "broadband": 100_000.0}

# The status byte: bits 0-1 installed updates, 2-3 phase, 4 the update the phase is about,
# 5-7 consecutive failed check-ins (for back-off), capped at 7: by then back-off has reached its cap.
UPDATE_BITS = {update: 1 << i for i, update in enumerate(UPDATES)}
_PHASE_SHIFT, _PHASE_MASK, _CURRENT_BIT, _FAIL_SHIFT, _FAIL_MASK = 2, 0b1100, 1 << 4, 5, 0b1110_0000
IDLE, WAITING_FOR_USER, DOWNLOADING, INSTALL_PENDING = range(4)
BYTES_PER_MACHINE_STATE = 1
BUILD_CHUNK = 1 << 18  # machines per step while building arrays over the fleet: bounds the temporaries


class WakeRule(IntEnum):
    """How a rescheduled machine's next due time follows from the earliest time it gives (`Fleet.plan`)."""

    AFTER_DETECTION = 0  # the next Automatic Updates detection, 17.6-22 h on
    WHEN_ON = 1  # the first moment the machine is on
    AT_INSTALL_TIME = 2  # the scheduled install time (03:00 local), or soon after the next boot
    WHEN_USER_ANSWERS = 3  # when the user, back at the machine, answers the notification
_INSTALLED_MASK = sum(UPDATE_BITS.values())
_INSTALLED = tuple(frozenset(update for update, bit in UPDATE_BITS.items() if bits & bit)
                   for bits in range(_INSTALLED_MASK + 1))  # by the status byte's installed bits


@dataclass(frozen=True)
class Partition:
    """Worker `index` of `count` owns the machines whose global index % count == index."""

    index: int = 0
    count: int = 1


WHOLE_FLEET = Partition()


class Machine(NamedTuple):
    """One machine as the agent and the protocol adapter see it (a named tuple: built on every check-in)."""

    index: int
    client_id: str
    hostname: str
    mac: str
    locale: str
    user_agent: str
    edition: str
    language: str
    enterprise: bool
    au_setting: str
    connection: str
    installed: frozenset[str]


@dataclass(frozen=True)
class OnlineCensus:
    """Machines grouped by what decides whether they are on: profile and local offset (shift to the minute)."""

    counts: np.ndarray
    profiles: np.ndarray
    offsets_s: np.ndarray  # scenario second to the local second the profile is read at

    def online_now(self, t: float) -> int:
        """How many of the machines are switched on at scenario second t."""
        return int(self.counts[online.online(self.profiles, t + self.offsets_s)].sum())


def _field(words: np.ndarray, k: int) -> np.ndarray:
    """The k-th 16-bit slice of each hash word, as a uniform float in (0, 1)."""
    return (((words >> np.uint64(16 * k)) & np.uint64(0xFFFF)).astype(np.float64) + 0.5) / 65536.0


def _field1(word: int, k: int) -> float:
    return (((word >> (16 * k)) & 0xFFFF) + 0.5) / 65536.0


class _Mix:
    """The cumulative shares of a mix, to turn uniforms into positions in it (an array, or one at a time)."""

    def __init__(self, shares: list[float]) -> None:
        self.bounds = np.cumsum(shares)
        self._cuts = tuple(self.bounds.tolist())  # bisect on a tuple: 6x faster than numpy for one value
        self._last = len(self._cuts) - 1

    def pick(self, uniform: np.ndarray) -> np.ndarray:
        return np.minimum(np.searchsorted(self.bounds, uniform * self.bounds[-1], side="right"), self._last)

    def pick1(self, uniform: float) -> int:
        return min(bisect_right(self._cuts, uniform * self._cuts[-1]), self._last)


def detection_interval(seed: int, index: int, cycle_key: int) -> float:
    """Seconds to the next detection: 22 h minus a uniform 0-20 %, drawn anew for each cycle."""
    return _DETECTION_S * (1.0 - DETECTION_JITTER * unit(seed, _SALT_INTERVAL, index ^ (cycle_key << 32)))


def detection_intervals(seed: int, indices: np.ndarray, due: np.ndarray) -> np.ndarray:
    """detection_interval over arrays of global indices and due times (scenario seconds)."""
    keys = (due.astype(np.int64).astype(np.uint64) & np.uint64(0xFFFFFFFF)) << np.uint64(32)
    return _DETECTION_S * (1.0 - DETECTION_JITTER * unit_array(seed, _SALT_INTERVAL,
                                                                indices.astype(np.uint64) ^ keys))


class Fleet:
    """The machines of one process (its partition), with their static attributes and update state.

    Arrays are indexed by *local* index i, the machine with global index partition.index +
    i * partition.count; every attribute, identity and interval is drawn from the global index, so
    the union of W partitions is exactly the fleet of one process.
    """

    def __init__(self, spec: FleetSpec, origin: datetime, partition: Partition = WHOLE_FLEET) -> None:
        self.spec = spec
        self.origin_epoch = origin.timestamp()
        self.partition = partition
        self.size = len(range(partition.index, spec.machines, partition.count))
        self.status = np.zeros(self.size, dtype=np.uint8)
        self._language_codes = tuple(code for code, _ in spec.languages)
        self._language_mix = _Mix([share for _, share in spec.languages])
        self._utc_offsets = np.array([language(code).utc_offset_hours * 3600.0 for code in self._language_codes])
        self._au_mix = _Mix([share for _, share in spec.au_settings])
        self._online_mix = _Mix([share for _, share in spec.online_profiles])
        self._online_numbers = np.array([online.PROFILES.index(name) for name, _ in spec.online_profiles])
        self._connection_mix = _Mix([share for _, share in spec.connections])
        self.identities = IdentityPool(spec.seed)

    def __len__(self) -> int:
        return self.size

    def global_index(self, local: int) -> int:
        return self.partition.index + local * self.partition.count

    def global_indices(self, first: int = 0, stop: int | None = None) -> np.ndarray:
        """The global index of the machines with local index first..stop-1 (all by default)."""
        stop = self.size if stop is None else min(stop, self.size)
        return self.global_indices_of(np.arange(first, stop, dtype=np.uint32))

    # -- static attributes, vectorised over global indices ------------------------------------------
    def home_mask(self, indices: np.ndarray) -> np.ndarray:
        """Which of these global indices are XP Home machines (the rest are Pro)."""
        return _field(mix64_array(self.spec.seed, _SALT_STATIC_A, indices), 0) < self.spec.home_share

    def enterprise_mask(self, indices: np.ndarray) -> np.ndarray:
        return _field(mix64_array(self.spec.seed, _SALT_STATIC_A, indices), 1) < self.spec.enterprise_share

    def au_codes(self, indices: np.ndarray) -> np.ndarray:
        """Each machine's Automatic Updates setting, as its position in AU_SETTINGS."""
        positions = self._au_mix.pick(_field(mix64_array(self.spec.seed, _SALT_STATIC_A, indices), 2))
        return np.array([AU_SETTINGS.index(name) for name, _ in self.spec.au_settings])[positions]

    def connection_codes(self, indices: np.ndarray) -> np.ndarray:
        positions = self._connection_mix.pick(_field(mix64_array(self.spec.seed, _SALT_STATIC_A, indices), 3))
        return np.array([CONNECTIONS.index(name) for name, _ in self.spec.connections])[positions]

    def language_positions(self, indices: np.ndarray) -> np.ndarray:
        """The position in spec.languages of each global index's language."""
        return self._language_mix.pick(_field(mix64_array(self.spec.seed, _SALT_STATIC_B, indices), 0))

    def profiles(self, indices: np.ndarray) -> np.ndarray:
        """Each machine's online profile, as its position in online.PROFILES."""
        word = mix64_array(self.spec.seed, _SALT_STATIC_B, indices)
        return self._online_numbers[self._online_mix.pick(_field(word, 1))]

    def utc_offsets_s(self, indices: np.ndarray) -> np.ndarray:
        """Each global index's time zone (its language's region) as seconds from UTC."""
        return self._utc_offsets[self.language_positions(indices)]

    def _zone_offsets_s(self, indices: np.ndarray) -> np.ndarray:
        """Scenario second to local epoch seconds (the wall clock in the machine's time zone)."""
        return self.origin_epoch + self.utc_offsets_s(indices)

    def _shifts_s(self, indices: np.ndarray) -> np.ndarray:
        """How much later than its profile says this machine's user switches on and off."""
        return (2 * _field(mix64_array(self.spec.seed, _SALT_STATIC_B, indices), 2) - 1) * MAX_SHIFT_S

    def _local_offsets_s(self, indices: np.ndarray) -> np.ndarray:
        """Scenario second to the local epoch second the online profile is read at (shifted)."""
        return self._zone_offsets_s(indices) - self._shifts_s(indices)

    def _boot_delays_s(self, indices: np.ndarray) -> np.ndarray:
        low, high = BOOT_DELAY_S
        return low + (high - low) * _field(mix64_array(self.spec.seed, _SALT_STATIC_B, indices), 3)

    def checks_for_updates(self, indices: np.ndarray) -> np.ndarray:
        """False for the machines whose Automatic Updates are off: they never check."""
        return self.au_codes(indices) != AU_SETTINGS.index("off")

    def online(self, indices: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Whether each machine is switched on at scenario second t."""
        return online.online(self.profiles(indices), t + self._local_offsets_s(indices))

    def online_census(self) -> OnlineCensus:
        """Counts of this partition's machines by time zone, profile and shift (to the minute), built chunk by chunk."""
        groups = len(self._language_codes) * len(online.PROFILES) * _SHIFT_BINS
        counts = np.zeros(groups, dtype=np.int64)
        for first in range(0, self.size, BUILD_CHUNK):
            indices = self.global_indices(first, first + BUILD_CHUNK)
            word = mix64_array(self.spec.seed, _SALT_STATIC_B, indices)
            shift_bin = np.minimum((_field(word, 2) * _SHIFT_BINS).astype(np.int64), _SHIFT_BINS - 1)
            group = (self.language_positions(indices) * len(online.PROFILES) + self.profiles(indices)) * _SHIFT_BINS
            counts += np.bincount(group + shift_bin, minlength=groups)
        language, profile, shift_bin = np.unravel_index(np.arange(groups),
                                                       (len(self._language_codes), len(online.PROFILES), _SHIFT_BINS))
        shift = (2 * (shift_bin + 0.5) / _SHIFT_BINS - 1) * MAX_SHIFT_S
        present = counts > 0
        return OnlineCensus(counts[present], profile[present],
                            (self.origin_epoch + self._utc_offsets[language] - shift)[present])

    # -- the schedule, vectorised ---------------------------------------------------------------------
    def checkable_at(self, indices: np.ndarray, earliest: np.ndarray) -> np.ndarray:
        """When each machine checks, asked to at `earliest`: then if it is on, else a few minutes after it boots."""
        offsets = self._local_offsets_s(indices)
        local = earliest + offsets
        boots = online.next_online(self.profiles(indices), local)
        return np.where(boots > local, boots + self._boot_delays_s(indices) - offsets, earliest)

    def first_checks(self, indices: np.ndarray) -> np.ndarray:
        """Each machine's first check: a random phase in its first cycle (inf for machines that never check)."""
        seed = self.spec.seed
        first = _DETECTION_S * (1.0 - DETECTION_JITTER * unit_array(seed, _SALT_INTERVAL, indices))
        due = self.checkable_at(indices, first * unit_array(seed, _SALT_PHASE, indices))
        return np.where(self.checks_for_updates(indices), due, np.inf)

    def next_checks(self, indices: np.ndarray, due: np.ndarray) -> np.ndarray:
        """The check that follows the one due at `due`: one detection interval on, when the machine is on."""
        return self.checkable_at(indices, due + detection_intervals(self.spec.seed, indices, due))

    def install_times(self, indices: np.ndarray, ready: np.ndarray) -> np.ndarray:
        """When a download finished at `ready` is installed, by the machine's AU setting.

        Automatic: at the next 03:00 local if the machine is on then, else a few minutes after its
        next boot. Download-and-notify and notify: when its user next sits down and answers.
        """
        zone = self._zone_offsets_s(indices)
        local = ready + zone
        three = local + np.mod(INSTALL_HOUR * 3600 - local, online.DAY_S) - zone
        low, high = RESCHEDULE_WAIT_S
        wait = low + (high - low) * unit_array(self.spec.seed, _SALT_USER, indices)
        offsets = self._local_offsets_s(indices)
        boots = online.next_online(self.profiles(indices), three + offsets)
        scheduled = np.where(boots > three + offsets, boots + wait - offsets, three)
        automatic = self.au_codes(indices) == AU_SETTINGS.index("automatic")
        return np.where(automatic, scheduled, self.user_answers(indices, ready))

    def user_answers(self, indices: np.ndarray, t: np.ndarray) -> np.ndarray:
        """When the machine's user next sits down after t and answers a notification."""
        offsets = self._local_offsets_s(indices)
        low, high = USER_DELAY_S
        delay = low + (high - low) * unit_array(self.spec.seed, _SALT_USER, indices)
        return online.next_session(self.profiles(indices), t + offsets) + delay - offsets

    def download_seconds(self, indices: np.ndarray, real_bytes: float) -> np.ndarray:
        """How long a background download of `real_bytes` takes on each machine's connection."""
        bandwidth = np.array([BANDWIDTH[name] for name in CONNECTIONS])[self.connection_codes(indices)]
        return real_bytes / bandwidth

    def plan(self, rule: WakeRule, local: np.ndarray, earliest: np.ndarray) -> np.ndarray:
        """Due times of rescheduled machines (local indices) by their wake rule."""
        indices = self.global_indices_of(local)
        if rule == WakeRule.AFTER_DETECTION:
            return self.next_checks(indices, earliest)
        if rule == WakeRule.AT_INSTALL_TIME:
            return self.install_times(indices, earliest)
        if rule == WakeRule.WHEN_USER_ANSWERS:
            return self.user_answers(indices, earliest)
        return self.checkable_at(indices, earliest)

    def global_indices_of(self, local: np.ndarray) -> np.ndarray:
        return local.astype(np.uint32) * np.uint32(self.partition.count) + np.uint32(self.partition.index)

    # -- one machine, for the agent ------------------------------------------------------------------
    def machine(self, local: int) -> Machine:
        """Everything the agent sends about the machine at local index `local`."""
        index = self.global_index(local)
        seed = self.spec.seed
        word_a, word_b = mix64(seed, _SALT_STATIC_A, index), mix64(seed, _SALT_STATIC_B, index)
        code = self._language_codes[self._language_mix.pick1(_field1(word_b, 0))]
        identity = self.identities.identity(index, code)
        return Machine(
            index=index,
            client_id=identity.client_id,
            hostname=identity.hostname,
            mac=identity.mac,
            locale=identity.locale,
            user_agent=identity.user_agent,
            edition="home" if _field1(word_a, 0) < self.spec.home_share else "pro",
            language=code,
            enterprise=_field1(word_a, 1) < self.spec.enterprise_share,
            au_setting=self._au_setting_of(word_a),
            connection=self.spec.connections[self._connection_mix.pick1(_field1(word_a, 3))][0],
            installed=self.installed_updates(local),
        )

    def au_setting(self, local: int) -> str:
        return self._au_setting_of(mix64(self.spec.seed, _SALT_STATIC_A, self.global_index(local)))

    def _au_setting_of(self, word_a: int) -> str:
        return self.spec.au_settings[self._au_mix.pick1(_field1(word_a, 2))][0]

    def warm_identities(self) -> None:
        """Build the identity pools of every language now, not during the first due check-ins."""
        for code in self._language_codes:
            self.identities.identity(0, code)

    # -- the status word -------------------------------------------------------------------------------
    def installed_updates(self, local: int) -> frozenset[str]:
        return _INSTALLED[self.status.item(local) & _INSTALLED_MASK]

    def checks_in(self, local: np.ndarray) -> np.ndarray:
        """Which of these machines wake next for a check-in (idle, or their user answering), not a download's end."""
        return (self.status[local] & _PHASE_MASK) >> _PHASE_SHIFT <= WAITING_FOR_USER

    def idle_mask(self) -> np.ndarray:
        """Which machines are between updates (no download or install under way)."""
        return (self.status & _PHASE_MASK) == 0

    def installed_mask(self, update: str) -> np.ndarray:
        return (self.status & UPDATE_BITS[update]) != 0

    def mark_installed(self, local: int, update: str) -> None:
        self.status[local] |= UPDATE_BITS[update]

    def phase(self, local: int) -> tuple[int, str]:
        """(phase, the update it is about) of the machine's update in progress."""
        word = int(self.status[local])
        return (word & _PHASE_MASK) >> _PHASE_SHIFT, UPDATES[1 if word & _CURRENT_BIT else 0]

    def set_phase(self, local: int, phase: int, update: str = UPDATES[0]) -> None:
        word = int(self.status[local]) & ~(_PHASE_MASK | _CURRENT_BIT)
        word |= phase << _PHASE_SHIFT | (_CURRENT_BIT if UPDATES.index(update) else 0)
        self.status[local] = word

    def failures(self, local: int) -> int:
        return (int(self.status[local]) & _FAIL_MASK) >> _FAIL_SHIFT

    def set_failures(self, local: int, count: int) -> None:
        word = int(self.status[local]) & ~_FAIL_MASK
        self.status[local] = word | (min(count, 7) << _FAIL_SHIFT)
