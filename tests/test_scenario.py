"""Scenario files are validated strictly: every mistake is one line naming file, field and fix."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from msgspec.structs import replace

from harness.config.errors import InputError
from harness.config.scenario import load_scenario, with_overrides
from harness.config.schema import parse_server, server_spec_to_json
from tests.conftest import ROOT, SMOKE

GOOD = SMOKE.read_text()


def test_smoke_scenario_loads_with_its_documented_figures() -> None:
    scenario = load_scenario(SMOKE)
    assert scenario.fleet.machines == 20_000
    assert scenario.timeline.wall_seconds == pytest.approx(30.0)
    assert 190 < scenario.target_rps(scenario.timeline.time_scale) < 215
    assert len(scenario.thresholds) == 3


PHASE = "time_scale = 720\n[[timeline.phases]]\nfrom = {}\ntime_scale = {}"


def test_timeline_phases_change_the_time_scale_from_their_dates(tmp_path: Path) -> None:
    path = tmp_path / "phased.toml"
    path.write_text(GOOD.replace("time_scale = 720", PHASE.format("2004-08-18T09:15:00Z", 360), 1))
    timeline = load_scenario(path).timeline
    assert timeline.phases == ((3 * 3600.0, 360.0),)
    assert timeline.wall_seconds == pytest.approx(15.0 + 30.0)  # 3 h at 720x, then 3 h at 360x
    assert timeline.with_time_scale(720).wall_seconds == pytest.approx(30.0)
    until = with_overrides(load_scenario(path), until=datetime(2004, 8, 18, 9, 15, tzinfo=UTC)).timeline
    assert until.phases == () and until.wall_seconds == pytest.approx(15.0)  # the phase would start at the end


@pytest.mark.parametrize("written", ['"210M"', '"0.21B"', "210_000_000", "2.1e8"])
def test_a_fleet_says_the_real_fleet_it_stands_for_and_the_weight_follows(tmp_path: Path, written: str) -> None:
    path = tmp_path / "real.toml"
    path.write_text(GOOD.replace("machines = 20000", f"machines = 20000\nreal_machines = {written}", 1))
    fleet = load_scenario(path).fleet
    assert fleet.real_machines == fleet.real_fleet == 210_000_000
    assert fleet.weight == 10_500
    assert fleet.describe() == "20,000 machines standing for 210,000,000 (weight 10,500)"


def test_without_a_real_fleet_each_machine_is_one_real_machine_at_any_size() -> None:
    fleet = load_scenario(SMOKE).fleet
    assert fleet.real_machines is None and fleet.weight == 1 and fleet.describe() == "20,000 machines"
    resized = with_overrides(load_scenario(SMOKE), fleet_size=5000).fleet
    assert resized.weight == 1 and resized.real_fleet == 5000


@pytest.mark.parametrize(
    ("edit", "field", "fix"),
    [
        (("machines = 20000", "machines = 20000\nreal_machines = 0"), "fleet.real_machines", "real fleet"),
        (("machines = 20000", 'machines = 20000\nreal_machines = "lots"'), "fleet.real_machines", '"210M"'),
        (("machines = 20000", "machines = 20000\nreal_machines = 2.5"), "fleet.real_machines", "real fleet"),
        (("machines = 20000", 'machines = 20000\nreal_machines = "10K"'), "fleet.real_machines",
         "at least fleet.machines"),
        (("machines = 20000", "machines = 20000\nweight = 10500"), "fleet.weight",
         "real_machines = 210_000_000 (machines x weight)"),
        (("machines = 20000", 'machines = 20000\nweight = "heavy"'), "fleet.weight", 'real_machines = "210M"'),
        (("machines = 20000", "machines = 20000\nreal_machine = 5"), "fleet.real_machine",
         "did you mean 'real_machines'"),
        (("machines = 20000", "machines = 0"), "fleet.machines", "whole number"),
        (("machines = 20000", "machines = -5"), "fleet.machines", "whole number"),
        (("machines = 20000", "machines = 2.5"), "fleet.machines", "whole number"),
        (("machines = 20000", 'machines = "many"'), "fleet.machines", "whole number"),
        (("machines = 20000", "machinez = 20000"), "fleet.machinez", "did you mean 'machines'"),
        (("time_scale = 720", "time_scale = 0"), "timeline.time_scale", "scenario seconds per wall second"),
        (("end = 2004-08-18T12:15:00Z", "end = 2004-08-17T06:00:00Z"), "timeline.end", "set end later"),
        (("time_scale = 720", PHASE.format("2004-08-18T06:00:00Z", 60)), "timeline.phases[0].from", "in date order"),
        (("time_scale = 720", PHASE.format("2004-08-18T09:00:00Z", 0)), "phases[0].time_scale", "greater than 0"),
        (("time_scale = 720", PHASE.format("2004-08-18T09:00:00Z", 60) + "\nspeed = 2"), "phases[0].speed",
         "known fields"),
        (("enterprise_share = 0.1", "enterprise_share = 0.1\nhome_share = 0.6"), "fleet.home_share",
         "edition = { home = 0.6, pro = 0.4 }"),
        (("enterprise_share = 0.1", 'enterprise_share = 0.1\nattributes = { edition = { home = 0.5, pro = 0.6 } }'),
         "fleet.attributes.edition", "add up to 1"),
        (("enterprise_share = 0.1", 'enterprise_share = 0.1\nattributes = { edition = { home = 0.5, srv = 0.5 } }'),
         "fleet.attributes.edition.srv", "use one of: home, pro"),
        (("enterprise_share = 0.1", 'enterprise_share = 0.1\nattributes = { platform = { win = 1 } }'),
         "fleet.attributes.platform", "edition"),
        (("[server.rollout.xpsp2]", "[server.rollout.xpsp3]"), "server.rollout.xpsp3", "did you mean 'xpsp2'"),
        (("[server.rollout.xpsp2]", "[server.rollout.xpsp2]\neligible = { edition = { hom = 2004-08-18 } }"),
         "server.rollout.xpsp2.eligible.edition.hom", "did you mean 'home'"),
        (("[server.rollout.xpsp2]", "[server.rollout.xpsp2]\neditions = { home = 2004-08-18 }"),
         "server.rollout.xpsp2.editions", "eligible = { edition = "),
        (('name = "smoke"', 'name = "smoke"\nworld = "worlds/nowhere.toml"'), "world", "relative to this scenario"),
        (("percent = 20", "percent = 1"), "steps[1].at", "never lowers"),
        (("payload_scale = 0.001", "payload_scale = true"), "server.payload_scale", "share of the true sizes"),
        (('name = "smoke"', 'name = "smoke"\nspeed = 3'), "speed", "known fields"),
        (("[thresholds]\nrules = [", "[thresholds]\nrules = 5\nx = ["), "thresholds.rules", "give rules"),
    ],
)
def test_a_bad_field_is_refused_naming_file_field_and_fix(tmp_path: Path, edit: tuple[str, str], field: str,
                                                          fix: str) -> None:
    assert edit[0] in GOOD
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace(edit[0], edit[1], 1))
    with pytest.raises(InputError) as error:
        load_scenario(path)
    assert str(path) in str(error.value)
    assert field in str(error.value)
    assert fix in str(error.value)


def test_language_shares_must_be_the_world_s_languages_summing_to_one(tmp_path: Path) -> None:
    path = tmp_path / "langs.toml"
    languages = "enterprise_share = 0.1\n[fleet.languages]\nen = 0.5\nde = 0.4"
    path.write_text(GOOD.replace("enterprise_share = 0.1", languages))
    with pytest.raises(InputError, match="shares sum to 0.9, not 1"):
        load_scenario(path)
    path.write_text(GOOD.replace("enterprise_share = 0.1", "enterprise_share = 0.1\n[fleet.languages]\nxx = 1.0"))
    with pytest.raises(InputError, match="fleet.languages.xx: is not a name the world gives"):
        load_scenario(path)


def test_missing_and_broken_files_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such scenario file"):
        load_scenario(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("name = ")
    with pytest.raises(InputError, match="not valid TOML"):
        load_scenario(broken)


def test_server_policy_round_trips_through_json() -> None:
    server = load_scenario(SMOKE).server
    assert parse_server(server_spec_to_json(server), "server", "json") == server


def test_a_struct_encoded_server_policy_round_trips_through_json_bytes() -> None:
    server = load_scenario(ROOT / "scenarios" / "hotfix_surge.toml").server
    assert [update for update, _ in server.rollouts] == ["xpsp2", "kb884020"]
    sent = msgspec.json.encode(server_spec_to_json(server))
    assert parse_server(msgspec.json.decode(sent), "server", "json") == server


BASE = 'name = "base"\n[fleet]\nmachines = 100\nseed = 7\n[fleet.install]\nautomatic = 0.5\noff = 0.5\n'


def _extending(tmp_path: Path, base: str, extending: str) -> Path:
    (tmp_path / "base.toml").write_text(base)
    path = tmp_path / "extending.toml"
    path.write_text(extending)
    return path


def test_an_extending_scenario_merges_its_tables_over_its_base(tmp_path: Path) -> None:
    base = GOOD.replace('name = "smoke"', BASE.split("\n", 1)[0]).replace("seed = 42", "seed = 7")
    extending = ('extends = "base.toml"\nname = "extending"\n[fleet]\nmachines = 100\n'
                 '[thresholds]\nrules = ["check.p99 < 1s"]\n')
    scenario = load_scenario(_extending(tmp_path, base, extending))
    original = load_scenario(tmp_path / "base.toml")
    assert (scenario.path, scenario.name) == (str(tmp_path / "extending.toml"), "extending")
    assert scenario.fleet == replace(original.fleet, machines=100)  # a table merges key by key
    assert [rule.expr for rule in scenario.thresholds] == ["check.p99 < 1s"]  # an array replaces
    assert (scenario.timeline, scenario.server) == (original.timeline, original.server)


@pytest.mark.parametrize(
    ("base", "extending", "names", "problem", "fix"),
    [
        (None, 'extends = "absent.toml"\n', "extending.toml: extends", "absent.toml is not a scenario file",
         "relative to this scenario's folder"),
        ('extends = "extending.toml"\n' + BASE, 'extends = "base.toml"\n', "base.toml: extends", "a cycle",
         "only one of the two files"),
        (None, 'extends = "extending.toml"\n', "extending.toml: extends", "a cycle", "only one of the two files"),
        (BASE, 'extends = "base.toml"\n[fleet]\nmachnes = 10\n', "extending.toml: fleet.machnes",
         "is not a known field", "did you mean 'machines'?"),
        (BASE, "extends = 3\n", "extending.toml: extends", "3 is not valid", 'extends = "throttled_ramp.toml"'),
    ],
    ids=["missing base", "cycle", "extends itself", "unknown field", "not a file name"],
)
def test_a_bad_extends_is_refused_naming_the_file_and_the_fix(tmp_path: Path, base: str | None, extending: str,
                                                              names: str, problem: str, fix: str) -> None:
    path = _extending(tmp_path, base or BASE, extending)
    with pytest.raises(InputError) as error:
        load_scenario(path)
    assert names in str(error.value) and problem in str(error.value) and fix in str(error.value)
