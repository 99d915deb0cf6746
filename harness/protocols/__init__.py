"""Protocol adapters, chosen by name or loaded from `package.module:Class`."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from harness.config.errors import InputError
from harness.config.world import World
from harness.protocols.base import ProtocolAdapter
from harness.protocols.omaha import OmahaAdapter
from harness.protocols.reference import ReferenceAdapter

BUILT_IN: dict[str, type[ProtocolAdapter]] = {ReferenceAdapter.name: ReferenceAdapter, OmahaAdapter.name: OmahaAdapter}


def load_adapter(spec: str, where: str = "--protocol", options: Mapping[str, object] | None = None,
                 world: World | None = None) -> ProtocolAdapter:
    """An adapter instance for a built-in name or a `package.module:Class` path.

    `options` holds per-protocol options keyed by protocol name (a scenario's `protocol_options`);
    Omaha is created with its entry there and the world it names apps from, any other adapter
    without arguments.
    """
    if spec == OmahaAdapter.name:
        return OmahaAdapter((options or {}).get(spec), world)  # type: ignore[arg-type]
    if spec in BUILT_IN:
        return BUILT_IN[spec]()
    if ":" not in spec:
        raise InputError(where, f"unknown protocol {spec!r}",
                         f"use one of {', '.join(BUILT_IN)} or package.module:AdapterClass")
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(where, f"cannot import {module_name!r} ({exc})",
                         "check the module is on PYTHONPATH and imports cleanly") from None
    adapter_class = getattr(module, class_name, None)
    if not (isinstance(adapter_class, type) and issubclass(adapter_class, ProtocolAdapter)):
        raise InputError(where, f"{spec!r} is not a ProtocolAdapter subclass",
                         "subclass harness.protocols.base.ProtocolAdapter and implement its methods")
    try:
        return adapter_class()
    except TypeError as exc:
        raise InputError(where, f"{spec!r} cannot be created ({exc})",
                         "implement every abstract method of ProtocolAdapter") from None
