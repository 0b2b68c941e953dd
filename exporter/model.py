"""What a provider adapter hands the rest of the exporter: normalised readings.

These frozen dataclasses are the one shape that crosses from `exporter.providers`
(pure parsing) to the poller, the snapshot store and the collector. Every value is in
Prometheus base units already (seconds, bytes, plain counts); `None` means "the vendor
did not say", which the collector turns into an absent series, never a zero.

They are also the one boundary every adapter passes, so the rules that keep one
vendor from breaking the exposition for every account live here, not in each adapter:

* Text. Every string that can reach a label value, a log line or the landing page
  (meter and unit names, `account_info` values, rate-limit windows, key-cap names,
  problems, warnings, `PollError` messages and body excerpts) goes through
  `vendor_text`: lone surrogates become U+FFFD, control characters become spaces,
  whitespace is collapsed, known secrets are scrubbed, and the result is cut to a
  bounded length. Encoding it as strict UTF-8 can never fail. `account_info` label
  names must be valid Prometheus label names; a bad one is dropped as a problem.
* Figures. Every exported number must be finite: a unit conversion can overflow a
  vendor figure near the float limit to +Inf (1e308 minutes x 60).
* Negatives. A negative used, limit or remaining (and a negative rate limit or key
  cap) is never a quota reading: it is a `parse` problem for that figure, whatever
  the vendor meant by it. An adapter that knows a vendor's sentinel (VertaaUX
  enterprise -1 = unlimited) translates it before building the reading.

A bad figure costs only its own part: `MeterReading` raises `FieldError`, which
`exporter.providers.base.gather` turns into one entry of `Readings.problems` while
the other meters stay; a bad rate limit, key cap or key expiry is dropped by
`Readings` itself and listed in its problems. The poller counts a `parse` error for
any problem, so the drop is visible.

`AlertSettings`, `AlertDefault` and `AlertPolicy` carry the alert thresholds from the
config and the adapters' defaults to `/metrics` (saas_quota_alert_* series).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from exporter.redaction import REDACTOR

# Bounds on vendor text after normalisation (plus the cut marker). A label value is a
# plan or a key alias, never prose; a message is our prefix plus a few vendor
# fragments that base.one_line has cut to 200 characters each already.
LABEL_CHARS: Final = 128
MESSAGE_CHARS: Final = 1024
CUT: Final = "..."
# Secrets are scrubbed from this much more than is kept, so a key that straddles the
# cut (in any encoding the scrubber knows, none near 4 KiB long) is still matched
# whole, and a huge vendor string costs a bounded scrub.
_SCRUB_MARGIN: Final = 4096

_SURROGATES: Final = re.compile("[\ud800-\udfff]")
# C0, DEL and C1 controls (NUL, ESC, CR...), plus the bidirectional embedding,
# override and isolate controls that reorder text on a page or in a terminal.
_CONTROLS: Final = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_WHITESPACE: Final = re.compile(r"\s+")
# Prometheus data model; names starting with "__" are reserved for internal use.
_LABEL_NAME: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def vendor_text(value: str | bytes, limit: int) -> str:
    """Vendor text made safe for a label value, a log line or a page.

    Always valid UTF-8 (lone surrogates and undecodable bytes become U+FFFD), one
    line without control characters, known secrets scrubbed, and at most `limit`
    characters of it kept: a cut is marked by `CUT` after them.
    """
    text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
    text = _SURROGATES.sub("\ufffd", text)
    text = _CONTROLS.sub(" ", text)
    text = _WHITESPACE.sub(" ", text).strip()
    text = REDACTOR.scrub(text[: limit + _SCRUB_MARGIN])
    return text if len(text) <= limit else text[:limit] + CUT


def is_label_name(name: str) -> bool:
    """Whether `name` may be a Prometheus label name (and is not a reserved one)."""
    return _LABEL_NAME.fullmatch(name) is not None and not name.startswith("__")


class FieldError(ValueError):
    """A vendor figure or field that cannot be exported; the message names it.

    Raised by the adapters' field readers and by `MeterReading` itself, and caught
    per part by `exporter.providers.base.gather`, so it costs only that part.
    """


def _figure(value: object, where: str, *, non_negative: bool) -> None:
    """Raise FieldError unless `value` is an exportable number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(f"{where}: expected a number, got {type(value).__name__}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int beyond the float range
        finite = False
    if not finite:
        shown = f"{value!r}" if isinstance(value, float) else "an integer beyond the float range"
        raise FieldError(f"{where}: {shown} is not a finite number (out of range after scaling)")
    if non_negative and value < 0:
        raise FieldError(f"{where}: {value!r} is negative; a quota figure never is")


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
        # Frozen: normalised values are set the way dataclasses itself sets them.
        object.__setattr__(self, "meter", vendor_text(self.meter, LABEL_CHARS))
        object.__setattr__(self, "unit", vendor_text(self.unit, LABEL_CHARS))
        for name in ("used", "limit", "remaining"):
            value = getattr(self, name)
            if value is not None:
                _figure(value, f"meter {self.meter} {name}", non_negative=True)
        for name in ("reset_timestamp", "period_start_timestamp"):
            value = getattr(self, name)
            if value is not None:
                _figure(value, f"meter {self.meter} {name}", non_negative=False)
        if self.unlimited and (self.limit is not None or self.remaining is not None):
            raise FieldError(f"meter {self.meter}: an unlimited meter has no limit or remaining")

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
        # Each bad entry below is dropped and named in `problems`, like a bad meter.
        problems: list[str] = []
        info: list[tuple[str, str]] = []
        for name, value in self.account_info:
            if is_label_name(name):
                info.append((name, vendor_text(value, LABEL_CHARS)))
            else:
                problems.append(f"account_info: {name!r} is not a valid label name")
        object.__setattr__(self, "account_info", tuple(info))
        for attr in ("rate_limits", "key_caps"):
            kept: list[tuple[str, float]] = []
            for name, number in getattr(self, attr):
                try:
                    _figure(number, f"{attr} {name}", non_negative=True)
                except FieldError as exc:
                    problems.append(str(exc))
                else:
                    kept.append((vendor_text(name, LABEL_CHARS), number))
            object.__setattr__(self, attr, tuple(kept))
        if self.api_key_expiry_timestamp is not None:
            try:
                _figure(self.api_key_expiry_timestamp, "api_key_expiry", non_negative=False)
            except FieldError as exc:
                problems.append(str(exc))
                object.__setattr__(self, "api_key_expiry_timestamp", None)
        object.__setattr__(
            self,
            "problems",
            tuple(vendor_text(p, MESSAGE_CHARS) for p in (*self.problems, *problems)),
        )
        object.__setattr__(
            self, "warnings", tuple(vendor_text(w, MESSAGE_CHARS) for w in self.warnings)
        )


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

    def __post_init__(self) -> None:
        # The message and excerpt are logged and shown on `/`: same rules as labels.
        self.message = vendor_text(self.message, MESSAGE_CHARS)
        self.body_excerpt = vendor_text(self.body_excerpt, MESSAGE_CHARS)
        if self.retry_after is not None:
            try:
                _figure(self.retry_after, "retry_after", non_negative=True)
            except FieldError:
                # An infinite wait would stop polling the account for good; a hint
                # that cannot be honoured is no hint.
                self.retry_after = None

    def __hash__(self) -> int:
        # The fields are set once and never changed, so value equality can keep a hash.
        return hash((self.reason, self.message, self.status, self.retry_after))

    def __str__(self) -> str:
        return self.message


# --- alert settings ----------------------------------------------------------------


@dataclass(frozen=True)
class AlertSettings:
    """What the shipped alert rules should do for a meter; None = not set here.

    `warning` and `critical` are used shares of the limit (0.8 = 80 %) at which
    SaasQuotaAlmostExhausted fires; `math.inf` switches that severity off, and a
    critical share above 1 also silences SaasQuotaExhausted (the rules read it so).
    `forecast` False switches the forecast alerts off; `forecast_horizon` is how far
    they look ahead, in seconds, for a meter without a reset. Settings are layered
    (`over`) field by field, so each one falls back on its own.
    """

    warning: float | None = None
    critical: float | None = None
    forecast: bool | None = None
    forecast_horizon: float | None = None

    def over(self, base: AlertSettings) -> AlertSettings:
        """These settings, with each field that is not set taken from `base`."""
        return AlertSettings(
            warning=base.warning if self.warning is None else self.warning,
            critical=base.critical if self.critical is None else self.critical,
            forecast=base.forecast if self.forecast is None else self.forecast,
            forecast_horizon=(
                base.forecast_horizon if self.forecast_horizon is None else self.forecast_horizon
            ),
        )

    @property
    def horizon(self) -> float | None:
        """saas_quota_alert_forecast_horizon_seconds: 0 when the forecast is off."""
        return 0.0 if self.forecast is False else self.forecast_horizon


NO_ALERT_SETTINGS: Final = AlertSettings()


@dataclass(frozen=True)
class AlertDefault:
    """An adapter's default for meters it knows to be noisy by design.

    It applies to the meter named `meter` (every meter when None) of an account whose
    `Readings.account_info` has every (label, value) of `account_info` (values
    compared case-insensitively): VertaaUX's free plan, whose 3 audits a day run out
    every day. Declarative, so the defaults compare by value and nothing an adapter
    wrote runs while `/metrics` is rendered.
    """

    settings: AlertSettings
    meter: str | None = None
    account_info: tuple[tuple[str, str], ...] = ()

    def matches(self, readings: Readings, meter: MeterReading) -> bool:
        if self.meter is not None and meter.meter != self.meter:
            return False
        info = {name: value.casefold() for name, value in readings.account_info}
        return all(info.get(name) == value.casefold() for name, value in self.account_info)


@dataclass(frozen=True)
class AlertPolicy:
    """One account's alert settings: the config's layers and its adapter's defaults.

    Most specific first: the account's setting for the meter, the account's own, the
    adapter's default for the meter (the first `AlertDefault` that matches), the
    config's `global:` one. The adapter's default sits above `global:` because it
    knows the one meter that runs out by design, while `global:` speaks for every
    meter at once; an account's own settings are the user's word on that key.
    """

    fleet: AlertSettings = NO_ALERT_SETTINGS
    account: AlertSettings = NO_ALERT_SETTINGS
    meters: tuple[tuple[str, AlertSettings], ...] = ()
    adapter: tuple[AlertDefault, ...] = ()

    def settings(self, readings: Readings, meter: MeterReading) -> AlertSettings:
        """The settings in force for `meter` of an account that answered `readings`."""
        own = dict(self.meters).get(meter.meter, NO_ALERT_SETTINGS)
        vendor = next(
            (d.settings for d in self.adapter if d.matches(readings, meter)), NO_ALERT_SETTINGS
        )
        return own.over(self.account).over(vendor).over(self.fleet)


NO_ALERT_POLICY: Final = AlertPolicy()
