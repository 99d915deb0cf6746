"""What a process loads by importing the harness: only what it uses."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_workers_and_the_server_never_load_matplotlib() -> None:
    """Only drawing a report loads matplotlib, so no worker or server process pays for it or sets its backend."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, harness.run, harness.server.app; print('matplotlib' in sys.modules)"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert loaded == "False"
