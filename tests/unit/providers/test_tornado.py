"""Tornado API adapter against the recorded responses in tests/fixtures/tornado/."""

from __future__ import annotations

import json

import pytest

from exporter.model import MeterReading, PollError, Readings, Reason
from exporter.providers.tornado import PROVIDER, parse
from tests.unit.providers.fixtures import edited, recorded

GIB = 2**30
# Hand-computed: 2026-05-01T00:00:00Z is 20574 days after the epoch
# (56 years x 365 + 14 leap days 1972..2024 + Jan..Apr 2026 = 31+28+31+30 days),
# 20574 x 86400 = 1777593600; 2026-06-01 is 31 days later: 20605 x 86400.
MAY_1_2026 = 1777593600.0
JUNE_1_2026 = 1780272000.0


def _readings(name: str) -> Readings:
    readings = parse(200, {}, recorded("tornado", name).body)
    assert readings.problems == ()
    return readings


def _raw(text: str) -> Readings:
    return parse(200, {"content-type": "application/json"}, text.encode())


# --- fixtures: one test per key type --------------------------------------------------


def test_no_limit_key_reports_used_only_series() -> None:
    readings = _readings("usage_no_limit")
    assert readings == Readings(
        meters=(
            # Effective usage (usage + reserved) is what the quota is enforced on.
            MeterReading("storage_bytes", "bytes", used=46.19 * GIB),
            MeterReading("storage_reserved_bytes", "bytes", used=0.52 * GIB),
            MeterReading("jobs", "jobs", used=1523),
        ),
        account_info=(("client_name", "My Application"),),
    )
    storage = readings.meters[0]
    assert storage.limit is None
    assert storage.effective_remaining is None
    assert storage.unlimited is False  # no limit field is "unknown", not "unlimited"


def test_oldest_docs_body_with_three_fields_still_works() -> None:
    readings = _readings("usage_no_limit_legacy")
    assert readings == Readings(
        meters=(
            MeterReading("storage_bytes", "bytes", used=45.67 * GIB),
            MeterReading("jobs", "jobs", used=1523),
        ),
        account_info=(("client_name", "My Application"),),
    )


def test_stripe_key_has_billing_period_meter_with_iso_period() -> None:
    readings = _readings("usage_stripe_key")
    assert readings == Readings(
        meters=(
            MeterReading("storage_bytes", "bytes", used=2314.17 * GIB),
            MeterReading("storage_reserved_bytes", "bytes", used=3.75 * GIB),
            MeterReading("jobs", "jobs", used=8841),
            MeterReading(
                "billing_period_transfer_bytes",
                "bytes",
                used=412.88 * GIB,
                reset_timestamp=MAY_1_2026 + 31 * 86400,
                period_start_timestamp=MAY_1_2026,
            ),
        ),
        account_info=(("client_name", "Acme Media"),),
    )
    assert readings.warnings == ()


def test_stripe_key_with_epoch_seconds_period_reads_the_same() -> None:
    iso = _readings("usage_stripe_key")
    epoch = _readings("usage_stripe_key_epoch")
    assert epoch == iso
    billing = epoch.meters[-1]
    assert billing.period_start_timestamp == MAY_1_2026
    assert billing.reset_timestamp == JUNE_1_2026


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("1777593600000", "1780272000000"),  # epoch milliseconds (JSON numbers)
        ('"1777593600"', '"1780272000"'),  # epoch seconds as numeric strings
        ('"2026-05-01T02:00:00+02:00"', '"2026-06-01T00:00:00.000Z"'),  # offset, millis
        ('"2026-05-01"', '"2026-06-01"'),  # date-only: 00:00 UTC
    ],
)
def test_billing_period_accepts_every_documented_time_encoding(start: str, end: str) -> None:
    readings = _raw(
        '{"usage_count": 1, "current_period_usage_gb": 2,'
        f' "billing_period_start": {start}, "billing_period_end": {end}}}'
    )
    assert readings.problems == ()
    assert readings.meters[-1] == MeterReading(
        "billing_period_transfer_bytes",
        "bytes",
        used=2.0 * GIB,
        reset_timestamp=JUNE_1_2026,
        period_start_timestamp=MAY_1_2026,
    )


