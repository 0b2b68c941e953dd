"""GitHub's `GET /rate_limit` as the simulator plays it: one object per rate-limit
resource, each with its own window (docs/providers/github.md).

The shipped declarative definition exporter/providers/github.yaml reads it: one meter
per resource, whatever resources the body has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from exporter.demo.vendors.base import Moment, SimAccount, SimMeter, SimulatedVendor, limit, used
from exporter.providers import PROVIDERS

# A shipped definition has no Python module to import: the record is named after the
# vendor it plays (one file per vendor), so no vendor name is written out here.
PROVIDER: Final = PROVIDERS[Path(__file__).stem]

HOUR: Final = 3600.0
MINUTE: Final = 60.0


def resource(account: SimAccount, name: str, at: Moment) -> dict[str, Any]:
    """One resource: GitHub counts whole requests, and its window resets at `reset`
    (epoch seconds), where the simulated meter wraps."""
    period = account.meters[name].period
    cap = int(limit(account, name) or 0)
    spent = int(used(account, name, at))
    return {
        "limit": cap,
        "used": spent,
        "remaining": cap - spent,
        "reset": int(at.now - at.elapsed % period + period),
    }


def body(account: SimAccount, at: Moment) -> dict[str, Any]:
    resources = {name: resource(account, name, at) for name in account.meters}
    # `rate` is the deprecated copy of `core` GitHub still sends.
    answer: dict[str, Any] = {"resources": resources}
    if "core" in resources:
        answer["rate"] = resources["core"]
    return answer


VENDOR: Final = SimulatedVendor(
    provider=PROVIDER,
    body=body,
    unauthorized=b'{"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}',
    demo_accounts=(
        SimAccount(
            PROVIDER.name,
            "demo-github-ci-bot",
            {
                # A CI bot that spends most of its hourly core budget, and searches in
                # bursts against the 30-a-minute search limit.
                "core": SimMeter(limit=5000, start=1200, rate=1.0, period=HOUR),
                "search": SimMeter(limit=30, start=4, rate=0.4, period=MINUTE),
                "graphql": SimMeter(limit=5000, start=300, rate=0.25, period=HOUR),
            },
        ),
    ),
)
