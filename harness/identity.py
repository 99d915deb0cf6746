"""Machine identities (client GUID, hostname, user agent) from Faker pools, picked by hash.

The pools are built once from the seed; machine i always gets the same identity and nothing is
stored per machine.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cached_property

from faker import Faker

from harness.hashing import mix64

POOL_SIZE = 4096
_SALT_GUID_HIGH, _SALT_GUID_LOW, _SALT_HOST = 101, 102, 103
_USER_AGENT = "Windows-Update-Agent/5.4.3790.2180 Client-Protocol/1.0"


@dataclass(frozen=True)
class Identity:
    """What a machine says about itself on the wire."""

    client_id: str
    hostname: str
    user_agent: str


class IdentityPool:
    """Identities for the machines of one fleet seed."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    @cached_property
    def _hostnames(self) -> tuple[str, ...]:
        fake = Faker()
        fake.seed_instance(self.seed)
        return tuple(fake.unique.user_name().upper().replace(".", "-")[:12] for _ in range(POOL_SIZE))

    def client_id(self, index: int) -> str:
        """The machine's stable client GUID."""
        high = mix64(self.seed, _SALT_GUID_HIGH, index)
        low = mix64(self.seed, _SALT_GUID_LOW, index)
        return str(uuid.UUID(int=(high << 64) | low, version=4))

    def identity(self, index: int) -> Identity:
        host_pick = mix64(self.seed, _SALT_HOST, index)
        hostname = f"{self._hostnames[host_pick % POOL_SIZE]}-{(host_pick >> 32) % 10000:04d}"
        return Identity(self.client_id(index), hostname, _USER_AGENT)
