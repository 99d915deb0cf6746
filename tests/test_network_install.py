"""Administrators' own SP2 deployments from the network-install package, outside Automatic Updates."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from msgspec.structs import replace

from harness.config.scenario import load_scenario
from harness.config.schema import NETWORK_INSTALL_RELEASE, NetworkInstallSpec
from harness.model.fleet import Fleet, Partition
from harness.model.network_install import Deployments, install_before_start
from harness.protocols.omaha import OmahaAdapter
from harness.protocols.reference import ReferenceAdapter
from harness.server.policy import LAUNCH
from tests.conftest import SMOKE

SPEC = replace(load_scenario(SMOKE).fleet, machines=100_000, enterprise_share=0.2)
NETWORK = NetworkInstallSpec(share=0.4, since=NETWORK_INSTALL_RELEASE, over_s=60 * 86400.0, machines_per_download=50)
AFTER_ALL = NETWORK_INSTALL_RELEASE + timedelta(days=61)  # every deployment is before this start


def _sp2(fleet: Fleet) -> np.ndarray:
    return (fleet.status & fleet.update_bit("xpsp2")).astype(bool)


def test_a_share_of_managed_machines_and_no_other_gets_sp2_from_its_administrators() -> None:
    fleet = Fleet(SPEC, AFTER_ALL)
    marked = install_before_start(fleet, Deployments.plan(NETWORK, SPEC, AFTER_ALL, "xpsp2"))
    managed = fleet.enterprise_mask(fleet.global_indices())
    assert marked == int(_sp2(fleet).sum())
    assert not _sp2(fleet)[~managed].any()
    assert _sp2(fleet)[managed].mean() == pytest.approx(0.4, abs=0.05)


def test_deployments_spread_evenly_from_the_release_and_only_earlier_ones_are_in_place_at_the_start() -> None:
    start = NETWORK_INSTALL_RELEASE + timedelta(days=15)
    deployments = Deployments.plan(NETWORK, SPEC, start, "xpsp2")
    assert np.all(np.diff(deployments.seconds) >= 0)
    assert deployments.seconds[0] >= -15 * 86400 and deployments.seconds[-1] <= 45 * 86400
    assert deployments.before(0.0) / len(deployments.seconds) == pytest.approx(0.25, abs=0.04)
    fleet = Fleet(SPEC, start)
    assert install_before_start(fleet, deployments) == pytest.approx(0.25 * 0.4 * 0.2 * SPEC.machines, rel=0.2)


def test_the_union_of_two_partitions_deploys_exactly_the_single_fleets_machines() -> None:
    whole = Fleet(SPEC, AFTER_ALL)
    install_before_start(whole, Deployments.plan(NETWORK, SPEC, AFTER_ALL, "xpsp2"))
    union = np.zeros(SPEC.machines, dtype=bool)
    for index in range(2):
        part = Fleet(SPEC, AFTER_ALL, Partition(index, 2))
        install_before_start(part, Deployments.plan(NETWORK, SPEC, AFTER_ALL, "xpsp2"))
        union[part.global_indices()] = _sp2(part)
    assert np.array_equal(union, _sp2(whole))


@pytest.mark.parametrize(("weight", "organisation"), [(1.0, 50), (5_000.0, 1)])
def test_one_download_serves_machines_per_download_real_managed_machines_at_any_weight(weight: float,
                                                                                      organisation: int) -> None:
    spec = replace(SPEC, real_machines=round(weight * SPEC.machines))
    fleet = Fleet(spec, LAUNCH)
    deployments = Deployments.plan(NETWORK, spec, LAUNCH, "xpsp2")
    assert deployments.size == organisation
    managed = [len(deployments.managed(fleet, position)) for position in range(len(deployments.seconds))]
    downloads = sum(deployments.downloads(position, count) for position, count in enumerate(managed))
    assert downloads * weight == pytest.approx(sum(managed) * weight / NETWORK.machines_per_download, rel=0.2)


def test_the_reference_protocol_fetches_a_package_by_id_and_omaha_has_no_such_request() -> None:
    request = ReferenceAdapter().package_request("xpsp2-network", "de")
    assert request is not None and (request.method, request.path) == ("GET", "/v1/packages/xpsp2-network-de")
    assert OmahaAdapter().package_request("xpsp2-network", "de") is None


def test_the_reference_server_describes_a_package_as_an_offer(reference_server: object) -> None:
    url = reference_server.url  # type: ignore[attr-defined]
    with urllib.request.urlopen(f"{url}/v1/packages/xpsp2-network-de", timeout=5) as response:
        offer = json.loads(response.read())["offers"][0]
    assert (offer["update"], offer["real_size"], offer["url"]) == ("xpsp2", 265_000_000,
                                                                   "/v1/content/xpsp2-network-de")
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"{url}/v1/packages/nothing-here", timeout=5)
    assert error.value.code == 404


def test_a_scenario_names_the_share_and_takes_defaults_for_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "network.toml"
    path.write_text(SMOKE.read_text().replace("enterprise_share = 0.1", "enterprise_share = 0.1\n"
                                              "[fleet.network_install]\nshare = 0.3", 1))
    spec = load_scenario(path).fleet.network_install
    assert spec == NetworkInstallSpec(0.3, datetime(2004, 8, 9, tzinfo=UTC), 60 * 86400.0, 500)
