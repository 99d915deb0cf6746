"""The fleet at scale: memory per machine, dispatcher cost, arrival-rate accuracy and lateness.

Each figure is measured in a fresh process:
- bytes per machine, in each shipped world (the 2004 XP fleet of smoke.toml, the browser fleet of
  staged_rollout.toml): RSS after building the fleet and its timing wheel, minus RSS before, over
  N; and the peak (ru_maxrss) over N, which includes the build's temporary arrays;
- dispatcher CPU per dispatched check-in and the time of one tick, at 10M machines: the dispatcher
  is driven tick by tick over scenario hours, each released check-in taken at once and rescheduled
  as an agent does (a batch planned by the fleet at the next tick);
- achieved vs target arrival rate over 60 s windows, and the due-time lateness p99, in real time
  with gevent: the dispatcher on the wall clock, agents that take check-ins as fast as they come.

Run: make bench-fleet   (or: .venv/bin/python benchmarks/bench_fleet.py --sizes 1M 10M --windows 2)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from msgspec.structs import replace

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "smoke.toml"
WORLD_SCENARIOS = (SCENARIO, ROOT / "scenarios" / "staged_rollout.toml")  # one per shipped world


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def _build(machines: int, time_scale: float, scenario_path: Path = SCENARIO):  # noqa: ANN202 (fleet, wheel, ...)
    """The fleet and its whole timing wheel, and the seconds until the clock could start (the wheel's first
    buckets filed) and until every bucket was."""
    from harness.config.scenario import load_scenario
    from harness.load.schedule import bucket_seconds, fleet_wheel
    from harness.model.fleet import Fleet

    started = time.perf_counter()
    scenario = load_scenario(scenario_path)
    spec = replace(scenario.fleet, machines=machines, real_machines=None)
    fleet = Fleet(spec, scenario.timeline.start, world=scenario.world)
    wheel = fleet_wheel(fleet, bucket_seconds(time_scale, 0.005))
    ready_s = time.perf_counter() - started
    while wheel.file_next():
        pass
    return scenario, fleet, wheel, (ready_s, time.perf_counter() - started)


def memory(machines: int, scenario_path: str = str(SCENARIO)) -> dict[str, object]:
    """RSS growth and peak per machine for a fleet of `machines` of a scenario's world, and its wheel."""
    import numpy as np  # noqa: F401 (imported before the baseline is read)

    import harness.load.schedule  # noqa: F401
    import harness.model.fleet  # noqa: F401

    before = _rss_bytes()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    scenario, fleet, wheel, (ready_s, built_s) = _build(machines, 1.0, Path(scenario_path))
    after = _rss_bytes()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert len(fleet) == machines and wheel.size > 0
    return {"world": scenario.world.name, "machines": machines, "bytes_per_machine": (after - before) / machines,
            "peak_bytes_per_machine": (peak - peak_before) / machines, "ready_s": ready_s,
            "build_s": built_s}


