"""What the reference server can offer: SP2 per edition and language, and KB884020.

True sizes are the world's (harness/config/world.py); `payload_scale` serves fewer bytes while the catalog keeps
the real-world size for real-world-equivalent reporting.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.config.world import EDITIONS, KB884020_SIZE, LANGUAGE_CODES, NETWORK_INSTALL_SIZE, SP2_SIZES


@dataclass(frozen=True)
class Item:
    """One downloadable package."""

    update: str
    content_id: str
    real_size: int
    size: int  # bytes served at the scenario's payload_scale


def _served(real_size: int, payload_scale: float) -> int:
    return max(1, round(real_size * payload_scale))


def content_id(update: str, edition: str, language: str) -> str:
    """The id of the package of `update` for one edition and language."""
    return f"xpsp2-{edition}-{language}" if update == "xpsp2" else f"{update}-{language}"


NETWORK_INSTALL = "xpsp2-network"  # never offered through Automatic Updates: fetched by administrators


def build_catalog(payload_scale: float) -> dict[str, Item]:
    """Every package, by content id."""
    items = [
        Item("xpsp2", content_id("xpsp2", edition, lang), SP2_SIZES[edition],
             _served(SP2_SIZES[edition], payload_scale))
        for edition in EDITIONS
        for lang in LANGUAGE_CODES
    ]
    items += [
        Item("kb884020", content_id("kb884020", "", lang), KB884020_SIZE, _served(KB884020_SIZE, payload_scale))
        for lang in LANGUAGE_CODES
    ]
    items += [
        Item("xpsp2", content_id(NETWORK_INSTALL, "", lang), NETWORK_INSTALL_SIZE,
             _served(NETWORK_INSTALL_SIZE, payload_scale))
        for lang in LANGUAGE_CODES
    ]
    return {item.content_id: item for item in items}
