"""The baseline for bench_headline: a bare Locust FastHttpUser doing one POST /v1/check per task.

No fleet, no schedule, no harness: each user sends the reference protocol's check request (the body
bench_server sends, the headers the harness's reference adapter sends) as fast as answers come back.

Run: locust -f benchmarks/bare_fasthttpuser.py --headless -u 50 -r 50 -t 20s --host http://127.0.0.1:8080
"""

from __future__ import annotations

import json

from bench_server import CHECK  # locust puts this file's directory on sys.path
from locust import FastHttpUser, constant, task

BODY = json.dumps(CHECK).encode()
HEADERS = {"Content-Type": "application/json",
           "User-Agent": "Windows-Update-Agent/5.4.3790.2180 Client-Protocol/1.0"}


class BareCheckUser(FastHttpUser):
    """Sends check after check, with no wait between them."""

    wait_time = constant(0)

    @task
    def check(self) -> None:
        self.client.post("/v1/check", data=BODY, headers=HEADERS, name="check")
