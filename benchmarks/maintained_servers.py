"""The reference app under maintained servers, for `make bench-server`: uvicorn and granian.

`python benchmarks/maintained_servers.py SERVER SCENARIO PORT` serves the reference app configured
from SCENARIO, as `python -m harness.server --scenario SCENARIO` does, on 127.0.0.1:PORT, with one
worker process and one thread:
- `uvicorn`: uvicorn on uvloop with its httptools parser, through an ASGI adapter;
- `granian-rsgi`, `granian-asgi`: granian's Rust HTTP stack through an RSGI or ASGI adapter, on uvloop;
- `granian-wsgi`: granian calling the app's own WSGI interface from one blocking thread.
`make bench-server` runs `uvicorn` and `granian-wsgi`: the fastest of granian's three interfaces here
(docs/benchmarks.md has the side run).
The adapters call the app's native interface (harness/server/handler.py), as the default stack does,
and serialise each distinct head once. Only the app's pure parts are imported: harness.server's
entry point monkey-patches for gevent, which has no place under asyncio or a Rust runtime.
Needs `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

from harness.config.scenario import load_scenario
from harness.model.clock import ScenarioClock
from harness.server.app import ReferenceServer
from harness.server.handler import Headers, Request

HOST = "127.0.0.1"
# A head's bytes (what ASGI sends) or strings (what RSGI takes), by the app's (status, headers).
MAX_CACHED_HEADS = 64


def reference_app(scenario_file: str) -> ReferenceServer:
    """The reference app as `python -m harness.server --scenario FILE` builds it (no admin token)."""
    scenario = load_scenario(scenario_file)
    timeline = scenario.timeline
    clock = ScenarioClock.starting_now(timeline.start, timeline.time_scale, timeline.phases)
    return ReferenceServer(scenario.server, clock, scenario.world, "", scenario.fleet.weight)


class _StrHeadersRequest(Request):
    """A request whose headers are RSGI's mapping of lower-case names to strings."""

    __slots__ = ()

    def header(self, name: str) -> str | None:
        return self._headers.get(name.lower().replace("_", "-"))


class AsgiApp:
    """The app's native interface behind ASGI 3 (http and lifespan)."""

    def __init__(self, app: ReferenceServer) -> None:
        self._answer = app.answer
        self._heads: dict[tuple[str, Headers], tuple[int, list[tuple[bytes, bytes]]]] = {}

    def _head(self, status: str, headers: Headers) -> tuple[int, list[tuple[bytes, bytes]]]:
        head = self._heads.get((status, headers))
        if head is None:
            head = int(status[:3]), [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
            if len(self._heads) < MAX_CACHED_HEADS:
                self._heads[status, headers] = head
        return head

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        message = await receive()
        body = message.get("body", b"")
        while message.get("more_body"):
            message = await receive()
            body += message.get("body", b"")
        server = scope.get("server") or (HOST, 0)
        status, headers, content = self._answer(Request(scope["method"], scope["path"], scope["headers"], body,
                                                        server))
        code, raw_headers = self._head(status, headers)
        await send({"type": "http.response.start", "status": code,
                    "headers": [*raw_headers, (b"content-length", b"%d" % len(content))]})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else content})


class RsgiApp:
    """The app's native interface behind RSGI (granian's own interface)."""

    def __init__(self, app: ReferenceServer) -> None:
        self._answer = app.answer
        self._heads: dict[tuple[str, Headers], tuple[int, list[tuple[str, str]]]] = {}

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        body = await protocol()
        host, _, port = scope.server.rpartition(":")
        status, headers, content = self._answer(_StrHeadersRequest(scope.method, scope.path, scope.headers, body,
                                                                   (host, int(port or 0))))
        head = self._heads.get((status, headers))
        if head is None:
            head = int(status[:3]), list(headers)
            if len(self._heads) < MAX_CACHED_HEADS:
                self._heads[status, headers] = head
        code, str_headers = head
        if scope.method == "HEAD":
            protocol.response_bytes(code, [*str_headers, ("content-length", str(len(content)))], b"")
        else:
            protocol.response_bytes(code, str_headers, content)


def _granian_target(interface: str, scenario_file: str) -> Any:
    """What granian's worker process calls: built there, after the fork."""
    app = reference_app(scenario_file)
    return {"rsgi": RsgiApp, "asgi": AsgiApp}.get(interface, lambda wsgi: wsgi)(app)


def serve_uvicorn(scenario_file: str, port: int) -> None:
    import uvicorn

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.listen(1024)
    config = uvicorn.Config(AsgiApp(reference_app(scenario_file)), loop="uvloop", http="httptools",
                            lifespan="off", access_log=False, log_level="warning", server_header=False,
                            date_header=False, workers=1)
    print(f"uvicorn {uvicorn.__version__} listening on http://{HOST}:{port}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])


def serve_granian(interface: str, scenario_file: str, port: int) -> None:
    """Granian's main process binds and watches; one worker process serves, with one runtime thread."""
    import granian
    from granian.constants import HTTPModes, Interfaces, Loops, RuntimeModes
    from granian.log import LogLevels

    server = granian.Granian("fleetstorm-reference", address=HOST, port=port, interface=Interfaces(interface),
                             workers=1, runtime_threads=1, runtime_mode=RuntimeModes.st, blocking_threads=1,
                             loop=Loops.uvloop, http=HTTPModes.http1, websockets=False,
                             log_level=LogLevels.warning)
    print(f"granian {granian.__version__} ({interface}) serving on http://{HOST}:{port}", flush=True)
    server.serve(target_loader=partial(_granian_target, interface, scenario_file), wrap_loader=False)


if __name__ == "__main__":
    name, scenario_path, port_text = sys.argv[1:4]
    if name == "uvicorn":
        serve_uvicorn(scenario_path, int(port_text))
    elif name.startswith("granian-"):
        serve_granian(name.removeprefix("granian-"), scenario_path, int(port_text))
    else:
        raise SystemExit(f"unknown server {name!r}: uvicorn, granian-rsgi, granian-asgi or granian-wsgi")
