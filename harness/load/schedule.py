"""Open-model dispatch: due machines flow from a timing wheel into a bounded queue of check-ins.

The wheel keeps machine indices in buckets of due time, so the work of a tick follows the number
of machines due, never the fleet size. Each machine costs six bytes here: its index in one bucket
(four) and the number of that bucket modulo 2^16 (two), which tells a live entry from a stale one
left behind when a machine was rescheduled. A due time is the start of its bucket plus a hashed
fraction of it: never earlier than asked, at most one bucket later.

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
from collections.abc import Callable

import gevent
import numpy as np
from gevent.queue import Full, Queue

from harness.measure.metrics import Metrics
from harness.model.clock import ScenarioClock
from harness.model.fleet import BUILD_CHUNK, WakeRule
from harness.model.hashing import unit_array

MAX_BUCKETS = 60_000  # below 2^16, so a bucket number modulo 2^16 is unique within the horizon
HORIZON_S = 5 * 86400.0  # past the longest wait: an office machine off over a weekend, then 22 h
# Rescheduled machines are planned in batches at most this often (wall seconds): planning costs much
# the same for 20 machines as for 200, and a next check is rarely due sooner (one due in a bucket
# already popped is still released, from the heap of soon-due check-ins).
FLUSH_EVERY_S = 0.02
BUILD_SEGMENTS = 32
BYTES_PER_MACHINE = 6
_SALT_DUE = 7
_WRAP = 1 << 16

# plan(rule, local indices, earliest times) -> due times, for machines rescheduled in a batch.
Plan = Callable[[WakeRule, np.ndarray, np.ndarray], np.ndarray]


def _give_back_freed_memory() -> None:
    """Return the build's freed temporaries to the system: glibc keeps fragmented heap otherwise."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: its allocator decides
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def bucket_seconds(time_scale: float, tick_s: float, horizon_s: float = HORIZON_S) -> float:
    """Scenario seconds per bucket: a tick's worth, and few enough buckets to cover the horizon."""
    return max(tick_s * time_scale, horizon_s / MAX_BUCKETS)


class TimingWheel:
    """Machine indices bucketed by due time (scenario seconds), popped bucket by bucket.

    `first_due(first, stop)` gives the first due times of local machines first..stop-1 (inf for a
    machine that never checks); it is called chunk by chunk so that building needs little more
    memory than the wheel itself.
    """

    def __init__(self, machines: int, first_due: Callable[[int, int], np.ndarray], bucket_s: float,
                 horizon_s: float = HORIZON_S, seed: int = 0, partition: tuple[int, int] = (0, 1)) -> None:
        self.bucket_s = bucket_s
        self.size = math.ceil(horizon_s / bucket_s) + 1
        if self.size >= _WRAP:
            raise ValueError(f"{self.size} buckets: at most {_WRAP - 1} fit a 16-bit bucket number")
        self.seed, self.partition = seed, partition
        self._next = 0  # the absolute number of the next bucket to pop
        self._added: dict[int, array] = {}
        self.due_bucket = np.empty(machines, dtype=np.uint16)
        never = self.size  # a bucket number no entry is ever made for
        for first in range(0, machines, BUILD_CHUNK):
            due = first_due(first, min(first + BUILD_CHUNK, machines))
            self.due_bucket[first : first + len(due)] = np.where(
                np.isfinite(due), np.minimum(np.ceil(due / bucket_s), self.size - 1), never)
        self._initial: list[np.ndarray | None] = [None] * self.size
        # Bucket the machines a range of buckets at a time, each range holding about the same number of
        # machines, so that the temporary arrays stay small.
        counts = sum(np.bincount(self.due_bucket[first : first + BUILD_CHUNK], minlength=self.size + 1)
                     for first in range(0, machines, BUILD_CHUNK))
        cumulative = np.cumsum(counts[: self.size]) if machines else np.zeros(self.size, dtype=np.int64)
        edges = np.searchsorted(cumulative, np.linspace(0, cumulative[-1], BUILD_SEGMENTS + 1)[1:-1], side="right")
        for low, high in zip([0, *edges.tolist()], [*edges.tolist(), self.size], strict=True):
            if high <= low:
                continue
            members = np.concatenate([
                np.flatnonzero((chunk >= low) & (chunk < high)).astype(np.uint32) + np.uint32(first)
                for first in range(0, machines, BUILD_CHUNK)
                for chunk in (self.due_bucket[first : first + BUILD_CHUNK],)
            ] or [np.empty(0, np.uint32)])
            buckets = self.due_bucket[members]
            order = np.argsort(buckets, kind="stable")
            members, bounds = members[order], np.searchsorted(buckets[order], np.arange(low, high + 1))
            # Views of one array a segment: it is freed when its last bucket has been popped.
            for bucket in range(low, high):
                start, stop = bounds[bucket - low], bounds[bucket - low + 1]
                if stop > start:
                    self._initial[bucket] = members[start:stop]
        _give_back_freed_memory()

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

    def pop(self) -> tuple[np.ndarray, np.ndarray]:
        """(indices, due times) of the live entries of the next bucket, in no particular order; move on."""
        slot = self._next % self.size
        initial, self._initial[slot] = self._initial[slot], None
        added = self._added.pop(slot, None)
        parts = [part for part in (initial, np.frombuffer(added, dtype=np.uint32) if added else None)
                 if part is not None]
        indices = np.concatenate(parts) if len(parts) > 1 else (parts[0].copy() if parts else np.empty(0, np.uint32))
        indices = np.unique(indices[self.due_bucket[indices] == self._next % _WRAP])
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
