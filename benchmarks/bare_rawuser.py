"""The like-for-like baseline for bench_headline: the harness's way of sending a check, and nothing else.

A plain Locust User that POSTs the bare FastHttpUser's check request (same body, same headers) on a
raw geventhttpclient HTTPClient built as the harness's agents build theirs, and reports each request
to Locust's `request` event as they do (harness/load/user.py, UpdateAgent.send). No fleet, no schedule, no
machine built, no answer parsed: what the harness does beyond this is the cost of a check-in.

Run: locust -f benchmarks/bare_rawuser.py --headless -u 50 -r 50 -t 20s --host http://127.0.0.1:8080
"""

from __future__ import annotations

import time

from bare_fasthttpuser import BODY, HEADERS  # locust puts this file's directory on sys.path
from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPParseError
from locust import FastHttpUser, User, constant, task
from locust.contrib.fasthttp import insecure_ssl_context_factory
from locust.exception import CatchResponseError

PATH = "/v1/check"


class RawCheckUser(User):
    """Sends check after check on its own connection, with no wait between them."""

    wait_time = constant(0)

    def __init__(self, environment) -> None:  # noqa: ANN001 (Locust's signature)
        super().__init__(environment)
        # The bare FastHttpUser's timeouts (the agents take theirs from the scenario): none fires on loopback.
        self.client = HTTPClient.from_url(self.host, concurrency=1, connection_timeout=FastHttpUser.connection_timeout,
                                          network_timeout=FastHttpUser.network_timeout,
                                          ssl_context_factory=insecure_ssl_context_factory, insecure=True)

    def on_stop(self) -> None:
        self.client.close()

    @task
    def check(self) -> None:
        started_at, started = time.time(), time.perf_counter()
        error: Exception | None
        try:
            answer = self.client.request("POST", PATH, BODY, HEADERS)
            body = answer.read()
            error = CatchResponseError(f"HTTP {answer.status_code}") if answer.status_code != 200 else None
        except (OSError, HTTPParseError) as exc:  # the agents' transport errors
            body, error = b"", exc
        self.environment.events.request.fire(
            request_type="POST", name="check", response_time=(time.perf_counter() - started) * 1000,
            response_length=len(body), exception=error, context=self.context(), response=None, start_time=started_at,
            url=self.host + PATH)
