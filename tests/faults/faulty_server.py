"""A real HTTP server that misbehaves on purpose, for the fault suite.

`python -m tests.faults.faulty_server MODE [LOG]` prints its URL and serves until killed. Modes:
stall (accepts, never answers), slow (answers every check with no offer, SLOW_S late), garbage
(invalid JSON), bad-length (Content-Length larger than the body), wrong-range (offers an update,
then serves bytes that fail its checksum), storm (503 with Retry-After on every request),
unknown-update (offers every machine an update no fleet knows), refuse-first (503 with
`Retry-After: 5` for REFUSE_FOR_S after its first request, then no offer), stall-later (no offer,
until STALL_AFTER_S after its first request; from then on every answer stalls for STALL_S).
With LOG, every check is logged as a line `wall-time client-id status`.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TextIO

STALL_S = 40  # bounded: the suite kills the server long before
SLOW_S = 0.2
REFUSE_FOR_S, REFUSED_RETRY_AFTER_S = 10.0, 5
STALL_AFTER_S = 6.0
FAIL_DOWNLOADS_FOR_S = 4.0
MODES = ("stall", "slow", "garbage", "bad-length", "wrong-range", "storm", "unknown-update", "refuse-first",
         "stall-later", "downloads-fail-first")
OFFER = {"offers": [{"update": "xpsp2", "content_id": "xpsp2-home-en", "size": 100, "real_size": 80_000_000,
                     "crc32": 12345, "url": "/v1/content/xpsp2-home-en"}]}
UNKNOWN_OFFER = {"offers": [{**OFFER["offers"][0], "update": "xpsp3"}]}
SOUND_OFFER = {"offers": [{**OFFER["offers"][0], "crc32": zlib.crc32(b"x" * 100)}]}  # its bytes match
NO_OFFER = b'{"offers": []}'


class FaultyHandler(BaseHTTPRequestHandler):
    """Answers every request the way the server's mode says."""

    mode = "garbage"
    log: TextIO | None = None
    first_request_at: float | None = None
    lock = threading.Lock()
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

    def _since_first_request(self) -> float:
        with self.lock:
            if FaultyHandler.first_request_at is None:
                FaultyHandler.first_request_at = time.monotonic()
            return time.monotonic() - FaultyHandler.first_request_at

    def _log(self, body: bytes, status: int) -> None:
        if self.log is not None and self.path == "/v1/check":
            client_id = json.loads(body).get("client_id", "")
            with self.lock:
                self.log.write(f"{time.time():.6f} {client_id} {status}\n")
                self.log.flush()

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        since_first = self._since_first_request()
        if self.mode == "refuse-first":
            refused = since_first < REFUSE_FOR_S
            self._log(body, 503 if refused else 200)
            if refused:
                self._answer(503, b"", {"Retry-After": str(REFUSED_RETRY_AFTER_S)})
            else:
                self._answer(200, NO_OFFER, {"Content-Type": "application/json"})
        elif self.mode == "stall-later":
            if since_first >= STALL_AFTER_S:
                time.sleep(STALL_S)
            self._answer(200, NO_OFFER, {"Content-Type": "application/json"})
        elif self.mode == "downloads-fail-first":
            if self.path.startswith("/v1/content/"):
                if since_first < FAIL_DOWNLOADS_FOR_S:
                    self._answer(500, b"")
                else:
                    self._answer(206, b"x" * 100, {"Content-Range": "bytes 0-99/100"})
            else:
                self._answer(200, json.dumps(SOUND_OFFER).encode(), {"Content-Type": "application/json"})
        elif self.mode == "unknown-update":
            self._log(body, 200)
            self._answer(200, json.dumps(UNKNOWN_OFFER).encode(), {"Content-Type": "application/json"})
        elif self.mode == "stall":
            time.sleep(STALL_S)
        elif self.mode == "slow":
            time.sleep(SLOW_S)
            self._answer(200, NO_OFFER, {"Content-Type": "application/json"})
        elif self.mode == "garbage":
            self._answer(200, b'{"offers": [ this is not json')
        elif self.mode == "bad-length":
            self._answer(200, NO_OFFER, length=1000)
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


def main(mode: str, log: str | None = None) -> None:
    if mode not in MODES:
        sys.exit(f"mode must be one of {', '.join(MODES)}")
    FaultyHandler.mode = mode
    FaultyHandler.log = open(log, "a") if log else None  # noqa: SIM115 (open while the server lives)
    server = ThreadingHTTPServer(("127.0.0.1", 0), FaultyHandler)
    server.daemon_threads = True
    print(f"faulty server listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:3])
