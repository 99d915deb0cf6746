"""The reference server's Omaha dialect, over real HTTP on loopback, and a real locust run speaking Omaha."""

from __future__ import annotations

import base64
import hashlib
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.config.scenario import load_scenario
from harness.config.schema import parse_server
from harness.config.world import default_world
from harness.load.embedded_server import EmbeddedServer, configure
from harness.model.clock import ScenarioClock
from harness.model.fleet import Machine
from harness.protocols.base import WireResponse
from harness.protocols.omaha import OmahaAdapter, OmahaNaming
from harness.protocols.reference import ReferenceAdapter
from harness.server.policy import LAUNCH
from tests.conftest import SMOKE, run_locust, server_metrics

SAMPLES = Path(__file__).parent / "samples" / "omaha"
APP_BY_UPDATE = OmahaNaming(default_world()).by_update


def post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(f"{url}/service/update2", data=body, method="POST",
                                     headers={"Content-Type": "application/xml"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def roll_out(server: EmbeddedServer, percent: float, offers_per_hour: int = 0) -> None:
    policy = parse_server({"offers_per_hour": offers_per_hour,
                           "rollout": {"xpsp2": {"steps": [{"at": "2004-08-01", "percent": percent}]}}},
                          "server", "test")
    configure(server.url, server.admin_token, policy, ScenarioClock.starting_now(LAUNCH, 1.0))


def test_a_recorded_check_is_offered_sp2_with_a_package_whose_hashes_match_the_bytes(
        reference_server: EmbeddedServer) -> None:
    roll_out(reference_server, 100)
    status, body = post(reference_server.url, (SAMPLES / "request_check.xml").read_bytes())
    assert status == 200
    result = OmahaAdapter().parse_check(WireResponse(200, {}, body))
    assert result.error is None
    (offer,) = result.offers
    assert (offer.update, offer.content_id) == ("xpsp2", "xpsp2-home-diff-en")  # XP with SP1: the express package
    with urllib.request.urlopen(offer.url, timeout=5) as response:
        package = response.read()
    assert hashlib.sha256(package).hexdigest() == offer.sha256  # Omaha 3.1's hash_sha256
    assert base64.b64encode(hashlib.sha1(package).digest()).decode() == offer.sha1  # noqa: S324 - 3.0's hash
    root = ET.fromstring(body)
    assert int(root.find("daystart").get("elapsed_seconds")) < 86400
    hotfix = root.find(f"app[@appid='{APP_BY_UPDATE['kb884020'].appid}']/updatecheck")
    assert hotfix.get("status") == "noupdate"  # the hotfix applies only once SP2 is installed


def test_nothing_is_offered_before_the_rollout_reaches_the_machine(reference_server: EmbeddedServer) -> None:
    roll_out(reference_server, 0)
    status, body = post(reference_server.url, (SAMPLES / "request_check.xml").read_bytes())
    assert status == 200
    assert [check.get("status") for check in ET.fromstring(body).iter("updatecheck")] == ["noupdate", "noupdate"]


def test_the_offers_per_hour_cap_holds_for_omaha_checks_as_for_json_checks(reference_server: EmbeddedServer) -> None:
    roll_out(reference_server, 100, offers_per_hour=2)
    request = (SAMPLES / "request_check.xml").read_text()
    statuses = []
    for machine in range(4):  # four machines in one scenario hour: two are offered SP2
        body = request.replace("D9C8F1A2-3B4C-4D5E-8F60-718293A4B5C6", f"D9C8F1A2-3B4C-4D5E-8F60-{machine:012d}")
        sp2 = ET.fromstring(post(reference_server.url, body.encode())[1]).find("app/updatecheck")
        statuses.append(sp2.get("status"))
    assert statuses == ["ok", "ok", "noupdate", "noupdate"]
    assert server_metrics(reference_server.url)['fleetstorm_server_offers_total{update="xpsp2"}'] == 2


def test_install_events_are_counted_as_reports(reference_server: EmbeddedServer) -> None:
    adapter = OmahaAdapter()
    machine = Machine(0, "d9c8f1a2-3b4c-4d5e-8f60-718293a4b5c6", "H", "00:0C:29:12:34:56", "en-US", "UA",
                      (("edition", "home"),), "en", False, "automatic", "broadband", frozenset())
    offer = adapter.parse_check(WireResponse(200, {}, (SAMPLES / "response_ok.xml").read_bytes())).offers[0]
    for result in ("installed", "failed"):
        status, body = post(reference_server.url, adapter.report_request(machine, offer, result).body or b"")
        assert status == 200 and ET.fromstring(body).find("app/event").get("status") == "ok"
    metrics = server_metrics(reference_server.url)
    assert metrics['fleetstorm_server_reports_total{result="installed",update="xpsp2"}'] == 1
    assert metrics['fleetstorm_server_reports_total{result="failed",update="xpsp2"}'] == 1


def test_garbage_is_a_400_not_a_crash(reference_server: EmbeddedServer) -> None:
    assert post(reference_server.url, b"not xml")[0] == 400
    assert post(reference_server.url, b'<request protocol="2.0"/>')[0] == 400
    assert post(reference_server.url, (SAMPLES / "response_entity_bomb.xml").read_bytes())[0] == 400
    assert post(reference_server.url, b'<request protocol="3.0" userid="{X}"><app appid="{Y}"/></request>')[0] == 200


def test_a_real_locust_run_speaking_omaha_checks_in_downloads_and_reports(
        reference_server: EmbeddedServer, tmp_path: Path) -> None:
    scenario = load_scenario(SMOKE)
    configure(reference_server.url, reference_server.admin_token, scenario.server,
              ScenarioClock.starting_now(scenario.timeline.start, scenario.timeline.time_scale))
    run = run_locust("--scenario", str(SMOKE), "--protocol", "omaha", "--host", reference_server.url, "-t", "5s",
                     results_dir=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    summary = run.summary
    assert summary is not None
    assert summary["checkins"]["count"] > 500 and summary["checkins"]["failed"] == 0
    assert summary["downloads"]["bytes"] > 0 and summary["downloads"]["corrupt"] == 0
    installed = summary["fleet"]["counters"]["installed_xpsp2"]
    assert 0 < installed <= summary["fleet"]["counters"]["offered_xpsp2"]  # installs wait for 03:00 local
    metrics = server_metrics(reference_server.url)
    assert metrics['fleetstorm_server_requests_total{code="200",endpoint="service/update2"}'] >= 500 + installed
    assert metrics["fleetstorm_server_bytes_sent_total"] == summary["downloads"]["bytes"]
    assert metrics['fleetstorm_server_reports_total{result="installed",update="xpsp2"}'] == installed


def test_a_check_by_hand_is_offered_past_the_throttle_in_both_dialects_where_the_rollout_opens_the_site(
        reference_server: EmbeddedServer) -> None:
    policy = parse_server({"rollout": {"xpsp2": {"steps": [{"at": "2004-08-01", "percent": 0.001}],
                                                 "gate_by_hand": False}}}, "server", "test")
    configure(reference_server.url, reference_server.admin_token, policy, ScenarioClock.starting_now(LAUNCH, 1.0))
    scheduled = Machine(0, "d9c8f1a2-3b4c-4d5e-8f60-718293a4b5c6", "H", "00:0C:29:12:34:56", "en-US", "UA",
                        (("edition", "home"),), "en", False, "automatic", "broadband", frozenset())
    for adapter in (OmahaAdapter(), ReferenceAdapter()):
        offered = []
        for machine in (scheduled, scheduled._replace(by_hand=True)):  # installsource="ondemand" / "by_hand": true
            request = adapter.check_request(machine)
            http = urllib.request.Request(f"{reference_server.url}{request.path}", data=request.body, method="POST",
                                          headers=dict(request.headers))
            with urllib.request.urlopen(http, timeout=5) as response:
                answer = WireResponse(response.status, dict(response.headers), response.read())
            offered.append([offer.update for offer in adapter.parse_check(answer).offers])
        assert offered == [[], ["xpsp2"]], adapter.name
