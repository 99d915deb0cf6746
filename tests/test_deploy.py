"""The Kubernetes manifests parse, carry a valid scenario, and pass only flags the CLI accepts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.config.scenario import load_scenario
from tests.conftest import ROOT

MANIFESTS = ROOT / "deploy" / "kubernetes"
MOUNTED_SCENARIO = "/scenario/scenario.toml"


def _documents() -> list[dict[str, Any]]:
    return [doc for path in sorted(MANIFESTS.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


def _deployment(role: str) -> dict[str, Any]:
    return next(d for d in _documents() if d["kind"] == "Deployment" and d["metadata"]["labels"]["role"] == role)


def _scenario_text() -> str:
    configmap = next(d for d in _documents() if d["kind"] == "ConfigMap")
    return configmap["data"]["scenario.toml"]


def test_the_manifests_hold_a_master_a_service_workers_and_the_scenario() -> None:
    kinds = sorted(d["kind"] for d in _documents())
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "Service"]
    master_args = _deployment("master")["spec"]["template"]["spec"]["containers"][0]["args"]
    expected = int(next(a for a in master_args if a.startswith("--expect-workers=")).split("=")[1])
    assert _deployment("worker")["spec"]["replicas"] == expected


def test_the_configmap_scenario_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "scenario.toml"
    path.write_text(_scenario_text())
    fleet = load_scenario(path).fleet
    assert (fleet.machines, fleet.real_fleet, fleet.weight) == (10_000_000, 210_000_000, 21)


@pytest.mark.parametrize("role", ["master", "worker"])
def test_every_container_argument_is_one_the_cli_accepts(role: str, tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(_scenario_text())
    args = [a.replace(MOUNTED_SCENARIO, str(scenario))
            for a in _deployment(role)["spec"]["template"]["spec"]["containers"][0]["args"]]
    done = subprocess.run([sys.executable, "-m", "locust", "-f", "locustfile.py", *args, "--list"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "unrecognized arguments" not in done.stderr
    assert "UpdateAgent" in done.stdout
