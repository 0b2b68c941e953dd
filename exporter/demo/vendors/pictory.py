"""Pictory as the simulator plays it: four `{used, limit}` entries in minutes/credits
(docs/providers/pictory.md)."""

from __future__ import annotations

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
from exporter.providers import pictory

# simulated meter -> the vendor's field
_FIELDS: Final = {
    "video_minutes": "videoMinutes",
    "transcription_minutes": "transcriptionMinutes",
    "voiceover_minutes": "elevenLabsVoiceOverMinutes",
    "ai_credits": "aiCredits",
}


def body(account: SimAccount, at: Moment) -> dict[str, Any]:
    return {
        vendor: {"used": used(account, meter, at), "limit": limit(account, meter)}
        for meter, vendor in _FIELDS.items()
        if meter in account.meters
    }


VENDOR: Final = SimulatedVendor(
    provider=pictory.PROVIDER,
    body=body,
    unauthorized=b'{"message": "Unauthorized"}',
    demo_accounts=(
        # Video minutes reach their cap within ten minutes of the demo's start.
        SimAccount(
            pictory.PROVIDER.name,
            "demo-pictory-marketing",
            {
                "video_minutes": SimMeter(limit=600, start=420, rate=0.3, period=DAY),
                "transcription_minutes": SimMeter(limit=600, start=12, rate=0.01),
                "voiceover_minutes": SimMeter(limit=0),
                "ai_credits": SimMeter(limit=3000, start=140.4, rate=0.5),
            },
            reset_in=9 * DAY,
        ),
    ),
)
