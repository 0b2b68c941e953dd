"""VertaaUX as the simulator plays it: credits in the body and again in
`X-RateLimit-*` headers, which must agree (docs/providers/vertaaux.md)."""

from __future__ import annotations

from typing import Any, Final

from exporter.demo.vendors.base import (
    DAY,
    Moment,
    SimAccount,
    SimMeter,
    SimulatedVendor,
    iso,
    limit,
    used,
)
from exporter.providers import vertaaux


def body(account: SimAccount, at: Moment) -> dict[str, Any]:
    total = limit(account, "credits") or 0.0
    spent = used(account, "credits", at)
    return {
        "plan": account.plan,
        "credits_total": total,
        "credits_used": spent,
        "credits_remaining": max(total - spent, 0),
        "reset_date": iso(at.reset, millis=True),
    }


def headers(account: SimAccount, at: Moment) -> dict[str, str]:
    total = limit(account, "credits") or 0.0
    spent = used(account, "credits", at)
    return {
        "X-RateLimit-Limit": str(int(total)),
        "X-RateLimit-Remaining": str(int(max(total - spent, 0))),
        "X-RateLimit-Reset": str(int(at.reset.timestamp())),
    }


VENDOR: Final = SimulatedVendor(
    provider=vertaaux.PROVIDER,
    body=body,
    headers=headers,
    unauthorized=b'{"error": "unauthorized", "message": "Invalid or missing API key"}',
    demo_accounts=(
        # The free account is exhausted from the start on purpose: its 3 audits a day
        # run out daily by design, and the bundled alerts leave the free tier alone
        # (see deploy/prometheus/saas-quota.alerts.yml).
        SimAccount(
            vertaaux.PROVIDER.name,
            "demo-vertaaux-audits",
            {"credits": SimMeter(limit=3, start=3)},
            plan="free",
            reset_in=DAY / 3,
            period_length=DAY,
        ),
        SimAccount(
            vertaaux.PROVIDER.name,
            "demo-vertaaux-agency",
            {"credits": SimMeter(limit=5000, start=1200, rate=1.0, period=DAY)},
            plan="agency",
            reset_in=DAY / 3,
            period_length=DAY,
        ),
    ),
)
