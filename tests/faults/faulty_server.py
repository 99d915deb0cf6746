"""A real HTTP server that misbehaves on purpose, for the fault suite.

`python -m tests.faults.faulty_server MODE` prints its URL and serves until killed. Modes:
stall (accepts, never answers), slow (answers every check with no offer, SLOW_S late), garbage
(invalid JSON), bad-length (Content-Length larger than the body), wrong-range (offers an update,
then serves bytes that fail its checksum), storm (503 with Retry-After on every request).
"""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STALL_S = 120  # bounded: the suite kills the server long before
SLOW_S = 0.2
MODES = ("stall", "slow", "garbage", "bad-length", "wrong-range", "storm")
OFFER = {"offers": [{"update": "xpsp2", "content_id": "xpsp2-home-en", "size": 100, "real_size": 80_000_000,
                     "crc32": 12345, "url": "/v1/content/xpsp2-home-en"}]}


class FaultyHandler(BaseHTTPRequestHandler):
    """Answers every request the way the server's mode says."""

    mode = "garbage"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes: without it, 40 ms delayed ACKs

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        """Quiet: the suite reads the harness's output, not the server's."""

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                length: int | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.mode == "stall":
            time.sleep(STALL_S)
        elif self.mode == "slow":
            time.sleep(SLOW_S)
            self._answer(200, b'{"offers": []}', {"Content-Type": "application/json"})
        elif self.mode == "garbage":
            self._answer(200, b'{"offers": [ this is not json')
        elif self.mode == "bad-length":
            self._answer(200, b'{"offers": []}', length=1000)
            self.close_connection = True
        elif self.mode == "storm":
            self._answer(503, b"", {"Retry-After": "86400"})
        elif self.path.startswith("/v1/content/"):
            self._answer(206, b"x" * 100, {"Content-Range": "bytes 0-99/100"})
        elif self.path == "/v1/check":
            self._answer(200, json.dumps(OFFER).encode(), {"Content-Type": "application/json"})
        else:
            self._answer(204, b"")

    do_GET = do_POST = do_HEAD = _handle


def main(mode: str) -> None:
    if mode not in MODES:
        sys.exit(f"mode must be one of {', '.join(MODES)}")
    FaultyHandler.mode = mode
    server = ThreadingHTTPServer(("127.0.0.1", 0), FaultyHandler)
    server.daemon_threads = True
    print(f"faulty server listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1])
