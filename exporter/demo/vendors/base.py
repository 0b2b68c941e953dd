"""What a simulated vendor is: its accounts' meters, and the one record that plays it.

A `SimulatedVendor` is everything the simulator knows about one vendor: the adapter it
plays (whose path and auth header it serves, so the two cannot drift apart), how its
body and headers look for an account at a moment, the body of its 401, and the
accounts `saas-quota-exporter demo` shows for it. Each lives in its own module beside
this one and is registered once in `exporter/demo/vendors/__init__.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from exporter.providers.base import Provider

GB: Final = 2**30
DAY: Final = 86400.0


@dataclass(frozen=True)
class SimMeter:
    """A meter whose usage grows linearly and wraps at `period` seconds.

    used(t) = min(start + rate * ((t - t0) mod period), limit); no cap without a
    limit. Usage never passes the limit: no vendor documents overage.
    """

    limit: float | None
    start: float = 0.0
    rate: float = 0.0  # units per second
    period: float = 30 * DAY

    def used(self, elapsed: float) -> float:
        value = self.start + self.rate * (elapsed % self.period)
        return value if self.limit is None else min(value, self.limit)


@dataclass(frozen=True)
class SimAccount:
    """One simulated API key at one vendor."""

    provider: str
    api_key: str
    meters: Mapping[str, SimMeter]
    plan: str = "pro"
    # Seconds from the simulator's start until the window resets.
    reset_in: float = 7 * DAY
    period_length: float = 30 * DAY


@dataclass(frozen=True)
class Moment:
    """When one account's answer is built: what a body builder may read of time."""

    now: float  # the simulator's clock, in Unix seconds
    elapsed: float  # seconds since the simulator started
    reset: datetime  # when the account's window resets
    period_start: datetime  # when the window ending at `reset` began


BodyFn = Callable[[SimAccount, Moment], dict[str, Any]]
HeadersFn = Callable[[SimAccount, Moment], dict[str, str]]


def no_headers(account: SimAccount, at: Moment) -> dict[str, str]:
    """Most vendors say everything in the body."""
    return {}


@dataclass(frozen=True)
class SimulatedVendor:
    """One vendor as the simulator plays it."""

    provider: Provider  # the adapter whose endpoint this answers
    body: BodyFn  # the JSON body for a known key
    unauthorized: bytes  # the body of the vendor's 401, in its own envelope
    headers: HeadersFn = no_headers
    # What `saas-quota-exporter demo` shows of this vendor (none: not in the demo).
    demo_accounts: tuple[SimAccount, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.provider.name

    @property
    def path(self) -> str:
        return self.provider.path

    def api_key(self, headers: Mapping[str, str]) -> str:
        """The key a request carries as this vendor reads it ("" when none);
        `headers` has lower-case names."""
        raw = headers.get(self.provider.auth_header.lower(), "")
        return raw.removeprefix(self.provider.auth_prefix)


def iso(moment: datetime, millis: bool = False) -> str:
    text = moment.isoformat(timespec="milliseconds" if millis else "seconds")
    return text.replace("+00:00", "Z")


def used(account: SimAccount, meter: str, at: Moment) -> float:
    """Usage of a simulated meter; a meter the scenario leaves out reads as 0."""
    sim_meter = account.meters.get(meter)
    return 0.0 if sim_meter is None else round(sim_meter.used(at.elapsed), 3)


def limit(account: SimAccount, meter: str) -> float | None:
    sim_meter = account.meters.get(meter)
    return None if sim_meter is None else sim_meter.limit
