"""Tornado API: GET /usage with the raw key in `x-api-key`.

One bare JSON object whose fields depend on the key type (docs/providers/tornado.md,
Response): every key has `client_name`, `usage_count` and `storage_usage_gb` (newer
docs add `storage_reserved_gb` / `storage_effective_usage_gb`); Stripe-billed keys add
`billing_period_start/end` and `current_period_usage_gb` (or `billing_error` when the
vendor's billing lookup failed); trial / limited keys add `storage_limit_gb`,
`storage_limit_bytes` and `storage_remaining_gb`; any key may carry `max_*` caps.

Mapping decisions:

* Meters: `storage_bytes` (used = effective usage, the figure quota enforcement
  uses; limit and remaining only on limited keys), `storage_reserved_bytes`,
  `jobs` (lifetime `usage_count`) and `billing_period_transfer_bytes` (reset =
  `billing_period_end`, period start = `billing_period_start`). A field the key type
  does not carry is an absent meter or series, never 0.
* GB to bytes: one factor for every GB field, `storage_limit_bytes /
  storage_limit_gb` when the body gives both (the vendor's own definition of a GB),
  else 2**30 (docs/providers/README.md, Parsing rules: binary reading inferred from "1 TB").
* `billing_period_*` come as ISO strings (docs) or epoch seconds (public SDK); epoch
  milliseconds are accepted defensively. `base.timestamp` handles all three.
* `max_duration_limit_seconds` and `max_filesize_limit_bytes` (else MB x 2**20) are
  per-request caps, not consumed quota: `Readings.key_caps`. `max_resolution_limit` is
  a string ("720"), so it is an info label.
* `client_name` (one per key, so low-cardinality) and `max_resolution_limit` go to
  account_info; `billing_error` becomes `billing_error="1"` there plus a warning that
  carries the vendor's text, and the other values are kept.
* Errors use `{"error": "<text>"}`; Tornado has no vendor-specific status rule, so the
  default classification applies (401 auth, 403 forbidden, 5xx server ...).
"""

from __future__ import annotations

from typing import Any

from exporter.model import MeterReading, Readings
from exporter.providers.base import (
    FieldError,
    Headers,
    Provider,
    classify_http_error,
    gather,
    is_unlimited,
    json_object,
    label_value,
    number,
    one_line,
    timestamp,
    unrecognised,
)

# docs/providers/README.md, Parsing rules: the default when the body defines no GB itself.
_DEFAULT_GB = float(2**30)
# docs/providers/tornado.md, Labels: `max_filesize_limit_mb` x 2**20 (inferred, binary).
_MB = float(2**20)
# client_name is customer-chosen text; one value per key keeps it low-cardinality,
# but a label value should still stay short and on one line.
_MAX_LABEL_CHARS = 100


def parse(status: int, headers: Headers, body: bytes) -> Readings:
    if status != 200:
        # 401 missing/invalid key, 403 storage quota (job creation only), 5xx and
        # gateway HTML: nothing Tornado-specific, the shared rules fit (docs/providers/README.md).
        raise classify_http_error(status, headers, body)
    data = json_object(status, body)
    factor = _gb_factor(data)

    meter_results, meter_problems = gather(
        {
            "storage_bytes": lambda: _storage(data, factor),
            "storage_reserved_bytes": lambda: _gb_used(
                data, "storage_reserved_gb", "storage_reserved_bytes", factor
            ),
            "jobs": lambda: _jobs(data),
            "billing_period_transfer_bytes": lambda: _billing_period(data, factor),
        }
    )
    meters = tuple(m for m in meter_results.values() if m is not None)

    cap_results, cap_problems = gather(
        {
            "max_duration_seconds": lambda: number(
                data.get("max_duration_limit_seconds"), "max_duration_limit_seconds"
            ),
            "max_filesize_bytes": lambda: _max_filesize(data),
        }
    )
    key_caps = tuple((cap, value) for cap, value in cap_results.items() if value is not None)

    info_results, info_problems = gather(
        {
            "client_name": lambda: _label(data, "client_name"),
            "max_resolution_limit": lambda: _label(data, "max_resolution_limit"),
        }
    )
    account_info = [(name, value) for name, value in info_results.items() if value is not None]

    warnings: tuple[str, ...] = ()
    billing_error = data.get("billing_error")
    if billing_error not in (None, "", False):
        # The vendor could not reach its billing backend: the billing-period fields are
        # missing this time, but the lifetime counters are still good, so keep them and
        # flag the account instead of failing the poll.
        account_info.append(("billing_error", "1"))
        text = billing_error if isinstance(billing_error, str) else repr(billing_error)
        # one_line, not excerpt(text.encode()): vendor text may hold a lone surrogate,
        # which cannot be encoded; one_line makes any string safe.
        warnings = (f"Tornado billing lookup failed: {one_line(text)}",)

    problems = meter_problems + cap_problems + info_problems
    if not meters and not problems:
        # Not a /usage body (e.g. the legacy /dashboard/billing answer, or an error
        # envelope with status 200): exporting nothing silently would hide it.
        raise unrecognised(status, body, "no Tornado usage fields")
    return Readings(
        meters=meters,
        account_info=tuple(sorted(account_info)),
        key_caps=key_caps,
        problems=problems,
        warnings=warnings,
    )


