"""The Locust user: an agent carrying out whichever machine's check-in (or package download) is due next."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol
from urllib.parse import urlsplit

from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPParseError
from locust import FastHttpUser, constant, task
from locust.contrib.fasthttp import insecure_ssl_context_factory
from locust.exception import CatchResponseError

from harness.config.schema import Scenario
from harness.load.agent import Agent
from harness.load.surges import SiteVisit
from harness.model.network_install import PackageFetch
from harness.protocols.base import WireRequest, WireResponse, transport_failure

QUEUE_POLL_S = 1.0
TRANSPORT_ERRORS = (OSError, HTTPParseError)  # refused, reset, timed out, TLS, a broken or cut-short answer


class CheckinSource(Protocol):
    """What an agent takes its work from: the run (harness/run.py's Harness)."""

    scenario: Scenario
    agent: Agent | None  # how a machine's wake-up is carried out; None until the run starts

    def next_checkin(self, timeout: float) -> tuple[int, float] | SiteVisit | PackageFetch | None:
        """The next due wake-up, site visit or package download, or None if none came within `timeout` seconds."""


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
        harness: CheckinSource = self.environment.fleetstorm
        item = harness.next_checkin(timeout=QUEUE_POLL_S)
        if item is None or harness.agent is None:
            return
        if type(item) is tuple:  # a machine's wake-up: (index, due)
            harness.agent.wake(self, *item)
        elif type(item) is SiteVisit:
            harness.agent.visit(self, item)
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