def test_billing_error_is_flagged_and_other_values_are_kept() -> None:
    readings = _readings("usage_stripe_billing_error")
    assert readings == Readings(
        meters=(
            MeterReading("storage_bytes", "bytes", used=2310.42 * GIB),
            MeterReading("storage_reserved_bytes", "bytes", used=0.0),
            MeterReading("jobs", "jobs", used=8841),
        ),
        account_info=(("billing_error", "1"), ("client_name", "Acme Media")),
        warnings=("Tornado billing lookup failed: Failed to retrieve billing information",),
    )


def test_a_billing_error_with_a_lone_surrogate_is_a_safe_warning() -> None:
    """Found by the parse properties: the warning text used to be encoded, which a
    lone surrogate (valid in json.loads' output) cannot be."""
    raw = json.loads(recorded("tornado", "usage_stripe_billing_error").body)
    raw["billing_error"] = "lookup \ud800 failed"
    readings = parse(200, {}, json.dumps(raw).encode())
    assert readings.warnings == ("Tornado billing lookup failed: lookup \ufffd failed",)


def test_trial_key_takes_limit_from_bytes_and_remaining_from_vendor() -> None:
    readings = _readings("usage_trial_key")
    # factor = 1099511627776 / 1024.0 = 2**30: the body defines its own GB.
    assert readings == Readings(
        meters=(
            MeterReading(
                "storage_bytes",
                "bytes",
                used=314.55 * GIB,
                limit=1099511627776,
                remaining=709.45 * GIB,
            ),
            MeterReading("storage_reserved_bytes", "bytes", used=2.1 * GIB),
            MeterReading("jobs", "jobs", used=2207),
        ),
        account_info=(("client_name", "Trial - Example Co"),),
    )


def test_exhausted_trial_key_has_zero_remaining() -> None:
    readings = _readings("usage_trial_key_exhausted")
    storage = readings.meters[0]
    assert storage == MeterReading(
        "storage_bytes",
        "bytes",
        used=1024.0 * GIB,
        limit=1099511627776,
        remaining=0.0,
    )
    assert storage.used == storage.limit
    assert storage.effective_remaining == 0
    assert readings.meters[1:] == (
        MeterReading("storage_reserved_bytes", "bytes", used=0.2 * GIB),
        MeterReading("jobs", "jobs", used=7310),
    )


def test_key_caps_and_resolution_label() -> None:
    readings = _readings("usage_key_with_limits")
    assert readings == Readings(
        meters=(
            MeterReading("storage_bytes", "bytes", used=3.4 * GIB),
            MeterReading("storage_reserved_bytes", "bytes", used=0.0),
            MeterReading("jobs", "jobs", used=96),
        ),
        account_info=(("client_name", "Partner Sandbox"), ("max_resolution_limit", "720")),
        # The byte field wins over max_filesize_limit_mb (500 x 2**20 = 524288000 too).
        key_caps=(("max_duration_seconds", 600), ("max_filesize_bytes", 524288000)),
    )


def test_legacy_dashboard_billing_body_is_not_mistaken_for_usage() -> None:
    # A 200 that is not a usage answer: the `not_usage_` prefix says so, and
    # tests/unit/providers/test_registry.py holds every such case to this outcome.
    response = recorded("tornado", "not_usage_dashboard_billing_legacy")
    assert response.status == 200
    with pytest.raises(PollError) as info:
        parse(response.status, response.headers, response.body)
    assert info.value.reason is Reason.PARSE
    assert info.value.message.startswith("no Tornado usage fields in response: ")
    assert info.value.status == 200


