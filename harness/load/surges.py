"""Scenario events that move many machines' next check at once: a pushed "detect now", a boot storm.

Which machines take part is a hash of (seed, event number, machine index), so every worker picks
its own share of the same set; only machines whose AU is on and which are between updates take part,
and a "detect now" reaches only the machines that are switched on. Each chosen machine's next check
moves to the event's time plus a hashed spread over `within`; its schedule goes on from that check,
as a real client's would.
"""

from __future__ import annotations

import gevent
import numpy as np

from harness.config.schema import Event
from harness.load.schedule import Dispatcher
from harness.model.clock import ScenarioClock
from harness.model.fleet import Fleet
from harness.model.hashing import unit_array

_SALT_TAKES_PART, _SALT_SPREAD = 100, 200


def event_checks(event: Event, number: int, fleet: Fleet, clock: ScenarioClock) -> tuple[np.ndarray, np.ndarray]:
    """(local indices, new due times in scenario seconds) of the machines the event moves."""
    indices = fleet.global_indices()
    seed = fleet.spec.seed
    takes_part = unit_array(seed, _SALT_TAKES_PART + number, indices) < event.share
    chosen = np.nonzero(takes_part & fleet.checks_for_updates(indices) & fleet.idle_mask())[0]
    due = clock.seconds_at(event.at) + unit_array(seed, _SALT_SPREAD + number, indices[chosen]) * event.within_s
    if event.kind == "boot_storm":  # `at` is the local time of day in each machine's own time zone
        due -= fleet.utc_offsets_s(indices[chosen], due)
    else:  # a pushed detection reaches only the machines that are on
        on = fleet.online(indices[chosen], due)
        chosen, due = chosen[on], due[on]
    return chosen, due


def schedule_surges(events: tuple[Event, ...], fleet: Fleet, dispatcher: Dispatcher,
                    clock: ScenarioClock) -> list[gevent.Greenlet]:
    """One greenlet per event, applying it just before the first machine it moves is due."""
    greenlets = []
    for number, event in enumerate(events):
        local, due = event_checks(event, number, fleet, clock)
        if len(due):
            delay = max(0.0, clock.wall_at(float(due.min())) - clock.wall_at(clock.now()))
            greenlets.append(gevent.spawn_later(delay, _apply, dispatcher, clock, local, due))
    return greenlets


def _apply(dispatcher: Dispatcher, clock: ScenarioClock, local: np.ndarray, due: np.ndarray) -> None:
    dispatcher.schedule_many(local, np.maximum(due, clock.now()))
