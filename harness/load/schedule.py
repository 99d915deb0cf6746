"""Open-model dispatch: due machines flow from a timing wheel into a bounded queue of check-ins.

The wheel keeps machine indices in buckets of due time, so the work of a tick follows the number
of machines due, never the fleet size. Each machine costs six bytes here: its index in one bucket
(four) and the number of that bucket modulo 2^16 (two), which tells a live entry from a stale one
left behind when a machine was rescheduled. A due time is the start of its bucket plus a hashed
fraction of it: never earlier than asked, at most one bucket later (a machine's first check, a random
phase anyway, goes out anywhere within the bucket holding it).

The dispatcher releases each check-in when its `due_at` passes, whatever the agents are doing: the
rate comes from the fleet, not from how fast agents finish. When the agents fall behind and the
queue is full, due check-ins wait in the dispatcher's backlog (the arrays it already holds: memory
does not grow) and go out in due order as room appears; their latency, measured from `due_at`, shows
the wait (and the agent counts a check-in late by when its request is sent). The scenario clock never
waits. When the run stops, `waiting` tells the check-ins that were due and never released.
"""

from __future__ import annotations

import contextlib
import ctypes
import heapq
import math
import time
from array import array
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TypeVar

import gevent
import numpy as np
from gevent.queue import Full, Queue

from harness.measure.metrics import Metrics
from harness.model.clock import ScenarioClock
from harness.model.fleet import BUILD_CHUNK, Fleet, WakeRule
from harness.model.hashing import unit_array

MAX_BUCKETS = 60_000  # below 2^16, so a bucket number modulo 2^16 is unique within the horizon
HORIZON_S = 5 * 86400.0  # past the longest wait: an office machine off over a weekend, then 22 h
# Rescheduled machines are planned in batches at most this often (wall seconds): planning costs much
# the same for 20 machines as for 200, and a next check is rarely due sooner (one due in a bucket
# already popped is still released, from the heap of soon-due check-ins).
FLUSH_EVERY_S = 0.02
BUILD_SEGMENTS = 32
# Machines filed before the clock starts, at least: the first few minutes of a large fleet in real time.
READY_MACHINES = 1 << 20
BYTES_PER_MACHINE = 6
_SALT_DUE = 7
_WRAP = 1 << 16

# plan(rule, local indices, earliest times) -> due times, for machines rescheduled in a batch.
Plan = Callable[[WakeRule, np.ndarray, np.ndarray], np.ndarray]
T = TypeVar("T")
# offload(work) -> work(): where a long step of building runs (inline, or a thread while the run goes on).
Offload = Callable[[Callable[[], T]], T]


def _inline(work: Callable[[], T]) -> T:
    return work()


def _give_back_freed_memory() -> None:
    """Return the build's freed temporaries to the system: glibc keeps fragmented heap otherwise."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: its allocator decides
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def bucket_seconds(time_scale: float, tick_s: float, horizon_s: float = HORIZON_S) -> float:
    """Scenario seconds per bucket: a tick's worth, and few enough buckets to cover the horizon."""
    return max(tick_s * time_scale, horizon_s / MAX_BUCKETS)


def fleet_wheel(fleet: Fleet, bucket_s: float, ready_s: float = 0.0,
                ready_machines: int = READY_MACHINES) -> TimingWheel:
    """The timing wheel of a fleet's machines (its partition), filed by their first checks."""
    return TimingWheel(len(fleet), lambda first, stop: fleet.earliest_first_checks(fleet.global_indices(first, stop)),
                       lambda local: fleet.first_checks(fleet.global_indices_of(local)), bucket_s,
                       seed=fleet.spec.seed, partition=(fleet.partition.index, fleet.partition.count),
                       ready_s=ready_s, ready_machines=ready_machines)


