"""The reference server's native interface answers byte for byte what its WSGI interface answers."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.config.errors import InputError
from harness.config.schema import parse_server
from harness.config.world import default_world
from harness.load.embedded_server import EmbeddedServer, configure
from harness.model.clock import ScenarioClock
from harness.server.app import MIN_BURST, ReferenceServer
from harness.server.httpserver import Responder, native_responder, wsgi_responder
from harness.server.policy import LAUNCH, default_policy
from tests.conftest import exposed_series, server_metrics

ADDRESS = ("127.0.0.1", 8080)
CHECK = {"client_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "edition": "home", "language": "en",
         "enterprise": False, "installed": []}
Request = tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]
OMAHA_CHECK = (Path(__file__).parent / "samples" / "omaha" / "request_check.xml").read_bytes()


def _check(**changes: object) -> bytes:
    return json.dumps({**CHECK, **changes}).encode()


REQUESTS: list[Request] = [
    (b"POST", b"/v1/check", [(b"Content-Type", b"application/json")], _check()),
    (b"POST", b"/v1/check", [], _check(edition="pro", language="de", client_id="other")),
    (b"POST", b"/v1/check", [], _check(installed=["xpsp2"])),
    (b"POST", b"/v1/check", [], _check(enterprise=True)),
    (b"POST", b"/v1/check", [], _check(edition="server")),
    (b"POST", b"/v1/check", [], b"{not json"),
    (b"POST", b"/v1/check", [], b'{"client_id": NaN}'),  # strict JSON: no NaN
    (b"POST", b"/v1/check", [], json.dumps(CHECK).encode("utf-16")),  # nor any encoding but UTF-8
    (b"POST", b"/v1/check", [], b"[1]"),
    (b"POST", b"/v1/check", [], b" " * (64 * 1024 + 1)),
    (b"POST", b"/v1/check?x=1", [], _check()),
    (b"POST", b"/v1/%63heck", [], _check()),
    (b"GET", b"/v1/check", [], b""),
    (b"GET", b"/v1/content/xpsp2-home-en", [], b""),
    (b"HEAD", b"/v1/content/xpsp2-home-en", [], b""),
    (b"GET", b"/v1/content/xpsp2-home-en", [(b"Range", b"bytes=10-99")], b""),
    (b"HEAD", b"/v1/content/xpsp2-home-en", [(b"range", b"bytes=-5")], b""),
    (b"GET", b"/v1/content/xpsp2-home-en", [(b"Range", b"bytes=0-0"), (b"Range", b"bytes=5-9")], b""),
    (b"GET", b"/v1/content/xpsp2-home-en", [(b"Range", b"bytes=0-9"), (b"If-Range", b'"stale"')], b""),
    (b"GET", b"/v1/content/xpsp2-home-en", [(b"Range", b"bytes=99999999-")], b""),
    (b"GET", b"/v1/content/nosuch", [], b""),
    (b"POST", b"/v1/report", [], json.dumps({"client_id": "c", "update": "xpsp2", "result": "installed"}).encode()),
    (b"POST", b"/v1/report", [], json.dumps({"client_id": "c", "update": "sp9", "result": "installed"}).encode()),
    (b"GET", b"/v1/health", [], b""),
    (b"DELETE", b"/v1/check", [], b""),
    (b"POST", b"/service/update2", [(b"Host", b"updates.example:80")], OMAHA_CHECK),
    (b"POST", b"/service/update2", [], OMAHA_CHECK),  # no Host: the server's own address is the codebase
    (b"POST", b"/service/update2", [], b"<garbage"),
    (b"GET", b"/metrics", [], b""),
]


def _body(answer: str) -> str:
    """An HTTP answer's body."""
    return answer.partition("\r\n\r\n")[2]


def _pair(policy_table: dict[str, object] | None = None) -> tuple[Responder, Responder]:
    """A WSGI and a native responder over two identical servers, sharing one clock."""
    policy = default_policy(default_world()) if policy_table is None else parse_server(policy_table, "server", "test")
    clock = ScenarioClock.starting_now(LAUNCH, 1.0)
    return (wsgi_responder(ReferenceServer(policy, clock), ADDRESS),
            native_responder(ReferenceServer(policy, clock), ADDRESS))


