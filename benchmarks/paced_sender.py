"""bench_latency's baseline: the check request sent on a fixed schedule by a bare gevent loop, no harness.

Request i is due at start + i / rate; the loop sleeps until it is due (the same gevent timers the
harness's dispatcher sleeps on) and hands it to a greenlet that POSTs the bare users' check request
on a raw geventhttpclient HTTPClient, as many connections as the harness starts agents. Its due-time
latency is what this machine, gevent's timers and the loopback round trip cost with no harness at
all. Prints one JSON object: due-time latency p50, p99, p99.9 and max, and the mean service time (ms).

Run: python benchmarks/paced_sender.py http://127.0.0.1:8080 --rate 300 --seconds 45
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
from bare_fasthttpuser import BODY, HEADERS  # noqa: E402
from geventhttpclient import HTTPClient  # noqa: E402

from harness.measure.metrics import histogram_ms, new_histogram  # noqa: E402

CONNECTIONS = 16  # the agents the harness starts with at a few hundred check-ins/s
START_DELAY_S = 0.5  # the connections are opened before the first request is due


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("--rate", type=float, default=300, help="requests/s")
    parser.add_argument("--seconds", type=float, default=45)
    args = parser.parse_args()
    client = HTTPClient.from_url(args.host, concurrency=CONNECTIONS)
    due_latency, service_ms = new_histogram(), []

    def send(due: float) -> None:
        sent = time.time()
        client.request("POST", "/v1/check", BODY, HEADERS).read()
        answered = time.time()
        due_latency.record_value(max(1, int((answered - due) * 1e6)))
        service_ms.append((answered - sent) * 1000)

    start = time.time() + START_DELAY_S
    sending = []
    for i in range(int(args.rate * args.seconds)):
        due = start + i / args.rate
        gevent.sleep(max(0.0, due - time.time()))
        sending.append(gevent.spawn(send, due))
    gevent.joinall(sending, raise_error=True)
    client.close()
    print(json.dumps({**{stat: histogram_ms(due_latency, stat) for stat in ("p50", "p99", "p99.9", "max")},
                      "service mean": statistics.fmean(service_ms)}))


if __name__ == "__main__":
    main()
