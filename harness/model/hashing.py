"""Stateless per-machine randomness: splitmix64 of (seed, salt, index), scalar and vectorised.

Every static attribute of a machine is a pure function of these hashes, so it costs no memory
and is the same on every run and every worker.
"""

from __future__ import annotations

import numpy as np

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _key(seed: int, salt: int) -> int:
    return (seed * 0xD1B54A32D192ED03 + salt * _GOLDEN) & _MASK


def mix64(seed: int, salt: int, index: int) -> int:
    """A 64-bit hash of (seed, salt, index)."""
    z = (_key(seed, salt) + (index + 1) * _GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def mix64_array(seed: int, salt: int, indices: np.ndarray) -> np.ndarray:
    """mix64 over an array of indices (uint64 result, identical to the scalar form)."""
    with np.errstate(over="ignore"):
        z = np.uint64(_key(seed, salt)) + (indices.astype(np.uint64) + np.uint64(1)) * np.uint64(_GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def unit(seed: int, salt: int, index: int) -> float:
    """A uniform float in [0, 1) from mix64."""
    return (mix64(seed, salt, index) >> 11) * (1.0 / (1 << 53))


def unit_array(seed: int, salt: int, indices: np.ndarray) -> np.ndarray:
    """unit() over an array of indices (float64)."""
    return (mix64_array(seed, salt, indices) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
