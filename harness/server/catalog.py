"""What the reference server can offer: every package of the world's catalog, by content id.

An update has a package per value of its variant attribute (edition, platform...), per language when
it says so, a differential one for machines that have the update it patches, and a network-install
package per language when it has one. True sizes are the world's; `payload_scale` serves fewer bytes
while the catalog keeps the real-world size for real-world-equivalent reporting.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.config.world import World


@dataclass(frozen=True)
class Item:
    """One downloadable package."""

    update: str
    content_id: str
    real_size: int
    size: int  # bytes served at the scenario's payload_scale


def _served(real_size: int, payload_scale: float) -> int:
    return max(1, round(real_size * payload_scale))


def content_id(update: str, variant: str, language: str, differential: bool = False) -> str:
    """The id of one package of `update`: for a variant value and a language ("" where it has none)."""
    return "-".join(part for part in (update, variant, "diff" if differential else "", language) if part)


NETWORK = "network"  # the variant of a network-install package: never offered, fetched by administrators


def build_catalog(world: World, payload_scale: float) -> dict[str, Item]:
    """Every package, by content id."""
    items = []
    for name, update in world.updates:
        variants = world.attribute_values(update.variant) if update.variant else ("",)
        languages = world.language_codes if update.per_language else ("",)
        kinds = (False, True) if update.differential is not None else (False,)
        for variant in variants:
            for differential in kinds:
                real = world.package_size(name, variant, differential)
                items += [Item(name, content_id(name, variant, language, differential), real,
                               _served(real, payload_scale)) for language in languages]
        if update.network_size is not None:
            real = round(update.network_size[0][1])
            items += [Item(name, content_id(name, NETWORK, language), real, _served(real, payload_scale))
                      for language in world.language_codes]
    return {item.content_id: item for item in items}
