"""The fastest minimal gevent server: a raw StreamServer answering every request with a fixed reply.

The yardstick of `make bench-server`: it parses nothing beyond the end of the request head.
"""

from __future__ import annotations

import socket
import sys

from gevent import monkey

monkey.patch_all()

from gevent.server import StreamServer  # noqa: E402

REPLY = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"offers":[]}'


def handle(sock: socket.socket, _address: object) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffered = b""
    while True:
        data = sock.recv(65536)
        if not data:
            return
        buffered += data
        while (end := buffered.find(b"\r\n\r\n")) >= 0:
            head = buffered[:end].lower()
            length = int(head.split(b"content-length:")[1].split(b"\r\n")[0]) if b"content-length:" in head else 0
            if len(buffered) < end + 4 + length:
                break
            buffered = buffered[end + 4 + length :]
            sock.sendall(REPLY)


if __name__ == "__main__":
    server = StreamServer(("127.0.0.1", int(sys.argv[1])), handle)
    print(f"listening on http://127.0.0.1:{server.address[1]}", flush=True)
    server.serve_forever()
