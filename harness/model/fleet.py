"""The fleet: N machines, each a few bytes of state in numpy arrays.

Static attributes (the world's named attributes such as edition or platform, language and its time
zone, enterprise management, install policy, connection class, online profile, the shift of its
online hours, its boot delay) are pure functions of (seed, index), sliced out of 64-bit hashes: they
cost no memory and are the same on every run and every worker. Dynamic state is one 16-bit status word
per machine (installed updates as a bit set over the world's catalog, where the machine stands in an
update's download and install and which update that is, its consecutive failures); its due time
lives in the schedule (harness/load/schedule.py), six bytes more.

Times are scenario seconds from the timeline's start; local times are seconds since the Unix epoch
shifted by the machine's time zone (with its daylight saving, harness/model/zones.py) and its
personal shift of up to an hour.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import NamedTuple

import numpy as np

from harness.config.schema import FleetSpec
from harness.config.world import INSTALL_POLICIES, World, default_world
from harness.model import online_hours as online
from harness.model.hashing import mix64, mix64_array, unit_array
from harness.model.identity import IdentityPool
from harness.model.zones import ZoneClock

_SALT_STATIC_A, _SALT_STATIC_B, _SALT_PHASE, _SALT_INTERVAL, _SALT_USER, _SALT_STATIC_C = 1, 2, 4, 5, 6, 7
MAX_SHIFT_S = 3600.0
_SHIFT_BINS = 120  # the census counts shifts to the minute

# The status word: bits 0-7 installed updates (by position in the world's catalog), 8-9 phase,
# 10-12 the update the phase is about, 13-15 consecutive failed check-ins (for back-off), capped at
# 7: by then back-off has reached its cap.
_INSTALLED_MASK, _PHASE_SHIFT, _PHASE_MASK = 0xFF, 8, 0x300
_CURRENT_SHIFT, _CURRENT_MASK, _FAIL_SHIFT, _FAIL_MASK = 10, 0x1C00, 13, 0xE000
IDLE, WAITING_FOR_USER, DOWNLOADING, INSTALL_PENDING = range(4)
STATUS_DTYPE = np.uint16
BYTES_PER_MACHINE_STATE = np.dtype(STATUS_DTYPE).itemsize
BUILD_CHUNK = 1 << 18  # machines per step while building arrays over the fleet: bounds the temporaries
AUTOMATIC, DOWNLOAD_NOTIFY, NOTIFY, OFF = (INSTALL_POLICIES.index(name) for name in INSTALL_POLICIES)


class WakeRule(IntEnum):
    """How a rescheduled machine's next due time follows from the earliest time it gives (`Fleet.plan`)."""

    AFTER_DETECTION = 0  # the next periodic check, one check interval on
    WHEN_ON = 1  # the first moment the machine is on
    AT_INSTALL_TIME = 2  # the scheduled install time (the install hour, local), or soon after the next boot
    WHEN_USER_ANSWERS = 3  # when the user, back at the machine, answers the notification


@dataclass(frozen=True)
class Partition:
    """Worker `index` of `count` owns the machines whose global index % count == index."""

    index: int = 0
    count: int = 1

    def size_of(self, machines: int) -> int:
        """How many of a fleet of `machines` this partition owns."""
        return len(range(self.index, machines, self.count))

    def global_indices(self, local: np.ndarray) -> np.ndarray:
        """The global index of the machines with these local indices."""
        return local.astype(np.uint32) * np.uint32(self.count) + np.uint32(self.index)


WHOLE_FLEET = Partition()


class Machine(NamedTuple):
    """One machine as the agent and the protocol adapter see it (a named tuple: built on every check-in)."""

    index: int
    client_id: str
    hostname: str
    mac: str
    locale: str
    user_agent: str
    attributes: tuple[tuple[str, str], ...]  # (name, value) of each of the world's attributes
    language: str
    enterprise: bool
    install_policy: str
    connection: str
    installed: frozenset[str]
    by_hand: bool = False  # its user checks by hand (at the update site), not its client on its schedule


