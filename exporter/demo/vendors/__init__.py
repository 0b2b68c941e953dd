"""The simulated vendors, by the name the config uses for them.

Simulating a vendor is optional: one module beside this file with a `VENDOR`, and one
line here; a shipped declarative provider (exporter/providers/<name>.yaml) is simulated
the same way as a Python one. A vendor without one is simply not in
`saas-quota-exporter demo`, and the simulator answers 404 on its path.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from exporter.demo.vendors import (
    github,
    openrouter,
    pictory,
    piloterr,
    tornado,
    vertaaux,
    vidnavigator,
)
from exporter.demo.vendors.base import SimulatedVendor

SIMULATED: Final = MappingProxyType(
    {
        v.name: v
        for v in (
            pictory.VENDOR,
            tornado.VENDOR,
            piloterr.VENDOR,
            vidnavigator.VENDOR,
            vertaaux.VENDOR,
            # Two shipped declarative definitions, so the demo shows them too.
            github.VENDOR,
            openrouter.VENDOR,
        )
    }
)

__all__ = ["SIMULATED", "SimulatedVendor"]