@pytest.fixture
def responders() -> Iterator[tuple[Responder, Responder]]:
    yield _pair()


@pytest.mark.parametrize("keep_alive", [True, False])
def test_every_endpoint_is_answered_the_same_through_both_interfaces(
        responders: tuple[Responder, Responder], keep_alive: bool) -> None:
    wsgi, native = responders
    for method, url, headers, body in REQUESTS:  # in order: /metrics at the end sees the same counters
        expected = wsgi(method, url, headers, body, keep_alive)
        assert native(method, url, headers, body, keep_alive) == expected, (method, url, headers)


def test_a_head_answer_has_the_length_of_the_get_body_and_no_bytes(responders: tuple[Responder, Responder]) -> None:
    _, native = responders
    head = native(b"HEAD", b"/v1/content/xpsp2-home-en", [], b"", True)
    get = native(b"GET", b"/v1/content/xpsp2-home-en", [], b"", True)
    assert head.endswith(b"\r\n\r\n")
    assert get.startswith(head) and len(get) > len(head)


def test_overload_is_answered_503_the_same_through_both_interfaces() -> None:
    wsgi, native = _pair({"max_rps": 1, "retry_after_s": 7})
    answers = [(wsgi(b"POST", b"/v1/check", [], _check(), True), native(b"POST", b"/v1/check", [], _check(), True))
               for _ in range(3)]
    assert all(through_wsgi == through_native for through_wsgi, through_native in answers)
    assert answers[-1][1].startswith(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n"
                                     b"Fleetstorm-Clock: scenario\r\nContent-Length: 0\r\n")


@pytest.mark.parametrize(("time_scale", "weight"), [(50.0, 100.0), (100.0, 100.0), (100.0, 50.0)])
def test_a_capacity_in_real_requests_per_second_is_the_same_server_at_any_time_scale_and_sample(
        time_scale: float, weight: float) -> None:
    # 1,000 real requests/s: a wall second at time scale S of clients standing for W machines each
    # stands for S real seconds of W times the requests, so the server serves 1,000 x S / W a wall second.
    policy = parse_server({"max_real_rps": 1000, "retry_after_s": 7}, "server", "test")
    server = ReferenceServer(policy, ScenarioClock.starting_now(LAUNCH, time_scale), weight=weight)
    native = native_responder(server, ADDRESS)
    started, served = time.monotonic(), 0
    while time.monotonic() - started < 0.5:  # asking far faster than it serves
        served += native(b"POST", b"/v1/check", [], _check(), True).startswith(b"HTTP/1.1 200")
    budget = 1000 * time_scale / weight * (time.monotonic() - started)
    # plus the bucket it starts with: a real second of requests (10 of these), or MIN_BURST
    assert served == pytest.approx(budget + MIN_BURST, rel=0.05)


def test_a_capacity_given_both_per_wall_and_per_real_second_is_refused() -> None:
    with pytest.raises(InputError, match="max_real_rps: is given with max_rps"):
        parse_server({"max_real_rps": 1000, "max_rps": 10}, "server", "test")


def _in_flight(url: str) -> float:
    return server_metrics(url)["fleetstorm_server_in_flight"]


def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_answers_a_slow_client_has_not_taken_are_in_flight_and_past_capacity_new_requests_get_503(
        reference_server: EmbeddedServer) -> None:
    policy = parse_server({"capacity": 1, "payload_scale": 1.0, "retry_after_s": 9}, "server", "test")
    configure(reference_server.url, reference_server.admin_token, policy, ScenarioClock.starting_now(LAUNCH, 1.0))
    host, port = reference_server.url.removeprefix("http://").split(":")
    check = urllib.request.Request(f"{reference_server.url}/v1/check", data=_check(), method="POST")
    with socket.create_connection((host, int(port)), timeout=5) as slow:  # asks for 64 MB and reads nothing
        slow.sendall(b"GET /v1/content/xpsp2-home-en HTTP/1.1\r\nHost: x\r\nRange: bytes=0-67108863\r\n\r\n")
        _wait_for(lambda: _in_flight(reference_server.url) == 1)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(check, timeout=5)
        assert (refused.value.code, refused.value.headers["Retry-After"]) == (503, "9")
    _wait_for(lambda: _in_flight(reference_server.url) == 0)  # the client went away: nothing is in flight
    with urllib.request.urlopen(check, timeout=5) as answered:
        assert answered.status == 200


