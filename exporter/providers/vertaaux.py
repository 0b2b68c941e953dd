"""VertaaUX: GET /api/v1/quota with the key in `X-API-Key`.

The bare body `{plan, credits_total, credits_used, credits_remaining, reset_date}` is
one daily audit-credit allowance, exported as the single `credits` meter
(docs/providers/vertaaux.md). Mapping decisions:

* limit / remaining / reset come from the body; each falls back to its documented
  `X-RateLimit-Limit` / `-Remaining` / `-Reset` header only when the body field is
  null or missing. A body value that is present but bad is never papered over by a
  header: that would hide a changed body format.
* Enterprise has "no hard limits" but the encoding is undocumented, so when
  `plan == "enterprise"` a total (after the header fallback) that is null, missing,
  negative, non-numeric or `"unlimited"` means unlimited; so does such a remaining.
  On any other plan a negative, non-numeric or `"unlimited"` value is a parse problem
  that costs the meter (every other tier has a number, so a strange value means the
  body changed); a total missing from body and headers keeps the meter without a
  limit (missing = unknown) but is still reported as a problem (docs/providers/vertaaux.md).
* `used` is only ever the vendor's `credits_used`; remaining is left to
  `MeterReading.effective_remaining` when neither body nor header gives it.
* No period start: the window is documented as daily to midnight UTC, but the body
  says "billing period" and nothing gives the start, so none is invented.
* Errors use `{error: <code>, message, details?, request_id?}`. 401 is `auth`;
  a 403 is `forbidden` unless its code says the key itself is bad (docs/providers/);
  the quota codes `rate_limit_exceeded` / `quota_exceeded` are `rate_limited` on any
  4xx, since the status of `quota_exceeded` is only inferred. `Retry-After` (seconds
  or HTTP date) is passed on; VertaaUX sends it, so no extra cooldown is needed.
* Alerts: the free plan's `credits` meter (3 audits a day) runs out daily by design,
  so its default alert settings (`FREE_PLAN_ALERTS`) switch the threshold, exhausted
  and forecast alerts off for it; an account's `alerts:` in the config overrides them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from exporter.model import AlertDefault, AlertSettings, MeterReading, PollError, Readings, Reason
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
    one_line,
    retry_after_seconds,
    timestamp,
    unrecognised,
)

_METER = "credits"
_UNIT = "credits"
_ENTERPRISE = "enterprise"

# Body fields and the headers that stand in for them when the body lacks them.
_TOTAL = ("credits_total", "x-ratelimit-limit")
_REMAINING = ("credits_remaining", "x-ratelimit-remaining")
_RESET = ("reset_date", "x-ratelimit-reset")
_USED = "credits_used"

# Error codes that mean the key itself is rejected, whatever the status says.
_AUTH_CODES = frozenset({"unauthorized", "api_key_invalid", "api_key_revoked"})
# Error codes that mean "too much, come back later".
_RATE_CODES = frozenset({"rate_limit_exceeded", "quota_exceeded"})

# Longer than this, a `plan` value is not a plan name (one_line cuts vendor free
# text for messages to the same length).
_TEXT_CHARS = 200


class _Unlimited:
    """Marker for a value the vendor uses to say "no cap"."""


_UNLIMITED = _Unlimited()


def parse(status: int, headers: Headers, body: bytes) -> Readings:
    if status != 200:
        raise _error(status, headers, body)
    data = json_object(status, body)
    plan = label_value(data.get("plan"))
    if plan is not None and len(plan) > _TEXT_CHARS:
        # `plan` is an enum; something this long is not a plan name and would make
        # an absurd label value.
        plan = None
    enterprise = plan is not None and plan.lower() == _ENTERPRISE

    if not _has_credit_fields(data, headers):
        # Without any of these the answer is not a quota answer at all (an HTML
        # page served with 200, a different endpoint behind a proxy...).
        raise unrecognised(status, body, "no credits fields or X-RateLimit headers")

    results, problems = gather(
        {
            "reset": lambda: _source_timestamp(data, headers, _RESET),
            "credits": lambda: _credits(data, headers, enterprise=enterprise),
        }
    )
    meters: tuple[MeterReading, ...] = ()
    credits = results.get("credits")
    if credits is not None:
        reading, problem = credits
        # A bad reset_date is reported as a problem but does not cost the counts.
        meters = (_with_reset(reading, results.get("reset")),)
        if problem is not None:
            problems = (*problems, problem)
    account_info = (("plan", plan),) if plan is not None else ()
    return Readings(meters=meters, account_info=account_info, problems=problems)


def _has_credit_fields(data: dict[str, Any], headers: Headers) -> bool:
    body_keys = (_TOTAL[0], _REMAINING[0], _USED)
    header_keys = (_TOTAL[1], _REMAINING[1])
    return any(k in data for k in body_keys) or any(k in headers for k in header_keys)


def _raw(data: dict[str, Any], headers: Headers, source: tuple[str, str]) -> tuple[Any, str]:
    """The body value, else the header's; with the name to blame in a problem."""
    field, header = source
    value = data.get(field)
    if value is not None:
        return value, field
    if header in headers:
        return headers[header], f"header {header}"
    return None, field


def _source_timestamp(data: dict[str, Any], headers: Headers, source: tuple[str, str]) -> Any:
    value, where = _raw(data, headers, source)
    return timestamp(value, where)


