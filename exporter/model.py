"""What a provider adapter hands the rest of the exporter: normalised readings.

These frozen dataclasses are the one shape that crosses from `exporter.providers`
(pure parsing) to the poller, the snapshot store and the collector. Every value is in
Prometheus base units already (seconds, bytes, plain counts); `None` means "the vendor
did not say", which the collector turns into an absent series, never a zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Reason(StrEnum):
    """Why a poll failed: the `reason` label of `saas_quota_poll_errors_total`."""

    AUTH = "auth"
    FORBIDDEN = "forbidden"
    PAYMENT = "payment"
    RATE_LIMITED = "rate_limited"
    HTTP = "http"
    SERVER = "server"
    TIMEOUT = "timeout"
    NETWORK = "network"
    PARSE = "parse"
    # The exporter's own fault: an exception no adapter or transport rule classifies
    # (a bug, or a config value only the HTTP library rejects). Counted, logged with
    # its traceback, and the account rescheduled, so polling never stops.
    INTERNAL = "internal"


@dataclass(frozen=True)
class MeterReading:
    """One meter of one account at one poll.

    `remaining` is the vendor's own figure when it gives one; `effective_remaining`
    derives it from limit and used otherwise, so adapters never compute it twice.
    """

    meter: str
    unit: str
    used: float | None = None
    limit: float | None = None
    remaining: float | None = None
    unlimited: bool = False
    reset_timestamp: float | None = None
    period_start_timestamp: float | None = None

    def __post_init__(self) -> None:
        if self.unlimited and (self.limit is not None or self.remaining is not None):
            raise ValueError(f"meter {self.meter}: an unlimited meter has no limit or remaining")

    @property
    def effective_remaining(self) -> float | None:
        """Vendor's remaining, else max(limit - used, 0); None when unlimited or unknown."""
        if self.unlimited:
            return None
        if self.remaining is not None:
            return self.remaining
        if self.limit is not None and self.used is not None:
            return max(self.limit - self.used, 0.0)
        return None


@dataclass(frozen=True)
class Readings:
    """Everything one successful poll of one account produced.

    `problems` lists the parts of an otherwise good answer that could not be parsed
    (one meter with a non-numeric field, say): those parts are dropped, the rest is
    exported, and the poller counts a `parse` error so the drop is visible.
    """

    meters: tuple[MeterReading, ...] = ()
    # Low-cardinality descriptive labels for saas_quota_account_info (plan, tier...).
    account_info: tuple[tuple[str, str], ...] = ()
    api_key_expiry_timestamp: float | None = None
    api_key_active: bool | None = None
    # window ("second", "minute", "day") -> requests allowed in that window.
    rate_limits: tuple[tuple[str, float], ...] = ()
    # Per-request caps of a key that are not consumed (Tornado max duration, size).
    key_caps: tuple[tuple[str, float], ...] = ()
    problems: tuple[str, ...] = ()
    # Human-readable notes worth logging once per poll (Tornado billing_error...).
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for reading in self.meters:
            if reading.meter in seen:
                raise ValueError(f"meter {reading.meter} reported twice")
            seen.add(reading.meter)


# Not frozen, unlike the other types here: Python sets attributes on an exception in
# flight (contextlib sets __traceback__, add_note sets __notes__, copy and pickle set
# state), and a frozen dataclass refuses them with FrozenInstanceError.
@dataclass
class PollError(Exception):
    """A poll that produced no readings, classified for the error counter.

    `message` must never contain the API key: it is logged and shown on `/`.
    `retry_after` (seconds) is the earliest the vendor wants to hear from us again.
    """

    reason: Reason
    message: str
    status: int | None = None
    retry_after: float | None = None
    body_excerpt: str = field(default="", compare=False)

    def __hash__(self) -> int:
        # The fields are set once and never changed, so value equality can keep a hash.
        return hash((self.reason, self.message, self.status, self.retry_after))

    def __str__(self) -> str:
        return self.message
