"""Which machines a scenario event makes check, and when: visits to the update site, a boot storm, a "detect now".

Which machines take part is a hash of (seed, event number, machine index), so every worker picks
its own share of the same set, and the fast simulation the same machines as a live run.

- A boot storm or a "detect now" moves the next check of the chosen machines whose client checks
  for updates and which are between updates; a "detect now" reaches only the machines that are on.
  Each one's next check moves to the event's time plus a hashed spread over `within`.
- A site rush or site visits are users at the update site by hand: any machine may take part
  (Automatic Updates off too), if it is on at its visit. A rush's visits fall off after `at` (an
  exponential of mean a quarter of `within`, cut at `within`), as the news ages; site visits are
  spread evenly over `within`.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np

from harness.config.schema import BY_HAND, Event
from harness.model.fleet import Fleet
from harness.model.hashing import unit_array

_SALT_TAKES_PART, _SALT_SPREAD = 100, 200
_RUSH_DECAY = 4.0  # `within` is this many mean waits: 98 % of the visits fall within it


def event_checks(event: Event, number: int, fleet: Fleet, start: datetime) -> tuple[np.ndarray, np.ndarray]:
    """(local indices, due times in seconds from the timeline's `start`) of the machines the event makes check.

    `number` is the event's position in the scenario. A boot storm or "detect now" takes machines between
    updates only, as the fleet's phases are when it is called; the order is the fleet's.
    """
    indices = fleet.global_indices()
    seed = fleet.spec.seed
    at_s = (event.at - start).total_seconds()
    takes_part = unit_array(seed, _SALT_TAKES_PART + number, indices) < event.share
    if event.kind in BY_HAND:
        chosen = np.nonzero(takes_part)[0]
        spread = unit_array(seed, _SALT_SPREAD + number, indices[chosen])
        if event.kind == "site_rush":  # the inverse of an exponential's distribution, cut at `within`
            tau = event.within_s / _RUSH_DECAY
            due = at_s - tau * np.log1p(-spread * (1.0 - math.exp(-_RUSH_DECAY)))
        else:
            due = at_s + spread * event.within_s
    else:
        chosen = np.nonzero(takes_part & fleet.checks_for_updates(indices) & fleet.idle_mask())[0]
        due = at_s + unit_array(seed, _SALT_SPREAD + number, indices[chosen]) * event.within_s
    if event.kind == "boot_storm":  # `at` is the local time of day in each machine's own time zone
        due -= fleet.utc_offsets_s(indices[chosen], due)
    else:  # a push, or a user at the site, needs the machine on
        on = fleet.online(indices[chosen], due)
        chosen, due = chosen[on], due[on]
    return chosen, due


def site_visits(events: tuple[Event, ...], fleet: Fleet, start: datetime) -> tuple[np.ndarray, np.ndarray]:
    """(local indices, times) of every visit to the update site of the scenario's events, in time order."""
    visits = [event_checks(event, number, fleet, start) for number, event in enumerate(events)
              if event.kind in BY_HAND]
    local = np.concatenate([chosen for chosen, _ in visits] or [np.empty(0, np.int64)])
    due = np.concatenate([when for _, when in visits] or [np.empty(0)])
    order = np.argsort(due, kind="stable")
    return local[order], due[order]