def test_a_wsgi_answer_is_in_flight_until_the_wsgi_server_closes_it() -> None:
    app = ReferenceServer(default_policy(default_world()))
    answer = app({"REQUEST_METHOD": "GET", "PATH_INFO": "/v1/health"}, lambda status, headers: None)
    assert app.in_flight == 1
    assert b"".join(answer) == b'{"status": "ok"}'
    answer.close()
    answer.close()
    assert app.in_flight == 0


def test_a_cached_check_answer_still_follows_the_rollout_per_machine() -> None:
    """The answer bytes are cached per set of offers, but who is offered what is decided per machine."""
    _, native = _pair({"rollout": {"xpsp2": {"eligible": {"edition": {"home": "2004-08-01"}},
                                             "steps": [{"at": "2004-08-01", "percent": 50}]}}})
    answers = {native(b"POST", b"/v1/check", [], _check(client_id=f"machine-{n}"), True) for n in range(200)}
    offered, not_offered = sorted(answers, key=len, reverse=True)
    assert b'"update": "xpsp2"' in offered
    assert not_offered.endswith(b'{"offers": []}')


def test_requests_for_unknown_paths_are_counted_under_one_label_whatever_the_path() -> None:
    _, native = _pair()
    for path in (b"/nosuch", b'/v1/x"y', b"/v1/a/b/c"):
        assert native(b"GET", path, [], b"", True).startswith(b"HTTP/1.1 404 Not Found\r\n")
    metrics = native(b"GET", b"/metrics", [], b"", True).decode()
    assert exposed_series(_body(metrics))['fleetstorm_server_requests_total{code="404",endpoint="other"}'] == 3
    assert 'x"y' not in metrics


def test_checks_with_fields_the_fast_decoder_does_not_know_are_answered_as_any_other() -> None:
    _, native = _pair()
    offer = native(b"POST", b"/v1/check", [], _check(), True)
    assert b'"update": "xpsp2"' in offer
    assert native(b"POST", b"/v1/check", [], _check(colour="blue"), True) == offer


def test_offers_are_counted_across_a_reconfiguration() -> None:
    app = ReferenceServer(default_policy(default_world()))
    native = native_responder(app, ADDRESS)
    native(b"POST", b"/v1/check", [], _check(), True)
    app.configure(default_policy(default_world()), app.clock)
    native(b"POST", b"/v1/check", [], _check(client_id="another"), True)
    metrics = native(b"GET", b"/metrics", [], b"", True).decode()
    assert exposed_series(_body(metrics))['fleetstorm_server_offers_total{update="xpsp2"}'] == 2


def test_a_bug_in_the_app_is_a_500_and_the_server_keeps_serving() -> None:
    class Broken(ReferenceServer):
        def _check(self, request: object) -> tuple[str, tuple[tuple[str, str], ...], bytes]:
            raise RuntimeError("bug")

    native = native_responder(Broken(default_policy(default_world())), ADDRESS)
    assert native(b"POST", b"/v1/check", [], _check(), True).startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert native(b"GET", b"/v1/health", [], b"", True).startswith(b"HTTP/1.1 200 OK\r\n")


def test_pipelined_requests_are_answered_in_order_in_one_write(reference_server: object) -> None:
    url = reference_server.url  # type: ignore[attr-defined]
    host, port = url.removeprefix("http://").split(":")
    body = _check()
    one = (b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    health = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(one + one + health)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    answers = received.split(b"HTTP/1.1 ")[1:]
    assert [answer.split(b"\r\n", 1)[0] for answer in answers] == [b"200 OK"] * 3
    assert answers[2].endswith(b'{"status": "ok"}') and b"Connection: close" in answers[2]


def test_pipelined_requests_before_a_malformed_one_are_answered_before_the_400(reference_server: object) -> None:
    url = reference_server.url  # type: ignore[attr-defined]
    host, port = url.removeprefix("http://").split(":")
    health = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(health + health + b"NOT HTTP AT ALL\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    answers = received.split(b"HTTP/1.1 ")[1:]
    assert [answer.split(b"\r\n", 1)[0] for answer in answers] == [b"200 OK", b"200 OK", b"400 Bad Request"]
    assert b"Connection: close" in answers[2]