# --- errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason", "message"),
    [
        ("error_401_missing_key", Reason.AUTH, "HTTP 401: Missing x-api-key header"),
        ("error_401_invalid_key", Reason.AUTH, "HTTP 401: Invalid API Key"),
        # Documented for POST /jobs only; if /usage ever sends it, the message says why.
        (
            "error_403_storage_quota_exceeded",
            Reason.FORBIDDEN,
            "HTTP 403: This API key has a 1024 GB limit and has used 1024.00 GB",
        ),
        ("error_500", Reason.SERVER, "HTTP 500: Internal Server Error"),
    ],
)
def test_error_bodies_are_classified(name: str, reason: Reason, message: str) -> None:
    response = recorded("tornado", name)
    with pytest.raises(PollError) as info:
        parse(response.status, response.headers, response.body)
    assert info.value.reason is reason
    assert info.value.message == message
    assert info.value.status == response.status
    assert info.value.retry_after is None


def test_non_json_gateway_timeout_is_a_server_error() -> None:
    with pytest.raises(PollError) as info:
        parse(504, {"content-type": "text/html"}, b"<html><body>504 Gateway Time-out</body></html>")
    assert info.value.reason is Reason.SERVER
    assert info.value.message == "HTTP 504: <html><body>504 Gateway Time-out</body></html>"


def test_undocumented_429_is_rate_limited_and_honours_retry_after() -> None:
    with pytest.raises(PollError) as info:
        parse(429, {"retry-after": "30"}, b'{"error": "Too Many Requests"}')
    assert info.value.reason is Reason.RATE_LIMITED
    assert info.value.message == "HTTP 429: Too Many Requests"
    assert info.value.retry_after == 30


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"<html>oops</html>", "not JSON"),
        (b'[{"usage_count": 1}]', "JSON list, not an object"),
        (b"{}", "no Tornado usage fields"),
        (b'{"client_name": "only a name"}', "no Tornado usage fields"),
    ],
)
def test_unusable_200_is_a_parse_error(raw: bytes, fragment: str) -> None:
    with pytest.raises(PollError) as info:
        parse(200, {}, raw)
    assert info.value.reason is Reason.PARSE
    assert fragment in info.value.message


# --- edge cases from docs/providers/tornado.md ----------------------------------------


def test_numeric_strings_are_accepted() -> None:
    readings = _raw(
        '{"usage_count": "12", "storage_usage_gb": "1.5", "storage_reserved_gb": "0.5",'
        ' "storage_effective_usage_gb": "2.0", "storage_limit_gb": "10",'
        ' "storage_limit_bytes": "10737418240", "storage_remaining_gb": "8.0",'
        ' "max_duration_limit_seconds": "600"}'
    )
    assert readings.problems == ()
    assert readings.meters == (
        MeterReading(
            "storage_bytes", "bytes", used=2.0 * GIB, limit=10737418240, remaining=8 * GIB
        ),
        MeterReading("storage_reserved_bytes", "bytes", used=0.5 * GIB),
        MeterReading("jobs", "jobs", used=12),
    )
    assert readings.key_caps == (("max_duration_seconds", 600),)


def test_factor_comes_from_the_body_and_applies_to_every_gb_field() -> None:
    # A vendor that meant decimal GB: 100 GB = 1e11 bytes, so factor = 1e9.
    readings = _raw(
        '{"usage_count": 3, "storage_effective_usage_gb": 40, "storage_reserved_gb": 1.5,'
        ' "storage_limit_gb": 100, "storage_limit_bytes": 100000000000,'
        ' "storage_remaining_gb": 60, "current_period_usage_gb": 7}'
    )
    assert readings.problems == ()
    assert readings.meters == (
        MeterReading("storage_bytes", "bytes", used=40e9, limit=1e11, remaining=60e9),
        MeterReading("storage_reserved_bytes", "bytes", used=1.5e9),
        MeterReading("jobs", "jobs", used=3),
        MeterReading("billing_period_transfer_bytes", "bytes", used=7e9),
    )


