"""fleetstorm's Locust entry point: the agent user and the fleet's load shape.

All logic lives in `harness/`; importing harness.runtime registers the options and event hooks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import urlsplit

from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPParseError
from locust import FastHttpUser, LoadTestShape, constant, task
from locust.contrib.fasthttp import insecure_ssl_context_factory
from locust.exception import CatchResponseError

from harness.protocols.base import WireRequest, WireResponse, transport_failure
from harness.runtime import Harness

QUEUE_POLL_S = 1.0
TRANSPORT_ERRORS = (OSError, HTTPParseError)  # refused, reset, timed out, TLS, a broken or cut-short answer


class UpdateAgent(FastHttpUser):
    """An agent: carries out whichever machine's check-in (or package download) is due next (it is not a machine)."""

    wait_time = constant(0)

    def __init__(self, environment) -> None:  # noqa: ANN001 (Locust's signature)
        timeout = environment.fleetstorm.scenario.agents.timeout_s
        self.network_timeout = self.connection_timeout = timeout
        super().__init__(environment)
        base = self.client.base_url  # --host without its credentials, which Locust's session turned into auth_header
        self._path_prefix = urlsplit(base).path.rstrip("/")
        self._direct = HTTPClient.from_url(base, concurrency=1, connection_timeout=timeout, network_timeout=timeout,
                                           ssl_context_factory=insecure_ssl_context_factory, insecure=True,
                                           headers={"Authorization": self.client.auth_header}
                                           if self.client.auth_header else None)

    def on_stop(self) -> None:
        self._direct.close()

    @task
    def carry_out_checkin(self) -> None:
        harness: Harness = self.environment.fleetstorm
        item = harness.next_checkin(timeout=QUEUE_POLL_S)
        if item is None or harness.agent is None:
            return
        if type(item) is tuple:  # a machine's wake-up: (index, due)
            harness.agent.wake(self, *item)
        else:  # an administrator's PackageFetch
            harness.agent.fetch_package(self, item)

    def error(self, name: str, reason: str) -> None:
        """A failed wake-up that no request of its own carried, as a failed `ERROR` entry in Locust's statistics."""
        self.environment.events.request.fire(
            request_type="ERROR", name=name, response_time=0.0, response_length=0,
            exception=CatchResponseError(reason), context=self.context(), response=None, start_time=time.time(),
            url=None)

    def send(self, request: WireRequest, name: str,
             failure_of: Callable[[WireResponse], str | None] | None) -> WireResponse:
        """Send one adapter request; every request lands in Locust's stats through its `request` event.

        A POST to the target (a check or a report) goes straight through this agent's geventhttpclient
        connection: Locust's session costs more CPU per request than all the rest of a check-in. Other
        requests (ranged downloads, which a server may redirect or an offer may point at another host) go
        through Locust's session, which follows redirects. A POST is never redirected.
        """
        if request.method != "POST" or not request.path.startswith("/"):
            return self._send_through_session(request, name, failure_of)
        started_at, started = time.time(), time.perf_counter()
        error: Exception | None = None
        try:
            answer = self._direct.request("POST", self._path_prefix + request.path, request.body, request.headers)
            wire = WireResponse(answer.status_code, answer.info(), answer.read())
        except TRANSPORT_ERRORS as exc:
            wire, error = WireResponse(0, {}, b""), exc
        response_time_ms = (time.perf_counter() - started) * 1000
        reason = transport_failure(wire, "POST") or (failure_of(wire) if failure_of else None)
        self.environment.events.request.fire(
            request_type="POST", name=name, response_time=response_time_ms, response_length=len(wire.body),
            exception=CatchResponseError(f"{reason} ({error})" if error else reason) if reason else None,
            context=self.context(), response=wire, start_time=started_at, url=self.client.base_url + request.path)
        return replace(wire, failure=reason) if reason else wire

    def _send_through_session(self, request: WireRequest, name: str,
                              failure_of: Callable[[WireResponse], str | None] | None) -> WireResponse:
        """Send one request through Locust's session (which reports it to Locust's stats)."""
        with self.client.request(request.method, request.path, data=request.body, headers=dict(request.headers),
                                 name=name, catch_response=True) as response:
            wire = WireResponse(response.status_code or 0, response.headers or {}, response.content or b"")
            reason = transport_failure(wire, request.method) or (failure_of(wire) if failure_of else None)
            if not reason:
                response.success()
                return wire
            response.failure(reason if wire.status else f"{reason} ({response.error})")
            return replace(wire, failure=reason)


class FleetShape(LoadTestShape):
    """Keeps the agent pool sized for the fleet's rate until the timeline or --run-time ends, whichever is first."""

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        environment = self.runner.environment
        harness: Harness = environment.fleetstorm
        if harness.running:
            timeline_s, run_time = harness.scenario.timeline.wall_seconds, environment.parsed_options.run_time
            since_start = time.time() - harness.started_at  # from scenario second 0, past the timeline's end too
            if run_time and run_time < timeline_s and since_start >= run_time:
                harness.ended_by = harness.ended_by or f"the run time limit (-t {run_time}s)"
                return None
            if since_start >= timeline_s:
                harness.ended_by = harness.ended_by or "the timeline's end"
                return None
        return harness.pool.size, float(harness.pool.size)  # every agent (and each growth) in one spawn step
