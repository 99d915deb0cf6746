"""A fast simulation of a scenario's SP2 rollout, with no HTTP: when would each machine install SP2?

It applies the same fleet model and the same policy as a real run, machine by machine in numpy:
machine i checks at its first due time and then every detection interval, when it is on (the same
functions the dispatcher uses); it is offered SP2 at the first check at which its edition is
eligible, its language released, its enterprise block lifted and the rollout percentage above its
gate; the download takes as long as its connection needs, and the install follows its AU setting
(03:00 or the next boot; when its user answers). Machines whose AU is off never check. The
offers-per-hour cap is not modelled: `simulate` reports the busiest hour of offers so that a
scenario can show its cap never binds. Live runs round due times up to the dispatcher's buckets
(a few scenario seconds), so they follow the simulated curve closely, not to the machine.

`python -m harness.model.simulation scenarios/throttled_ramp.toml` prints the curve against the seed's figures.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from msgspec.structs import replace

from harness.config.errors import InputError
from harness.config.scenario import load_scenario, with_overrides
from harness.config.schema import RolloutSpec, Scenario
from harness.config.world import AU_SETTINGS, SEED_FIGURES, SP2_SIZES, language
from harness.model.fleet import Fleet
from harness.model.rollout_gate import gate

NEVER = np.inf


@dataclass(frozen=True)
class Rollout:
    """Simulated SP2 installs: scenario seconds from the timeline's start, NEVER if never offered."""

    scenario: Scenario
    installs: np.ndarray
    busiest_hour_offers: int

    def installed_real(self, when: datetime) -> float:
        """Real-world machines with SP2 by `when` (emulated count x the fleet's derived weight)."""
        seconds = (when - self.scenario.timeline.start).total_seconds()
        return float(np.count_nonzero(self.installs <= seconds)) * self.scenario.fleet.weight


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
        times[rising] = t0 + (gates[rising] - p0) / (p1 - p0) * (t1 - t0)
    return times


def _eligible_times(scenario: Scenario, fleet: Fleet, indices: np.ndarray, rollout: RolloutSpec) -> np.ndarray:
    """When each machine becomes eligible for SP2: edition date, language release, enterprise block."""
    starts = rollout.editions.dates()
    home, pro = (_seconds(scenario, starts[e]) if e in starts else NEVER for e in ("home", "pro"))
    eligible = np.where(fleet.home_mask(indices), home, pro)
    releases = np.array([_seconds(scenario, language(code).sp2_release) for code, _ in scenario.fleet.languages])
    eligible = np.maximum(eligible, releases[fleet.language_positions(indices)])
    block = scenario.server.enterprise_block_until
    if block is not None:
        blocked = fleet.enterprise_mask(indices)
        eligible[blocked] = np.maximum(eligible[blocked], _seconds(scenario, block))
    return eligible


def _install_times(fleet: Fleet, indices: np.ndarray, offered: np.ndarray) -> np.ndarray:
    """When machines offered SP2 at `offered` have it installed, by connection and AU setting."""
    sizes = np.where(fleet.home_mask(indices), SP2_SIZES["home"], SP2_SIZES["pro"])
    notify = fleet.au_codes(indices) == AU_SETTINGS.index("notify")
    start = np.where(notify, fleet.user_answers(indices, offered), offered)  # notify: the user says yes first
    ready = fleet.checkable_at(indices, start + fleet.download_seconds(indices, 1.0) * sizes)
    return np.where(notify, ready, fleet.install_times(indices, ready))


def simulate(scenario: Scenario) -> Rollout:
    """When each of the scenario's machines installs SP2 (the whole fleet, one process)."""
    rollout = scenario.server.rollout.xpsp2
    fleet = Fleet(scenario.fleet, scenario.timeline.start)
    indices = np.arange(scenario.fleet.machines, dtype=np.uint32)
    if rollout is None:
        return Rollout(scenario, np.full(len(indices), NEVER), 0)
    gates = np.array([gate(fleet.identities.client_id(i), "xpsp2") for i in range(len(indices))])
    offered_from = np.maximum(_eligible_times(scenario, fleet, indices, rollout),
                              _gate_times(scenario, rollout, gates))
    offers = np.full(len(indices), NEVER)
    due = fleet.first_checks(indices)
    end = scenario.timeline.scenario_seconds
    waiting = np.isfinite(due)
    while True:
        active = waiting & (due <= end)
        if not active.any():
            break
        hit = active & (due >= offered_from)
        offers[hit] = due[hit]
        waiting &= ~hit
        step = active & waiting
        due[step] = fleet.next_checks(indices[step], due[step])
    installs = np.full(len(indices), NEVER)
    offered = np.isfinite(offers)
    installs[offered] = _install_times(fleet, indices[offered], offers[offered])
    done = offers[offered]
    busiest = int(np.bincount((done // 3600).astype(np.int64)).max()) if len(done) else 0
    return Rollout(scenario, installs, busiest)


def initial_sp2(scenario: Scenario) -> np.ndarray:
    """Which machines (by global index) already have SP2 at the scenario's start, by its `start_from`.

    The `start_from` scenario is simulated with this scenario's fleet up to this scenario's start.
    """
    if scenario.fleet.start_from is None:
        return np.zeros(scenario.fleet.machines, dtype=bool)
    earlier = load_scenario(scenario.fleet.start_from)
    earlier = replace(earlier, fleet=replace(scenario.fleet, start_from=None),
                      timeline=replace(earlier.timeline, end=scenario.timeline.start))
    return simulate(earlier).installs <= earlier.timeline.scenario_seconds


def compare_with_seed(result: Rollout) -> str:
    """The seed's figures against the simulated ones, with the error of each."""
    lines = [f"{'date':<12} {'seed':>12} {'simulated':>12} {'error':>7}  what"]
    for when, figure, what in SEED_FIGURES:
        if when > result.scenario.timeline.end:
            continue
        simulated = result.installed_real(when)
        lines.append(f"{when:%Y-%m-%d}   {figure:12,.0f} {simulated:12,.0f} {simulated / figure - 1:+7.1%}  {what}")
    cap = result.scenario.server.offers_per_hour
    lines.append(f"busiest hour: {result.busiest_hour_offers:,} offers (cap {cap:,} per hour"
                 f"{', never reached' if not cap or result.busiest_hour_offers <= cap else ', REACHED'})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.model.simulation", description=__doc__.splitlines()[0])
    parser.add_argument("scenario")
    parser.add_argument("--fleet-size", type=int, help="simulate this many machines, standing for the "
                        "scenario's real fleet as in a live run (default: the scenario's)")
    args = parser.parse_args(argv)
    try:
        scenario = with_overrides(load_scenario(args.scenario), fleet_size=args.fleet_size)
    except InputError as error:
        parser.error(str(error))
    print(compare_with_seed(simulate(scenario)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
