"""Administrators' own SP2 deployments from the network-install package (released Aug 9 2004).

Enterprise-managed machines were blocked from SP2 through Automatic Updates; some of their
administrators deployed it themselves instead, one download of the package serving an organisation
of `machines_per_download` real machines. An emulated organisation is a block of consecutive
machines standing for that many real ones (one machine when the fleet's weight is larger); whether
it deploys, on which date (spread evenly over `over` from the package's release) and whether it
sends a download (one in `machines_per_download / (block x weight)` when a block stands for fewer
organisations than one) are hashes of (seed, organisation), so every worker agrees. On that date
the organisation's enterprise-managed machines have SP2 (counted as installed_xpsp2_network, never
as installed through AU) and the download, if any, is sent by the worker that owns the
organisation's first machine, when one of its machines is managed. Organisations that deployed
before the timeline starts have SP2 from the start, with no download in the run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import gevent
import numpy as np

from harness.clock import ScenarioClock
from harness.fleet import UPDATE_BITS, Fleet
from harness.hashing import unit_array
from harness.metrics import Metrics
from harness.scenario import FleetSpec, NetworkInstallSpec

PACKAGE = "xpsp2-network"  # the reference catalog's id of the package, before its language
COUNTER = "installed_xpsp2_network"
_SALT_DEPLOYS, _SALT_DATE, _SALT_DOWNLOADS = 300, 301, 302
_CHUNK = 1 << 20  # machines marked at a time at start-up
MIN_SLEEP_S = 0.001


@dataclass(frozen=True)
class PackageFetch:
    """An administrator's download of a package outside any offer, for an agent to carry out."""

    package: str
    language: str
    due_at: float  # scenario second


@dataclass(frozen=True)
class Deployments:
    """The organisations that deploy, in date order, with their scenario seconds of deployment."""

    size: int  # emulated machines per organisation
    organisations: np.ndarray  # uint64
    seconds: np.ndarray  # float64, ascending
    downloads: np.ndarray  # bool: whether the organisation's administrator sends a download

    @classmethod
    def plan(cls, spec: NetworkInstallSpec, fleet: FleetSpec, origin: datetime) -> Deployments:
        size = max(1, round(spec.machines_per_download / fleet.weight))
        every = np.arange(math.ceil(fleet.machines / size), dtype=np.uint64)
        deploying = every[unit_array(fleet.seed, _SALT_DEPLOYS, every) < spec.share]
        seconds = (spec.since - origin).total_seconds() + unit_array(fleet.seed, _SALT_DATE, deploying) * spec.over_s
        downloads = unit_array(fleet.seed, _SALT_DOWNLOADS, deploying) < size / spec.machines_per_download
        order = np.argsort(seconds, kind="stable")
        return cls(size, deploying[order], seconds[order], downloads[order])

    def before(self, scenario_s: float) -> int:
        """How many organisations have deployed by scenario second `scenario_s`."""
        return int(np.searchsorted(self.seconds, scenario_s, side="right"))


def install_before_start(fleet: Fleet, deployments: Deployments) -> int:
    """Give SP2 to the machines of the organisations that deployed before scenario second 0; how many."""
    per, marked = deployments.size, 0
    deployed = np.zeros(math.ceil(fleet.spec.machines / per), dtype=bool)
    deployed[deployments.organisations[:deployments.before(0.0)]] = True
    for first in range(0, len(fleet), _CHUNK):
        indices = fleet.global_indices(first, first + _CHUNK)
        takes = deployed[indices // per] & fleet.enterprise_mask(indices)
        marked += _mark(fleet, first + np.nonzero(takes)[0])
    return marked


def _managed(fleet: Fleet, organisations: np.ndarray, per: int) -> np.ndarray:
    """Global indices of the enterprise-managed machines of these organisations (of every partition)."""
    indices = (organisations[:, None] * np.uint64(per) + np.arange(per, dtype=np.uint64)).ravel()
    indices = indices[indices < fleet.spec.machines]
    return indices[fleet.enterprise_mask(indices)]


def _local(fleet: Fleet, indices: np.ndarray) -> np.ndarray:
    """Local indices of the global ones that are this partition's."""
    part = fleet.partition
    mine = indices[indices % np.uint64(part.count) == part.index]
    return ((mine - np.uint64(part.index)) // np.uint64(part.count)).astype(np.int64)


def _mark(fleet: Fleet, local: np.ndarray) -> int:
    """Set SP2 installed on the machines that lack it; how many did."""
    bit = np.uint8(UPDATE_BITS["xpsp2"])
    lacking = local[(fleet.status[local] & bit) == 0]
    fleet.status[lacking] |= bit
    return len(lacking)


def run_deployments(fleet: Fleet, deployments: Deployments, clock: ScenarioClock, metrics: Metrics,
                    fetch: Callable[[PackageFetch], None], end_s: float) -> None:
    """Carry out the deployments dated within the run as scenario time reaches them (a greenlet's body)."""
    per, part = deployments.size, fleet.partition
    done = deployments.before(0.0)
    while done < len(deployments.seconds) and deployments.seconds[done] < end_s:
        gevent.sleep(max(MIN_SLEEP_S, clock.wall_at(float(deployments.seconds[done])) - time.time()))
        reached = deployments.before(clock.now())
        for position in range(done, reached):
            organisation = deployments.organisations[position:position + 1]
            managed = _managed(fleet, organisation, per)
            metrics.count(COUNTER, _mark(fleet, _local(fleet, managed)))
            first = int(organisation[0]) * per
            if deployments.downloads[position] and len(managed) and first % part.count == part.index:
                language = fleet.machine((first - part.index) // part.count).language
                fetch(PackageFetch(PACKAGE, language, float(deployments.seconds[position])))
        done = reached
