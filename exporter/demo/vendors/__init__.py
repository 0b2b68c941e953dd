"""The simulated vendors, by the name the config uses for them.

Simulating a vendor is optional: one module beside this file with a `VENDOR`, and one
line here. A vendor without one is simply not in `saas-quota-exporter demo`, and the
simulator answers 404 on its path.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from exporter.demo.vendors import pictory, piloterr, tornado, vertaaux, vidnavigator
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
        )
    }
)

__all__ = ["SIMULATED", "SimulatedVendor"]
