"""A machine's gate in an update's rollout: a fixed position in [0, 100), offered once the percentage passes it.

The reference server decides offers with it and the fast simulation predicts them with it: both must
agree to the machine.
"""

from __future__ import annotations

import zlib

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
