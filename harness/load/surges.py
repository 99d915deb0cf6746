"""Scenario events that make many machines check at once: a rush to the update site, a boot storm, "detect now".

Which machines take part is a hash of (seed, event number, machine index), so every worker picks
its own share of the same set.

- A boot storm or a "detect now" moves the next check of the chosen machines whose client checks
  for updates and which are between updates; a "detect now" reaches only the machines that are on.
  Each one's next check moves to the event's time plus a hashed spread over `within`; its schedule
  goes on from that check, as a real client's would.
- A site rush is users at the update site by hand: any machine may take part (Automatic Updates off
  too), if it is on at its visit, and its client's own schedule is left as it was. The visits fall
  off after `at` (an exponential of mean a quarter of `within`, cut at `within`), as the news ages.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import gevent
import numpy as np

from harness.config.schema import Event
from harness.load.schedule import Dispatcher
from harness.model.clock import ScenarioClock
from harness.model.fleet import Fleet
from harness.model.hashing import unit_array

_SALT_TAKES_PART, _SALT_SPREAD = 100, 200
_RUSH_DECAY = 4.0  # `within` is this many mean waits: 98 % of the visits fall within it


@dataclass(frozen=True, slots=True)
class SiteVisit:
    """A user at the update site by hand: machine `index` (of this process's fleet), due at scenario second `due_at`."""

    index: int
    due_at: float


def event_checks(event: Event, number: int, fleet: Fleet, clock: ScenarioClock) -> tuple[np.ndarray, np.ndarray]:
    """(local indices, due times in scenario seconds) of the machines the event makes check, in no order."""
    indices = fleet.global_indices()
    seed = fleet.spec.seed
    takes_part = unit_array(seed, _SALT_TAKES_PART + number, indices) < event.share
    if event.kind == "site_rush":
        chosen = np.nonzero(takes_part)[0]
        spread = unit_array(seed, _SALT_SPREAD + number, indices[chosen])
        tau = event.within_s / _RUSH_DECAY  # the inverse of an exponential's distribution, cut at `within`
        due = clock.seconds_at(event.at) - tau * np.log1p(-spread * (1.0 - math.exp(-_RUSH_DECAY)))
    else:
        chosen = np.nonzero(takes_part & fleet.checks_for_updates(indices) & fleet.idle_mask())[0]
        due = clock.seconds_at(event.at) + unit_array(seed, _SALT_SPREAD + number, indices[chosen]) * event.within_s
    if event.kind == "boot_storm":  # `at` is the local time of day in each machine's own time zone
        due -= fleet.utc_offsets_s(indices[chosen], due)
    else:  # a push, or a user at the site, needs the machine on
        on = fleet.online(indices[chosen], due)
        chosen, due = chosen[on], due[on]
    return chosen, due


def schedule_surges(events: tuple[Event, ...], fleet: Fleet, dispatcher: Dispatcher, clock: ScenarioClock,
                    visit: Callable[[SiteVisit], None], end_s: float) -> list[gevent.Greenlet]:
    """One greenlet per event: moving its machines' checks just before the first is due, or handing
    each site visit to `visit` as it falls due (until scenario second `end_s`)."""
    greenlets = []
    for number, event in enumerate(events):
        local, due = event_checks(event, number, fleet, clock)
        if event.kind == "site_rush":
            kept = due < end_s
            greenlets.append(gevent.spawn(_visit_when_due, clock, local[kept], due[kept], visit))
        elif len(due):
            delay = max(0.0, clock.wall_at(float(due.min())) - clock.wall_at(clock.now()))
            greenlets.append(gevent.spawn_later(delay, _apply, dispatcher, clock, local, due))
    return greenlets


def _apply(dispatcher: Dispatcher, clock: ScenarioClock, local: np.ndarray, due: np.ndarray) -> None:
    dispatcher.schedule_many(local, np.maximum(due, clock.now()))


def _visit_when_due(clock: ScenarioClock, local: np.ndarray, due: np.ndarray,
                    visit: Callable[[SiteVisit], None]) -> None:
    """Hand over the visits in due order as the clock reaches them (`visit` may block while the agents are behind)."""
    order = np.argsort(due, kind="stable")
    local, due = local[order], due[order]
    position = 0
    while position < len(due):
        gevent.sleep(max(0.0, clock.seconds_until(float(due[position]))))
        stop = int(np.searchsorted(due, clock.now(), side="right"))  # gevent may wake a little early: none
        for index, due_at in zip(local[position:stop].tolist(), due[position:stop].tolist(), strict=True):
            visit(SiteVisit(index, due_at))
        position = stop
