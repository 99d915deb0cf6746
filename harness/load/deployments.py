"""Administrators' deployments of the network-install package dated within the run, as scenario time reaches them."""

from __future__ import annotations

from collections.abc import Callable

import gevent
import numpy as np

from harness.measure.metrics import Metrics
from harness.model.clock import ScenarioClock
from harness.model.fleet import Fleet
from harness.model.network_install import (
    Deployments,
    PackageFetch,
    counter_of,
    local_indices,
    mark_installed,
    package_of,
)

MIN_SLEEP_S = 0.001


def run_deployments(fleet: Fleet, deployments: Deployments, clock: ScenarioClock, metrics: Metrics,
                    fetch: Callable[[PackageFetch], None] | None, end_s: float) -> None:
    """Carry out the deployments dated within the run as scenario time reaches them (a greenlet's body).

    `fetch` hands a download to the agents and must not block (None: the protocol has no such request).
    """
    part = fleet.partition
    done, last = deployments.before(0.0), int(np.searchsorted(deployments.seconds, end_s, side="left"))
    while done < last:
        gevent.sleep(max(MIN_SLEEP_S, clock.seconds_until(float(deployments.seconds[done]))))
        reached = min(deployments.before(clock.now()), last)
        for position in range(done, reached):
            managed = deployments.managed(fleet, position)
            metrics.count(counter_of(deployments.update),
                          mark_installed(fleet, local_indices(fleet, managed), deployments.update))
            first = int(deployments.organisations[position]) * deployments.size
            if fetch is not None and first % part.count == part.index and deployments.downloads(position, len(managed)):
                language = fleet.machine((first - part.index) // part.count).language
                fetch(PackageFetch(package_of(deployments.update), language))
        done = reached
