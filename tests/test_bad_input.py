"""The bad-input corpus: every mistake gets one clear line and exit code 2, or a 4xx with a reason.

Scenario files, threshold expressions and command-line flags go through real `locust` start-ups;
HTTP requests go to a real reference server. No case may produce a traceback or a 500.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.config.schema import parse_server, server_spec_to_json
from harness.config.world import default_world
from harness.load.embedded_server import EmbeddedServer
from harness.model.clock import ScenarioClock
from harness.server.app import ReferenceServer
from harness.server.handler import Request
from harness.server.policy import LAUNCH, default_policy
from tests.conftest import ROOT, SMOKE, run_locust

GOOD = SMOKE.read_text()

SCENARIO_EDITS = [  # (replace this, with that), the field the message must name
    (("machines = 20000", "machines = 0"), "fleet.machines"),
    (("machines = 20000", "machines = -1"), "fleet.machines"),
    (("machines = 20000", "machines = 1.5"), "fleet.machines"),
    (("machines = 20000", 'machines = "lots"'), "fleet.machines"),
    (("machines = 20000", "machnes = 20000"), "fleet.machnes"),
    (("seed = 42", "seed = -3"), "fleet.seed"),
    (("seed = 42", 'seed = "x"'), "fleet.seed"),
    (("enterprise_share = 0.1", "enterprise_share = 0.1\nhome_share = 0.6"), "fleet.home_share"),
    (("enterprise_share = 0.1", "enterprise_share = 0.1\nattributes = { edition = { home = 2 } }"),
     "fleet.attributes.edition.home"),
    (("enterprise_share = 0.1", "enterprise_share = -0.1"), "fleet.enterprise_share"),
    (("time_scale = 720", "time_scale = -720"), "timeline.time_scale"),
    (("time_scale = 720", 'time_scale = "fast"'), "timeline.time_scale"),
    (("start = 2004-08-18T06:15:00Z", 'start = "yesterday"'), "timeline.start"),
    (("end = 2004-08-18T12:15:00Z", "end = 2004-08-18T00:00:00Z"), "timeline.end"),
    (("[timeline]", "[timelines]"), "timeline"),
    (("time_scale = 720", "time_scale = 720\n[[timeline.phases]]\nfrom = 2004-08-19T00:00:00Z\ntime_scale = 60"),
     "timeline.phases[0].from"),
    (("time_scale = 720", "time_scale = 720\nphases = 60"), "timeline.phases"),
    (('name = "smoke"', "name = 3"), "name"),
    (("payload_scale = 0.001", "payload_scale = 7"), "server.payload_scale"),
    (("capacity = 1000", "capacity = 0"), "server.capacity"),
    (("capacity = 1000", "capacity = 1000\ncolour = 1"), "server.colour"),
    (("percent = 20", "percent = 500"), "percent"),
    (("percent = 20", "percent = 1"), "steps[1].at"),
    (("[server.rollout.xpsp2]", "[server.rollout.xpsp2]\neligible = { edition = { hom = 2004-08-18 } }"),
     "eligible.edition.hom"),
    (("[server.rollout.xpsp2]", "[server.rollout.sp2]"), "server.rollout.sp2"),
    (('name = "smoke"', 'name = "smoke"\nworld = "nowhere.toml"'), "world"),
    (('name = "smoke"', 'name = "smoke"\nworld = 3'), "world"),
    (("enterprise_share = 0.1", 'enterprise_share = 0.1\nstart_from = "nowhere.toml"'), "fleet.start_from"),
    (('name = "smoke"', 'name = "smoke"\n[[events]]\nkind = "earthquake"\nat = 2004-08-18T08:00:00Z\nshare = 0.5'),
     "events[0].kind"),
    (('name = "smoke"', 'name = "smoke"\n[[events]]\nkind = "detect_now"\nat = 2005-01-01T00:00:00Z\nshare = 0.5'),
     "events[0].at"),
    (('"check.p95 < 250ms",', '"check.p95 < 250 parsecs",'), "check.p95 < 250 parsecs"),
    (('"check.p95 < 250ms",', "42,"), "thresholds.rules[0]"),
    (('"check.p95 < 250ms",', '{ expr = "check.p95 < 1s", abort = true },'), "rules[0].abort"),
    (("enterprise_share = 0.1", "enterprise_share = 0.1\n[fleet.languages]\nen = 0.5\nde = 0.4"), "fleet.languages"),
    (("enterprise_share = 0.1", "enterprise_share = 0.1\n[fleet.languages]\nxx = 1.0"), "fleet.languages.xx"),
    (("enterprise_share = 0.1", "enterprise_share = 0.1\n[fleet.install]\nautomatic = 0.5\nsometimes = 0.5"),
     "fleet.install.sometimes"),
    (("enterprise_share = 0.1", "enterprise_share = 0.1\n[fleet.install]\nautomatic = 0.5\noff = 0.2"),
     "fleet.install"),
    (("enterprise_share = 0.1", "enterprise_share = 0.1\n[fleet.au]\nautomatic = 1"), "fleet.au"),
    (("enterprise_share = 0.1", "enterprise_share = 0.1\n[fleet.online]\nnight_owl = 1.0"), "fleet.online.night_owl"),
    (("enterprise_share = 0.1", 'enterprise_share = 0.1\n[fleet.connection]\nbroadband = "fast"'),
     "fleet.connection.broadband"),
    (("enterprise_share = 0.1", 'enterprise_share = 0.1\nedition = "media-center"'), "fleet.edition"),
    (("machines = 20000", "machines = 5e9"), "fleet.machines"),
    (("machines = 20000", 'machines = 20000\nreal_machines = "10K"'), "fleet.real_machines"),
    (("machines = 20000", "machines = 20000\nweight = 21000"), "fleet.weight"),
]

THRESHOLDS = [
    ("check.p95", "check.p95"),
    ("check.p95 < ", "check.p95 <"),
    ("check.p95 < fast", "'fast' is not a value"),
    ("chek.p95 < 1s", "unknown metric 'chek.p95'"),
    ("check.p42x < 1s", "unknown metric"),
    ("errors.ratio < much", "not a value for errors.ratio"),
    ("fleet.sp3_installed > 1", "unknown fleet metric"),
    ("fleet.installed.xpsp3 > 1", "'xpsp3' is not an update of the world"),
    ("fleet.installed > 1", "unknown fleet metric"),
    ("real.fleet.coverage.kb884020 > 1%", "no real-world equivalent"),
    ("real.check.p95 < 1s", "no real-world equivalent"),
    ("check.p99 < 1s over never", "not a duration"),
    ("fleet.sp2_installed > 1 at tomorrow", "not a date"),
    ("check.goodput > 1MB/s", "download only"),
]

FLAGS = [
    (("--fleet-size", "0"), "--fleet-size"),
    (("--fleet-size", "-5"), "--fleet-size"),
    (("--fleet-size", "many"), "--fleet-size"),
    (("--time-scale", "0"), "--time-scale"),
    (("--time-scale", "x"), "--time-scale"),
    (("--seed", "-1"), "--seed"),
    (("--protocol", "nosuch"), "--protocol"),
    (("--protocol", "nosuch.module:Adapter"), "--protocol"),
    (("--protocol", "json:JSONDecoder"), "--protocol"),
    (("--scenario", "no/such/file.toml"), "no/such/file.toml"),
    (("--scenario", "scenarios"), "is a directory"),
    (("--until", "1999-01-01"), "--until"),
    (("--until", "someday"), "--until"),
    (("--host", "http://192.0.2.10"), "--host"),
    (("--host", "ftp://127.0.0.1"), "--host"),
    (("--fleet-size", "1.5"), "--fleet-size"),
    (("--fleet-size", "1e12"), "--fleet-size"),
    (("--fleet-size", "4e9"), "--fleet-size"),  # numbered, but more than the memory here
    (("--target-rps", "0"), "--target-rps"),
    (("--target-rps", "100", "--time-scale", "1", "--fleet-size", "1000"), "--target-rps"),
    (("--target-rps", "0.000001", "--time-scale", "1"), "--target-rps"),  # less than one machine
    (("--scenario", "scenarios/throttled_ramp.toml", "--fleet-size", "300M"), "--fleet-size"),  # > its real fleet
]


def _assert_refused(tmp_path: Path, *args: str, names: str) -> None:
    run = run_locust(*args, results_dir=tmp_path, timeout=60)
    assert run.returncode == 2, run.stderr[-1500:]
    errors = [line for line in run.stderr.splitlines() if line.startswith("fleetstorm: error:")]
    assert len(errors) == 1, run.stderr[-1500:]
    assert names in errors[0] and "; fix: " in errors[0]
    assert "Traceback" not in run.stderr
    assert run.summary is None


@pytest.mark.parametrize(("edit", "names"), SCENARIO_EDITS, ids=[names for _, names in SCENARIO_EDITS])
def test_a_broken_scenario_file_is_refused(tmp_path: Path, edit: tuple[str, str], names: str) -> None:
    assert edit[0] in GOOD
    path = tmp_path / "broken.toml"
    path.write_text(GOOD.replace(edit[0], edit[1], 1))
    _assert_refused(tmp_path, "--scenario", str(path), names=names)


EXTENDS = [  # what the extending file says over smoke.toml, the file and field the message must name
    ('extends = "absent.toml"\n', "extending.toml: extends"),
    ('extends = "extending.toml"\n', "extending.toml: extends"),  # a cycle
    ('extends = "smoke.toml"\n[fleet]\nmachnes = 10\n', "extending.toml: fleet.machnes"),
]


@pytest.mark.parametrize(("extending", "names"), EXTENDS, ids=["missing base", "cycle", "unknown field"])
def test_a_broken_extends_is_refused_naming_the_extending_file(tmp_path: Path, extending: str, names: str) -> None:
    (tmp_path / "smoke.toml").write_text(GOOD)
    path = tmp_path / "extending.toml"
    path.write_text(extending)
    _assert_refused(tmp_path, "--scenario", str(path), names=names)


@pytest.mark.parametrize(("expr", "names"), THRESHOLDS, ids=[expr for expr, _ in THRESHOLDS])
def test_a_malformed_threshold_is_refused(tmp_path: Path, expr: str, names: str) -> None:
    _assert_refused(tmp_path, "--threshold", expr, names=names)


@pytest.mark.parametrize(("args", "names"), FLAGS, ids=[" ".join(args) for args, _ in FLAGS])
def test_a_bad_flag_is_refused(tmp_path: Path, args: tuple[str, ...], names: str) -> None:
    _assert_refused(tmp_path, *args, names=names)


def test_a_metrics_port_already_taken_is_refused_before_any_load(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        _assert_refused(tmp_path, "--metrics-port", str(taken.getsockname()[1]), names="--metrics-port")


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    server = EmbeddedServer.start()
    try:
        yield server
    finally:
        server.stop()


def _request(url: str, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    target = urlparse(url)
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=5)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


CHECK = {"client_id": "c", "edition": "home", "language": "en", "installed": []}
HTTP_CASES = [
    ("POST", "/v1/check", b"{not json", {}, 400, b"not valid JSON"),
    ("POST", "/v1/check", b"[1, 2]", {}, 400, b"JSON object"),
    ("POST", "/v1/check", json.dumps({**CHECK, "edition": "server"}).encode(), {}, 400, b"edition"),
    ("POST", "/v1/check", json.dumps({**CHECK, "language": "tlh"}).encode(), {}, 400, b"language"),
    ("POST", "/v1/check", json.dumps({k: v for k, v in CHECK.items() if k != "client_id"}).encode(), {}, 400,
     b"client_id"),
    ("POST", "/v1/check", json.dumps({**CHECK, "installed": "xpsp2"}).encode(), {}, 400, b"installed"),
    ("POST", "/v1/check", b"{}", {"Content-Length": "99999999"}, 413, b"body over"),
    ("POST", "/v1/check", json.dumps({**CHECK, "hostname": "x"}).encode().replace(b'"x"', b'"\xff"'), {}, 400,
     b"not valid JSON"),
    ("POST", "/v1/check", json.dumps({**CHECK, "installed": []}).encode().replace(b"[]", b"[" * 5000 + b"]" * 5000),
     {}, 400, b"not valid JSON"),
    ("POST", "/v1/report", b'{"client_id": ' + b"[" * 5000 + b"]" * 5000 + b"}", {}, 400, b"not valid JSON"),
    # strict UTF-8 JSON only: no NaN, no other encoding, no byte-order mark
    ("POST", "/v1/check", json.dumps({**CHECK, "enterprise": float("nan")}).encode(), {}, 400, b"not valid JSON"),
    ("POST", "/v1/check", json.dumps(CHECK).encode("utf-16"), {}, 400, b"not valid JSON"),
    ("POST", "/v1/report", b"\xef\xbb\xbf" + json.dumps({"client_id": "c", "update": "xpsp2", "result": "failed"})
     .encode(), {}, 400, b"not valid JSON"),
    ("POST", "/v1/report", json.dumps({"client_id": "c", "update": "sp9", "result": "installed"}).encode(), {},
     400, b"unknown update"),
    ("POST", "/v1/report", json.dumps({"client_id": "c", "update": "xpsp2", "result": "meh"}).encode(), {}, 400,
     b"result"),
    ("GET", "/v1/content/xpsp2-home-en", None, {"Range": "bytes=999999999-"}, 416, b"range"),
    ("GET", "/v1/content/xpsp2-home-en", None, {"Range": "lines=1-2"}, 416, b"range"),
    ("GET", "/v1/content/nosuch", None, {}, 404, b"no such content"),
    ("GET", "/v1/content/../../etc/passwd", None, {}, 404, b"no such"),
    ("DELETE", "/v1/check", None, {}, 404, b"no such endpoint"),
]


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "reason"), HTTP_CASES,
                         ids=[f"{c[0]} {c[1]} {c[4]}" for c in HTTP_CASES])
def test_a_bad_request_gets_a_4xx_with_a_reason(server: EmbeddedServer, method: str, path: str, body: bytes | None,
                                                 headers: dict[str, str], status: int, reason: bytes) -> None:
    answered, text = _request(server.url, method, path, body, headers)
    assert answered == status
    assert reason in text


def test_the_corpus_has_at_least_forty_cases() -> None:
    assert len(SCENARIO_EDITS) + len(EXTENDS) + len(THRESHOLDS) + len(FLAGS) + len(HTTP_CASES) >= 40


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "POST", "HEAD", "PUT"]),
    path=st.sampled_from(["/v1/check", "/v1/report", "/v1/content/xpsp2-home-en", "/v1/health", "/metrics"])
    | st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=40).map(lambda t: "/" + t),
    body=st.binary(max_size=300) | st.dictionaries(st.sampled_from(list(CHECK) + ["enterprise", "x"]),
                                                    st.none() | st.integers() | st.text(max_size=8)
                                                    | st.lists(st.text(max_size=6), max_size=3)).map(
        lambda d: json.dumps(d).encode()),
    range_header=st.none() | st.text(alphabet="bytes=0123456789-,", max_size=20),
)
def test_the_server_never_answers_500_to_anything(server: EmbeddedServer, method: str, path: str, body: bytes,
                                                  range_header: str | None) -> None:
    headers = {"Range": range_header} if range_header else {}
    status, _ = _request(server.url, method, path, body if method in ("POST", "PUT") else None, headers)
    assert status < 500 or status == 503  # 503 only as the documented overload answer


def test_a_broken_world_file_is_refused_naming_the_world_file_and_field(tmp_path: Path) -> None:
    world = (ROOT / "tests" / "samples" / "worlds" / "device_fleet.toml").read_text()
    (tmp_path / "devices.toml").write_text(world.replace('size = "8MB"', 'size = "8MB"\nrequires = ["fw31"]'))
    path = tmp_path / "broken.toml"
    path.write_text(GOOD.replace('name = "smoke"', 'name = "smoke"\nworld = "devices.toml"', 1))
    _assert_refused(tmp_path, "--scenario", str(path), names="devices.toml: updates.fw32.requires[0]")


def _configure_body(percent: float, **server: object) -> bytes:
    """A configuration that would offer SP2 to `percent` of the machines from 2004-08-01 (`server`: fields over it)."""
    policy = parse_server({"rollout": {"xpsp2": {"steps": [{"at": "2004-08-01", "percent": percent}]}}}, "server", "t")
    return json.dumps({"clock": ScenarioClock.starting_now(LAUNCH, 1.0).to_json(),
                       "server": server_spec_to_json(policy) | server}).encode()


ADMIN_CASES = [  # Authorization header (None: left out; TOKEN: the run's), body, status, reason
    (None, _configure_body(0), 401, b"Authorization: Bearer"),
    ("Bearer wrong-token", _configure_body(0), 403, b"wrong admin token"),
    ("Basic YWRtaW46YWRtaW4=", _configure_body(0), 401, b"Authorization: Bearer"),
    ("TOKEN", b'{"clock": {}, "server": {}}', 400, b"bad configuration"),
    ("TOKEN", _configure_body(0, capacity=0), 400, b"bad configuration"),
    ("TOKEN", _configure_body(0)[:-1] + b', "weight": true}', 400, b"is not a number of real machines"),
    ("TOKEN", _configure_body(0)[:-1] + b', "weight": 1' + b"0" * 400 + b"}", 400, b"bad configuration"),
    ("TOKEN", b"{}", 413, b"body over"),  # sent with a Content-Length beyond the limit
]


@pytest.mark.parametrize(("authorization", "body", "status", "reason"), ADMIN_CASES,
                         ids=["no token", "wrong token", "not a bearer token", "no clock", "invalid policy",
                              "a weight that is no number", "a weight beyond a float", "oversized"])
def test_the_admin_door_opens_only_to_the_runs_token_and_a_refusal_changes_nothing(
        server: EmbeddedServer, authorization: str | None, body: bytes, status: int, reason: bytes) -> None:
    headers = {} if authorization is None else {
        "Authorization": f"Bearer {server.admin_token}" if authorization == "TOKEN" else authorization}
    if status == 413:
        headers["Content-Length"] = "99999999"
    answered, text = _request(server.url, "POST", "/v1/admin/configure", body, headers)
    assert (answered, reason in text) == (status, True)
    # The refused configuration would have offered SP2 to no one: every machine is still offered it.
    _, answer = _request(server.url, "POST", "/v1/check", json.dumps(CHECK).encode(), {})
    assert b'"update": "xpsp2"' in answer


def test_a_standalone_server_binds_beyond_loopback_only_when_told_and_without_a_token_keeps_the_door_shut() -> None:
    refused = subprocess.run([sys.executable, "-m", "harness.server", "--host", "0.0.0.0", "--port", "0"],
                             cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert refused.returncode == 2 and "--allow-remote" in refused.stderr
    app = ReferenceServer(default_policy(default_world()))  # as `python -m harness.server` without a token
    closed = app.answer(Request("POST", "/v1/admin/configure", [(b"authorization", b"Bearer x")],
                                _configure_body(0), ("127.0.0.1", 80)))
    assert closed[0] == "403 Forbidden" and b"admin door is closed" in closed[2]