@dataclass(frozen=True)
class OnlineCensus:
    """Machines grouped by what decides whether they are on: profile, time zone and shift (to the minute)."""

    counts: np.ndarray
    profiles: np.ndarray
    zones: np.ndarray
    shifts_s: np.ndarray
    origin_s: float
    zone_clock: ZoneClock

    def online_now(self, t: float) -> int:
        """How many of the machines are switched on at scenario second t."""
        epoch = self.origin_s + t
        local = epoch + self.zone_clock.offsets_s(self.zones, epoch) - self.shifts_s
        return int(self.counts[online.online(self.profiles, local)].sum())


def _field(words: np.ndarray, k: int) -> np.ndarray:
    """The k-th 16-bit slice of each hash word, as a uniform float in (0, 1)."""
    return (((words >> np.uint64(16 * k)) & np.uint64(0xFFFF)).astype(np.float64) + 0.5) / 65536.0


def _bits(words: np.ndarray, k: int) -> np.ndarray:
    """The k-th 16-bit slice of each hash word, as an integer (the draw `_field` turns into a uniform)."""
    return ((words >> np.uint64(16 * k)) & np.uint64(0xFFFF)).astype(np.intp)


_FIELD_VALUES = (np.arange(1 << 16) + 0.5) / 65536.0  # `_field`'s uniform for each 16-bit slice


def _field1(word: int, k: int) -> float:
    return (((word >> (16 * k)) & 0xFFFF) + 0.5) / 65536.0


class _Mix:
    """The cumulative shares of a mix, to turn uniforms into positions in it (an array, or one at a time)."""

    def __init__(self, shares: list[float]) -> None:
        self.bounds = np.cumsum(shares)
        self._cuts = tuple(self.bounds.tolist())  # bisect on a tuple: 6x faster than numpy for one value
        self._last = len(self._cuts) - 1
        self._table = self.pick(_FIELD_VALUES)  # the pick for every 16-bit draw: a lookup instead of a search

    def pick(self, uniform: np.ndarray) -> np.ndarray:
        return np.minimum(np.searchsorted(self.bounds, uniform * self.bounds[-1], side="right"), self._last)

    def pick_bits(self, bits: np.ndarray) -> np.ndarray:
        """`pick` of the uniforms `_field` makes of these 16-bit slices (`_bits`)."""
        return self._table[bits]

    def pick1(self, uniform: float) -> int:
        return min(bisect_right(self._cuts, uniform * self._cuts[-1]), self._last)


# Where each attribute's draw comes from: (hash salt, 16-bit field). The first is where 2004's
# edition always came from, so a fleet seed keeps its machines' editions.
_ATTRIBUTE_FIELDS = ((_SALT_STATIC_A, 0), (_SALT_STATIC_C, 1), (_SALT_STATIC_C, 2), (_SALT_STATIC_C, 3))