def test_limit_in_gb_only_uses_the_binary_default() -> None:
    readings = _raw('{"storage_usage_gb": 1, "storage_limit_gb": 5}')
    assert readings.meters == (
        MeterReading("storage_bytes", "bytes", used=1.0 * GIB, limit=5.0 * GIB),
    )
    assert readings.meters[0].effective_remaining == 4.0 * GIB


def test_zero_limit_is_a_real_cap() -> None:
    readings = _raw(
        '{"storage_usage_gb": 0, "storage_limit_gb": 0, "storage_limit_bytes": 0,'
        ' "storage_remaining_gb": 0}'
    )
    storage = readings.meters[0]
    assert storage == MeterReading("storage_bytes", "bytes", used=0.0, limit=0.0, remaining=0.0)
    assert storage.unlimited is False


def test_effective_usage_is_rebuilt_from_usage_plus_reserved() -> None:
    readings = _raw('{"storage_usage_gb": 45.67, "storage_reserved_gb": 0.52}')
    assert readings.meters == (
        MeterReading("storage_bytes", "bytes", used=(45.67 + 0.52) * GIB),
        MeterReading("storage_reserved_bytes", "bytes", used=0.52 * GIB),
    )


@pytest.mark.parametrize("word", ["unlimited", "Unlimited", " UNLIMITED "])
def test_unlimited_storage_limit_is_case_insensitive(word: str) -> None:
    readings = _raw(f'{{"storage_usage_gb": 2, "storage_limit_gb": "{word}"}}')
    assert readings.problems == ()
    storage = readings.meters[0]
    assert storage == MeterReading("storage_bytes", "bytes", used=2.0 * GIB, unlimited=True)
    assert storage.limit is None
    assert storage.effective_remaining is None


def test_unlimited_contradicted_by_a_number_drops_the_storage_meter() -> None:
    readings = _raw(
        '{"usage_count": 1, "storage_usage_gb": 2, "storage_limit_gb": "unlimited",'
        ' "storage_limit_bytes": 1024}'
    )
    assert readings.meters == (MeterReading("jobs", "jobs", used=1),)
    assert readings.problems == (
        "storage_limit_gb: 'unlimited' contradicts storage_limit_bytes=1024",
    )


def test_bad_field_drops_only_its_meter() -> None:
    readings = _raw(
        '{"client_name": "X", "usage_count": "many", "storage_usage_gb": 1,'
        ' "storage_reserved_gb": 0, "storage_effective_usage_gb": 1,'
        ' "billing_period_start": "soon", "billing_period_end": 1780272000,'
        ' "current_period_usage_gb": 2, "max_duration_limit_seconds": true,'
        ' "max_filesize_limit_mb": 5}'
    )
    assert readings.meters == (
        MeterReading("storage_bytes", "bytes", used=1.0 * GIB),
        MeterReading("storage_reserved_bytes", "bytes", used=0.0),
    )
    assert readings.problems == (
        "usage_count: expected a number, got 'many'",
        "billing_period_start: not a timestamp: 'soon'",
        "max_duration_limit_seconds: expected a number, got True",
    )
    # The other cap still comes through, from the MB fallback (x 2**20).
    assert readings.key_caps == (("max_filesize_bytes", 5.0 * 2**20),)
    assert readings.account_info == (("client_name", "X"),)


def test_malformed_limit_costs_the_storage_meter_and_keeps_the_default_factor() -> None:
    readings = _raw(
        '{"storage_usage_gb": 1, "storage_reserved_gb": 0.25, "storage_limit_gb": 10,'
        ' "storage_limit_bytes": "ten"}'
    )
    # Other GB meters still convert, with the 2**30 default.
    assert readings.meters == (MeterReading("storage_reserved_bytes", "bytes", used=0.25 * GIB),)
    assert readings.problems == ("storage_limit_bytes: expected a number, got 'ten'",)


def test_null_fields_are_absent_not_zero() -> None:
    readings = _raw(
        '{"client_name": null, "usage_count": 5, "storage_usage_gb": null,'
        ' "storage_limit_gb": null, "billing_period_start": null, "billing_error": null,'
        ' "max_resolution_limit": null, "max_duration_limit_seconds": null}'
    )
    assert readings == Readings(meters=(MeterReading("jobs", "jobs", used=5),))


