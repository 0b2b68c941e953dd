"""Piloterr as the simulator plays it: subscription credits, dates without times and
the key's own quotas (docs/providers/piloterr.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from exporter.demo.vendors.base import (
    DAY,
    Moment,
    SimAccount,
    SimMeter,
    SimulatedVendor,
    limit,
    used,
)
from exporter.providers import piloterr


def body(account: SimAccount, at: Moment) -> dict[str, Any]:
    spent = int(used(account, "api_credits", at))
    total = int(limit(account, "api_credits") or 0)
    return {
        "remaining": total - spent,
        "total_used": spent,
        "renewal_date": at.reset.date().isoformat(),
        "period": {
            "start": at.period_start.date().isoformat(),
            "end": at.reset.date().isoformat(),
        },
        "subscription": {
            "used": spent,
            "total": total,
            "remaining": total - spent,
            "percent_used": round(100 * spent / total, 2) if total else 0,
        },
        "credits": {"given": 0, "consumed": 0, "remaining": 0, "percent_used": 0},
        "rate_limit": {"per_minute": 600, "per_second": None},
        "account": {"name": "Demo", "slug": "demo"},
        "api_key": {
            "alias": "demo",
            "active": True,
            "category": "production",
            "expires": (at.reset + timedelta(days=10)).date().isoformat(),
            "quotas": {"total": None, "daily": 500, "weekly": None, "monthly": None},
        },
    }


VENDOR: Final = SimulatedVendor(
    provider=piloterr.PROVIDER,
    body=body,
    unauthorized=b'{"error": "Invalid API Key"}',
    demo_accounts=(
        # Runs out within ten minutes of the demo's start.
        SimAccount(
            piloterr.PROVIDER.name,
            "demo-piloterr-scraping",
            {"api_credits": SimMeter(limit=2000, start=1700, rate=0.5, period=DAY)},
            reset_in=4 * DAY,
        ),
    ),
)
