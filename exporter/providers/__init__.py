"""The built-in vendor adapters, by the name the config uses for them.

`exporter.config` resolves each account's `provider:` in a registry it is handed
(`load_config(..., providers=...)`), this one unless the caller gives another, and
keeps the resolved `Provider` on the account: nothing after the load looks a vendor
up by name.

Adding a vendor (CONTRIBUTING.md, Adding a vendor): one module beside this file with
a `PROVIDER`, its line here, its recorded cases in tests/fixtures/<name>/<case>/, its
test tests/providers/test_<name>.py and its page docs/providers/<name>.md. The registry
drives tests/providers/test_registry.py (the contract over every recorded case) and
tests/providers/test_parse_properties.py (fuzzing `parse` with mutations of those
cases), so neither needs a line for the new vendor.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from exporter.providers import pictory, piloterr, tornado, vertaaux, vidnavigator
from exporter.providers.base import Provider

PROVIDERS: Final = MappingProxyType(
    {
        p.name: p
        for p in (
            pictory.PROVIDER,
            tornado.PROVIDER,
            piloterr.PROVIDER,
            vidnavigator.PROVIDER,
            vertaaux.PROVIDER,
        )
    }
)

__all__ = ["PROVIDERS", "Provider"]
