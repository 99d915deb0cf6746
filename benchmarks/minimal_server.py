"""The yardstick of `make bench-server`: a minimal raw gevent StreamServer with a fixed reply.

It does what any keep-alive HTTP/1.1 server must and nothing more: it finds the end of each
request's head, reads Content-Length bytes of body (across reads if need be), answers each
request once, in order, and keeps the connection open. It parses no request line, no other
header and no body, and computes nothing. It reads the plain way, trying a read before waiting
for data (the reference server waits first: docs/server.md says what that is worth).
"""

from __future__ import annotations

import socket
import sys

from gevent import monkey

monkey.patch_all()

from gevent.server import StreamServer  # noqa: E402

REPLY = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"offers":[]}'
LENGTH = b"\r\ncontent-length:"  # at the start of a header line, not inside another header's name


def handle(sock: socket.socket, _address: object) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffered = b""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return
            buffered += data
            while (end := buffered.find(b"\r\n\r\n")) >= 0:
                head = buffered[:end].lower()
                at = head.find(LENGTH)
                length = int(head[at + len(LENGTH):].split(b"\r\n", 1)[0]) if at >= 0 else 0
                if len(buffered) < end + 4 + length:
                    break  # the body is still arriving
                buffered = buffered[end + 4 + length :]
                sock.sendall(REPLY)
    except OSError:  # the client went away
        return


if __name__ == "__main__":
    server = StreamServer(("127.0.0.1", int(sys.argv[1])), handle)
    print(f"listening on http://127.0.0.1:{server.address[1]}", flush=True)
    server.serve_forever()
