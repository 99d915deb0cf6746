"""Fixtures of the fault suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SMOKE


@pytest.fixture
def fault_scenario(tmp_path: Path) -> Path:
    """The smoke scenario with a 1 s request time-out, so stalls surface within a short run."""
    path = tmp_path / "faults.toml"
    path.write_text(SMOKE.read_text() + '\n[agents]\ntimeout = "1s"\n')
    return path