class TimingWheel:
    """Machine indices bucketed by due time (scenario seconds), popped bucket by bucket.

    Built so that the clock can start within seconds whatever the fleet's size. `earliest(first, stop)`
    gives a lower bound of the first due times of local machines first..stop-1 (cheap: one hash), and
    each machine is first filed under the bucket of that bound; `first_due(indices)` gives their exact
    first due times (inf for a machine that never checks), worked out only when the bound's bucket comes
    up: those due then are released, the others filed again under their own bucket. The buckets holding the
    first `ready_machines` machines, and at least those up to scenario second `ready_s`, are filed before the
    clock starts; `file_next()` files the others a range of buckets at a time while the run goes on, and
    `pop` files what it needs at once should the clock catch up with it.

    A first check goes out within the bucket holding its time (a random phase in the machine's cycle: another
    draw within the bucket is as good, and the clock's first bucket is not left empty); a machine scheduled
    later never checks before the time it asked for.
    """

    def __init__(self, machines: int, earliest: Callable[[int, int], np.ndarray],
                 first_due: Callable[[np.ndarray], np.ndarray], bucket_s: float, horizon_s: float = HORIZON_S,
                 seed: int = 0, partition: tuple[int, int] = (0, 1), ready_s: float = 0.0,
                 ready_machines: int = READY_MACHINES) -> None:
        self.bucket_s = bucket_s
        self.size = math.ceil(horizon_s / bucket_s) + 1
        if self.size >= _WRAP:
            raise ValueError(f"{self.size} buckets: at most {_WRAP - 1} fit a 16-bit bucket number")
        self.seed, self.partition, self.first_due = seed, partition, first_due
        self._next = 0  # the absolute number of the next bucket to pop
        self._added: dict[int, array] = {}
        self._initial: list[np.ndarray | None] = [None] * self.size  # machines filed by their earliest bucket
        self.due_bucket = np.empty(machines, dtype=np.uint16)
        counts = np.zeros(self.size + 1, dtype=np.int64)
        for first in range(0, machines, BUILD_CHUNK):
            bound = earliest(first, min(first + BUILD_CHUNK, machines))
            buckets = np.where(np.isfinite(bound), np.minimum(np.floor(bound / bucket_s), self.size - 1),
                               self.size).astype(np.uint16)  # self.size: a bucket number no entry is made for
            self.due_bucket[first : first + len(buckets)] = buckets
            counts += np.bincount(buckets, minlength=self.size + 1)
        cumulative = np.cumsum(counts[: self.size])
        ready = max(math.ceil(ready_s / bucket_s) + 1,
                    int(np.searchsorted(cumulative, min(ready_machines, cumulative[-1]), side="left")) + 1)
        self.built_until = min(ready, self.size)  # buckets below this are filed
        # The rest a range of buckets at a time, each range holding about the same number of machines, so
        # that the temporary arrays stay small and each step of building is short.
        rest = cumulative[self.built_until - 1 :] - cumulative[self.built_until - 1]
        edges = self.built_until - 1 + np.searchsorted(rest, np.linspace(0, rest[-1], BUILD_SEGMENTS + 1)[1:-1],
                                                       side="right")
        self._ranges = deque((low, high) for low, high in zip([self.built_until, *edges.tolist()],
                                                               [*edges.tolist(), self.size], strict=True) if high > low)
        self._filing = False  # a range is being filed (its machines looked for elsewhere)
        self._file(0, self.built_until)
        _give_back_freed_memory()

    def _file(self, low: int, high: int, offload: Offload = _inline) -> None:
        """File the machines whose bucket number is in [low, high)."""
        members, bounds = offload(partial(self._find, low, high))
        # Views of one array a range: it is freed when its last bucket has been popped.
        for bucket in range(low, high):
            start, stop = bounds[bucket - low], bounds[bucket - low + 1]
            if stop > start:
                self._initial[bucket] = members[start:stop]

    def _find(self, low: int, high: int) -> tuple[np.ndarray, np.ndarray]:
        """The machines whose bucket number is in [low, high), sorted by bucket, and where each bucket starts.

        Safe in another thread while the run schedules machines: one scheduled meanwhile has its own entry,
        and an entry made here is checked against its bucket number when popped.
        """
        members = np.concatenate([
            np.flatnonzero((chunk >= low) & (chunk < high)).astype(np.uint32) + np.uint32(first)
            for first in range(0, len(self.due_bucket), BUILD_CHUNK)
            for chunk in (self.due_bucket[first : first + BUILD_CHUNK],)
        ] or [np.empty(0, np.uint32)])
        buckets = self.due_bucket[members]  # read again: a machine scheduled meanwhile may have left the range
        within = (buckets >= low) & (buckets < high)
        members, buckets = members[within], buckets[within]
        order = np.argsort(buckets, kind="stable")
        return members[order], np.searchsorted(buckets[order], np.arange(low, high + 1))

    def file_next(self, offload: Offload = _inline) -> bool:
        """File the next range of buckets not filed yet (False if none is left); `offload` runs the search for
        its machines, e.g. in a thread, where numpy's loops leave the interpreter to the run."""
        if not self._ranges:
            return False
        low, high = self._ranges[0]  # taken off only once filed: a step cut short is done again
        self._filing = True
        try:
            self._file(low, high, offload)
        finally:
            self._filing = False
        self._ranges.popleft()
        self.built_until = high
        _give_back_freed_memory()
        return True

    @property
    def next_bucket(self) -> int:
        return self._next

    @property
    def next_bucket_start(self) -> float:
        return self._next * self.bucket_s

    def bucket_of(self, due: float) -> int:
        """The bucket a machine asked to check at `due` goes in (capped at the horizon)."""
        return min(math.ceil(due / self.bucket_s), self._next + self.size - 1)

    def add(self, index: int, bucket: int) -> None:
        """Put a machine in `bucket` (not popped yet, within the horizon); its older entries go stale."""
        self.due_bucket[index] = bucket % _WRAP
        slot = bucket % self.size
        entries = self._added.get(slot)
        if entries is None:
            entries = self._added[slot] = array("I")
        entries.append(index)

    def add_many(self, indices: np.ndarray, buckets: np.ndarray) -> None:
        """`add` for arrays of machines and their buckets."""
        if not len(indices):
            return
        self.due_bucket[indices] = buckets % _WRAP
        order = np.argsort(buckets, kind="stable")
        indices, buckets = indices[order].astype(np.uint32), buckets[order]
        starts = np.flatnonzero(np.diff(buckets, prepend=-1))
        for start, stop, bucket in zip(starts.tolist(), [*starts[1:].tolist(), len(buckets)],
                                       buckets[starts].tolist(), strict=True):
            entries = self._added.setdefault(bucket % self.size, array("I"))
            entries.frombytes(indices[start:stop].tobytes())

    def pop(self) -> tuple[np.ndarray, np.ndarray]:
        """(indices, due times) of the live entries of the next bucket, in no particular order; move on."""
        while self._next >= self.built_until and self._ranges:  # the clock caught up with the filing
            if self._filing:
                gevent.sleep(0.001)  # the range is being filed elsewhere: it is the next one needed
            else:
                self.file_next()
        slot, mark = self._next % self.size, self._next % _WRAP
        initial, self._initial[slot] = self._initial[slot], None
        added = self._added.pop(slot, None)
        added = np.frombuffer(added, dtype=np.uint32) if added else np.empty(0, np.uint32)
        added = np.unique(added[self.due_bucket[added] == mark])
        indices = added
        if initial is not None:
            # Filed by their earliest time: their first due time now; a machine scheduled since is in `added`.
            initial = np.setdiff1d(initial[self.due_bucket[initial] == mark], added)
            due = self.first_due(initial)
            checks = np.isfinite(due)
            buckets = np.minimum(np.floor(due[checks] / self.bucket_s), self._next + self.size - 1).astype(np.int64)
            initial = initial[checks]
            later = buckets > self._next
            self.add_many(initial[later], buckets[later])
            indices = np.concatenate((initial[~later], added))
        first, count = self.partition
        keys = indices.astype(np.uint64) * np.uint64(count) + np.uint64(first)
        keys ^= np.uint64(self._next) << np.uint64(32)
        due = (self._next + np.minimum(unit_array(self.seed, _SALT_DUE, keys), 0.999)) * self.bucket_s
        self._next += 1
        return indices, due


