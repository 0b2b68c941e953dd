"""Piloterr: GET /v2/usage with the raw key in `x-api-key` (free: costs no credits).

Mapping decisions (docs/providers/piloterr.md):

* Three credit meters. `api_credits` is `subscription` (plan allowance plus top-ups,
  reset at `period.end`, else `renewal_date`); `extra_credits` is the separate
  `credits` ledger (given/consumed/remaining, never resets); `credits` is the
  top-level spendable total (`total_used`, `remaining`) and has no limit, because
  `total_used` is not period-scoped while `remaining` is.
* A credits-only account reports `subscription.total == 0`: that is "no subscription",
  a real cap of 0, never unlimited, and its period/renewal dates (if any) describe no
  subscription, so `api_credits` gets no reset or period start.
* `percent_used` is ignored: every ledger gives used/total/remaining, the ratio comes
  from recording rules, and the vendor percentage is rounded (77 for 1550/2000).
* Per-key caps `api_key.quotas.{total,daily,weekly,monthly}` become limit-only
  `key_requests_*` meters (usage against them is not reported). A null cap emits no
  meter at all, not an unlimited flag (docs/providers/README.md: the one exception).
* `rate_limit.per_{minute,second}` go to `Readings.rate_limits`; null (= unlimited)
  is omitted. `api_key.expires` (null = never) is the key expiry, `api_key.active`
  the key-active gauge; plan (legacy body), key alias and key category are info
  labels. `account.name` is free text and is not exported.
* The legacy body `{"plan", "remaining", "renewal_date"}` (old path) needs no special
  case: only `credits` (remaining only) and the `plan` label come out of it.
* Errors: Piloterr answers per-key quota exhaustion with a 401 whose message starts
  with "Rate limit exceeded"; that is `rate_limited`, not `auth`. Older docs put
  inactive/expired keys under 400, so a 400 naming an invalid, inactive or expired key
  is `auth` too. Everything else follows the shared classification.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from exporter.model import MeterReading, PollError, Readings, Reason
from exporter.providers.base import (
    FieldError,
    Headers,
    Provider,
    classify_http_error,
    decode_json,
    error_message,
    excerpt,
    gather,
    is_unlimited,
    json_object,
    label_value,
    number,
    obj,
    retry_after_seconds,
    timestamp,
    unrecognised,
)

# api_key.quotas field -> meter. Fixed order: Readings must be deterministic.
_KEY_QUOTAS: tuple[tuple[str, str], ...] = (
    ("total", "key_requests_lifetime"),
    ("daily", "key_requests_rolling_24h"),
    ("weekly", "key_requests_rolling_7d"),
    ("monthly", "key_requests_rolling_30d"),
)

# rate_limit field -> window label of saas_quota_rate_limit_requests.
_RATE_LIMITS: tuple[tuple[str, str], ...] = (
    ("per_minute", "minute"),
    ("per_second", "second"),
)

# Body field -> account_info label, sorted by label name.
_INFO: tuple[tuple[tuple[str, ...], str], ...] = (
    (("api_key", "alias"), "key_alias"),
    (("api_key", "category"), "key_category"),
    (("plan",), "plan"),
)

# Piloterr's per-key quota exhaustion message (sent with 401, older docs: 400).
_RATE_LIMIT_PREFIX = "rate limit exceeded"
_AUTH_WORDS = ("invalid api key", "inactive api key", "expired api key")


def parse(status: int, headers: Headers, body: bytes) -> Readings:
    if status != 200:
        raise _error(status, headers, body)
    data = json_object(status, body)

    parts: dict[str, Callable[[], Any]] = {
        "api_credits": lambda: _api_credits(data),
        "extra_credits": lambda: _extra_credits(data),
        "credits": lambda: _credits(data),
    }
    for field, meter in _KEY_QUOTAS:
        parts[meter] = _key_quota_part(data, field, meter)
    for field, window in _RATE_LIMITS:
        parts[f"rate_limit.{window}"] = _rate_limit_part(data, field)
    parts["account_info"] = lambda: _account_info(data)
    parts["expiry"] = lambda: _key_expiry(data)
    parts["active"] = lambda: _key_active(data)
    results, problems = gather(parts)

    meters = tuple(
        results[name]
        for name in ("api_credits", "extra_credits", "credits", *(m for _, m in _KEY_QUOTAS))
        if results.get(name) is not None
    )
    rate_limits = tuple(
        (window, results[f"rate_limit.{window}"])
        for _, window in _RATE_LIMITS
        if results.get(f"rate_limit.{window}") is not None
    )
    # Several parts read api_key/quotas; a malformed object is one problem, not four.
    problems = tuple(dict.fromkeys(problems))
    if not meters and not problems:
        raise unrecognised(status, body, "no usage fields")
    return Readings(
        meters=meters,
        account_info=results.get("account_info", ()),
        api_key_expiry_timestamp=results.get("expiry"),
        api_key_active=results.get("active"),
        rate_limits=rate_limits,
        problems=problems,
    )


# --- meters -----------------------------------------------------------------------


def _ledger(
    entry: dict[str, Any], where: str, used_key: str, limit_key: str, meter: str
) -> MeterReading:
    """used/limit/remaining of one ledger; "unlimited" in limit or remaining wins."""
    raw_limit, raw_remaining = entry.get(limit_key), entry.get("remaining")
    used = number(entry.get(used_key), f"{where}.{used_key}")
    # Undocumented for Piloterr, but docs/providers/README.md makes "unlimited" a global rule.
    if is_unlimited(raw_limit) or is_unlimited(raw_remaining):
        return MeterReading(meter, "credits", used=used, unlimited=True)
    limit = number(raw_limit, f"{where}.{limit_key}")
    remaining = number(raw_remaining, f"{where}.remaining")
    if used is None and limit is None and remaining is None:
        raise FieldError(f"{where}: none of {used_key}, {limit_key}, remaining given")
    return MeterReading(meter, "credits", used=used, limit=limit, remaining=remaining)


def _api_credits(data: dict[str, Any]) -> MeterReading | None:
    subscription = obj(data, "subscription")
    if subscription is None:
        return None  # legacy body
    reading = _ledger(subscription, "subscription", "used", "total", "api_credits")
    if reading.limit == 0:
        # Credits-only account: no subscription, so no period to reset.
        return reading
    period = obj(data, "period")
    start = end = None
    if period is not None:
        start = timestamp(period.get("start"), "period.start")
        end = timestamp(period.get("end"), "period.end")
    if end is None:
        end = timestamp(data.get("renewal_date"), "renewal_date")
    return replace(reading, reset_timestamp=end, period_start_timestamp=start)


def _extra_credits(data: dict[str, Any]) -> MeterReading | None:
    ledger = obj(data, "credits")
    if ledger is None:
        return None
    # given 0 (no extra credits granted) is a real cap of 0, like every 0 limit.
    return _ledger(ledger, "credits", "consumed", "given", "extra_credits")


def _credits(data: dict[str, Any]) -> MeterReading | None:
    # No limit: remaining is "spendable now" while total_used spans all periods,
    # so remaining + used is not a cap of anything.
    used = number(data.get("total_used"), "total_used")
    remaining = number(data.get("remaining"), "remaining")
    if used is None and remaining is None:
        return None
    return MeterReading("credits", "credits", used=used, remaining=remaining)


def _quotas(data: dict[str, Any]) -> dict[str, Any] | None:
    api_key = obj(data, "api_key")
    return None if api_key is None else obj(api_key, "quotas", "api_key.")


def _key_quota_part(data: dict[str, Any], field: str, meter: str) -> Callable[[], Any]:
    def build() -> MeterReading | None:
        quotas = _quotas(data)
        if quotas is None:
            return None
        raw = quotas.get(field)
        if is_unlimited(raw):
            raw = None  # same meaning as null: no cap, and so no meter
        limit = number(raw, f"api_key.quotas.{field}")
        if limit is None:
            return None
        # Rolling windows (24 h / 7 d / 30 d) and an all-time cap: no reset timestamp.
        return MeterReading(meter, "requests", limit=limit)

    return build


# --- key and account --------------------------------------------------------------


def _rate_limit_part(data: dict[str, Any], field: str) -> Callable[[], Any]:
    def build() -> float | None:
        rate_limit = obj(data, "rate_limit")
        if rate_limit is None:
            return None
        raw = rate_limit.get(field)
        # null means unlimited: there is no request-rate cap to export.
        return None if is_unlimited(raw) else number(raw, f"rate_limit.{field}")

    return build


def _account_info(data: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    info: list[tuple[str, str]] = []
    for path, label in _INFO:
        value: Any = data
        for key in path[:-1]:
            value = obj(value, key)
            if value is None:
                break
        if value is None:
            continue
        text = label_value(value.get(path[-1]))
        if text is not None:
            info.append((label, text))
    return tuple(info)


def _key_expiry(data: dict[str, Any]) -> float | None:
    api_key = obj(data, "api_key")
    # null = never expires: no expiry series.
    return None if api_key is None else timestamp(api_key.get("expires"), "api_key.expires")


def _key_active(data: dict[str, Any]) -> bool | None:
    api_key = obj(data, "api_key")
    if api_key is None or api_key.get("active") is None:
        return None
    active = api_key["active"]
    if not isinstance(active, bool):
        raise FieldError(f"api_key.active: expected a boolean, got {active!r}")
    return active


# --- errors -----------------------------------------------------------------------


def _error(status: int, headers: Headers, body: bytes) -> PollError:
    message = error_message(decode_json(body))
    lowered = (message or "").strip().lower()
    if status in (400, 401) and lowered.startswith(_RATE_LIMIT_PREFIX):
        # Per-key quota (total/daily/weekly/monthly) used up: the key is valid, it
        # is just out of requests until the rolling window frees some.
        return PollError(
            Reason.RATE_LIMITED,
            f"HTTP {status}: {message} (per-key quota reached, not an auth failure)",
            status=status,
            retry_after=retry_after_seconds(headers),
            body_excerpt=excerpt(body),
        )
    if status == 400 and any(word in lowered for word in _AUTH_WORDS):
        # Older Piloterr status tables sent inactive/expired keys as 400.
        return PollError(
            Reason.AUTH,
            f"HTTP {status}: {message}",
            status=status,
            body_excerpt=excerpt(body),
        )
    return classify_http_error(status, headers, body)


PROVIDER = Provider(
    name="piloterr",
    default_base_url="https://api.piloterr.com",
    path="/v2/usage",
    auth_header="x-api-key",
    parse=parse,
    docs_url="https://docs.piloterr.com/usage",
)