def _gb_factor(data: dict[str, Any]) -> float:
    """Bytes per Tornado "GB": the body's own ratio when it has one, else 2**30.

    A malformed limit field is not reported here: `_storage` reads the same fields and
    reports it against its meter, and the other GB meters fall back to the default.
    """
    try:
        limit_bytes = number(data.get("storage_limit_bytes"), "storage_limit_bytes")
        limit_gb = number(data.get("storage_limit_gb"), "storage_limit_gb")
    except FieldError:
        return _DEFAULT_GB
    if limit_bytes is None or limit_gb is None or limit_bytes <= 0 or limit_gb <= 0:
        # A 0 GB cap (or a missing half) defines no ratio.
        return _DEFAULT_GB
    return limit_bytes / limit_gb


def _gb(data: dict[str, Any], field: str, factor: float) -> float | None:
    value = number(data.get(field), field)
    return None if value is None else value * factor


def _storage(data: dict[str, Any], factor: float) -> MeterReading | None:
    # Effective usage (usage + reserved) is what the vendor enforces the quota on.
    # Older bodies lack it: rebuild it from its parts, else plain lifetime usage.
    used: float | None
    if data.get("storage_effective_usage_gb") is not None:
        used = _gb(data, "storage_effective_usage_gb", factor)
    else:
        usage = number(data.get("storage_usage_gb"), "storage_usage_gb")
        reserved = number(data.get("storage_reserved_gb"), "storage_reserved_gb")
        used = None if usage is None else (usage + (reserved or 0.0)) * factor

    limit_fields = ("storage_limit_bytes", "storage_limit_gb", "storage_remaining_gb")
    said_unlimited = [f for f in limit_fields if is_unlimited(data.get(f))]
    if said_unlimited:
        # Not documented, but docs/providers/README.md reads "unlimited" as unlimited everywhere;
        # a body that also gives a number for the cap contradicts itself.
        numeric = [f for f in limit_fields if f not in said_unlimited and data.get(f) is not None]
        if numeric:
            first = numeric[0]
            raise FieldError(
                f"{said_unlimited[0]}: 'unlimited' contradicts {first}={data.get(first)!r}"
            )
        return MeterReading("storage_bytes", "bytes", used=used, unlimited=True)

    # The byte figure is authoritative (no rounding); GB x factor only without it.
    limit = number(data.get("storage_limit_bytes"), "storage_limit_bytes")
    if limit is None:
        limit = _gb(data, "storage_limit_gb", factor)
    remaining = _gb(data, "storage_remaining_gb", factor)
    if used is None and limit is None and remaining is None:
        return None
    return MeterReading("storage_bytes", "bytes", used=used, limit=limit, remaining=remaining)


def _gb_used(data: dict[str, Any], field: str, meter: str, factor: float) -> MeterReading | None:
    used = _gb(data, field, factor)
    return None if used is None else MeterReading(meter, "bytes", used=used)


def _jobs(data: dict[str, Any]) -> MeterReading | None:
    # Lifetime and monotonic (each batch episode is one job): no limit, no reset.
    used = number(data.get("usage_count"), "usage_count")
    return None if used is None else MeterReading("jobs", "jobs", used=used)


def _billing_period(data: dict[str, Any], factor: float) -> MeterReading | None:
    used = _gb(data, "current_period_usage_gb", factor)
    start = timestamp(data.get("billing_period_start"), "billing_period_start")
    end = timestamp(data.get("billing_period_end"), "billing_period_end")
    if used is None and start is None and end is None:
        # Not a Stripe-billed key, or the billing lookup failed (billing_error).
        return None
    return MeterReading(
        "billing_period_transfer_bytes",
        "bytes",
        used=used,
        reset_timestamp=end,
        period_start_timestamp=start,
    )


def _max_filesize(data: dict[str, Any]) -> float | None:
    # The byte field is exact; the MB field is the fallback (x 2**20, inferred).
    size = number(data.get("max_filesize_limit_bytes"), "max_filesize_limit_bytes")
    if size is not None:
        return size
    size_mb = number(data.get("max_filesize_limit_mb"), "max_filesize_limit_mb")
    return None if size_mb is None else size_mb * _MB


def _label(data: dict[str, Any], field: str) -> str | None:
    raw = data.get(field)
    value = label_value(raw)
    if value is None:
        if isinstance(raw, dict | list):
            raise FieldError(f"{field}: expected a string, got {type(raw).__name__}")
        return None
    value = " ".join(value.split())
    if len(value) > _MAX_LABEL_CHARS:
        value = value[: _MAX_LABEL_CHARS - 3] + "..."
    return value


PROVIDER = Provider(
    name="tornado",
    default_base_url="https://api.tornadoapi.io",
    path="/usage",
    auth_header="x-api-key",
    parse=parse,
    default_interval=300.0,
    # The docs state no strict rate limits and values only move when jobs run.
    min_interval=60.0,
    # 429 is undocumented; a Retry-After is honoured if one ever comes.
    rate_limit_cooldown=0.0,
    docs_url="https://docs.tornadoapi.io/api-reference/user/get-usage",
)
