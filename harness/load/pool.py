"""How many agents (Locust users) carry out the check-ins: few to start, more only where they help.

Little's law gives the agents a rate needs: rate x time per check-in. On loopback a check-in takes
a couple of milliseconds, and agents beyond those needed cost the load generator (measured: 480
agents sent 24 % fewer check-ins than 50 on one saturated core, docs/benchmarks.md). So the pool
starts at the loopback figure and grows by half, once a tick, while check-ins run late *and* the
processes that send them have CPU to spare: then the agents are waiting on the server, and more of
them help. With the CPU saturated, more agents would only share it, so the pool holds. It never
shrinks, and never passes what a server answering in SLOW_SERVER_S would need. `[agents] users`
fixes it.

Whether a sender has CPU to spare is the share of the time its event loop's thread was running *or
waiting for a core* (Linux's schedstat): on a machine whose cores are shared with other processes (a
second worker, the server) a saturated sender may get only half a core, which its own CPU time would
take for room to spare.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

MIN_POOL = 16
START_SERVICE_S = 0.002  # a check-in's time in an agent, on loopback
POOL_HEADROOM = 2
SLOW_SERVER_S = 1.0
GROWTH = 1.5
SATURATED_CPU = 0.85  # share of a core past which the load generator is CPU-bound


class AgentPool:
    """The size of the agent pool for a rate of check-ins, adjusted once a tick."""

    def __init__(self, rate: float, users: int = 0) -> None:
        if users:
            self.start = self.ceiling = users
        else:
            self.start = max(MIN_POOL, math.ceil(rate * START_SERVICE_S * POOL_HEADROOM))
            self.ceiling = max(self.start, math.ceil(rate * SLOW_SERVER_S))
        self.size = self.start

    def adjust(self, late: int, cpu_share: float) -> int:
        """The size after a tick in which `late` check-ins ran late and the busiest sender used `cpu_share`."""
        if late > 0 and cpu_share < SATURATED_CPU:
            self.size = min(self.ceiling, math.ceil(self.size * GROWTH))
        return self.size


class BusyMeter:
    """The share of wall time the calling thread spent running or waiting for a core, between readings."""

    def __init__(self) -> None:
        self._schedstat = Path(f"/proc/self/task/{threading.get_native_id()}/schedstat")
        self._last = self._now()

    def _now(self) -> tuple[float, float]:
        """(wall seconds, seconds this thread ran or waited to run); its CPU time where schedstat is missing."""
        try:
            running_ns, waiting_ns = self._schedstat.read_text().split()[:2]
            busy = (int(running_ns) + int(waiting_ns)) / 1e9
        except (OSError, ValueError):
            busy = time.thread_time()
        return time.monotonic(), busy

    def share(self) -> float:
        """The busy share since the last reading (or since the meter was made)."""
        (wall, busy), self._last = self._last, self._now()
        return (self._last[1] - busy) / max(self._last[0] - wall, 1e-9)
