"""Machine identities (client GUID, hostname, MAC, locale, user agent) from Faker pools, picked by hash.

The pools are built once per seed and locale, from the Faker locale of the machine's language (the world's);
machine i always gets the same identity and nothing is stored per machine.
"""

from __future__ import annotations

import re
from functools import cached_property, lru_cache
from typing import NamedTuple

import numpy as np
from faker import Faker

from harness.model.hashing import mix64, mix64_array

POOL_SIZE = 512
_SALT_GUID_HIGH, _SALT_GUID_LOW, _SALT_HOST, _SALT_MAC = 101, 102, 103, 104
_GUID_KEEP = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)  # all but the version and variant bits
_GUID_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)
_NOT_NETBIOS = re.compile(r"[^A-Z0-9-]")


def guid_value(hashed: int) -> int:
    """A version-4 GUID from 128 hashed bits: its version and variant bits set."""
    return hashed & _GUID_KEEP | _GUID_VERSION_4


def format_guid(value: int) -> str:
    """A 128-bit value as str(uuid.UUID(int=value)) writes it, without building a UUID object."""
    digits = f"{value:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


class Identity(NamedTuple):
    """What a machine says about itself on the wire (a named tuple: built on every check-in)."""

    client_id: str
    hostname: str
    mac: str
    locale: str
    user_agent: str


@lru_cache(maxsize=64)
def _hostnames(seed: int, locale: str) -> tuple[str, ...]:
    """NetBIOS-safe stems (A-Z, 0-9, '-', at most 10 characters) from the locale's user names."""
    fake = Faker(locale)
    fake.seed_instance(seed)
    stems = (_NOT_NETBIOS.sub("", fake.user_name().upper().replace(".", "-").replace("_", "-"))[:10]
             for _ in range(POOL_SIZE))
    return tuple(stem.strip("-") or "PC" for stem in stems)


class IdentityPool:
    """Identities for the machines of one fleet seed."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    @cached_property
    def _vendors(self) -> tuple[str, ...]:
        """Network-card vendor prefixes (the first three bytes of a MAC)."""
        fake = Faker()
        fake.seed_instance(self.seed)
        return tuple(fake.mac_address()[:8].upper() for _ in range(64))

    def client_id(self, index: int) -> str:
        """The machine's stable client GUID."""
        high = mix64(self.seed, _SALT_GUID_HIGH, index)
        low = mix64(self.seed, _SALT_GUID_LOW, index)
        return format_guid(guid_value((high << 64) | low))

    def client_guid_words(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The high and low 64-bit hashes of many machines' client GUIDs (before `guid_value`)."""
        return mix64_array(self.seed, _SALT_GUID_HIGH, indices), mix64_array(self.seed, _SALT_GUID_LOW, indices)

    def identity(self, index: int, locale: str = "en_US", user_agent: str = "fleetstorm/0.1") -> Identity:
        """Machine `index`'s identity; hostnames and locale follow its language's Faker locale."""
        host_pick = mix64(self.seed, _SALT_HOST, index)
        hostname = f"{_hostnames(self.seed, locale)[host_pick % POOL_SIZE]}-{(host_pick >> 32) % 10000:04d}"
        mac_pick = mix64(self.seed, _SALT_MAC, index)
        tail = mac_pick & 0xFFFFFF
        mac = f"{self._vendors[(mac_pick >> 32) % 64]}:{tail >> 16:02X}:{(tail >> 8) & 0xFF:02X}:{tail & 0xFF:02X}"
        return Identity(self.client_id(index), hostname, mac, locale.replace("_", "-"), user_agent)
