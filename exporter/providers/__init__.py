"""The built-in vendor adapters, by the name the config uses for them.

`exporter.config` resolves each account's `provider:` in a registry it is handed
(`load_config(..., providers=...)`), this one unless the caller gives another, and
keeps the resolved `Provider` on the account: nothing after the load looks a vendor
up by name.

Two kinds, one registry: the Python adapters (a module beside this file with a
`PROVIDER`, one line here) and the shipped declarative definitions
(exporter/providers/<name>.yaml, docs/writing-a-provider.md), loaded at import. A name
taken twice is an error at import, never a silent override.

Adding a vendor (CONTRIBUTING.md, Adding a vendor): its module or YAML file, its
recorded cases in tests/fixtures/<name>/<case>/, its test tests/unit/providers/test_<name>.py
and its page docs/providers/<name>.md. The registry drives
tests/unit/providers/test_registry.py (the contract over every recorded case) and
tests/unit/providers/test_parse_properties.py (fuzzing `parse` with mutations of those
cases), so neither needs a line for the new vendor.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from exporter.providers import pictory, piloterr, tornado, vertaaux, vidnavigator
from exporter.providers.base import Provider
from exporter.providers.declarative import shipped_providers

PYTHON_PROVIDERS: Final = (
    pictory.PROVIDER,
    tornado.PROVIDER,
    piloterr.PROVIDER,
    vidnavigator.PROVIDER,
    vertaaux.PROVIDER,
)


def _registry(*providers: Provider) -> dict[str, Provider]:
    registry: dict[str, Provider] = {}
    for provider in providers:
        if provider.name in registry:
            raise ValueError(f"provider name {provider.name!r} is defined twice")
        registry[provider.name] = provider
    return registry


PROVIDERS: Final = MappingProxyType(_registry(*PYTHON_PROVIDERS, *shipped_providers()))

__all__ = ["PROVIDERS", "PYTHON_PROVIDERS", "Provider"]
