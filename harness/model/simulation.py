"""A fast simulation of a scenario's rollouts, with no HTTP: when would each machine install each update?

It applies the same fleet model and the same policy as a real run, machine by machine in numpy:
machine i checks at its first due time and then every check interval, when it is on (the same
functions the dispatcher uses); it is offered an update at the first check at which it is eligible
(its attributes' dates, its language's availability, a managed machine's block), has the update's
prerequisites and the rollout percentage is above its gate; the download takes as long as its
connection needs for its package (the differential one when it has the update that package patches),
and the install follows its install policy (the install hour or the next boot; when its user
answers). Machines whose updates are off never check. A site rush's visitors (harness/model/events.py)
install an update at their visit when it comes before their client is offered it and they would be
offered it then, whatever their install policy. Updates are simulated in the world's order, each
one's offers independent of the others' downloads (a live machine takes one update at a time, so it
can be a check interval later, and a visitor busy with another update leaves the site). Boot storms
and "detect now" pushes are not simulated. The offers-per-hour cap is not modelled: `simulate` reports the
busiest hour of offers so that a scenario can show its cap never binds. Live runs round due times up
to the dispatcher's buckets (a few scenario seconds), so they follow the simulated curve closely, not
to the machine.

`python -m harness.model.simulation scenarios/throttled_ramp.toml` prints the curves against the world's figures,
over 20 fleet seeds (`make compare-seed`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from msgspec.structs import replace

from harness.config.errors import InputError
from harness.config.scenario import load_scenario, with_overrides
from harness.config.schema import RolloutSpec, Scenario
from harness.config.world import Figure
from harness.model.events import site_visits
from harness.model.fleet import NOTIFY, WHOLE_FLEET, Fleet, Partition
from harness.model.hashing import unit_array
from harness.model.rollout_gate import gates_of_guid_words

NEVER = np.inf
_SALT_INSTALLED = 400  # + the update's position in the world: whether a machine starts with it
SIMULATION_CHUNK = 1 << 21  # machines simulated at a time: bounds the temporary arrays


@dataclass(frozen=True)
class Rollout:
    """Simulated installs by update: scenario seconds from the timeline's start (0: from the start), NEVER if
    never; and which of them a user made by hand at the update site."""

    scenario: Scenario
    installs: dict[str, np.ndarray]
    busiest_hour_offers: dict[str, int]
    by_hand: dict[str, np.ndarray]

    def installed_real(self, update: str, when: datetime, site: bool = True) -> float:
        """Real-world machines with `update` by `when` (emulated count x the fleet's derived weight); `site`:
        counting those installed by hand at the update site."""
        seconds = (when - self.scenario.timeline.start).total_seconds()
        counted = self.installs[update] <= seconds
        if not site:
            counted &= ~self.by_hand[update]
        return float(np.count_nonzero(counted)) * self.scenario.fleet.weight


def _seconds(scenario: Scenario, when: datetime) -> float:
    return (when - scenario.timeline.start).total_seconds()


def _gate_times(scenario: Scenario, rollout: RolloutSpec, gates: np.ndarray) -> np.ndarray:
    """The first scenario second at which the rollout percentage exceeds each gate."""
    times = np.full(len(gates), NEVER)
    steps = [(_seconds(scenario, step.at), step.percent) for step in rollout.steps]
    first_t, first_p = steps[0]
    times[gates < first_p] = first_t
    for (t0, p0), (t1, p1) in zip(steps, steps[1:], strict=False):
        rising = (gates >= p0) & (gates < p1) & (times == NEVER)
        times[rising] = t1 if rollout.ramp == "stages" else t0 + (gates[rising] - p0) / (p1 - p0) * (t1 - t0)
    return times


def _eligible_times(scenario: Scenario, fleet: Fleet, indices: np.ndarray, update: str,
                    rollout: RolloutSpec) -> np.ndarray:
    """When each machine becomes eligible for `update`: its attributes' dates, its language, a managed block."""
    eligible = np.full(len(indices), -NEVER)
    for attribute, dates in rollout.eligible:
        given = dict(dates)
        starts = np.array([_seconds(scenario, given[value]) if value in given else NEVER
                           for value in fleet.attribute_values(attribute)])
        eligible = np.maximum(eligible, starts[fleet.attribute_codes(attribute, indices)])
    world = scenario.world
    releases = np.array([_seconds(scenario, when) if (when := world.available_from(update, code)) else -NEVER
                         for code in fleet.language_codes()])
    eligible = np.maximum(eligible, releases[fleet.language_positions(indices)])
    if rollout.managed_block_until is not None:
        blocked = fleet.enterprise_mask(indices)
        eligible[blocked] = np.maximum(eligible[blocked], _seconds(scenario, rollout.managed_block_until))
    return eligible


def _package_sizes(scenario: Scenario, fleet: Fleet, indices: np.ndarray, update: str,
                   patched: np.ndarray) -> np.ndarray:
    """Each machine's package of `update` in real bytes; `patched`: it has what the differential package patches."""
    world, spec = scenario.world, scenario.world.update(update)
    values = fleet.attribute_values(spec.variant) if spec.variant else ("",)
    codes = fleet.attribute_codes(spec.variant, indices) if spec.variant else np.zeros(len(indices), dtype=np.int64)
    full = np.array([world.package_size(update, value) for value in values], dtype=np.float64)[codes]
    if spec.differential is None:
        return full
    diff = np.array([world.package_size(update, value, differential=True) for value in values])[codes]
    return np.where(patched, diff, full)


def _install_times(fleet: Fleet, indices: np.ndarray, offered: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """When machines offered an update at `offered` have it installed, by connection and install policy."""
    notify = fleet.policy_codes(indices) == NOTIFY
    start = np.where(notify, fleet.user_answers(indices, offered), offered)  # notify: the user says yes first
    ready = fleet.checkable_at(indices, fleet.downloaded_at(indices, start, sizes))
    return np.where(notify, ready, fleet.install_times(indices, ready))


def _first_check_from(fleet: Fleet, indices: np.ndarray, offered_from: np.ndarray, end: float) -> np.ndarray:
    """Each machine's first check at or after `offered_from` within the timeline (NEVER if none)."""
    offers = np.full(len(indices), NEVER)
    due = fleet.first_checks(indices)
    waiting = np.isfinite(due) & (offered_from <= end)  # offered later, it cannot check for it in time
    while True:
        active = waiting & (due <= end)
        if not active.any():
            break
        hit = active & (due >= offered_from)
        offers[hit] = due[hit]
        waiting &= ~hit
        step = active & waiting
        due[step] = fleet.next_checks(indices[step], due[step])
    return offers


def simulate(scenario: Scenario, partition: Partition = WHOLE_FLEET) -> Rollout:
    """When each of the scenario's machines (or a partition's, by local index) installs each update."""
    installs: dict[str, list[np.ndarray]] = {update: [] for update in scenario.world.update_names}
    by_hand: dict[str, list[np.ndarray]] = {update: [] for update in installs}
    offer_hours: dict[str, np.ndarray] = {}
    for done, at_site, hours in _simulated_chunks(scenario, partition):
        for update in installs:
            installs[update].append(done[update])
            by_hand[update].append(at_site[update])
        for update, counts in hours.items():
            known = offer_hours.get(update, np.zeros(0, dtype=np.int64))
            offer_hours[update] = np.pad(known, (0, max(0, len(counts) - len(known))))
            offer_hours[update][: len(counts)] += counts
    return Rollout(scenario, {update: np.concatenate(parts) for update, parts in installs.items()},
                   {update: int(counts.max()) if len(counts) else 0 for update, counts in offer_hours.items()},
                   {update: np.concatenate(parts) for update, parts in by_hand.items()})


def _simulated_chunks(scenario: Scenario, partition: Partition) -> Iterator[
        tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """The simulation a chunk of the partition's machines at a time (machines are independent of each other):
    each chunk's install times and installs at the site by update, and its offers counted by scenario hour."""
    world = scenario.world
    fleet = Fleet(scenario.fleet, scenario.timeline.start, partition, world)
    end = scenario.timeline.scenario_seconds
    initial = initial_installs(scenario, partition)
    all_visitors, all_visits = site_visits(scenario.events, fleet, scenario.timeline.start)
    for first in range(0, len(fleet), SIMULATION_CHUNK):
        stop = min(first + SIMULATION_CHUNK, len(fleet))
        indices = fleet.global_indices(first, stop)
        mine = (all_visitors >= first) & (all_visitors < stop)
        visitors, visits = all_visitors[mine] - first, all_visits[mine]
        installs = {update: np.where(had[first:stop], 0.0, NEVER) for update, had in initial.items()}
        by_hand = {update: np.zeros(len(indices), dtype=bool) for update in installs}
        hours_offered: dict[str, np.ndarray] = {}
        high, low = fleet.identities.client_guid_words(indices)
        for update in world.update_names:
            rollout = scenario.server.rollout_of(update)
            done = installs[update]
            if rollout is None:
                continue
            gates = gates_of_guid_words(high, low, update)
            eligible = _eligible_times(scenario, fleet, indices, update, rollout)
            offered_from = np.maximum(eligible, _gate_times(scenario, rollout, gates))
            # a user asking may pass the throttle, not the rollout's start
            starts = _seconds(scenario, rollout.steps[0].at)
            by_hand_from = offered_from if rollout.gate_by_hand else np.maximum(eligible, starts)
            for needed in world.prerequisites(update):
                offered_from = np.maximum(offered_from, installs[needed])
                by_hand_from = np.maximum(by_hand_from, installs[needed])
            offered_from[np.isfinite(done)] = by_hand_from[np.isfinite(done)] = NEVER  # had it from the start
            offers = _first_check_from(fleet, indices, offered_from, end)
            at_site = _first_visit_before(visitors, visits, by_hand_from, offers, end)
            site = by_hand[update] = np.isfinite(at_site)
            offers[site] = NEVER  # the machine has it by the time its client would be offered it
            offered = np.isfinite(offers)
            spec = world.update(update)
            patched = (installs[spec.differential.base][offered] <= offers[offered] if spec.differential is not None
                       else np.zeros(int(offered.sum()), dtype=bool))
            sizes = _package_sizes(scenario, fleet, indices[offered], update, patched)
            done[offered] = _install_times(fleet, indices[offered], offers[offered], sizes)
            done[site] = at_site[site]  # downloaded with its user waiting and installed at once
            hours = (np.concatenate((offers[offered], at_site[site])) // 3600).astype(np.int64)
            hours_offered[update] = np.bincount(hours)
        yield installs, by_hand, hours_offered


def _first_visit_before(visitors: np.ndarray, visits: np.ndarray, offered_from: np.ndarray, offers: np.ndarray,
                        end: float) -> np.ndarray:
    """Each machine's first site visit (visits in time order) after it would be offered the update and before
    its client is: when it installs it by hand (NEVER if it does not)."""
    takes = (offered_from[visitors] < visits) & (visits < offers[visitors]) & (visits < end)
    machines, first = np.unique(visitors[takes], return_index=True)
    at_site = np.full(len(offers), NEVER)
    at_site[machines] = visits[takes][first]
    return at_site


def initial_installs(scenario: Scenario, partition: Partition = WHOLE_FLEET) -> dict[str, np.ndarray]:
    """Which machines (of a partition, by local index) have each update at the scenario's start.

    Those the fleet's `installed` shares give it (a fixed draw per machine and update), and those its
    `start_from` scenario, simulated with this scenario's fleet (starting with that scenario's own
    `installed` shares) up to this scenario's start, installed.
    """
    fleet = scenario.fleet
    machines = partition.size_of(fleet.machines)
    shares = dict(fleet.installed)
    installed = {update: np.zeros(machines, dtype=bool) for update in scenario.world.update_names}
    for first in range(0, machines, SIMULATION_CHUNK):
        indices = partition.global_indices(np.arange(first, min(first + SIMULATION_CHUNK, machines)))
        for position, update in enumerate(scenario.world.update_names):  # in order: prerequisites come first
            drawn = unit_array(fleet.seed, _SALT_INSTALLED + position, indices) < shares.get(update, 0.0)
            for needed in scenario.world.prerequisites(update):
                drawn &= installed[needed][first : first + len(indices)]  # none has an update without its prerequisites
            installed[update][first : first + len(indices)] = drawn
    if fleet.start_from is not None:
        earlier = load_scenario(fleet.start_from)
        earlier = replace(earlier, fleet=replace(fleet, start_from=None, installed=earlier.fleet.installed),
                          timeline=replace(earlier.timeline, end=scenario.timeline.start))
        first = 0
        for done, _, _ in _simulated_chunks(earlier, partition):
            for update, times in done.items():
                installed[update][first : first + len(times)] |= times <= earlier.timeline.scenario_seconds
            first += len(next(iter(done.values())))
    return installed


def with_seed(scenario: Scenario, seed: int) -> Scenario:
    """The scenario with another fleet seed: another sample of the same real fleet."""
    return replace(scenario, fleet=replace(scenario.fleet, seed=seed))


def figures_in(scenario: Scenario) -> list[Figure]:
    """The world's published figures this scenario can be held to: within its timeline, of an update it rolls out."""
    return [figure for figure in scenario.world.figures
            if scenario.timeline.start <= figure.at <= scenario.timeline.end
            and scenario.server.rollout_of(figure.update) is not None]


def compare_with_seed(scenario: Scenario, seeds: int = 20) -> str:
    """The world's published figures against the simulated ones over `seeds` fleet seeds: what each figure is
    to the model (fitted by `make calibrate`, or held out), the mean, the spread and the difference."""
    runs = [simulate(with_seed(scenario, seed)) for seed in range(1, seeds + 1)]
    lines = [f"{seeds} fleet seeds of {scenario.fleet.describe()}",
             f"{'date':<12} {'update':<10} {'role':<9} {'published':>12} {'simulated':>12} {'s.d.':>6} "
             f"{'error':>7}  what"]
    for figure in figures_in(scenario):
        values = np.array([run.installed_real(figure.update, figure.at, figure.site) for run in runs])
        mean = float(values.mean())
        by_hand = mean - float(np.mean([run.installed_real(figure.update, figure.at, site=False) for run in runs]))
        lines.append(f"{figure.at:%Y-%m-%d}   {figure.update:<10} {figure.role:<9} {figure.machines:12,.0f} "
                     f"{mean:12,.0f} {values.std() / mean if mean else 0.0:6.1%} {mean / figure.machines - 1:+7.1%}"
                     f"  {figure.what}" + (f" [{by_hand:,.0f} of them at the site]" if figure.site else ""))
    cap = scenario.server.offers_per_hour
    for update in runs[0].busiest_hour_offers:
        offers = max(run.busiest_hour_offers[update] for run in runs)
        capped = f"cap {cap:,} per hour, {'never reached' if offers <= cap else 'REACHED'}" if cap else "no cap"
        lines.append(f"{update}: busiest hour {offers:,} offers over the seeds ({capped})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.model.simulation", description=__doc__.splitlines()[0])
    parser.add_argument("scenario")
    parser.add_argument("--fleet-size", type=int, help="simulate this many machines, standing for the "
                        "scenario's real fleet as in a live run (default: the scenario's)")
    parser.add_argument("--seeds", type=int, default=20, help="fleet seeds to simulate (1..N; default 20)")
    args = parser.parse_args(argv)
    try:
        scenario = with_overrides(load_scenario(args.scenario), fleet_size=args.fleet_size)
    except InputError as error:
        parser.error(str(error))
    print(compare_with_seed(scenario, max(1, args.seeds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
