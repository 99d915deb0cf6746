"""Administrators' own deployments of an update from its network-install package (2004: SP2's, released Aug 9).

The update is the world's one with a `network_size`. Enterprise-managed machines were blocked from
SP2 through Automatic Updates; some of their
administrators deployed it themselves instead, one download of the package serving
`machines_per_download` real managed machines. An emulated organisation is a block of consecutive
machines standing for `machines_per_download` real ones (one machine when the fleet's weight is
larger); whether it deploys and on which date (spread evenly over `over` from the package's
release) are hashes of (seed, organisation), so every worker agrees. On that date the
organisation's enterprise-managed machines have it (counted as installed_<update>_network, never as
installed through the client), and its administrator downloads the package with a chance of its managed
machines / `machines_per_download` (a hash too): so, weight for weight, one download goes out per
`machines_per_download` real managed machines at any fleet size. The worker that owns the
organisation's first machine sends it. Organisations that deployed by the timeline's start have
SP2 from the start, as part of the fleet's initial state; those dated within the run are carried
out as scenario time reaches them (harness/load/deployments.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from harness.config.schema import FleetSpec, NetworkInstallSpec
from harness.model.fleet import Fleet
from harness.model.hashing import unit_array

_SALT_DEPLOYS, _SALT_DATE, _SALT_DOWNLOADS = 300, 301, 302
_CHUNK = 1 << 20  # machines marked at a time at start-up


def package_of(update: str) -> str:
    """The reference catalog's id of an update's network-install package, before its language."""
    return f"{update}-network"


def counter_of(update: str) -> str:
    """The counter of machines given `update` by their administrators."""
    return f"installed_{update}_network"


@dataclass(frozen=True)
class PackageFetch:
    """An administrator's download of a package outside any offer, for an agent to carry out."""

    package: str
    language: str


@dataclass(frozen=True)
class Deployments:
    """The organisations that deploy, in date order, with their scenario seconds of deployment."""

    update: str
    size: int  # emulated machines per organisation
    machines_per_download: int
    organisations: np.ndarray  # uint64
    seconds: np.ndarray  # float64, ascending
    draws: np.ndarray  # float64 in [0, 1): decides whether the organisation's administrator downloads

    @classmethod
    def plan(cls, spec: NetworkInstallSpec, fleet: FleetSpec, origin: datetime, update: str) -> Deployments:
        size = max(1, round(spec.machines_per_download / fleet.weight))
        every = np.arange(math.ceil(fleet.machines / size), dtype=np.uint64)
        deploying = every[unit_array(fleet.seed, _SALT_DEPLOYS, every) < spec.share]
        seconds = (spec.since - origin).total_seconds() + unit_array(fleet.seed, _SALT_DATE, deploying) * spec.over_s
        draws = unit_array(fleet.seed, _SALT_DOWNLOADS, deploying)
        order = np.argsort(seconds, kind="stable")
        return cls(update, size, spec.machines_per_download, deploying[order], seconds[order], draws[order])

    def before(self, scenario_s: float) -> int:
        """How many organisations have deployed by scenario second `scenario_s`."""
        return int(np.searchsorted(self.seconds, scenario_s, side="right"))

    def managed(self, fleet: Fleet, position: int) -> np.ndarray:
        """Global indices of the enterprise-managed machines of the organisation at `position` (every partition's)."""
        first = int(self.organisations[position]) * self.size
        indices = np.arange(first, min(first + self.size, fleet.spec.machines), dtype=np.uint64)
        return indices[fleet.enterprise_mask(indices)]

    def downloads(self, position: int, managed: int) -> bool:
        """Whether the administrator of the organisation at `position`, with `managed` machines, downloads."""
        return bool(self.draws[position] < managed / self.machines_per_download)


def install_before_start(fleet: Fleet, deployments: Deployments) -> int:
    """Give the update to the machines of the organisations that deployed by scenario second 0; how many."""
    per, marked = deployments.size, 0
    if deployments.before(0.0) == 0:
        return 0
    deployed = np.zeros(math.ceil(fleet.spec.machines / per), dtype=bool)
    deployed[deployments.organisations[:deployments.before(0.0)]] = True
    for first in range(0, len(fleet), _CHUNK):
        indices = fleet.global_indices(first, first + _CHUNK)
        takes = deployed[indices // per] & fleet.enterprise_mask(indices)
        marked += mark_installed(fleet, first + np.nonzero(takes)[0], deployments.update)
    return marked


def local_indices(fleet: Fleet, indices: np.ndarray) -> np.ndarray:
    """Local indices of the global ones that are this partition's."""
    part = fleet.partition
    mine = indices[indices % np.uint64(part.count) == part.index]
    return ((mine - np.uint64(part.index)) // np.uint64(part.count)).astype(np.int64)


def mark_installed(fleet: Fleet, local: np.ndarray, update: str) -> int:
    """Set `update` installed on the machines that lack it; how many did."""
    bit = fleet.status.dtype.type(fleet.update_bit(update))
    lacking = local[(fleet.status[local] & bit) == 0]
    fleet.status[lacking] |= bit
    return len(lacking)
