"""Serving the reference WSGI app over HTTP/1.1 on gevent."""

from __future__ import annotations

import os
import signal
import socket

import gevent
from gevent.pywsgi import WSGIServer

from harness.server.app import ReferenceServer
from harness.server.httpserver import make_server

STACKS = ("httptools", "pywsgi")
PARENT_POLL_S = 1.0


def listen(host: str, port: int) -> socket.socket:
    """A listening socket with TCP_NODELAY, which accepted sockets inherit.

    Without it, a response written as headers then body meets Nagle's algorithm and the client's
    delayed ACK: about 40 ms per keep-alive response.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _stop_when_orphaned(server: gevent.server.StreamServer, parent: int) -> None:
    """An embedded server outlives no harness: stop once the process that started it is gone."""
    while os.getppid() == parent:
        gevent.sleep(PARENT_POLL_S)
    server.stop()


def serve(app: ReferenceServer, host: str, port: int, stack: str = "httptools", max_connections: int = 10_000,
          exit_with_parent: bool = False) -> None:
    """Serve until SIGTERM or SIGINT; prints the URL once listening."""
    sock = listen(host, port)
    if stack == "pywsgi":
        server = WSGIServer(sock, app, log=None, error_log=None, spawn=max_connections)
    else:
        server = make_server(sock, app, max_connections)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(f"fleetstorm reference server listening on http://{shown}:{bound_port}", flush=True)
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, server.stop)
    if exit_with_parent:
        gevent.spawn(_stop_when_orphaned, server, os.getppid())
    server.serve_forever()