def _credits(
    data: dict[str, Any], headers: Headers, *, enterprise: bool
) -> tuple[MeterReading, str | None]:
    """The credits meter, plus a problem that did not cost it (missing total)."""
    used = number(data.get(_USED), _USED)
    if used is not None and used < 0:
        raise FieldError(f"{_USED}: expected a non-negative number, got {data.get(_USED)!r}")

    total = _amount(*_raw(data, headers, _TOTAL), enterprise=enterprise)
    remaining = _amount(*_raw(data, headers, _REMAINING), enterprise=enterprise)
    if total is None and enterprise:
        # Enterprise with no total anywhere: the tier is documented as unlimited.
        total = _UNLIMITED
    if isinstance(total, _Unlimited) or isinstance(remaining, _Unlimited):
        return MeterReading(_METER, _UNIT, used=used, unlimited=True), None
    if total is None and used is None and remaining is None:
        raise FieldError(f"{_TOTAL[0]}, {_USED}, {_REMAINING[0]}: all null")
    problem = None
    if total is None:
        # Every non-enterprise tier has a documented number; its absence means the
        # answer is incomplete, which the parse counter should show.
        problem = f"{_TOTAL[0]}: missing, and no {_TOTAL[1]} header, on a non-enterprise plan"
    return MeterReading(_METER, _UNIT, used=used, limit=total, remaining=remaining), problem


def _amount(value: Any, where: str, *, enterprise: bool) -> float | _Unlimited | None:
    """A limit or remaining figure; the unlimited marker only for enterprise."""
    if value is None:
        return None
    if enterprise and is_unlimited(value):
        return _UNLIMITED
    try:
        result = number(value, where)
    except FieldError:
        if enterprise:
            # docs/providers/vertaaux.md: enterprise encoding undocumented; non-numeric = unlimited.
            return _UNLIMITED
        raise
    if result is not None and result < 0:
        if enterprise:
            # A negative sentinel (-1) is a common "no cap" encoding.
            return _UNLIMITED
        raise FieldError(f"{where}: expected a non-negative number, got {value!r}")
    return result


def _with_reset(reading: MeterReading, reset: Any) -> MeterReading:
    if not isinstance(reset, float):
        return reading
    return dataclasses.replace(reading, reset_timestamp=reset)


# --- errors -------------------------------------------------------------------------


def _error(status: int, headers: Headers, body: bytes) -> PollError:
    data = decode_json(body)
    code = _clip(data.get("error")) if isinstance(data, dict) else None
    if not isinstance(data, dict) or code is None:
        # Not the VertaaUX envelope (gateway HTML on 502, say): status alone decides.
        return classify_http_error(status, headers, body)

    reason = _reason(status, code)
    parts = [code]
    message = _clip(data.get("message"))
    if message is not None and message != code:
        parts.append(message)
    text = f"HTTP {status}: " + ": ".join(parts)
    details = data.get("details")
    revoked_at = _clip(details.get("revoked_at")) if isinstance(details, dict) else None
    if revoked_at is not None:
        text += f" (revoked at {revoked_at})"
    # The request id is what VertaaUX support asks for; it identifies the call, not
    # the key.
    request_id = _clip(data.get("request_id")) or _clip(headers.get("x-request-id"))
    if request_id is not None:
        text += f" [request_id {request_id}]"
    return PollError(
        reason,
        text,
        status=status,
        retry_after=retry_after_seconds(headers),
        body_excerpt=excerpt(body),
    )


def _reason(status: int, code: str) -> Reason:
    if status == 401:
        return Reason.AUTH
    if 400 <= status < 500 and code in _RATE_CODES:
        return Reason.RATE_LIMITED
    if status == 403 and code in _AUTH_CODES:
        # docs/providers/vertaaux.md, Errors: a 403 that says the key is bad is an auth problem.
        return Reason.AUTH
    # Everything else as for any vendor (402 payment, 403 forbidden, 5xx server...).
    return classify_http_error(status, {}, b"").reason


def _clip(value: Any) -> str | None:
    text = label_value(value)
    return None if text is None else one_line(text)


def _sandbox_key_warning(api_key: str) -> str | None:
    # vx_test_ keys hit the sandbox: no quota is consumed, so the numbers polled
    # with one say nothing about production usage.
    if api_key.startswith("vx_test_"):
        return "this is a vx_test_ sandbox key: its quota does not reflect live usage"
    return None


# The free plan's 3 audits a day run out every day by design: neither the threshold
# alerts nor SaasQuotaExhausted (critical above 1) nor the forecasts are news there.
FREE_PLAN_ALERTS = AlertDefault(
    meter=_METER,
    account_info=(("plan", "free"),),
    settings=AlertSettings(warning=math.inf, critical=math.inf, forecast=False),
)


PROVIDER = Provider(
    name="vertaaux",
    default_base_url="https://vertaaux.ai",
    path="/api/v1/quota",
    auth_header="X-API-Key",
    parse=parse,
    default_interval=300.0,
    # Quota answers are cached server-side for 60 s: polling faster re-reads the cache.
    min_interval=60.0,
    rate_limit_cooldown=0.0,
    docs_url="https://vertaaux.ai/docs/api/endpoints/quota",
    key_warning=_sandbox_key_warning,
    alert_defaults=(FREE_PLAN_ALERTS,),
)
