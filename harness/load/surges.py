"""Scenario events played live: site visits handed to the agents as they fall due, checks moved in the schedule.

harness/model/events.py says which machines an event makes check and when. A boot storm or a
"detect now" moves their next check in the dispatcher just before the first is due; the schedule
goes on from that check, as a real client's would. Visits to the update site are handed over one by one
as the clock reaches them, and leave the client's schedule as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import gevent
import numpy as np

from harness.config.schema import BY_HAND, Event
from harness.load.schedule import Dispatcher
from harness.model.clock import ScenarioClock
from harness.model.events import event_checks, site_visits
from harness.model.fleet import Fleet


@dataclass(frozen=True, slots=True)
class SiteVisit:
    """A user at the update site by hand: machine `index` (of this process's fleet), due at scenario second `due_at`."""

    index: int
    due_at: float


@dataclass(frozen=True)
class SurgePlan:
    """Which machines the events make check and when: (local indices, due times) of each push or boot storm,
    and of every site visit in time order."""

    moved: list[tuple[np.ndarray, np.ndarray]]
    visits: tuple[np.ndarray, np.ndarray]


def plan_surges(events: tuple[Event, ...], fleet: Fleet, start: datetime) -> SurgePlan:
    """The events' checks for a fleet as it stands before its clock starts (`start`: the timeline's)."""
    moved = [event_checks(event, number, fleet, start) for number, event in enumerate(events)
             if event.kind not in BY_HAND]
    return SurgePlan([(local, due) for local, due in moved if len(due)], site_visits(events, fleet, start))


def schedule_surges(plan: SurgePlan, dispatcher: Dispatcher, clock: ScenarioClock,
                    visit: Callable[[SiteVisit], None], end_s: float) -> list[gevent.Greenlet]:
    """Greenlets playing the events: moving machines' checks just before the first is due, and handing
    each site visit to `visit` as it falls due (until scenario second `end_s`)."""
    greenlets = []
    for local, due in plan.moved:
        delay = max(0.0, clock.wall_at(float(due.min())) - clock.wall_at(clock.now()))
        greenlets.append(gevent.spawn_later(delay, _apply, dispatcher, clock, local, due))
    local, due = plan.visits
    if len(due):
        kept = due < end_s
        greenlets.append(gevent.spawn(_visit_when_due, clock, local[kept], due[kept], visit))
    return greenlets


def _apply(dispatcher: Dispatcher, clock: ScenarioClock, local: np.ndarray, due: np.ndarray) -> None:
    dispatcher.schedule_many(local, np.maximum(due, clock.now()))


def _visit_when_due(clock: ScenarioClock, local: np.ndarray, due: np.ndarray,
                    visit: Callable[[SiteVisit], None]) -> None:
    """Hand over the visits (in time order) as the clock reaches them; `visit` may block while the agents are behind."""
    position = 0
    while position < len(due):
        gevent.sleep(max(0.0, clock.seconds_until(float(due[position]))))
        stop = int(np.searchsorted(due, clock.now(), side="right"))  # gevent may wake a little early: none
        for index, due_at in zip(local[position:stop].tolist(), due[position:stop].tolist(), strict=True):
            visit(SiteVisit(index, due_at))
        position = stop
