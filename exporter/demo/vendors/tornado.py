"""Tornado API as the simulator plays it: storage in GB, a job count and the billing
period (docs/providers/tornado.md)."""

from __future__ import annotations

from typing import Any, Final

from exporter.demo.vendors.base import (
    DAY,
    GB,
    Moment,
    SimAccount,
    SimMeter,
    SimulatedVendor,
    iso,
    limit,
    used,
)
from exporter.providers import tornado


def body(account: SimAccount, at: Moment) -> dict[str, Any]:
    used_gb = used(account, "storage_gb", at)
    limit_gb = limit(account, "storage_gb")
    answer: dict[str, Any] = {
        "client_name": "Demo Pipeline",
        "usage_count": int(used(account, "jobs", at)),
        "storage_usage_gb": used_gb,
        "storage_reserved_gb": 0.0,
        "storage_effective_usage_gb": used_gb,
        "billing_period_start": iso(at.period_start),
        "billing_period_end": iso(at.reset),
        "current_period_usage_gb": round(used_gb / 2, 3),
    }
    if limit_gb is not None:
        answer["storage_limit_gb"] = limit_gb
        answer["storage_limit_bytes"] = int(limit_gb * GB)
        answer["storage_remaining_gb"] = round(max(limit_gb - used_gb, 0.0), 3)
    return answer


VENDOR: Final = SimulatedVendor(
    provider=tornado.PROVIDER,
    body=body,
    unauthorized=b'{"error": "Invalid API Key"}',
    demo_accounts=(
        SimAccount(
            tornado.PROVIDER.name,
            "demo-tornado-pipeline",
            {
                "storage_gb": SimMeter(limit=1024, start=700, rate=0.2),
                "jobs": SimMeter(limit=None, start=1200, rate=0.5),
            },
            reset_in=12 * DAY,
        ),
    ),
)
