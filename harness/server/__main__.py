"""`python -m harness.server --port N [--scenario FILE | --world FILE]`: the reference update server alone."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

from gevent import monkey

monkey.patch_all()

from harness.config.errors import ExitCode, InputError  # noqa: E402
from harness.config.scenario import load_scenario  # noqa: E402
from harness.config.world import DEFAULT_WORLD, load_world  # noqa: E402
from harness.model.clock import ScenarioClock  # noqa: E402
from harness.protocols.base import TOKEN_VARIABLE  # noqa: E402
from harness.server.app import ReferenceServer  # noqa: E402
from harness.server.policy import default_policy  # noqa: E402
from harness.server.serve import STACKS, serve  # noqa: E402


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (127.0.0.0/8, ::1) or localhost."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind; 0 picks a free one")
    parser.add_argument("--scenario", help="take the rollout policy, clock and world from this scenario file")
    parser.add_argument("--world", help="without --scenario: offer every update of this world file to everyone "
                        f"(default {DEFAULT_WORLD.name})")
    parser.add_argument("--stack", choices=STACKS, default="httptools",
                        help="HTTP stack: httptools (default, fastest) or gevent's pywsgi")
    parser.add_argument("--max-connections", type=int, default=10_000, help="concurrent connections served")
    parser.add_argument("--exit-with-parent", action="store_true", help="stop when the starting process is gone")
    parser.add_argument("--admin-token", default=os.environ.get(TOKEN_VARIABLE, ""),
                        help=f"the token POST /v1/admin/configure must carry (default: ${TOKEN_VARIABLE}; "
                        "none: the admin door is closed)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="let --host be an address beyond loopback: anyone who reaches it can load the server")
    args = parser.parse_args(argv)
    if args.scenario and args.world:
        parser.error("give --scenario or --world, not both: a scenario names its world")
    if not args.allow_remote and not is_loopback(args.host):
        parser.error(f"--host {args.host} is beyond loopback: give --allow-remote to serve on it")
    clock, weight = None, 1.0
    try:
        if args.scenario:
            scenario = load_scenario(args.scenario)
            world, policy, weight = scenario.world, scenario.server, scenario.fleet.weight
            clock = ScenarioClock.starting_now(scenario.timeline.start, scenario.timeline.time_scale,
                                               scenario.timeline.phases)
        else:
            world = load_world(args.world or DEFAULT_WORLD)
            policy = default_policy(world)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    if args.max_connections < 1:
        parser.error("--max-connections must be at least 1")
    serve(ReferenceServer(policy, clock, world, args.admin_token, weight), args.host, args.port, args.stack,
          args.max_connections, args.exit_with_parent)
    return ExitCode.PASSED


if __name__ == "__main__":
    sys.exit(main())
