"""Deterministic synthetic payload bytes, served in ranges and verifiable by checksum.

Byte i of a package is block[i % BLOCK] where the block is derived from the content id, so any
range is cheap to produce and the agent can check what it received.
"""

from __future__ import annotations

import hashlib
import zlib
from functools import lru_cache

BLOCK = 65536


@lru_cache(maxsize=256)
def _block(content_id: str) -> bytes:
    seed = content_id.encode()
    return b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(BLOCK // 32))


def payload_range(content_id: str, first: int, last: int) -> bytes:
    """Bytes first..last (inclusive) of a package."""
    block = _block(content_id)
    start = first % BLOCK
    length = last - first + 1
    repeats = (start + length) // BLOCK + 1
    return (block * repeats)[start : start + length] if repeats > 1 else block[start : start + length]


@lru_cache(maxsize=256)
def payload_crc32(content_id: str, size: int) -> int:
    """The CRC-32 of a whole package of `size` bytes."""
    block = _block(content_id)
    crc = 0
    whole, rest = divmod(size, BLOCK)
    for _ in range(whole):
        crc = zlib.crc32(block, crc)
    return zlib.crc32(block[:rest], crc)
