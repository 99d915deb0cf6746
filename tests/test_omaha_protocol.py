"""The Omaha v3 adapter on recorded request/response samples written from the public protocol spec."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.config.errors import InputError
from harness.config.scenario import load_scenario
from harness.config.schema import OmahaSpec
from harness.config.world import default_world, load_world
from harness.model.fleet import Machine
from harness.protocols import load_adapter
from harness.protocols.base import CheckResult, Offer, WireResponse
from harness.protocols.omaha import OmahaAdapter, OmahaNaming

SAMPLES = Path(__file__).parent / "samples" / "omaha"
GUID = re.compile(r"\{[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\}")
ROOT = Path(__file__).parent.parent
MACHINE = Machine(index=7, client_id="d9c8f1a2-3b4c-4d5e-8f60-718293a4b5c6", hostname="HOST-0001",
                  mac="00:0C:29:12:34:56", locale="de-DE", user_agent="Windows-Update-Agent",
                  install_policy="automatic", connection="broadband", attributes=(("edition", "pro"),),
                  language="de", enterprise=True, installed=frozenset({"xpsp2"}))
APP_BY_UPDATE = OmahaNaming(default_world()).by_update


def sample(name: str, status: int = 200, headers: dict[str, str] | None = None) -> WireResponse:
    return WireResponse(status, headers or {}, (SAMPLES / name).read_bytes())


def check_xml(adapter: OmahaAdapter, machine: Machine = MACHINE) -> ET.Element:
    return ET.fromstring(adapter.check_request(machine).body or b"")


def test_check_request_is_an_omaha_3_request_with_an_updatecheck_and_a_ping_per_app() -> None:
    request = OmahaAdapter().check_request(MACHINE)
    root = ET.fromstring(request.body or b"")
    assert (request.method, request.path) == ("POST", "/service/update2")
    assert root.tag == "request" and root.get("protocol") == "3.0"
    assert root.get("userid") == "{D9C8F1A2-3B4C-4D5E-8F60-718293A4B5C6}"
    assert root.get("domainjoined") == "1"
    assert root.get("version") == "fleetstorm-0.1.0"
    assert root.find("os").attrib == {"platform": "win", "version": "5.1", "arch": "x86"}
    apps = {app.get("appid"): app for app in root.findall("app")}
    sp2, hotfix = APP_BY_UPDATE["xpsp2"], APP_BY_UPDATE["kb884020"]
    assert apps[sp2.appid].get("version") == "5.1.2600.2180"  # installed
    assert apps[hotfix.appid].get("version") == "0.0.0.0"  # not installed
    for app in apps.values():
        assert (app.get("lang"), app.get("ap")) == ("de", "pro")
        assert app.find("updatecheck") is not None
        assert app.find("ping").attrib == {"r": "1", "a": "1"}


def test_requestid_and_sessionid_are_fresh_guids_and_userid_is_the_machines() -> None:
    adapter = OmahaAdapter()
    first, second = check_xml(adapter), check_xml(adapter)
    for root in (first, second):
        assert all(GUID.fullmatch(root.get(name) or "") for name in ("requestid", "sessionid", "userid"))
    assert first.get("requestid") != second.get("requestid")
    assert first.get("sessionid") != second.get("sessionid")
    assert first.get("userid") == second.get("userid")


def test_scenario_attributes_extend_request_os_and_each_app_and_choose_the_path() -> None:
    spec = OmahaSpec(update_path="/v1/update/", request_attributes=(("dedup", "cr"), ("acceptformat", "crx3")),
                     os_attributes=(("platform", "CoreOS"), ("sp", "Service Pack 1")),
                     app_attributes=(("track", "stable"), ("brand", "FLTS")))
    adapter = OmahaAdapter(spec)
    request = adapter.check_request(MACHINE)
    root = ET.fromstring(request.body or b"")
    assert request.path == "/v1/update/"
    assert (root.get("dedup"), root.get("acceptformat")) == ("cr", "crx3")
    assert (root.find("os").get("platform"), root.find("os").get("sp")) == ("CoreOS", "Service Pack 1")
    assert all((app.get("track"), app.get("brand")) == ("stable", "FLTS") for app in root.findall("app"))


def test_an_ok_updatecheck_becomes_an_offer_at_the_first_codebase_plus_the_package_name() -> None:
    result = OmahaAdapter().parse_check(sample("response_ok.xml"))
    assert result.error is None
    assert result.offers == (Offer(update="xpsp2", content_id="xpsp2-home-en.exe", size=80000, real_size=0,
                                   crc32=0, url="http://127.0.0.1:9/download/xpsp2-home-en.exe",
                                   sha256="2c6a4f3e9b5d8e7f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071",
                                   sha1="VXriGUVI0TNqfLlU02vBel4Q3Zo="),)


def test_an_omaha_3_0_package_with_only_a_sha1_hash_is_verified_by_it() -> None:
    body = (SAMPLES / "response_ok.xml").read_bytes().replace(
        b'hash_sha256="2c6a4f3e9b5d8e7f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071"', b"")
    offer = OmahaAdapter().parse_check(WireResponse(200, {}, body)).offers[0]
    assert (offer.sha256, offer.sha1) == ("", "VXriGUVI0TNqfLlU02vBel4Q3Zo=")


def test_a_manifest_version_that_is_none_of_the_worlds_updates_is_a_failure() -> None:
    body = (SAMPLES / "response_ok.xml").read_bytes().replace(b'manifest version="5.1.2600.2180"',
                                                                b'manifest version="9.9"')
    assert "none of the world's updates" in (OmahaAdapter().parse_check(WireResponse(200, {}, body)).error or "")


def test_a_browser_machine_sends_its_platform_as_the_os_and_its_channel_as_ap_at_its_installed_version() -> None:
    world = load_world(ROOT / "scenarios" / "worlds" / "browser2026.toml")
    naming = OmahaNaming(world)
    chrome = naming.apps[0]
    first, second = world.update_names[:2]
    machine = MACHINE._replace(attributes=(("platform", "mac"), ("channel", "beta")), installed=frozenset({first}))
    root = ET.fromstring(OmahaAdapter(world=world).check_request(machine).body or b"")
    (app,) = root.findall("app")
    assert root.find("os").get("platform") == "mac" and app.get("ap") == "beta"
    assert app.get("appid") == chrome.appid and app.get("version") == world.update(first).version
    assert chrome.installed_at(world.update(second).version) == [first, second]
    assert chrome.installed_at(chrome.version) == []


def test_noupdate_app_errors_and_apps_we_did_not_ask_about_offer_nothing() -> None:
    result = OmahaAdapter().parse_check(sample("response_noupdate.xml"))
    assert (result.error, result.offers) == (None, ())


@pytest.mark.parametrize("name", ["response_truncated.xml", "response_entity_bomb.xml", "response_no_codebase.xml"])
def test_malformed_responses_are_failures_not_crashes(name: str) -> None:
    result = OmahaAdapter().parse_check(sample(name))
    assert result.error is not None and result.offers == ()


@given(st.binary(max_size=300) | st.text(max_size=300).map(lambda text: f'<response protocol="3.0">{text}'.encode()))
def test_no_response_body_crashes_the_parser(body: bytes) -> None:
    assert isinstance(OmahaAdapter().parse_check(WireResponse(200, {}, body)), CheckResult)


@pytest.mark.parametrize("body", [b'<?xml version="1.0" encoding="foo"?><response protocol="3.0"/>',
                                  b'<response protocol="3.0"><daystart elapsed_days="x"/></response>',
                                  (SAMPLES / "response_ok.xml").read_bytes().replace(b'size="80000"', b'size="-3"')])
def test_unknown_encodings_and_bad_numbers_are_failures(body: bytes) -> None:
    assert OmahaAdapter().parse_check(WireResponse(200, {}, body)).error is not None


def test_a_response_that_is_not_omaha_is_a_failure() -> None:
    assert OmahaAdapter().parse_check(WireResponse(200, {}, b'{"offers": []}')).error is not None
    assert OmahaAdapter().parse_check(WireResponse(200, {}, b"<response/>")).error is not None
    assert OmahaAdapter().parse_check(WireResponse(500, {}, b"")).error == "HTTP 500"


@pytest.mark.parametrize(("headers", "wait"), [({"X-Retry-After": "3600"}, 3600.0), ({"Retry-After": "60"}, 60.0),
                                               ({"X-Retry-After": "999999"}, 86400.0), ({}, None)])
def test_503_honours_x_retry_after_capped_at_a_day(headers: dict[str, str], wait: float | None) -> None:
    result = OmahaAdapter().parse_check(WireResponse(503, headers, b""))
    assert result.retry_after_s == wait and result.error == "HTTP 503"


def test_daystart_is_honoured_pings_count_days_on_the_servers_calendar() -> None:
    adapter = OmahaAdapter()
    assert adapter.parse_check(sample("response_ok.xml")).error is None  # daystart elapsed_days=2557
    for app in check_xml(adapter).findall("app"):
        assert app.find("ping").attrib == {"r": "1", "a": "1", "rd": "2556", "ad": "2556"}


@pytest.mark.parametrize(("result", "eventresult", "installed", "before"), [
    ("installed", "1", {"xpsp2"}, "5.1.2600.0"), ("failed", "0", set(), "5.1.2600.0"),
    ("installed", "1", {"xpsp1", "xpsp2"}, "5.1.2600.1106"), ("failed", "0", {"xpsp1"}, "5.1.2600.1106")])
def test_report_is_an_update_complete_event_from_the_version_the_machine_had(
        result: str, eventresult: str, installed: set[str], before: str) -> None:
    offer = OmahaAdapter().parse_check(sample("response_ok.xml")).offers[0]
    request = OmahaAdapter().report_request(MACHINE._replace(installed=frozenset(installed)), offer, result)
    version = "5.1.2600.2180" if result == "installed" else before
    app = ET.fromstring(request.body or b"").find("app")
    assert (request.method, request.path) == ("POST", "/service/update2")
    assert (app.get("appid"), app.get("version")) == (APP_BY_UPDATE["xpsp2"].appid, version)
    event = app.find("event")
    assert (event.get("eventtype"), event.get("eventresult")) == ("3", eventresult)
    assert (event.get("previousversion"), event.get("nextversion")) == (before, "5.1.2600.2180")


def test_download_is_a_range_request_on_the_package_url() -> None:
    offer = OmahaAdapter().parse_check(sample("response_ok.xml")).offers[0]
    request = OmahaAdapter().download_request(offer, 100, 199)
    assert (request.method, request.path, dict(request.headers)) == ("GET", offer.url, {"Range": "bytes=100-199"})


def test_load_adapter_passes_the_scenarios_omaha_options_and_still_works_without() -> None:
    spec = OmahaSpec(update_path="/x")
    assert load_adapter("omaha", options={"omaha": spec}, world=default_world()).check_request(MACHINE).path == "/x"
    assert load_adapter("omaha").check_request(MACHINE).path == "/service/update2"
    assert load_adapter("reference", options={"omaha": spec}).name == "reference"


SCENARIO = """name = "o"
protocol = "omaha"
[timeline]
start = 2004-08-18
end = 2004-08-19
time_scale = 1
[fleet]
machines = 10
"""


def test_the_omaha_table_is_read_from_the_scenario(tmp_path: Path) -> None:
    path = tmp_path / "o.toml"
    path.write_text(SCENARIO + '[omaha]\nupdate_path = "/v1/update/"\nrequest = { dedup = "cr" }\n'
                    'os = { platform = "CoreOS", sp = 1 }\napp = { track = "stable" }\n')
    scenario = load_scenario(path)
    assert scenario.protocol == "omaha"
    assert scenario.omaha == OmahaSpec("/v1/update/", (("dedup", "cr"),), (("platform", "CoreOS"), ("sp", "1")),
                                       (("track", "stable"),))


@pytest.mark.parametrize(("table", "field"), [('updte_path = "/x"', "omaha.updte_path"),
                                              ('update_path = "x"', "omaha.update_path"),
                                              ('os = { "bad name" = "x" }', "omaha.os.bad name"),
                                              ("app = { track = true }", "omaha.app.track")])
def test_bad_omaha_fields_are_input_errors_naming_the_field(tmp_path: Path, table: str, field: str) -> None:
    path = tmp_path / "o.toml"
    path.write_text(SCENARIO + "[omaha]\n" + table + "\n")
    with pytest.raises(InputError) as caught:
        load_scenario(path)
    assert field in str(caught.value)
