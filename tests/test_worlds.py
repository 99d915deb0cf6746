"""Worlds as data: the shipped worlds and a user's own load, are checked like scenarios, and drive the whole run."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np
import pytest

from harness.config.decode import decode, to_tables
from harness.config.errors import InputError
from harness.config.scenario import load_scenario
from harness.config.world import World, default_world, load_world
from harness.model.fleet import INSTALL_PENDING, Fleet
from harness.model.simulation import simulate
from harness.server.catalog import build_catalog
from tests.conftest import ROOT, run_locust

WORLDS = ROOT / "scenarios" / "worlds"
DEVICES = ROOT / "tests" / "samples" / "worlds" / "device_fleet.toml"
STAGED_SMOKE = ROOT / "scenarios" / "staged_rollout-smoke.toml"


def test_the_shipped_worlds_and_the_documented_example_load() -> None:
    xp, browser, devices = (load_world(path) for path in (WORLDS / "xp2004.toml", WORLDS / "browser2026.toml",
                                                          DEVICES))
    assert xp == default_world() and xp.update_names == ("xpsp1", "xpsp2", "kb884020") and len(xp.language_codes) == 25
    assert browser.update_names == ("m142", "m143", "m144") and browser.attribute_names == ("platform", "channel")
    assert devices.update_names == ("fw32",) and devices.attribute_names == ()
    assert DEVICES.read_text() in (ROOT / "docs" / "worlds.md").read_text()  # the worked example, verbatim


def test_a_world_round_trips_through_the_json_the_harness_sends_its_server() -> None:
    for path in (WORLDS / "xp2004.toml", WORLDS / "browser2026.toml"):
        world = load_world(path)
        sent = msgspec.json.decode(msgspec.json.encode(to_tables(world)))
        assert decode(sent, World, "configure request", "world") == world


def test_the_catalog_has_a_package_per_variant_language_and_differential() -> None:
    xp = build_catalog(default_world(), 0.001)
    # SP2 without SP1, and the express package for machines with SP1: 20 MB less
    assert xp["xpsp2-home-en"].real_size == 100_000_000 and xp["xpsp2-pro-he"].real_size == 120_000_000
    assert xp["xpsp2-home-diff-en"].real_size == 80_000_000 and xp["xpsp2-pro-diff-he"].real_size == 100_000_000
    assert xp["kb884020-de"].real_size == 400_000 and xp["xpsp2-network-fr"].real_size == 265_000_000
    browser = build_catalog(load_world(WORLDS / "browser2026.toml"), 0.001)
    assert browser["m143-mac"].real_size == 232_000_000 and browser["m143-mac-diff"].real_size == 21_000_000
    assert "m142-win-diff" not in browser and len(browser) == 3 * 3 + 2 * 3


def _eight_updates(tmp_path: Path) -> Path:
    updates = "".join(f'[updates.u{i}]\nversion = "1.{i}"\nsize = "1MB"\n' for i in range(8))
    path = tmp_path / "eight.toml"
    path.write_text(DEVICES.read_text().split("[updates.fw32]")[0] + updates)
    return path


def test_a_world_of_eight_updates_keeps_a_machines_state_in_two_bytes(tmp_path: Path) -> None:
    world = load_world(_eight_updates(tmp_path))
    scenario = load_scenario(ROOT / "scenarios" / "smoke.toml")
    fleet = Fleet(msgspec.structs.replace(scenario.fleet, machines=4, attributes=(), languages=(),
                                          connections=()), scenario.timeline.start, world=world)
    for update in world.update_names:
        fleet.mark_installed(1, update)
    fleet.set_phase(1, INSTALL_PENDING, "u7")
    fleet.set_failures(1, 3)
    assert fleet.status.itemsize == 2
    assert fleet.installed_updates(1) == set(world.update_names) and fleet.phase(1) == (INSTALL_PENDING, "u7")
    assert fleet.failures(1) == 3 and fleet.installed_updates(0) == frozenset()


BAD_WORLD_EDITS = [  # (replace this, with that), the field named, a word of the fix
    (("check_interval", "check_intervl"), "client.check_intervl", "did you mean 'check_interval'"),
    (('check_interval = "24h"', 'check_interval = "soon"'), "client.check_interval", "period between checks"),
    (('boot_delay = ["30s", "2m"]', 'boot_delay = ["2m", "30s"]'), "client.boot_delay", "shortest wait first"),
    (("install_hour = 2", "install_hour = 25"), "client.install_hour", "0-23"),
    (('"Europe/London" = 1.0', '"Europe/Londn" = 1.0'), "population.languages.en.zones.Europe/Londn",
     "America/New_York"),
    (('faker = "en_GB"', 'faker = "english"'), "population.languages.en.faker", "Faker locale"),
    (("share = 1.0\nfaker", "share = 0.5\nfaker"), "population.languages", "add up to 1"),
    (('bandwidth = "500KB/s"', 'bandwidth = "fast"'), "population.connections.wifi.bandwidth", "bytes per second"),
    (("install = { automatic = 1.0 }", "install = { sometimes = 1.0 }"), "population.install.sometimes",
     "automatic"),
    (('size = "8MB"', 'size = "8 parsecs"'), "updates.fw32.size", "80MB"),
    (('size = "8MB"', 'size = "8MB"\nrequires = ["fw31"]'), "updates.fw32.requires[0]", "it is first"),
    (('size = "8MB"', 'size = "8MB"\nvariant = "model"'), "updates.fw32.variant", "(none)"),
    (('size = "8MB"', 'size = { a = "8MB" }'), "updates.fw32.size", "variant"),
    (('size = "8MB"', 'size = "8MB"\napp = "thermo"\n[apps.other]\nappid = "{8A69D345-D564-463C-AFF1-A69D9E530F96}"'
                      '\nversion = "1"'), "updates.fw32.app", "[apps.thermo]"),
    (('size = "8MB"', 'size = "8MB"\n[apps.fw32]\nappid = "chrome"\nversion = "1"'), "apps.fw32.appid",
     "GUID in braces"),
    (('size = "8MB"', 'size = "8MB"\n[omaha]\nattributes = { model = "ap" }'), "omaha.attributes.model",
     "(none)"),
    (("[population]", "[population]\nattributes = { language = { a = 1 } }"), "population.attributes.language",
     "something else"),
    (('name = "thermostats"', 'name = "thermostats"\ncolour = "blue"'), "colour", "known fields"),
]


@pytest.mark.parametrize(("edit", "field", "fix"), BAD_WORLD_EDITS, ids=[field for _, field, _ in BAD_WORLD_EDITS])
def test_a_bad_world_field_is_refused_naming_file_field_and_fix(tmp_path: Path, edit: tuple[str, str], field: str,
                                                                fix: str) -> None:
    text = DEVICES.read_text()
    assert edit[0] in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(InputError) as error:
        load_world(path)
    assert f"{path}: {field}:" in str(error.value) and fix in str(error.value).split("fix:", 1)[1]


def test_nine_updates_are_refused_for_the_one_byte_of_installed_updates(tmp_path: Path) -> None:
    path = _eight_updates(tmp_path)
    path.write_text(path.read_text() + '[updates.u8]\nversion = "2"\nsize = "1MB"\n')
    with pytest.raises(InputError, match="updates: has 9 updates, more than 8; fix: keep at most 8"):
        load_world(path)


def test_a_scenario_on_a_users_own_world_is_checked_against_it_and_simulated(tmp_path: Path) -> None:
    (tmp_path / "worlds").mkdir()
    (tmp_path / "worlds" / "devices.toml").write_text(DEVICES.read_text())
    scenario_text = ('name = "firmware"\nworld = "worlds/devices.toml"\n[timeline]\nstart = 2026-01-05\n'
                     'end = 2026-01-08\ntime_scale = 1\n[fleet]\nmachines = 2000\n'
                     '[server.rollout.fw32]\nramp = "stages"\nsteps = [{ at = 2026-01-05, percent = 50 }]\n')
    path = tmp_path / "firmware.toml"
    path.write_text(scenario_text)
    scenario = load_scenario(path)
    assert scenario.world.name == "thermostats" and scenario.fleet.languages == (("en", 1.0),)
    installs = simulate(scenario).installs["fw32"]
    # Daily checks: everyone in the 50 % has checked within a day and installs at 02:00 London time.
    assert np.isfinite(installs).mean() == pytest.approx(0.5, abs=0.03)
    assert (datetime.fromtimestamp(scenario.timeline.start.timestamp() + installs[np.isfinite(installs)].min(),
                                   UTC).hour) == 2
    for edit, field in ((("[server.rollout.fw32]", "[server.rollout.fw33]"), "server.rollout.fw33"),
                        (("machines = 2000", "machines = 2000\ninstalled = { fw3 = 0.5 }"), "fleet.installed.fw3"),
                        (("machines = 2000", "machines = 2000\nlanguages = { de = 1 }"), "fleet.languages.de"),
                        (("machines = 2000", "machines = 2000\n[fleet.network_install]\nshare = 0.5"),
                         "fleet.network_install")):
        path.write_text(scenario_text.replace(*edit))
        with pytest.raises(InputError, match=f"{path}: {field}:"):
            load_scenario(path)


def test_the_staged_rollout_smoke_plays_a_browser_fleet_in_omaha_against_the_embedded_server(tmp_path: Path) -> None:
    run = run_locust("--scenario", str(STAGED_SMOKE), results_dir=tmp_path, timeout=180)
    assert run.returncode == 0, run.stdout[-3000:]
    summary = run.summary
    assert summary["world"] == {"name": "browser2026", "updates": ["m142", "m143", "m144"]}
    assert all(t["passed"] for t in summary["thresholds"]) and summary["checkins"]["failed"] == 0
    counters = summary["fleet"]["counters"]
    assert counters["offered_m143"] >= counters["installed_m143"] > 0 and "offered_m144" not in counters
    # 90 % start on m142 and take the 13-21 MB differential; the rest the 111-232 MB full package.
    per_download = summary["downloads"]["real_bytes"] / counters["offered_m143"]
    assert 13e6 < per_download < 40e6
    assert summary["downloads"]["corrupt"] == 0  # hash_sha256 verified on every package


def test_about_16_sp2_languages_were_available_on_sep_22_of_25_english_and_german_first() -> None:
    xp = default_world()
    launch, sep_22 = datetime(2004, 8, 18, tzinfo=UTC), datetime(2004, 9, 22, tzinfo=UTC)
    available = [code for code in xp.language_codes if (xp.available_from("xpsp2", code) or launch) <= sep_22]
    assert len(available) == 16 and len(xp.language_codes) == 25
    assert {code for code in xp.language_codes if xp.available_from("xpsp2", code) is None} == {"en", "de"}