def test_resolution_as_number_and_long_client_name_stay_short_labels() -> None:
    name = "Client\n" + "x" * 300
    readings = _raw(
        json.dumps({"usage_count": 1, "max_resolution_limit": 1080, "client_name": name})
    )
    info = dict(readings.account_info)
    assert info["max_resolution_limit"] == "1080"
    assert info["client_name"] == "Client " + "x" * 90 + "..."
    assert len(info["client_name"]) == 100


def test_billing_error_with_billing_fields_keeps_the_billing_meter() -> None:
    readings = _raw(
        '{"usage_count": 1, "current_period_usage_gb": 1,'
        ' "billing_error": "Stripe timeout\\n  retrying later"}'
    )
    assert readings.meters[-1] == MeterReading("billing_period_transfer_bytes", "bytes", used=GIB)
    assert readings.account_info == (("billing_error", "1"),)
    # The warning is one line: the vendor's text is logged, never put in a label.
    assert readings.warnings == ("Tornado billing lookup failed: Stripe timeout retrying later",)


def test_provider_metadata() -> None:
    assert PROVIDER.name == "tornado"
    # docs/providers/tornado.md: the path appended to a base_url override.
    assert PROVIDER.path == "/usage"
    assert PROVIDER.url(None) == "https://api.tornadoapi.io/usage"
    # Older docs used another host: base_url replaces only scheme://host[/prefix].
    assert PROVIDER.url("https://tornado.velys.software/") == "https://tornado.velys.software/usage"
    assert PROVIDER.auth_headers("sk_abc") == {"x-api-key": "sk_abc"}
    assert PROVIDER.default_interval == 300
    assert PROVIDER.min_interval == 60
    assert PROVIDER.rate_limit_cooldown == 0
    assert PROVIDER.docs_url == "https://docs.tornadoapi.io/api-reference/user/get-usage"


# --- figures the model refuses cost only their meter ---------------------------------


def test_gigabytes_that_overflow_when_scaled_cost_only_that_meter() -> None:
    # 1e308 GB x 2**30 is +Inf bytes; the job counter is untouched.
    raw = edited("tornado", "usage_no_limit", {("storage_effective_usage_gb",): 1e308})
    readings = parse(200, {}, raw)
    assert {m.meter for m in readings.meters} == {"storage_reserved_bytes", "jobs"}
    assert readings.problems == (
        "meter storage_bytes used: inf is not a finite number (out of range after scaling)",
    )


def test_a_cap_that_overflows_when_scaled_is_dropped_as_a_problem() -> None:
    raw = edited(
        "tornado",
        "usage_no_limit",
        {("max_filesize_limit_mb",): 1e308, ("max_duration_limit_seconds",): 3600},
    )
    readings = parse(200, {}, raw)
    assert readings.key_caps == (("max_duration_seconds", 3600.0),)
    assert readings.problems == (
        "key_caps max_filesize_bytes: inf is not a finite number (out of range after scaling)",
    )
    assert len(readings.meters) == 3


def test_a_negative_remaining_is_a_parse_problem_for_that_meter() -> None:
    raw = edited("tornado", "usage_trial_key", {("storage_remaining_gb",): -1})
    readings = parse(200, {}, raw)
    assert "storage_bytes" not in {m.meter for m in readings.meters}
    assert "jobs" in {m.meter for m in readings.meters}
    assert readings.problems == (
        "meter storage_bytes remaining: -1073741824.0 is negative; a quota figure never is",
    )


def test_a_client_name_with_a_lone_surrogate_is_valid_utf8() -> None:
    raw = edited("tornado", "usage_no_limit", {("client_name",): "App \ud800\x00 one"})
    info = dict(parse(200, {}, raw).account_info)
    assert info["client_name"] == "App \ufffd one"