class Dispatcher:
    """Releases due check-ins `(index, due_at)` into a bounded queue, in due order."""

    def __init__(self, wheel: TimingWheel, clock: ScenarioClock, queue: Queue, metrics: Metrics, end_s: float,
                 plan: Plan | None = None, tick_s: float = 0.005) -> None:
        self.wheel = wheel
        self.clock = clock
        self.queue = queue
        self.metrics = metrics
        self.end_s = end_s
        self.plan = plan
        self.tick_s = tick_s
        self._soon: list[tuple[float, int, int]] = []  # (due, index, bucket): due in buckets already popped
        self._batch_index = np.empty(0, dtype=np.uint32)
        self._batch_due = np.empty(0, dtype=np.float64)
        self._batch_bucket = np.empty(0, dtype=np.uint16)
        self._position = 0
        self._pending: dict[int, tuple[array, array]] = {}
        self._flushed_at = 0.0
        self._greenlet: gevent.Greenlet | None = None

    def schedule(self, index: int, due: float) -> None:
        """Set machine `index` to check in at scenario second `due` (or up to one bucket later)."""
        bucket = self.wheel.bucket_of(due)
        if bucket < self.wheel.next_bucket:
            self.wheel.due_bucket[index] = bucket % _WRAP
            heapq.heappush(self._soon, (due, index, bucket % _WRAP))
        else:
            self.wheel.add(index, bucket)

    def schedule_many(self, indices: np.ndarray, due: np.ndarray) -> None:
        for index, when in zip(indices.tolist(), due.tolist(), strict=True):
            self.schedule(index, when)

    def reschedule(self, index: int, earliest: float, rule: WakeRule) -> None:
        """Schedule machine `index` by `rule` from `earliest`; worked out in a batch at the next tick."""
        pending = self._pending.get(rule)
        if pending is None:
            pending = self._pending[rule] = (array("I"), array("d"))
        pending[0].append(index)
        pending[1].append(earliest)

    def flush(self) -> None:
        """Work out the due times of the machines rescheduled since the last tick, rule by rule."""
        pending, self._pending, self._flushed_at = self._pending, {}, time.monotonic()
        for rule, (indices, earliest) in pending.items():
            local = np.frombuffer(indices, dtype=np.uint32)
            times = np.frombuffer(earliest, dtype=np.float64)
            self.schedule_many(local, self.plan(rule, local, times) if self.plan is not None else times)

    def start(self) -> gevent.Greenlet:
        """Start releasing check-ins as they fall due; the greenlet that does it."""
        self._greenlet = gevent.spawn(self._run)
        return self._greenlet

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
            self._greenlet = None

    def _load_bucket(self) -> None:
        bucket = self.wheel.next_bucket % _WRAP
        indices, due = self.wheel.pop()
        self.metrics.count("due", len(indices))
        p = self._position  # what the queue had no room for stays ahead of the new bucket's check-ins
        indices = np.concatenate((self._batch_index[p:], indices))
        due = np.concatenate((self._batch_due[p:], due))
        buckets = np.concatenate((self._batch_bucket[p:], np.full(len(due) - len(self._batch_due) + p, bucket,
                                                                  dtype=np.uint16)))
        order = np.argsort(due, kind="stable")
        self._batch_index, self._batch_due, self._batch_bucket = indices[order], due[order], buckets[order]
        self._position = 0

    def release_due(self, now: float) -> None:
        """Queue the check-ins due by scenario second `now`, in due order, while the queue has room."""
        if self._pending and time.monotonic() - self._flushed_at >= FLUSH_EVERY_S:
            self.flush()
        while self.wheel.next_bucket_start <= now:
            self._load_bucket()
        stop = int(np.searchsorted(self._batch_due, now, side="right"))
        p, due_bucket = self._position, self.wheel.due_bucket
        if self.queue.maxsize:  # look only at as many as the queue has room for: a backlog costs nothing a tick
            stop = min(stop, p + max(0, self.queue.maxsize - self.queue.qsize()))
        for index, due, bucket in zip(self._batch_index[p:stop].tolist(), self._batch_due[p:stop].tolist(),
                                      self._batch_bucket[p:stop].tolist(), strict=True):
            if due_bucket[index] == bucket and not self._offer(index, due):
                return
            self._position += 1
        while self._soon and self._soon[0][0] <= now:
            due, index, bucket = self._soon[0]
            if due_bucket[index] == bucket and not self._offer(index, due):
                return
            heapq.heappop(self._soon)

    def backlog(self, now: float) -> int:
        """Check-ins due by `now` that the agents' queue has not taken yet."""
        return len(self.waiting(now)[0])

    def waiting(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """(machines, due times) of the check-ins due by `now` that the agents' queue has not taken yet."""
        while self.wheel.next_bucket_start <= now:
            self._load_bucket()
        p, stop = self._position, int(np.searchsorted(self._batch_due, now, side="right"))
        indices, buckets = self._batch_index[p:stop], self._batch_bucket[p:stop]
        live = self.wheel.due_bucket[indices] == buckets  # not rescheduled since
        due_bucket = self.wheel.due_bucket
        soon = [(index, due) for due, index, bucket in self._soon if due <= now and due_bucket[index] == bucket]
        return (np.concatenate((indices[live], np.array([index for index, _ in soon], dtype=np.uint32))),
                np.concatenate((self._batch_due[p:stop][live], np.array([due for _, due in soon], dtype=np.float64))))

    def _offer(self, index: int, due: float) -> bool:
        try:
            self.queue.put_nowait((index, due))
        except Full:
            return False
        self.metrics.count("dispatched")
        return True

    def _next_due(self) -> float:
        candidates = [self.wheel.next_bucket_start]
        if self._position < len(self._batch_due):
            candidates.append(float(self._batch_due[self._position]))
        if self._soon:
            candidates.append(self._soon[0][0])
        return min(candidates)

    def _run(self) -> None:
        while True:
            now = self.clock.now()
            if now >= self.end_s:
                self.release_due(self.end_s)  # the last ones, due since the previous pass
                return
            self.release_due(now)
            wait = self.clock.seconds_until(self._next_due())
            gevent.sleep(min(max(wait, 0.0005), self.tick_s))
