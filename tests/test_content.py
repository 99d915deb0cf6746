"""Payloads: single Range requests, deterministic bytes and their checksum, over real HTTP."""

from __future__ import annotations

import urllib.error
import urllib.request
import zlib

import pytest

from harness.load.embedded_server import EmbeddedServer
from harness.server.app import parse_range
from harness.server.content import payload_crc32, payload_range
from harness.server.handler import HttpError


@pytest.mark.parametrize(
    ("header", "expected"),
    [("bytes=0-99", (0, 99)), ("bytes=100-", (100, 999)), ("bytes=-10", (990, 999)), ("bytes=990-5000", (990, 999))],
)
def test_valid_ranges(header: str, expected: tuple[int, int]) -> None:
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5-2", "bytes=-", "items=0-1", "bytes=0-1,5-6", "bytes=x-1"])
def test_unsatisfiable_or_malformed_ranges_are_416(header: str) -> None:
    with pytest.raises(HttpError) as error:
        parse_range(header, 1000)
    assert error.value.status.startswith("416")


def test_ranges_join_up_to_the_whole_payload_and_its_checksum() -> None:
    size = 200_000
    whole = b"".join(payload_range("xpsp2-home-en", first, min(first + 65535, size - 1))
                     for first in range(0, size, 65536))
    assert len(whole) == size
    assert zlib.crc32(whole) == payload_crc32("xpsp2-home-en", size)
    assert payload_range("xpsp2-home-en", 70_000, 70_009) == whole[70_000:70_010]


def _get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_server_answers_206_for_a_range_and_416_past_the_end(reference_server: EmbeddedServer) -> None:
    url = f"{reference_server.url}/v1/content/xpsp2-home-en"
    status, headers, body = _get(url, {"Range": "bytes=10-19"})
    assert status == 206
    assert headers["Content-Range"] == "bytes 10-19/100000"  # SP2 for XP Home without SP1: 100 MB at 0.001
    assert body == payload_range("xpsp2-home-en", 10, 19)
    status, _, reason = _get(url, {"Range": "bytes=100000-"})
    assert status == 416
    assert b"range must be" in reason
    assert _get(f"{reference_server.url}/v1/content/..%2Fetc%2Fpasswd", {})[0] == 404
