"""The vendor adapters, by the name the config uses for them.

Adding a vendor: one module beside this file with a `PROVIDER`, one line here,
fixtures under tests/fixtures/<name>/ and tests/providers/test_<name>.py. The
registry drives tests/providers/test_parse_properties.py, which fuzzes the new
`parse` (mutating those fixtures) with no further line to write.
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
