"""The native handler interface: a parsed request in, (status, headers, body) out; the 4xx every dialect shares.

The reference app is a portable WSGI application, but building a WSGI environ costs more than
answering a check. A server that knows this interface (harness/server/httpserver.py) hands the
app a `Request` and serialises the `Answer` itself; any other WSGI server goes through the
app's WSGI adapter, which reaches the same code. Both answer byte for byte the same.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

MAX_BODY = 64 * 1024

# Status line text, headers without Content-Length (the server adds it), body.
Headers = tuple[tuple[str, str], ...]
Answer = tuple[str, Headers, bytes]


class HttpError(Exception):
    """A 4xx answer with a short reason."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Request:
    """One HTTP request as the app sees it, whichever server parsed it."""

    __slots__ = ("method", "path", "_headers", "_body", "_server")

    def __init__(self, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes,
                 server: tuple[str, int]) -> None:
        self.method = method
        self.path = path
        self._headers = headers
        self._body = body
        self._server = server

    def header(self, name: str) -> str | None:
        """The last value of a header, by its CGI name (`RANGE`, `IF_RANGE`, `HOST`), else None.

        Names are matched the way a WSGI environ key is made (upper case, `-` as `_`), so the app
        sees the same header under either interface.
        """
        for raw_name, value in reversed(self._headers):
            if raw_name.decode("latin-1").upper().replace("-", "_") == name:
                return value.decode("latin-1")
        return None

    def body(self) -> bytes:
        """The request body, as the server buffered it."""
        return self._body

    def server_address(self) -> str:
        """`host:port` the request arrived on (what SERVER_NAME and SERVER_PORT say in WSGI)."""
        return f"{self._server[0]}:{self._server[1]}"


@runtime_checkable
class NativeApp(Protocol):
    """An app that answers a `Request` directly, without a WSGI environ."""

    def answer(self, request: Request) -> Answer:
        """The status, headers (without Content-Length) and body; for HEAD, the GET body, which the server drops."""
        ...


@runtime_checkable
class CountsWriting(Protocol):
    """An app that counts the answers still being written to their clients (its requests in flight)."""

    def writing(self, answers: int) -> None:
        """`answers` more answers wait for their clients to take them (fewer, when negative)."""
        ...


def read_body(environ: dict[str, Any]) -> bytes:
    """The request body, refused with a 4xx when its length is not a number or over MAX_BODY."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise HttpError("400 Bad Request", "Content-Length is not a number") from None
    if length > MAX_BODY:
        raise HttpError("413 Content Too Large", f"body over {MAX_BODY} bytes")
    return environ["wsgi.input"].read(length) if length > 0 else b""


def request_body(request: Request) -> bytes:
    """The body of `request`, refused with a 413 over MAX_BODY (a WSGI body is refused as it is read)."""
    body = request.body()
    if len(body) > MAX_BODY:
        raise HttpError("413 Content Too Large", f"body over {MAX_BODY} bytes")
    return body
