"""A machine's gate in an update's rollout: a fixed position in [0, 100), offered once the percentage passes it.

The reference server decides offers with it and the fast simulation predicts them with it: both must
agree to the machine.
"""

from __future__ import annotations

import zlib
from functools import cache

import numpy as np

from harness.model.identity import format_guid, guid_value

# 2**32 / golden ratio: multiplying by it spreads the bits of a CRC over the whole word.
_MIX = 0x9E3779B1
_PERCENT_PER_VALUE = 100 / 2**32


def gate(client_id: str, update: str) -> float:
    """The machine's fixed position in [0, 100) for this update's rollout."""
    return gate_from_seed(client_id, gate_seed(update))


def gate_seed(update: str) -> int:
    """The CRC of `update:`, from which each machine's gate for that update is computed."""
    return zlib.crc32(f"{update}:".encode())


def gate_from_seed(client_id: str, seed: int) -> float:
    """`gate` with the update's seed worked out once (`gate_seed`): the server asks on every check."""
    # CRC-32 of `update:client_id`, continued from the update's seed: a third of the cost of a
    # cryptographic hash on every check. A CRC is linear: for ids of one length, two updates' CRCs
    # of a machine differ by one constant XOR, so early machines for one update would be late ones
    # for the other. The multiplication turns that into one of a few thousand offsets spread over
    # the range: the shares offered both updates come out as for independent gates (tested).
    # surrogatepass: a lone surrogate, which JSON can carry, still has bytes to hash.
    return (zlib.crc32(client_id.encode("utf-8", "surrogatepass"), seed) * _MIX & 0xFFFFFFFF) * _PERCENT_PER_VALUE



def gates_of_guid_words(high: np.ndarray, low: np.ndarray, update: str) -> np.ndarray:
    """`gate` of the machines whose client ids are made of these hashes (`IdentityPool.client_guid_words`), all
    at once: a CRC of messages of one length is affine in their bytes, so the CRC of a client id is that of the
    id made of zero hashes XOR one table entry per 16 bits of the hashes."""
    crc = np.full(len(high), zlib.crc32(format_guid(guid_value(0)).encode(), gate_seed(update)), dtype=np.uint32)
    for words, first_byte in ((high, 0), (low, 8)):
        quarters = words.astype("<u8", copy=False).view("<u2").reshape(-1, 4)  # least significant first
        for quarter in range(4):
            crc ^= _pair_table(first_byte + 6 - 2 * quarter)[quarters[:, quarter]]
    return ((crc.astype(np.uint64) * np.uint64(_MIX)) & np.uint64(0xFFFFFFFF)).astype(np.float64) * _PERCENT_PER_VALUE


@cache
def _pair_table(position: int) -> np.ndarray:
    """What each value of the hashes' bytes `position` and `position + 1` (0: most significant) changes in the
    CRC of the client id's text."""
    def crc(byte: int, value: int) -> int:
        return zlib.crc32(format_guid(guid_value(value << (8 * (15 - byte)))).encode())

    zero = crc(0, 0)
    first = np.array([crc(position, value) ^ zero for value in range(256)], dtype=np.uint32)
    second = np.array([crc(position + 1, value) ^ zero for value in range(256)], dtype=np.uint32)
    return (first[:, None] ^ second[None, :]).reshape(-1)
