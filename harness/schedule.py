"""Open-model dispatch: due machines flow from a timing wheel into a bounded queue of check-ins.

The wheel keeps machine indices in buckets of due time, so the work of a tick follows the number
of machines due, never the fleet size. The dispatcher releases each check-in when its `due_at`
passes, whatever the agents are doing: the rate comes from the fleet, not from how fast agents
finish. When the agents fall behind and the queue is full, due check-ins wait in the dispatcher's
backlog (the arrays it already holds: memory does not grow) and go out in due order as room
appears; one released more than LATE_AFTER_S of wall time after its due time is counted late, and
its latency, measured from `due_at`, shows the wait. The scenario clock never waits.
"""

from __future__ import annotations

import heapq
import math
from array import array

import gevent
import numpy as np
from gevent.queue import Full, Queue

from harness.clock import ScenarioClock
from harness.metrics import Metrics

MAX_BUCKETS = 16384
LATE_AFTER_S = 0.1  # wall seconds past due after which a released check-in counts as late


class TimingWheel:
    """Machine indices bucketed by due time (scenario seconds), popped bucket by bucket."""

    def __init__(self, due: np.ndarray, bucket_s: float, horizon_s: float) -> None:
        self.bucket_s = bucket_s
        self.size = math.ceil(horizon_s / bucket_s) + 1
        self._next = 0  # the absolute number of the next bucket to pop
        self._added: list[array] = [array("I") for _ in range(self.size)]
        buckets = np.minimum((due // bucket_s).astype(np.int64), self.size - 1)
        order = np.argsort(buckets, kind="stable").astype(np.uint32)
        bounds = np.searchsorted(buckets[order], np.arange(self.size + 1))
        self._initial: list[np.ndarray | None] = [order[bounds[k] : bounds[k + 1]] for k in range(self.size)]

    @property
    def next_bucket_start(self) -> float:
        return self._next * self.bucket_s

    @property
    def last_due(self) -> float:
        """The latest due time the wheel can hold now (its horizon from the next bucket)."""
        return (self._next + self.size - 1) * self.bucket_s

    def add(self, index: int, due: float) -> bool:
        """Put a machine in the bucket of `due` (at most last_due); False when that bucket was already popped."""
        bucket = int(due // self.bucket_s)
        if bucket < self._next:
            return False
        self._added[bucket % self.size].append(index)
        return True

    def pop(self) -> np.ndarray:
        """The indices in the next bucket (in no particular order), and move on."""
        slot = self._next % self.size
        initial, self._initial[slot] = self._initial[slot], None
        added = np.frombuffer(self._added[slot], dtype=np.uint32).copy()
        self._added[slot] = array("I")
        self._next += 1
        return added if initial is None else np.concatenate((initial, added))


class Dispatcher:
    """Releases due check-ins `(index, due_at)` into a bounded queue, in due order."""

    def __init__(
        self,
        next_check: np.ndarray,
        clock: ScenarioClock,
        queue: Queue,
        metrics: Metrics,
        end_s: float,
        tick_s: float = 0.005,
        horizon_s: float = 48 * 3600.0,
    ) -> None:
        self.next_check = next_check
        self.clock = clock
        self.queue = queue
        self.end_s = end_s
        self.tick_s = tick_s
        bucket_s = max(tick_s * clock.time_scale, horizon_s / MAX_BUCKETS)
        self.wheel = TimingWheel(next_check, bucket_s, horizon_s)
        self.metrics = metrics
        self._soon: list[tuple[float, int]] = []  # due in buckets already popped
        self._batch_index = np.empty(0, dtype=np.uint32)
        self._batch_due = np.empty(0, dtype=np.float32)
        self._position = 0
        self._greenlet: gevent.Greenlet | None = None

    def schedule(self, index: int, due: float) -> None:
        """Set machine `index` to check in at scenario second `due` (capped at the wheel's horizon).

        A machine scheduled again keeps its earlier entry, which is dropped as stale when it comes
        up: only the entry matching the machine's current due time is released.
        """
        due = float(np.float32(min(due, self.wheel.last_due)))
        self.next_check[index] = due
        if not self.wheel.add(index, due):
            heapq.heappush(self._soon, (due, index))

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
            self._greenlet = None

    def _load_bucket(self) -> None:
        bucket_start = self.wheel.next_bucket_start
        indices = self.wheel.pop()
        due = self.next_check[indices]
        keep = (due >= bucket_start) & (due < bucket_start + self.wheel.bucket_s)  # the others are stale
        indices = np.concatenate((self._batch_index[self._position :], indices[keep]))
        due = np.concatenate((self._batch_due[self._position :], due[keep]))
        order = np.argsort(due, kind="stable")
        self._batch_index, self._batch_due, self._position = indices[order], due[order], 0

    def release_due(self, now: float) -> None:
        """Queue the check-ins due by scenario second `now`, in due order, while the queue has room."""
        while self.wheel.next_bucket_start <= now:
            self._load_bucket()
        late_before = now - LATE_AFTER_S * self.clock.time_scale
        stop = int(np.searchsorted(self._batch_due, now, side="right"))
        for index, due in zip(self._batch_index[self._position : stop].tolist(),
                              self._batch_due[self._position : stop].tolist(), strict=True):
            if self.next_check[index] == due and not self._offer(index, due, late_before):
                return
            self._position += 1
        while self._soon and self._soon[0][0] <= now:
            due, index = self._soon[0]
            if self.next_check[index] == due and not self._offer(index, due, late_before):
                return
            heapq.heappop(self._soon)

    def backlog(self, now: float) -> int:
        """Check-ins due by `now` that the agents' queue has not taken yet."""
        waiting = int(np.searchsorted(self._batch_due, now, side="right")) - self._position
        return max(0, waiting) + sum(1 for due, _ in self._soon if due <= now)

    def _offer(self, index: int, due: float, late_before: float) -> bool:
        try:
            self.queue.put_nowait((index, due))
        except Full:
            return False
        self.metrics.count("dispatched")
        if due < late_before:
            self.metrics.count("late")
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
                return
            self.release_due(now)
            wait = (self._next_due() - self.clock.now()) / self.clock.time_scale
            gevent.sleep(min(max(wait, 0.0005), self.tick_s))