def dispatch_cost(machines: int, hours: float) -> dict[str, float]:
    """CPU per dispatched check-in and per tick, driving the dispatcher over `hours` scenario hours."""
    from gevent.queue import Queue

    from harness.load.schedule import Dispatcher
    from harness.measure.metrics import Metrics
    from harness.model.clock import ScenarioClock
    from harness.model.fleet import WakeRule

    scenario, fleet, wheel, _ = _build(machines, 1.0)
    queue: Queue = Queue()
    metrics = Metrics()
    dispatcher = Dispatcher(wheel, ScenarioClock(scenario.timeline.start, 0.0, 1.0), queue, metrics, 1e9,
                            fleet.plan, 0.005)
    tick_s = wheel.bucket_s
    ticks = int(hours * 3600 / tick_s)
    tick_times = []
    started = time.process_time()
    for tick in range(ticks):
        begun = time.perf_counter()
        dispatcher.release_due(tick * tick_s)
        while queue.qsize():
            index, due = queue.get_nowait()
            dispatcher.reschedule(index, due, WakeRule.AFTER_DETECTION)
        tick_times.append(time.perf_counter() - begun)
    cpu_s = time.process_time() - started
    dispatched = metrics.counters["dispatched"]
    tick_times.sort()
    return {"machines": machines, "scenario_hours": hours, "dispatched": dispatched,
            "us_per_checkin": cpu_s / dispatched * 1e6, "tick_ms_median": tick_times[len(tick_times) // 2] * 1e3,
            "tick_ms_p99": tick_times[int(len(tick_times) * 0.99)] * 1e3, "scenario_s_per_tick": tick_s}


def arrival(machines: int, time_scale: float, windows: int) -> dict[str, object]:
    """Check-ins released per 60 s wall window against the fleet's target rate, and lateness p99."""
    import gevent
    import numpy as np
    from gevent.queue import Queue

    from harness.load.schedule import Dispatcher
    from harness.measure.metrics import Metrics
    from harness.model.clock import ScenarioClock
    from harness.model.fleet import WakeRule

    scenario, fleet, wheel, _ = _build(machines, time_scale)
    target = replace(scenario.fleet, machines=machines).target_rps(time_scale, scenario.world)
    queue: Queue = Queue(maxsize=max(64, int(target)))
    metrics = Metrics()
    clock = ScenarioClock.starting_now(scenario.timeline.start, time_scale)
    dispatcher = Dispatcher(wheel, clock, queue, metrics, 1e12, fleet.plan, 0.005)
    lateness: list[float] = []
    counts = [0] * windows

    def agent() -> None:
        while True:
            index, due = queue.get()
            now = time.time()
            lateness.append(now - clock.wall_at(due))
            window = int((now - clock.wall_start) // 60)
            if window < windows:
                counts[window] += 1
            dispatcher.reschedule(index, due, WakeRule.AFTER_DETECTION)

    agents = [gevent.spawn(agent) for _ in range(8)]
    dispatcher.start()
    gevent.sleep(windows * 60)
    dispatcher.stop()
    gevent.killall(agents)
    late = np.array(lateness) * 1e3
    return {"machines": machines, "time_scale": time_scale, "target_rps": target,
            "window_rps": [count / 60 for count in counts],
            "worst_error": max(abs(count / 60 / target - 1) for count in counts),
            "lateness_ms_p50": float(np.percentile(late, 50)), "lateness_ms_p99": float(np.percentile(late, 99))}


def _in_fresh_process(function: str, *args: object) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); from benchmarks.bench_fleet import {function}; "
            f"print(json.dumps({function}(*{args!r})))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                          timeout=3600)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    from harness.config.units import parse_count

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1M", "10M", "100M"], help="fleet sizes for memory")
    parser.add_argument("--dispatch-size", default="10M", help="fleet size for the dispatcher's cost")
    parser.add_argument("--hours", type=float, default=6.0, help="scenario hours driven for the dispatcher's cost")
    parser.add_argument("--rate-size", default="1M", help="fleet size for the real-time arrival rate")
    parser.add_argument("--rate-scale", type=float, default=150.0, help="time scale for the arrival rate")
    parser.add_argument("--windows", type=int, default=3, help="60 s windows for the arrival rate")
    args = parser.parse_args()
    print("memory: RSS growth after building the fleet and its timing wheel (budget: 8 bytes a machine)")
    print("(ready s: until the clock could start, the first buckets filed; build s: until every bucket was)")
    print(f"{'world':<12} {'machines':>12} {'bytes/machine':>14} {'peak bytes/machine':>19} {'ready s':>8} "
          f"{'build s':>8}")
    for scenario in WORLD_SCENARIOS:
        for size in args.sizes:
            row = _in_fresh_process("memory", int(parse_count(size)), str(scenario))
            print(f"{row['world']:<12} {row['machines']:>12,} {row['bytes_per_machine']:>14.2f} "
                  f"{row['peak_bytes_per_machine']:>19.2f} {row['ready_s']:>8.1f} {row['build_s']:>8.1f}")
    row = _in_fresh_process("dispatch_cost", int(parse_count(args.dispatch_size)), args.hours)
    print(f"\ndispatcher at {row['machines']:,} machines over {row['scenario_hours']:g} scenario hours: "
          f"{row['dispatched']:,} check-ins, {row['us_per_checkin']:.2f} us CPU each (release + reschedule); "
          f"tick ({row['scenario_s_per_tick']:.1f} scenario s) median {row['tick_ms_median']:.3f} ms, "
          f"p99 {row['tick_ms_p99']:.3f} ms")
    row = _in_fresh_process("arrival", int(parse_count(args.rate_size)), args.rate_scale, args.windows)
    rates = ", ".join(f"{rate:,.1f}" for rate in row["window_rps"])
    print(f"\narrival rate, {row['machines']:,} machines at time scale {row['time_scale']:g}: target "
          f"{row['target_rps']:,.1f}/s; achieved per 60 s window {rates}/s; worst error "
          f"{row['worst_error']:.2%} (goal: within 2%)")
    print(f"due-time lateness of released check-ins: p50 {row['lateness_ms_p50']:.2f} ms, "
          f"p99 {row['lateness_ms_p99']:.2f} ms")


if __name__ == "__main__":
    main()
