"""HTTP/1.1 for any WSGI app on gevent, with requests parsed by httptools (llhttp, in C).

gevent's pywsgi parses in Python and writes headers and body in two sends; on one core it serves
a small fraction of what a raw gevent StreamServer can (docs/server.md has the measurements). Here
a StreamServer accepts, httptools parses, and the app is called through its native interface
(harness/server/handler.py) when it has one, as plain WSGI otherwise; each read's answers leave in
a single send. Keep-alive and pipelining are honoured; a request body is buffered up to MAX_BODY
and answered 413 beyond; concurrent connections are capped by the accept pool.
"""

from __future__ import annotations

import io
import logging
import socket
import sys
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

import httptools
from gevent import get_hub
from gevent.pool import Pool
from gevent.server import StreamServer

from harness.server.handler import CountsWriting, Headers, NativeApp, Request

log = logging.getLogger("fleetstorm.server")
MAX_BODY = 1024 * 1024
MAX_HEADERS = 100
RECV_BYTES = 65536
READ = 1  # libev's EV_READ, the event mask of a read watcher
MAX_CACHED_HEADS = 64
MAX_CACHED_PATHS = 1024
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# (method, request target, headers, body, keep-alive) -> the serialised response
Responder = Callable[[bytes, bytes, list[tuple[bytes, bytes]], bytes, bool], bytes]
_METHOD_NAMES = {name.encode(): name for name in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")}
_MAX_BODY_DIGITS = len(str(MAX_BODY))
_PLAIN_TEXT = (("Content-Type", "text/plain"),)
_KEEP_ALIVE = b"\r\nConnection: keep-alive\r\n\r\n"
_CLOSE = b"\r\nConnection: close\r\n\r\n"


class _Request:
    """The httptools callbacks for one connection: collects each request as it completes."""

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.too_large: str | None = None  # why the request was refused as too large
        self.complete: list[tuple[bytes, list[tuple[bytes, bytes]], bytes, bool, bytes]] = []
        self.parser = httptools.HttpRequestParser(self)

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self.headers
        headers.append((name, value))
        if len(headers) > MAX_HEADERS:
            self._refuse("too many headers")
        # A length over MAX_BODY has at least as many digits: most headers are passed over by their length.
        if (len(value) >= _MAX_BODY_DIGITS and name.lower() == b"content-length" and value.isdigit()
                and int(value) > MAX_BODY):
            self._refuse(f"body over {MAX_BODY} bytes")

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > MAX_BODY:
            self._refuse(f"body over {MAX_BODY} bytes")
        self.body.append(body)

    def _refuse(self, reason: str) -> None:
        """Stop parsing (httptools turns the exception into an HttpParserError) and say why."""
        self.too_large = reason
        raise ValueError(reason)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        self.complete.append((method, self.headers, b"".join(self.body), self.parser.should_keep_alive(), self.url))
        self.url, self.headers, self.body, self.size = b"", [], [], 0


def _environ(method: bytes, url: bytes, headers: list[tuple[bytes, bytes]], body: bytes,
             server_address: tuple[str, int]) -> dict[str, Any]:
    parsed = httptools.parse_url(url)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method.decode("latin-1"),
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote(parsed.path.decode("latin-1")),
        "QUERY_STRING": (parsed.query or b"").decode("latin-1"),
        "SERVER_NAME": server_address[0],
        "SERVER_PORT": str(server_address[1]),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in headers:
        key = name.decode("latin-1").upper().replace("-", "_")
        if key in ("CONTENT_LENGTH", "CONTENT_TYPE"):
            environ[key] = value.decode("latin-1")
        else:
            environ[f"HTTP_{key}"] = value.decode("latin-1")
    environ.setdefault("CONTENT_LENGTH", str(len(body)))
    return environ


def _response(app: WsgiApp, environ: dict[str, Any], keep_alive: bool) -> bytes:
    """Run the app and serialise its answer into one buffer."""
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        started[:] = [status, headers]

    try:
        result = app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):  # as WSGI asks of every server
                result.close()
        status, headers = started
    except Exception:  # a bug in the app: answer, log, keep serving
        log.exception("the application failed on %s %s", environ["REQUEST_METHOD"], environ["PATH_INFO"])
        status, headers, body = "500 Internal Server Error", [("Content-Type", "text/plain")], b"internal error\n"
    names = {name.lower() for name, _ in headers}
    head = [f"HTTP/1.1 {status}"] + [f"{name}: {value}" for name, value in headers]
    if "content-length" not in names:
        head.append(f"Content-Length: {len(body)}")
    head.append("Connection: keep-alive" if keep_alive else "Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def _refusal(status: str, reason: str) -> bytes:
    body = reason.encode() + b"\n"
    return (f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


def _path(url: bytes) -> str:
    """PATH_INFO of a request target: percent-decoded, without the query."""
    if url[:1] == b"/" and b"%" not in url and b"?" not in url and b"#" not in url:
        return url.decode("latin-1")  # what parse_url and unquote would give, in a fraction of the time
    return unquote(httptools.parse_url(url).path.decode("latin-1"))


def wsgi_responder(app: WsgiApp, server_address: tuple[str, int]) -> Responder:
    """Answers from any WSGI app, through a WSGI environ."""

    def respond(method: bytes, url: bytes, headers: list[tuple[bytes, bytes]], body: bytes, keep_alive: bool) -> bytes:
        return _response(app, _environ(method, url, headers, body, server_address), keep_alive)

    return respond


def native_responder(app: NativeApp, server_address: tuple[str, int]) -> Responder:
    """Answers from an app's native interface: no environ, and the head of each answer serialised once.

    Byte for byte what `wsgi_responder` sends for the same app (tests/test_native.py checks it).
    """
    answer = app.answer
    heads: dict[tuple[str, Headers], bytes] = {}
    paths: dict[bytes, str] = {}

    def respond(method: bytes, url: bytes, headers: list[tuple[bytes, bytes]], body: bytes, keep_alive: bool) -> bytes:
        method_name = _METHOD_NAMES.get(method) or method.decode("latin-1")
        path = paths.get(url)
        if path is None:
            path = _path(url)
            if len(paths) < MAX_CACHED_PATHS:  # clients choose the targets: keep only the first ones
                paths[url] = path
        try:
            status, extra, content = answer(Request(method_name, path, headers, body, server_address))
        except Exception:  # a bug in the app: answer, log, keep serving
            log.exception("the application failed on %s %s", method_name, path)
            status, extra, content = "500 Internal Server Error", _PLAIN_TEXT, b"internal error\n"
        head = heads.get((status, extra))
        if head is None:
            head = "".join([f"HTTP/1.1 {status}\r\n", *(f"{name}: {value}\r\n" for name, value in extra),
                            "Content-Length: "]).encode("latin-1")
            if len(heads) < MAX_CACHED_HEADS:  # content answers carry ETags and ranges: do not keep them all
                heads[status, extra] = head
        return b"%s%d%s%s" % (head, len(content), _KEEP_ALIVE if keep_alive else _CLOSE,
                              b"" if method == b"HEAD" else content)

    return respond


def _send(sock: socket.socket, data: bytes, answers: int, writing: Callable[[int], None]) -> None:
    # A plain send takes a small answer whole; gevent's sendall costs a getsockopt and more Python each time.
    sent = sock.send(data)
    if sent < len(data):  # the client reads slowly: these answers are in flight until it has taken them
        writing(answers)
        try:
            sock.sendall(memoryview(data)[sent:])
        finally:
            writing(-answers)


def _not_counted(answers: int) -> None:
    """For apps that do not count the answers being written."""


def handler(respond: Responder, writing: Callable[[int], None]) -> Callable[[socket.socket, Any], None]:
    """The per-connection function for a gevent StreamServer answering with `respond`.

    `writing` hears of answers that could not be written at once, and again once they are.
    """

    def serve_connection(sock: socket.socket, _address: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # No idle time-out: under gevent it arms a timer on every wait. Connections are capped instead.
        request = _Request()
        complete = request.complete
        hub = get_hub()
        readable = hub.loop.io(sock.fileno(), READ)
        try:
            while True:
                # Wait for data, then read. Reading first would fail on almost every request of a
                # keep-alive connection (the client is still reading our last answer), costing a
                # syscall and an exception before the same wait.
                hub.wait(readable)
                data = sock.recv(RECV_BYTES)
                if not data:
                    return
                refusal = b""
                try:
                    request.parser.feed_data(data)
                except httptools.HttpParserError:
                    # The requests before the bad one were well formed: they are answered first.
                    refusal = (_refusal("413 Content Too Large", request.too_large) if request.too_large
                               else _refusal("400 Bad Request", "malformed HTTP request"))
                if len(complete) == 1 and not refusal:  # the usual case: one request per read
                    method, headers, body, keep_alive, url = complete.pop()
                    _send(sock, respond(method, url, headers, body, keep_alive), 1, writing)
                    if not keep_alive:
                        return
                    continue
                # Pipelined requests are answered in order, in one send, up to the first that closes.
                replies = []
                keep_alive = True
                for method, headers, body, keep_alive, url in complete:
                    replies.append(respond(method, url, headers, body, keep_alive))
                    if not keep_alive:
                        break
                complete.clear()
                if keep_alive and refusal:
                    replies.append(refusal)
                if replies:
                    _send(sock, b"".join(replies), len(replies), writing)
                if refusal or not keep_alive:
                    return
        except OSError:  # the client went away or idled out
            return
        finally:
            readable.close()
            sock.close()

    return serve_connection


def make_server(listener: socket.socket, app: WsgiApp | NativeApp, max_connections: int) -> StreamServer:
    """A StreamServer on `listener` serving `app`, with at most `max_connections` at once.

    An app with the native interface is called through it; any other is called as WSGI. An app that
    counts the answers being written (`CountsWriting`) hears of those its clients are slow to take.
    """
    address = listener.getsockname()[:2]
    respond = native_responder(app, address) if isinstance(app, NativeApp) else wsgi_responder(app, address)
    writing = app.writing if isinstance(app, CountsWriting) else _not_counted
    return StreamServer(listener, handler(respond, writing), spawn=Pool(max_connections))
