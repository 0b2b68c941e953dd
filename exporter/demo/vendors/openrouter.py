"""OpenRouter's `GET /api/v1/key` as the simulator plays it: the key's credit limit,
its monthly usage against it and its all-time usage (docs/providers/openrouter.md).

The shipped declarative definition exporter/providers/openrouter.yaml reads it.
"""

from __future__ import annotations

from pathlib import Path
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
from exporter.providers import PROVIDERS

# A shipped definition has no Python module to import: the record is named after the
# vendor it plays (one file per vendor), so no vendor name is written out here.
PROVIDER: Final = PROVIDERS[Path(__file__).stem]

# What the key spent before this month: all-time usage is this plus the month's.
EARLIER_USAGE: Final = 250.0


def body(account: SimAccount, at: Moment) -> dict[str, Any]:
    monthly = used(account, "credits", at)
    cap = limit(account, "credits")
    return {
        "data": {
            "label": "sk-or-v1-dem...o42",
            "limit": cap,
            "limit_reset": "monthly" if cap is not None else None,
            "limit_remaining": None if cap is None else round(cap - monthly, 3),
            "include_byok_in_limit": False,
            "usage": round(EARLIER_USAGE + monthly, 3),
            # The day's and week's share of the month's usage, for the body's shape.
            "usage_daily": round(monthly / 30, 3),
            "usage_weekly": round(monthly / 4, 3),
            "usage_monthly": monthly,
            "byok_usage": 0,
            "is_free_tier": account.plan == "free",
            "expires_at": None,
        }
    }


VENDOR: Final = SimulatedVendor(
    provider=PROVIDER,
    body=body,
    unauthorized=b'{"error": {"message": "No auth credentials found", "code": 401}}',
    demo_accounts=(
        SimAccount(
            PROVIDER.name,
            "demo-openrouter-assistant",
            # A chat assistant's key with a monthly credit limit, spent steadily.
            {"credits": SimMeter(limit=100, start=61.5, rate=0.02, period=30 * DAY)},
        ),
    ),
)