class Fleet:
    """The machines of one process (its partition), with their static attributes and update state.

    Arrays are indexed by *local* index i, the machine with global index partition.index +
    i * partition.count; every attribute, identity and interval is drawn from the global index, so
    the union of W partitions is exactly the fleet of one process.
    """

    def __init__(self, spec: FleetSpec, origin: datetime, partition: Partition = WHOLE_FLEET,
                 world: World | None = None) -> None:
        self.world = world = world or default_world()
        self.spec = spec
        self.origin_epoch = origin.timestamp()
        self.partition = partition
        self.size = partition.size_of(spec.machines)
        self.status = np.zeros(self.size, dtype=STATUS_DTYPE)
        population, client = world.population, world.client
        languages = spec.languages or tuple((code, lang.share) for code, lang in population.languages)
        self._language_codes = tuple(code for code, _ in languages)
        self._language_mix = _Mix([share for _, share in languages])
        self._fakers = tuple(world.language(code).faker for code in self._language_codes)
        self.zone_names = tuple(dict.fromkeys(zone for code in self._language_codes
                                              for zone, _ in world.language(code).zones))
        self.zone_clock = ZoneClock(self.zone_names, self.origin_epoch)
        # Every language's zone mix in one sorted list: a machine of language L whose draw is u has the zone
        # found for L + u; worked out once for every language and 16-bit draw.
        keys: list[float] = []
        self._zone_numbers = np.array([self.zone_names.index(zone) for code in self._language_codes
                                       for zone, _ in world.language(code).zones])
        for position, code in enumerate(self._language_codes):
            cuts = np.cumsum([share for _, share in world.language(code).zones])
            keys.extend([position, *(position + cuts[:-1] / cuts[-1]).tolist()])
        languages = np.arange(len(self._language_codes))[:, None]
        self._zone_table = self._zone_numbers[np.searchsorted(np.array(keys), languages + _FIELD_VALUES, side="right")
                                              - 1].astype(np.int16)  # [language, 16-bit draw]
        given = dict(spec.attributes)
        self.attribute_names = world.attribute_names
        self._attributes = []
        for name, default in population.attributes:
            shares = given.get(name) or default
            self._attributes.append((name, tuple(value for value, _ in shares), _Mix([share for _, share in shares])))
        # Managed machines are drawn among those with the world's `managed` attribute values only (XP Home
        # could not join a domain): the chance among them is raised so the fleet's share stays the scenario's.
        self._managed = tuple((name, self.attribute_values(name).index(value),
                               dict(dict(self._attribute_shares())[name])[value]) for name, value in population.managed)
        policies = spec.install_policies or population.install
        self._policy_mix = _Mix([share for _, share in policies])
        self._policy_numbers = np.array([INSTALL_POLICIES.index(name) for name, _ in policies])
        self._policy_names = tuple(name for name, _ in policies)
        profiles = spec.online_profiles or population.online
        self._online_mix = _Mix([share for _, share in profiles])
        self._online_numbers = np.array([online.PROFILES.index(name) for name, _ in profiles])
        connections = spec.connections or tuple((name, c.share) for name, c in population.connections)
        self._connection_names = tuple(name for name, _ in connections)
        self._connection_mix = _Mix([share for _, share in connections])
        bandwidth = dict(population.connections)
        self._bandwidths = np.array([bandwidth[name].bandwidth for name in self._connection_names])
        self.client = client
        self.updates = world.update_names
        self._update_bits = {update: 1 << i for i, update in enumerate(self.updates)}
        self._installed = tuple(frozenset(u for u, bit in self._update_bits.items() if bits & bit)
                                for bits in range(1 << len(self.updates)))
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
    def _word(self, salt: int, indices: np.ndarray) -> np.ndarray:
        return mix64_array(self.spec.seed, salt, indices)

    def attribute_codes(self, name: str, indices: np.ndarray) -> np.ndarray:
        """Each machine's value of attribute `name`, as its position in the fleet's shares of it."""
        position = self.attribute_names.index(name)
        salt, k = _ATTRIBUTE_FIELDS[position]
        return self._attributes[position][2].pick_bits(_bits(self._word(salt, indices), k))

    def attribute_values(self, name: str) -> tuple[str, ...]:
        """The values of attribute `name`, in the order attribute_codes numbers them."""
        return self._attributes[self.attribute_names.index(name)][1]

    def _attribute_shares(self) -> tuple[tuple[str, tuple[tuple[str, float], ...]], ...]:
        return tuple((name, tuple(zip(values, np.diff(mix.bounds, prepend=0.0).tolist(), strict=True)))
                     for name, values, mix in self._attributes)

    def enterprise_mask(self, indices: np.ndarray) -> np.ndarray:
        """Which machines are enterprise-managed."""
        share, uniform = self.spec.enterprise_share, _field(self._word(_SALT_STATIC_A, indices), 1)
        managed = np.ones(len(indices), dtype=bool)
        for name, code, among in self._managed:
            managed &= self.attribute_codes(name, indices) == code
            share /= among
        return managed & (uniform < share)

    def policy_codes(self, indices: np.ndarray) -> np.ndarray:
        """Each machine's install policy, as its position in INSTALL_POLICIES."""
        return self._policy_numbers[self._policy_mix.pick_bits(_bits(self._word(_SALT_STATIC_A, indices), 2))]

    def bandwidths(self, indices: np.ndarray) -> np.ndarray:
        """Bytes per second each machine's background downloads get."""
        return self._bandwidths[self._connection_mix.pick_bits(_bits(self._word(_SALT_STATIC_A, indices), 3))]

    def language_positions(self, indices: np.ndarray) -> np.ndarray:
        """The position in the fleet's languages of each global index's language."""
        return self._language_mix.pick_bits(_bits(self._word(_SALT_STATIC_B, indices), 0))

    def language_codes(self) -> tuple[str, ...]:
        return self._language_codes

    def profiles(self, indices: np.ndarray) -> np.ndarray:
        """Each machine's online profile, as its position in online.PROFILES."""
        return self._online_numbers[self._online_mix.pick_bits(_bits(self._word(_SALT_STATIC_B, indices), 1))]

    def zones(self, indices: np.ndarray) -> np.ndarray:
        """Each machine's time zone, as its position in zone_names (drawn among its language's zones)."""
        return self._zone_table[self.language_positions(indices), _bits(self._word(_SALT_STATIC_C, indices), 0)]

    def utc_offsets_s(self, indices: np.ndarray, t: np.ndarray | float) -> np.ndarray:
        """Each machine's time zone's offset from UTC at scenario second t (daylight saving included)."""
        return self.zone_clock.offsets_s(self.zones(indices), self.origin_epoch + t)

    def _zone_offsets_s(self, indices: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Scenario second t to local epoch seconds (the wall clock in the machine's time zone then)."""
        return self.origin_epoch + self.utc_offsets_s(indices, t)

    def _shifts_s(self, indices: np.ndarray) -> np.ndarray:
        """How much later than its profile says this machine's user switches on and off."""
        return (2 * _field(self._word(_SALT_STATIC_B, indices), 2) - 1) * MAX_SHIFT_S

    def _local_offsets_s(self, indices: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Scenario second t to the local epoch second the online profile is read at (shifted)."""
        return self._zone_offsets_s(indices, t) - self._shifts_s(indices)

    def _boot_delays_s(self, indices: np.ndarray) -> np.ndarray:
        low, high = self.client.boot_delay_s
        return low + (high - low) * _field(self._word(_SALT_STATIC_B, indices), 3)

    def checks_for_updates(self, indices: np.ndarray) -> np.ndarray:
        """False for the machines whose updates are off: they never check."""
        return self.policy_codes(indices) != OFF

    def online(self, indices: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Whether each machine is switched on at scenario second t."""
        return online.online(self.profiles(indices), t + self._local_offsets_s(indices, t))

    def online_census(self, pause: Callable[[], None] = lambda: None) -> OnlineCensus:
        """Counts of this partition's machines by time zone, profile and shift (to the minute), built chunk by
        chunk (`pause` called after each)."""
        zones, profiles = len(self.zone_names), len(online.PROFILES)
        groups = zones * profiles * _SHIFT_BINS
        counts = np.zeros(groups, dtype=np.int64)
        for first in range(0, self.size, BUILD_CHUNK):
            indices = self.global_indices(first, first + BUILD_CHUNK)
            shift_bin = np.minimum((_field(self._word(_SALT_STATIC_B, indices), 2) * _SHIFT_BINS).astype(np.int64),
                                   _SHIFT_BINS - 1)
            group = (self.zones(indices) * profiles + self.profiles(indices)) * _SHIFT_BINS
            counts += np.bincount(group + shift_bin, minlength=groups)
            pause()
        zone, profile, shift_bin = np.unravel_index(np.arange(groups), (zones, profiles, _SHIFT_BINS))
        shift = (2 * (shift_bin + 0.5) / _SHIFT_BINS - 1) * MAX_SHIFT_S
        present = counts > 0
        return OnlineCensus(counts[present], profile[present], zone[present], shift[present], self.origin_epoch,
                            self.zone_clock)

    # -- the schedule, vectorised ---------------------------------------------------------------------
    def check_intervals(self, indices: np.ndarray, due: np.ndarray) -> np.ndarray:
        """Seconds from the check due at `due` to the next: the period minus a random share, drawn anew each cycle."""
        keys = (due.astype(np.int64).astype(np.uint64) & np.uint64(0xFFFFFFFF)) << np.uint64(32)
        uniform = unit_array(self.spec.seed, _SALT_INTERVAL, indices.astype(np.uint64) ^ keys)
        return self.client.check_interval_s * (1.0 - self.client.check_jitter * uniform)

    def checkable_at(self, indices: np.ndarray, earliest: np.ndarray) -> np.ndarray:
        """When each machine checks, asked to at `earliest`: then if it is on, else a few minutes after it boots."""
        offsets = self._local_offsets_s(indices, earliest)
        local = earliest + offsets
        boots = online.next_online(self.profiles(indices), local)
        return np.where(boots > local, boots + self._boot_delays_s(indices) - offsets, earliest)

    def first_checks(self, indices: np.ndarray) -> np.ndarray:
        """Each machine's first check: a random phase in its first cycle (inf for machines that never check)."""
        seed, client = self.spec.seed, self.client
        first = client.check_interval_s * (1.0 - client.check_jitter * unit_array(seed, _SALT_INTERVAL, indices))
        due = self.checkable_at(indices, first * unit_array(seed, _SALT_PHASE, indices))
        return np.where(self.checks_for_updates(indices), due, np.inf)

    def earliest_first_checks(self, indices: np.ndarray) -> np.ndarray:
        """A lower bound of each machine's first check (`first_checks`) from one hash: its phase in the
        shortest first cycle, before it is on (the schedule files machines by it until it comes up)."""
        client = self.client
        return client.check_interval_s * (1.0 - client.check_jitter) * unit_array(self.spec.seed, _SALT_PHASE, indices)

    def next_checks(self, indices: np.ndarray, due: np.ndarray) -> np.ndarray:
        """The check that follows the one due at `due`: one check interval on, when the machine is on."""
        return self.checkable_at(indices, due + self.check_intervals(indices, due))

    def install_times(self, indices: np.ndarray, ready: np.ndarray) -> np.ndarray:
        """When a download finished at `ready` is installed, by the machine's install policy.

        Automatic: at the next install hour (local) if the machine is on then, else a few minutes
        after its next boot. Download-and-notify and notify: when its user next sits down and answers.
        """
        zone = self._zone_offsets_s(indices, ready)
        local = ready + zone
        at_hour = local + np.mod(self.client.install_hour * 3600 - local, online.DAY_S) - zone
        low, high = self.client.reschedule_wait_s
        wait = low + (high - low) * unit_array(self.spec.seed, _SALT_USER, indices)
        offsets = self._local_offsets_s(indices, at_hour)
        boots = online.next_online(self.profiles(indices), at_hour + offsets)
        scheduled = np.where(boots > at_hour + offsets, boots + wait - offsets, at_hour)
        automatic = self.policy_codes(indices) == AUTOMATIC
        return np.where(automatic, scheduled, self.user_answers(indices, ready))

    def user_answers(self, indices: np.ndarray, t: np.ndarray) -> np.ndarray:
        """When the machine's user next sits down after t and answers a notification."""
        offsets = self._local_offsets_s(indices, t)
        low, high = self.client.user_delay_s
        delay = low + (high - low) * unit_array(self.spec.seed, _SALT_USER, indices)
        return online.next_session(self.profiles(indices), t + offsets) + delay - offsets

    def downloaded_at(self, indices: np.ndarray, start: np.ndarray, real_bytes: float | np.ndarray) -> np.ndarray:
        """When a background download of `real_bytes` started at `start` is done: it takes what each machine's
        connection needs, and progresses only while the machine is on (as BITS does)."""
        offsets = self._local_offsets_s(indices, start)
        seconds = np.broadcast_to(real_bytes / self.bandwidths(indices), start.shape).astype(np.float64)
        return online.after_time_on(self.profiles(indices), start + offsets, seconds) - offsets

    def downloaded_at1(self, local: int, start: float, real_bytes: float) -> float:
        """downloaded_at of one machine, by its local index (for the agent)."""
        indices = self.global_indices_of(np.array([local]))
        return float(self.downloaded_at(indices, np.array([start]), real_bytes)[0])

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
        return self.partition.global_indices(local)

    # -- one machine, for the agent ------------------------------------------------------------------
    def machine(self, local: int) -> Machine:
        """Everything the agent sends about the machine at local index `local`."""
        index = self.global_index(local)
        seed = self.spec.seed
        word_a, word_b = mix64(seed, _SALT_STATIC_A, index), mix64(seed, _SALT_STATIC_B, index)
        position = self._language_mix.pick1(_field1(word_b, 0))
        identity = self.identities.identity(index, self._fakers[position], self.client.user_agent)
        attributes = self._attributes_of(index, word_a)
        return Machine(
            index=index,
            client_id=identity.client_id,
            hostname=identity.hostname,
            mac=identity.mac,
            locale=identity.locale,
            user_agent=identity.user_agent,
            attributes=attributes,
            language=self._language_codes[position],
            enterprise=self._is_managed(word_a, attributes),
            install_policy=self._policy_of(word_a),
            connection=self._connection_names[self._connection_mix.pick1(_field1(word_a, 3))],
            installed=self.installed_updates(local),
        )

    def _attributes_of(self, index: int, word_a: int) -> tuple[tuple[str, str], ...]:
        if not self._attributes:
            return ()
        word_c = mix64(self.spec.seed, _SALT_STATIC_C, index) if len(self._attributes) > 1 else 0
        words = {_SALT_STATIC_A: word_a, _SALT_STATIC_C: word_c}
        return tuple((name, values[mix.pick1(_field1(words[salt], k))])
                     for (name, values, mix), (salt, k) in zip(self._attributes, _ATTRIBUTE_FIELDS, strict=False))

    def _is_managed(self, word_a: int, attributes: tuple[tuple[str, str], ...]) -> bool:
        share, values = self.spec.enterprise_share, dict(attributes)
        for name, code, among in self._managed:
            if values[name] != self.attribute_values(name)[code]:
                return False
            share /= among
        return _field1(word_a, 1) < share

    def install_policy(self, local: int) -> str:
        return self._policy_of(mix64(self.spec.seed, _SALT_STATIC_A, self.global_index(local)))

    def _policy_of(self, word_a: int) -> str:
        return self._policy_names[self._policy_mix.pick1(_field1(word_a, 2))]

    def package_size(self, update: str, machine: Machine) -> int:
        """The real bytes of the package of `update` this machine takes (by its variant, and what it patches)."""
        spec = self.world.update(update)
        variant = dict(machine.attributes).get(spec.variant, "") if spec.variant else ""
        patches = spec.differential is not None and spec.differential.base in machine.installed
        return self.world.package_size(update, variant, patches)

    def warm_identities(self) -> None:
        """Build the identity pools of every language now, not during the first due check-ins."""
        for faker in self._fakers:
            self.identities.identity(0, faker, self.client.user_agent)

    # -- the status word -------------------------------------------------------------------------------
    def knows(self, update: str) -> bool:
        """Whether `update` is in the world's catalog."""
        return update in self._update_bits

    def update_bit(self, update: str) -> int:
        return self._update_bits[update]

    def installed_updates(self, local: int) -> frozenset[str]:
        return self._installed[self.status.item(local) & _INSTALLED_MASK]

    def checks_in(self, local: np.ndarray) -> np.ndarray:
        """Which of these machines wake next for a check-in (idle, or their user answering), not a download's end."""
        return (self.status[local] & _PHASE_MASK) >> _PHASE_SHIFT <= WAITING_FOR_USER

    def idle_mask(self) -> np.ndarray:
        """Which machines are between updates (no download or install under way)."""
        return (self.status & _PHASE_MASK) == 0

    def installed_mask(self, update: str) -> np.ndarray:
        return (self.status & self._update_bits[update]) != 0

    def mark_installed(self, local: int, update: str) -> None:
        self.status[local] |= self._update_bits[update]

    def phase(self, local: int) -> tuple[int, str]:
        """(phase, the update it is about) of the machine's update in progress."""
        word = self.status.item(local)
        return (word & _PHASE_MASK) >> _PHASE_SHIFT, self.updates[(word & _CURRENT_MASK) >> _CURRENT_SHIFT]

    def set_phase(self, local: int, phase: int, update: str | None = None) -> None:
        word = self.status.item(local) & ~(_PHASE_MASK | _CURRENT_MASK)
        current = self.updates.index(update) if update is not None else 0
        self.status[local] = word | phase << _PHASE_SHIFT | current << _CURRENT_SHIFT

    def failures(self, local: int) -> int:
        return (self.status.item(local) & _FAIL_MASK) >> _FAIL_SHIFT

    def set_failures(self, local: int, count: int) -> None:
        word = self.status.item(local) & ~_FAIL_MASK
        self.status[local] = word | (min(count, 7) << _FAIL_SHIFT)
