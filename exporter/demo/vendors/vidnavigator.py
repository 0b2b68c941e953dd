"""VidNavigator as the simulator plays it: the `{status, data}` envelope with credits,
storage in bytes and usage counters (docs/providers/vidnavigator.md)."""

from __future__ import annotations

from datetime import UTC, datetime
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
from exporter.providers import vidnavigator


def body(account: SimAccount, at: Moment) -> dict[str, Any]:
    total = limit(account, "credits") or 0.0
    spent = used(account, "credits", at)
    storage_limit = limit(account, "storage_gb") or 0.0
    storage_used = used(account, "storage_gb", at)
    start, end = iso(at.period_start), iso(at.reset)
    return {
        "status": "success",
        "data": {
            "usage_period": {"start": start, "end": end},
            "billing_period": {"start": start, "end": end, "interval": "month"},
            "subscription": {
                "plan_id": account.plan,
                "plan_name": account.plan.title(),
                "status": "active",
                "interval": "month",
                "cancel_at_period_end": False,
            },
            "credits": {
                "monthly_total": total,
                "monthly_remaining": round(max(total - spent, 0.0), 3),
                "purchased": 5,
            },
            "channels_indexed": {"used": 2, "limit": 15, "remaining": 13, "percentage": 13},
            "storage": {
                "used_bytes": int(storage_used * GB),
                "limit_bytes": int(storage_limit * GB),
                "remaining_bytes": int(max(storage_limit - storage_used, 0) * GB),
                "percentage": round(100 * storage_used / storage_limit) if storage_limit else 0,
            },
            "usage": {
                "standard_request": {"used": int(spent * 1000), "unit": "requests"},
                "transcription_hour": {"used": round(spent / 4, 2), "unit": "hours"},
            },
            "generated_at": iso(datetime.fromtimestamp(at.now, UTC)),
        },
    }


VENDOR: Final = SimulatedVendor(
    provider=vidnavigator.PROVIDER,
    body=body,
    unauthorized=b'{"status": "error", "error": "unauthorized", "message": "Invalid API key"}',
    demo_accounts=(
        SimAccount(
            vidnavigator.PROVIDER.name,
            "demo-vidnavigator-research",
            {
                "credits": SimMeter(limit=80, start=30, rate=0.01),
                "storage_gb": SimMeter(limit=500, start=120, rate=0.05),
            },
            plan="voyager",
            reset_in=20 * DAY,
        ),
    ),
)
