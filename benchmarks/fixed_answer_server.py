"""The reference server's HTTP stack with an app that answers every request the same: the stack's own cost.

`make bench-server` runs it beside the minimal server and the reference app, so the difference between
the reference server and the minimal one splits into what the stack costs and what the app costs.
"""

from __future__ import annotations

import sys

from harness.server.handler import Answer, Request
from harness.server.httpserver import make_server
from harness.server.serve import listen

# The reference app's answer to the benchmark's check, byte for byte.
ANSWER: Answer = ("200 OK", (("Content-Type", "application/json"),),
                  b'{"offers": [{"update": "xpsp2", "content_id": "xpsp2-home-en", "size": 100000, "real_size": '
                  b'100000000, "crc32": 884269591, "url": "/v1/content/xpsp2-home-en"}]}')


class FixedAnswer:
    """A native app that computes nothing."""

    def answer(self, request: Request) -> Answer:
        return ANSWER


if __name__ == "__main__":
    listener = listen("127.0.0.1", int(sys.argv[1]))
    print(f"listening on http://127.0.0.1:{listener.getsockname()[1]}", flush=True)
    make_server(listener, FixedAnswer(), 10_000).serve_forever()
