"""Hosts in network namespaces: a server, a master and two workers on a Linux bridge of their own.

Each test gets its own, built with iproute2's `ip` (a tenth of a second) and torn down however the
test ends: first every process started inside (each leads a process group, killed whole), then the
namespaces, which take their firewall rules and their ends of the veth pairs with them, then the
bridge. Names carry a per-run suffix, so parallel runs never meet. The host takes no address on the
bridge: the hosts reach only one another, and two runs' subnets never share a route.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import ROOT, start_locust

HOSTS = ("server", "master", "worker0", "worker1")
SERVER_PORT = 8080


def _run(*command: str) -> str:
    """Run a command to completion; its stderr in the error when it fails."""
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return done.stdout


def _kill_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@dataclass
class Network:
    """The hosts of one test, named with `suffix`, at `subnet`.1 to .4 in HOSTS' order; what runs on them."""

    suffix: str
    subnet: str
    started: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"fsbr{self.suffix}"

    def _outside(self, index: int) -> str:
        """The host's end of the `index`th host's veth pair (the other end is eth0 inside)."""
        return f"fs{self.suffix}v{index}"

    def namespace(self, host: str) -> str:
        return f"fleetstorm-{self.suffix}-{host}"

    def address(self, host: str) -> str:
        return f"{self.subnet}.{HOSTS.index(host) + 1}"

    def inside(self, host: str) -> list[str]:
        """The command prefix that runs a program on `host`."""
        return ["ip", "netns", "exec", self.namespace(host)]

    def build(self) -> None:
        """The bridge, and each host's namespace joined to it by a veth pair, all links up."""
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "link", "set", self.bridge, "up")
        for index, host in enumerate(HOSTS):
            namespace, outside = self.namespace(host), self._outside(index)
            _run("ip", "netns", "add", namespace)
            _run("ip", "link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", namespace)
            _run("ip", "link", "set", outside, "master", self.bridge, "up")
            _run("ip", "-n", namespace, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            _run("ip", "-n", namespace, "link", "set", "eth0", "up")
            _run("ip", "-n", namespace, "link", "set", "lo", "up")

    def tear_down(self) -> None:
        """Everything `build` made and everything started inside, whatever state it is in."""
        for process in self.started:
            _kill_group(process)
        for index, host in enumerate(HOSTS):
            # Deleting the outer end takes the pair down at once; a deleted namespace frees its end only
            # when the kernel cleans the namespace up, which took tens of seconds here.
            subprocess.run(["ip", "link", "del", self._outside(index)], capture_output=True, check=False)
            subprocess.run(["ip", "netns", "del", self.namespace(host)], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)

    def track(self, process: subprocess.Popen[str]) -> subprocess.Popen[str]:
        self.started.append(process)
        return process

    def firewall(self, host: str, *rule: str) -> None:
        """Add an iptables rule on `host`, e.g. ("OUTPUT", "-d", address, "-j", "DROP")."""
        _run(*self.inside(host), "iptables", "-A", *rule)

    def heal(self, host: str) -> None:
        """Remove every iptables rule added on `host`."""
        _run(*self.inside(host), "iptables", "-F")

    def serve(self, scenario: Path) -> str:
        """Start the reference server on the server host with `scenario`'s rollout and clock; its URL."""
        address = self.address("server")
        process = self.track(subprocess.Popen(
            [*self.inside("server"), sys.executable, "-m", "harness.server", "--host", address, "--port",
             str(SERVER_PORT), "--scenario", str(scenario), "--exit-with-parent", "--allow-remote"],
            cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True))
        line = process.stdout.readline() if process.stdout else ""
        if "listening on " not in line:  # it prints once its socket listens
            raise RuntimeError(f"the reference server did not start (it printed {line!r})")
        return f"http://{address}:{SERVER_PORT}"

    def locust(self, host: str, *args: str, results_dir: Path) -> subprocess.Popen[str]:
        """Start a headless `locust` run on `host` (see tests.conftest.start_locust)."""
        return self.track(start_locust(*args, results_dir=results_dir, prefix=self.inside(host)))

    def worker(self, host: str, master_port: int) -> subprocess.Popen[str]:
        """Start a `locust --worker` on `host`, connecting to the master host's `master_port`."""
        return self.track(subprocess.Popen(
            [*self.inside(host), sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--worker",
             "--master-host", self.address("master"), "--master-port", str(master_port)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            start_new_session=True))

    def server_metrics(self, url: str) -> dict[str, float]:
        """The server's /metrics (tests.conftest.server_metrics), read from the master host."""
        reader = ("import json, sys; from tests.conftest import server_metrics; "
                  "print(json.dumps(server_metrics(sys.argv[1])))")
        return json.loads(_run(*self.inside("master"), sys.executable, "-c", reader, url))


def _why_no_namespaces() -> str | None:
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    if not Path("/proc/self/ns/net").exists():
        return "this kernel has no network namespaces"
    return None


@pytest.fixture
def network() -> Iterator[Network]:
    """The four hosts, torn down after the test."""
    if reason := _why_no_namespaces():
        pytest.skip(reason)
    suffix = secrets.token_hex(3)
    built = Network(suffix, f"10.213.{int(suffix[:2], 16)}")
    try:
        built.build()
        yield built
    finally:
        built.tear_down()
