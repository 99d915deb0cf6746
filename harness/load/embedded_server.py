"""The embedded reference server: started in its own process when the user gives no host."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

from harness.config.decode import to_tables
from harness.config.schema import ServerSpec, server_spec_to_json
from harness.config.world import World
from harness.model.clock import ScenarioClock
from harness.protocols.base import TOKEN_VARIABLE

START_TIMEOUT_S = 20.0


@dataclass
class EmbeddedServer:
    """A running `python -m harness.server` child process on a free loopback port."""

    process: subprocess.Popen[str]
    url: str
    admin_token: str  # generated for this server: what reconfigures it

    @classmethod
    def start(cls) -> EmbeddedServer:
        """Start the server on 127.0.0.1 with a free port and wait until it answers /v1/health.

        Its admin token travels in its environment, not on its command line, where other users could read it.
        """
        token = secrets.token_urlsafe(32)
        process = subprocess.Popen(
            [sys.executable, "-m", "harness.server", "--host", "127.0.0.1", "--port", "0", "--exit-with-parent"],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, TOKEN_VARIABLE: token},
        )
        line = process.stdout.readline() if process.stdout else ""
        if "listening on " not in line:
            process.kill()
            raise RuntimeError(f"the reference server did not start (it printed {line!r})")
        server = cls(process, line.rsplit("listening on ", 1)[1].strip(), token)
        server._wait_healthy()
        return server

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/v1/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the reference server at {self.url} never became healthy") from None
                time.sleep(0.05)

    def configure(self, policy: ServerSpec, clock: ScenarioClock, world: World, weight: float) -> None:
        """Give the server the scenario's policy, clock, world and fleet weight, so it plays the scenario's time."""
        configure(self.url, self.admin_token, policy, clock, world, weight)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def configure(url: str, token: str, policy: ServerSpec, clock: ScenarioClock, world: World | None = None,
              weight: float = 1.0) -> None:
    """POST the policy, the clock, the world (None: the one the server plays) and the real machines each
    client stands for to /v1/admin/configure."""
    tables: dict[str, object] = {"clock": clock.to_json(), "server": server_spec_to_json(policy), "weight": weight}
    if world is not None:
        tables["world"] = to_tables(world)
    body = json.dumps(tables).encode()
    request = urllib.request.Request(f"{url}/v1/admin/configure", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10):
        pass
