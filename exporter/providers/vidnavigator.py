"""VidNavigator: GET /v1/usage with the raw key in `X-API-Key`.

The body is an envelope `{"status": "success", "data": {...}}` whose `data` schema has
had three generations (docs/providers/vidnavigator.md), told apart by field presence:
`credits` -> G3, `usage_period` -> G2, `current_period` -> G1. All three are parsed by
one field-driven path, so a body that mixes generations still yields what it carries.

Mapping decisions:

* `usage.<key>` -> one meter per known key (G1/G2 quota table and G3 counter table,
  docs/providers/vidnavigator.md). G1/G2 entries carry used/limit/remaining; G3 entries used-only
  activity counters. Hours become seconds (x 3600) on used, limit and remaining;
  `video_uploads` is `upload_seconds` when its unit is a time unit, else `uploads`.
* Unknown `usage` keys are skipped with a warning naming them, not mapped generically:
  meter ids are what dashboards and alerts are written against, the vendor has renamed
  these keys twice already, and an id minted from a vendor key would silently change
  with the next rename. The warning makes a new key visible so the table can grow.
* When an old and a new key name map to one meter (`video_searches` and
  `search_request` -> `search_requests`), the current G3 name wins and the other is
  skipped with a warning; both in one body is not expected.
* G3 `credits`: limit = `monthly_total`, remaining = `monthly_remaining`, used = their
  difference (inferred, docs/providers/vidnavigator.md; never < 0); `purchased` is a remaining-only
  `purchased_credits` meter with no reset (purchased credits persist).
* `"unlimited"` (any case) in limit or remaining -> unlimited, no limit/remaining.
* `percentage` is ignored: every object that has it also has limit and remaining, and
  the vendor rounds it (66.67, integers), so deriving a limit from it would invent
  precision. Ratios are the recording rules' job.
* Reset / period start of the per-service and credit meters: `usage_period.end/start`
  (G2/G3; the monthly credit reset even on yearly billing), else
  `current_period.end_date/start_date` (G1). Storage, channels and purchased credits
  are capacities or ledgers: no reset.
* Errors: `{"status": "error", "error": "<code>" | {code, message}, "message"}`. A 429
  also bans the key for a minute, so its retry_after is at least 60 s; a 503 may carry
  `retry_after_seconds` in the body.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exporter.model import MeterReading, PollError, Readings, Reason
from exporter.providers.base import (
    FieldError,
    Headers,
    Provider,
    classify_http_error,
    decode_json,
    excerpt,
    gather,
    is_unlimited,
    json_object,
    label_value,
    number,
    obj,
    one_line,
    retry_after_seconds,
    timestamp,
    unrecognised,
)

# A 429 bans the whole key for one minute (docs/providers/vidnavigator.md): never come back
# sooner, whatever a header says.
_BAN_SECONDS = 60.0

_COUNT_UNIT = "requests"

# Derived figures are rounded to this many decimals to shed binary float noise; the
# vendor's own figures carry a handful of decimals at most.
_DECIMALS = 9

# Vendor `unit` strings that are durations -> factor to seconds.
_TIME_UNITS: dict[str, float] = {
    "hour": 3600.0,
    "hours": 3600.0,
    "hr": 3600.0,
    "hrs": 3600.0,
    "h": 3600.0,
    "minute": 60.0,
    "minutes": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "second": 1.0,
    "seconds": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "s": 1.0,
}


@dataclass(frozen=True)
class _Service:
    """How one `usage.<key>` becomes a meter."""

    # Meter when the entry counts things (unit absent or not a duration); None when
    # the key only ever measures time.
    count_meter: str | None
    # Meter when the unit is a duration (exported in seconds); None when a duration
    # unit would be a surprise for this key.
    time_meter: str | None = None
    # Unit assumed when the entry has none (`transcription_hour` is hours by name).
    default_unit: str | None = None


# Fixed order: it is the order problems are reported in, and the current G3 names
# come before the G1/G2 names they replaced.
_SERVICES: dict[str, _Service] = {
    # G3 activity counters (current docs).
    "standard_request": _Service("standard_requests"),
    "residential_request": _Service("residential_requests"),
    "search_request": _Service("search_requests"),
    "analysis_request": _Service("analysis_requests"),
    "video_scene_analyses": _Service("scene_analyses"),
    "transcription_hour": _Service(None, "transcription_seconds", "hours"),
    # G1/G2 quotas, also the counter names of the earlier G3 revision.
    "video_transcripts": _Service("transcript_requests"),
    "youtube_transcripts": _Service("youtube_transcript_requests"),
    "video_searches": _Service("search_requests"),
    "video_analyses": _Service("analysis_requests"),
    "youtube_channels_scans": _Service("channel_scans"),
    "video_uploads": _Service("uploads", "upload_seconds"),
}

# Old key -> the current key that feeds the same meter; the current one wins.
_SUPERSEDED: dict[str, str] = {
    "video_searches": "search_request",
    "video_analyses": "analysis_request",
}

# Sub-objects of `data` we read; any of them may be missing (SDK models: optional).
_SECTIONS = (
    "credits",
    "storage",
    "channels_indexed",
    "usage",
    "usage_period",
    "current_period",
    "billing_period",
    "subscription",
)

_MAX_LISTED_KEYS = 10

# 403 bodies that are about the key itself are `auth`, not `forbidden` (docs/providers/).
_KEY_PROBLEM = re.compile(
    r"(api[ _-]?key|token).*(invalid|revoked|inactive|expired|disabled)|"
    r"(invalid|revoked|inactive|expired|disabled).*(api[ _-]?key|token)"
)


def parse(status: int, headers: Headers, body: bytes) -> Readings:
    if status != 200:
        raise _error(status, headers, body)
    root = json_object(status, body)
    if isinstance(root.get("status"), str) and root["status"].strip().lower() == "error":
        raise PollError(
            Reason.PARSE,
            f"HTTP 200 with an error envelope: {_error_text(root) or excerpt(body)}",
            status=status,
            body_excerpt=excerpt(body),
        )
    data = root.get("data")
    if not isinstance(data, dict):
        raise unrecognised(status, body, "no data object")

    sections, section_problems = gather({name: _section(data, name) for name in _SECTIONS})
    # A bad period field costs the reset or start series, not the meters.
    period, period_problems = gather(
        {"reset": _period_part(sections, end=True), "start": _period_part(sections, end=False)}
    )
    reset, start = period.get("reset"), period.get("start")

    usage = sections.get("usage") or {}
    parts: dict[str, Callable[[], MeterReading | None]] = {
        "credits": lambda: _credits(sections.get("credits"), reset, start),
        "purchased_credits": lambda: _purchased(sections.get("credits")),
        "storage": lambda: _capacity(
            sections.get("storage"),
            "storage",
            "storage_bytes",
            "bytes",
            ("used_bytes", "limit_bytes", "remaining_bytes"),
        ),
        "channels_indexed": lambda: _capacity(
            sections.get("channels_indexed"),
            "channels_indexed",
            "indexed_channels",
            "channels",
            ("used", "limit", "remaining"),
        ),
    }
    warnings: list[str] = []
    for key in _SERVICES:
        if key not in usage:
            continue
        newer = _SUPERSEDED.get(key)
        if newer is not None and newer in usage:
            warnings.append(f"usage.{key} skipped: usage.{newer} reports the same meter")
            continue
        parts[f"usage.{key}"] = _service_part(usage, key, reset, start)
    unknown = sorted(str(k) for k in usage if k not in _SERVICES)
    if unknown:
        listed = ", ".join(repr(k[:40]) for k in unknown[:_MAX_LISTED_KEYS])
        more = (
            f" and {len(unknown) - _MAX_LISTED_KEYS} more"
            if len(unknown) > _MAX_LISTED_KEYS
            else ""
        )
        warnings.append(f"usage keys not mapped to a meter (skipped): {listed}{more}")

    results, meter_problems = gather(parts)
    meters = tuple(sorted((m for m in results.values() if m is not None), key=lambda m: m.meter))
    problems = section_problems + period_problems + meter_problems
    if not meters and not problems:
        raise unrecognised(status, body, "no usage figures")
    return Readings(
        meters=meters,
        account_info=_account_info(data, sections),
        problems=problems,
        warnings=tuple(warnings),
    )


def _section(data: dict[str, Any], name: str) -> Callable[[], dict[str, Any] | None]:
    return lambda: obj(data, name)


def _period_part(sections: dict[str, Any], end: bool) -> Callable[[], float | None]:
    """Reset (`end`) or start of the usage window.

    usage_period (G2/G3), else current_period (G1). With yearly billing
    `billing_period.end` is up to a year away while the monthly credits and counters
    reset at `usage_period.end`, so billing_period is never used.
    """

    def build() -> float | None:
        usage_period = sections.get("usage_period")
        if usage_period is not None:
            key = "end" if end else "start"
            return timestamp(usage_period.get(key), f"usage_period.{key}")
        current = sections.get("current_period")
        if current is not None:
            key = "end_date" if end else "start_date"
            return timestamp(current.get(key), f"current_period.{key}")
        return None

    return build


def _amount(
    entry: dict[str, Any], key: str, where: str, factor: float = 1.0
) -> tuple[float | None, bool]:
    """A limit/remaining figure: (value, unlimited). `"unlimited"` has no value."""
    value = entry.get(key)
    if is_unlimited(value):
        return None, True
    parsed = number(value, f"{where}.{key}")
    return _scaled(parsed, factor), False


def _used(entry: dict[str, Any], key: str, where: str, factor: float = 1.0) -> float | None:
    # `used` is never "unlimited"; number() reports the string as a bad field.
    parsed = number(entry.get(key), f"{where}.{key}")
    return _scaled(parsed, factor)


def _scaled(value: float | None, factor: float) -> float | None:
    # Rounded to 1e-9 so hours become whole seconds where they should
    # (141.2 h x 3600 = 508319.99999999994 in binary floats, not 508320).
    return None if value is None else round(value * factor, _DECIMALS)


def _credits(
    credits: dict[str, Any] | None, reset: float | None, start: float | None
) -> MeterReading | None:
    if credits is None or (
        credits.get("monthly_total") is None and credits.get("monthly_remaining") is None
    ):
        return None
    total, total_unlimited = _amount(credits, "monthly_total", "credits")
    remaining, remaining_unlimited = _amount(credits, "monthly_remaining", "credits")
    if total_unlimited or remaining_unlimited:
        # Odyssey: nothing to count against, and no used figure is given.
        return MeterReading(
            "credits",
            "credits",
            unlimited=True,
            reset_timestamp=reset,
            period_start_timestamp=start,
        )
    used = None
    if total is not None and remaining is not None:
        # The vendor gives no used figure; the docs page infers total - remaining. Rounded to
        # 1e-9 to drop binary float noise (80 - 58.505 = 21.494999999999997); vendor
        # figures have a handful of decimals. Never below 0 if remaining > total.
        used = max(round(total - remaining, _DECIMALS), 0.0)
    return MeterReading(
        "credits",
        "credits",
        used=used,
        limit=total,
        remaining=remaining,
        reset_timestamp=reset,
        period_start_timestamp=start,
    )


def _purchased(credits: dict[str, Any] | None) -> MeterReading | None:
    # Purchased credits persist and have no allowance: remaining only, no reset.
    if credits is None or credits.get("purchased") is None:
        return None
    remaining, unlimited = _amount(credits, "purchased", "credits")
    return MeterReading("purchased_credits", "credits", remaining=remaining, unlimited=unlimited)


def _capacity(
    entry: dict[str, Any] | None,
    where: str,
    meter: str,
    unit: str,
    keys: tuple[str, str, str],
) -> MeterReading | None:
    """Storage and indexed channels: a cap on what exists now, so no reset."""
    if entry is None:
        return None
    if all(entry.get(k) is None for k in keys):
        raise FieldError(f"{where}: none of {', '.join(keys)} given")
    return _reading(entry, where, meter, unit, keys, None, None, 1.0)


def _reading(
    entry: dict[str, Any],
    where: str,
    meter: str,
    unit: str,
    keys: tuple[str, str, str],
    reset: float | None,
    start: float | None,
    factor: float,
) -> MeterReading:
    used_key, limit_key, remaining_key = keys
    used = _used(entry, used_key, where, factor)
    limit, limit_unlimited = _amount(entry, limit_key, where, factor)
    remaining, remaining_unlimited = _amount(entry, remaining_key, where, factor)
    if limit_unlimited or remaining_unlimited:
        return MeterReading(
            meter,
            unit,
            used=used,
            unlimited=True,
            reset_timestamp=reset,
            period_start_timestamp=start,
        )
    return MeterReading(
        meter,
        unit,
        used=used,
        limit=limit,
        remaining=remaining,
        reset_timestamp=reset,
        period_start_timestamp=start,
    )


def _service_part(
    usage: dict[str, Any], key: str, reset: float | None, start: float | None
) -> Callable[[], MeterReading]:
    def build() -> MeterReading:
        where = f"usage.{key}"
        entry = obj(usage, key, "usage.")
        keys = ("used", "limit", "remaining")
        if entry is None or all(entry.get(k) is None for k in keys):
            raise FieldError(f"{where}: none of {', '.join(keys)} given")
        service = _SERVICES[key]
        raw_unit = entry.get("unit")
        if raw_unit is not None and not isinstance(raw_unit, str):
            raise FieldError(f"{where}.unit: expected a string, got {type(raw_unit).__name__}")
        unit = (raw_unit or service.default_unit or "").strip().lower()
        factor = _TIME_UNITS.get(unit)
        if factor is not None:
            if service.time_meter is None:
                raise FieldError(f"{where}.unit: {raw_unit!r} is a duration; expected a count")
            return _reading(entry, where, service.time_meter, "seconds", keys, reset, start, factor)
        if service.count_meter is None:
            raise FieldError(f"{where}.unit: expected a duration, got {raw_unit!r}")
        return _reading(entry, where, service.count_meter, _COUNT_UNIT, keys, reset, start, 1.0)

    return build


def _account_info(data: dict[str, Any], sections: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    subscription = sections.get("subscription") or {}
    billing = sections.get("billing_period") or {}
    if data.get("credits") is not None:
        generation = "g3"
    elif data.get("usage_period") is not None:
        generation = "g2"
    elif data.get("current_period") is not None:
        generation = "g1"
    else:
        generation = None
    candidates = {
        # `plan` is the stable id; the display name is kept beside it.
        "plan": subscription.get("plan_id"),
        "plan_name": subscription.get("plan_name"),
        "subscription_status": subscription.get("status"),
        "billing_interval": subscription.get("interval") or billing.get("interval"),
        "cancel_at_period_end": subscription.get("cancel_at_period_end"),
        # Which body schema the vendor answered with: a schema change shows on dashboards.
        "schema_generation": generation,
    }
    info = []
    for label, raw in candidates.items():
        value = label_value(raw)
        if value is not None:
            info.append((label, value))
    return tuple(sorted(info))


# --- errors -------------------------------------------------------------------------


def _error_text(data: Any) -> str | None:
    """`<message> (<code>)` from the error envelope; `error` is a code or {code, message}."""
    if not isinstance(data, dict):
        return None
    err = data.get("error")
    code: Any = err
    message: Any = data.get("message")
    if isinstance(err, dict):
        code = err.get("code")
        message = message or err.get("message")
    code_text = label_value(code)
    message_text = message.strip() if isinstance(message, str) and message.strip() else None
    if message_text and code_text and code_text != message_text:
        text = f"{message_text} ({code_text})"
    else:
        text = message_text or code_text or ""
    # Vendor text goes into logs and `/`: keep it one short line.
    return one_line(text) or None


def _body_retry_after(data: Any) -> float | None:
    if not isinstance(data, dict):
        return None
    candidates = [data.get("retry_after_seconds")]
    if isinstance(data.get("error"), dict):
        candidates.append(data["error"].get("retry_after_seconds"))
    for raw in candidates:
        try:
            seconds = number(raw, "retry_after_seconds")
        except FieldError:
            continue
        if seconds is not None and seconds >= 0:
            return seconds
    return None


def _error(status: int, headers: Headers, body: bytes) -> PollError:
    data = decode_json(body)
    # A Retry-After header wins; the 503 overload body carries its own hint.
    retry_after = retry_after_seconds(headers)
    if retry_after is None:
        retry_after = _body_retry_after(data)
    reason = classify_http_error(status, headers, body, retry_after=retry_after).reason
    text = _error_text(data) or excerpt(body) or "(empty body)"
    if status == 429:
        retry_after = max(retry_after or 0.0, _BAN_SECONDS)
    elif status == 403 and _KEY_PROBLEM.search(text.lower()):
        reason = Reason.AUTH
    elif status == 451:
        # Geo-restricted: the key is fine, this exporter's location is refused.
        reason = Reason.FORBIDDEN
    return PollError(
        reason,
        f"HTTP {status}: {text}",
        status=status,
        retry_after=retry_after,
        body_excerpt=excerpt(body),
    )


PROVIDER = Provider(
    name="vidnavigator",
    default_base_url="https://api.vidnavigator.com",
    path="/v1/usage",
    auth_header="X-API-Key",
    parse=parse,
    default_interval=300.0,
    # /usage allows 300 req/min but an excess bans the key (and the customer's real
    # traffic) for a minute; once a minute is plenty for a monthly quota.
    min_interval=60.0,
    rate_limit_cooldown=_BAN_SECONDS,
    docs_url="https://docs.vidnavigator.com/api-reference/endpoint/usage",
)
