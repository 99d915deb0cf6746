"""Fit a scenario's rollout throttle to the world's `fitted` figures, over many fleet seeds, and write it down.

For each fitted figure in date order (real machines with an update by a date), the percentage of
the rollout's step at that date is searched (bisection: more percent never means fewer installs) until
the *mean* over the fleet seeds of the fast simulation meets the figure. Fitting the mean rather than
one seed keeps any one sample's luck out of the throttle. The steps found are written into the
scenario file in place; what was fitted is printed, and `make compare-seed` then shows it beside the
held-out figures.

`python -m harness.model.calibrate scenarios/throttled_ramp.toml [--seeds 20] [--dry-run]` (`make calibrate`).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
from msgspec.structs import replace

from harness.config.errors import InputError
from harness.config.scenario import load_scenario
from harness.config.schema import Rollouts, RolloutSpec, Scenario
from harness.config.world import Figure
from harness.model.simulation import figures_in, simulate, with_seed

BISECTIONS = 12  # a 100 % range to within 0.03 percentage points


def mean_installed(scenario: Scenario, figure: Figure, seeds: int) -> float:
    """Real machines with the figure's update by its date, the mean over fleet seeds 1..seeds."""
    return float(np.mean([simulate(with_seed(scenario, seed)).installed_real(figure.update, figure.at, figure.site)
                          for seed in range(1, seeds + 1)]))


def _with_percent(scenario: Scenario, update: str, step: int, percent: float) -> Scenario:
    """The scenario with one step of an update's throttle at `percent` (later steps raised to it if lower)."""
    rollout = scenario.server.rollout_of(update)
    assert rollout is not None
    steps = tuple(replace(s, percent=percent) if i == step else
                  replace(s, percent=max(s.percent, percent)) if i > step else s
                  for i, s in enumerate(rollout.steps))
    rollouts = Rollouts((name, replace(spec, steps=steps) if name == update else spec)
                        for name, spec in scenario.server.rollout)
    return replace(scenario, server=replace(scenario.server, rollout=rollouts))


def _step_at(rollout: RolloutSpec, figure: Figure, path: str) -> int:
    for i, step in enumerate(rollout.steps):
        if step.at == figure.at:
            return i
    raise InputError(f"{path}: server.rollout.{figure.update}.steps",
                     f"has no step at {figure.at:%Y-%m-%d %H:%M}, the date of a fitted figure",
                     f"add {{ at = {figure.at:%Y-%m-%dT%H:%M:%SZ}, percent = 0 }} for the calibration to fit")


def calibrate(scenario: Scenario, seeds: int) -> tuple[Scenario, list[tuple[Figure, float, float]]]:
    """The scenario with its throttle fitted to each fitted figure; (figure, percent found, mean simulated) each."""
    fitted = []
    for figure in sorted((f for f in figures_in(scenario) if f.role == "fitted"), key=lambda f: f.at):
        rollout = scenario.server.rollout_of(figure.update)
        assert rollout is not None
        step = _step_at(rollout, figure, scenario.path)
        low, high = (rollout.steps[step - 1].percent if step else 0.0), 100.0
        for _ in range(BISECTIONS):
            middle = (low + high) / 2
            if mean_installed(_with_percent(scenario, figure.update, step, middle), figure, seeds) < figure.machines:
                low = middle
            else:
                high = middle
        percent = round((low + high) / 2, 2)
        scenario = _with_percent(scenario, figure.update, step, percent)
        fitted.append((figure, percent, mean_installed(scenario, figure, seeds)))
    return scenario, fitted


def write_steps(path: Path, update: str, scenario: Scenario) -> list[str]:
    """Set the percent of each of the update's steps written in the file; the steps it could not find."""
    text = path.read_text()
    rollout = scenario.server.rollout_of(update)
    assert rollout is not None
    missing = []
    for step in rollout.steps:
        written = re.compile(rf"(at\s*=\s*{re.escape(f'{step.at:%Y-%m-%dT%H:%M:%SZ}')}\s*,\s*percent\s*=\s*)[0-9.]+")
        text, found = written.subn(lambda match, p=step.percent: f"{match.group(1)}{p:g}", text)
        if not found:
            missing.append(f"{{ at = {step.at:%Y-%m-%dT%H:%M:%SZ}, percent = {step.percent:g} }}")
    path.write_text(text)
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.model.calibrate", description=__doc__.splitlines()[0])
    parser.add_argument("scenario")
    parser.add_argument("--seeds", type=int, default=20, help="fleet seeds whose mean is fitted (default 20)")
    parser.add_argument("--dry-run", action="store_true", help="print the steps found, do not write them")
    args = parser.parse_args(argv)
    try:
        scenario = load_scenario(args.scenario)
        calibrated, fitted = calibrate(scenario, max(1, args.seeds))
    except InputError as error:
        parser.error(str(error))
    if not fitted:
        print(f"{args.scenario}: the world has no fitted figure within this scenario: nothing to calibrate")
        return 0
    for figure, percent, mean in fitted:
        print(f"fitted {figure.update} at {figure.at:%Y-%m-%d}: {percent:g} % -> mean {mean:,.0f} over {args.seeds} "
              f"fleet seeds (published {figure.machines:,}: {figure.what})")
    if args.dry_run:
        return 0
    for update in dict.fromkeys(figure.update for figure, _, _ in fitted):
        for step in write_steps(Path(args.scenario), update, calibrated):
            print(f"not found in {args.scenario}, write it by hand: {step}")
    print(f"wrote the steps into {args.scenario}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
