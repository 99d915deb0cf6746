"""A tiny update server with a protocol of its own, to show how fleetstorm plugs into any server.

    python -m examples.tiny_update_server --port 8081

GET /api/updates?id=CLIENT&lang=LANG&have=xpsp2,...  ->  text lines "name size crc32 url", or nothing
GET /api/files/NAME (Range supported)                ->  the update's bytes
POST /api/installed (form: id, name, result)         ->  204
"""

from __future__ import annotations

import argparse
import io
import zlib

from flask import Flask, Response, request, send_file

SIZE = 150_000
PAYLOAD = (b"fleetstorm example payload " * (SIZE // 27 + 1))[:SIZE]
UPDATES = {"xpsp2": PAYLOAD}

app = Flask(__name__)
installed: dict[str, set[str]] = {}


@app.get("/api/updates")
def updates() -> Response:
    have = set(filter(None, request.args.get("have", "").split(",")))
    lines = [f"{name} {len(data)} {zlib.crc32(data)} /api/files/{name}"
             for name, data in UPDATES.items() if name not in have]
    return Response("\n".join(lines), mimetype="text/plain")


@app.get("/api/files/<name>")
def files(name: str) -> Response:
    if name not in UPDATES:
        return Response("no such update\n", status=404, mimetype="text/plain")
    return send_file(io.BytesIO(UPDATES[name]), mimetype="application/octet-stream", conditional=True,
                     download_name=name)


@app.post("/api/installed")
def report() -> Response:
    if request.form.get("result") == "installed":
        installed.setdefault(request.form.get("name", ""), set()).add(request.form.get("id", ""))
    return Response(status=204)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="a tiny update server")
    parser.add_argument("--port", type=int, default=8081)
    port = parser.parse_args().port
    app.run(host="127.0.0.1", port=port, threaded=True)
