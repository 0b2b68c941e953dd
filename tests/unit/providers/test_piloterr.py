"""Piloterr adapter against the recorded responses in tests/fixtures/piloterr/.

Timestamps are date-only strings read as 00:00 UTC; the Unix seconds below were
worked out by hand from 2026-01-01T00:00Z = 1767225600 plus whole days of 86400 s.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from exporter.model import MeterReading, PollError, Readings, Reason
from exporter.providers.piloterr import PROVIDER, parse
from tests.unit.providers.fixtures import edited, recorded

DAY = 86400
JAN_1_2026 = 1767225600
MAR_25 = JAN_1_2026 + (31 + 28 + 24) * DAY  # 1774396800
APR_25 = JAN_1_2026 + (31 + 28 + 31 + 24) * DAY  # 1777075200
APR_28 = APR_25 + 3 * DAY  # 1777334400
MAY_1 = JAN_1_2026 + (31 + 28 + 31 + 30) * DAY  # 1777593600
MAY_10 = MAY_1 + 9 * DAY  # 1778371200
MAY_28 = MAY_1 + 27 * DAY  # 1779926400
JUN_1 = MAY_1 + 31 * DAY  # 1780272000
JUN_10 = JUN_1 + 9 * DAY  # 1781049600
JUN_30 = JUN_1 + 29 * DAY  # 1782777600

PRODUCTION_KEY = (("key_alias", "production"), ("key_category", "production"))


def _readings(name: str) -> Readings:
    readings = parse(200, {}, recorded("piloterr", name).body)
    assert readings.problems == ()
    return readings


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def _base() -> dict[str, Any]:
    """The documented example as a dict, for edge cases no fixture covers."""
    data: dict[str, Any] = json.loads(recorded("piloterr", "usage").body)
    return data


def test_timestamps_worked_by_hand() -> None:
    # Guards the hand arithmetic above, so a typo there cannot pass silently.
    assert (MAR_25, APR_25, APR_28, MAY_1, MAY_10) == (
        1774396800,
        1777075200,
        1777334400,
        1777593600,
        1778371200,
    )
    assert (MAY_28, JUN_1, JUN_10, JUN_30) == (1779926400, 1780272000, 1781049600, 1782777600)


def test_documented_usage() -> None:
    readings = _readings("usage")
    assert readings == Readings(
        meters=(
            MeterReading(
                "api_credits",
                "credits",
                used=1550,
                limit=2000,
                remaining=450,
                reset_timestamp=APR_25,
                period_start_timestamp=MAR_25,
            ),
            # given 0: no extra credits granted is a real cap of 0, not unlimited.
            MeterReading("extra_credits", "credits", used=0, limit=0, remaining=0),
            MeterReading("credits", "credits", used=1550, remaining=450),
            # All four per-key caps are null: no key_requests_* meter at all.
        ),
        account_info=PRODUCTION_KEY,
        api_key_expiry_timestamp=None,
        api_key_active=True,
        rate_limits=(),
    )
    assert not any(m.unlimited for m in readings.meters)


def test_credits_only_account_has_zero_subscription_cap_and_no_reset() -> None:
    readings = _readings("usage_credits_only")
    assert readings == Readings(
        meters=(
            MeterReading("api_credits", "credits", used=0, limit=0, remaining=0),
            MeterReading("extra_credits", "credits", used=169, limit=1012473, remaining=1012304),
            MeterReading("credits", "credits", used=169, remaining=1012304),
        ),
        account_info=(("key_alias", "one"), ("key_category", "development")),
        api_key_active=True,
    )
    api_credits = readings.meters[0]
    assert api_credits.unlimited is False
    assert api_credits.effective_remaining == 0


def test_legacy_body_gives_credits_remaining_and_plan_only() -> None:
    readings = _readings("usage_legacy")
    assert readings == Readings(
        meters=(MeterReading("credits", "credits", remaining=44),),
        account_info=(("plan", "50 credits once"),),
    )
    assert readings.meters[0].limit is None
    assert readings.api_key_active is None
    assert readings.api_key_expiry_timestamp is None


def test_topup_fills_both_ledgers() -> None:
    readings = _readings("usage_with_topup")
    assert readings.meters == (
        MeterReading(
            "api_credits",
            "credits",
            used=800,
            limit=2000,
            remaining=1200,
            reset_timestamp=JUN_10,
            period_start_timestamp=MAY_10,
        ),
        MeterReading("extra_credits", "credits", used=100, limit=500, remaining=400),
        MeterReading("credits", "credits", used=900, remaining=1600),
    )
    assert readings.account_info == PRODUCTION_KEY
    assert readings.rate_limits == ()


def test_expiring_key_with_per_key_caps() -> None:
    readings = _readings("usage_expiring_key")
    assert readings == Readings(
        meters=(
            MeterReading(
                "api_credits",
                "credits",
                used=6750,
                limit=25000,
                remaining=18250,
                reset_timestamp=JUN_1,
                period_start_timestamp=MAY_1,
            ),
            MeterReading("extra_credits", "credits", used=0, limit=0, remaining=0),
            MeterReading("credits", "credits", used=6750, remaining=18250),
            # Limit only: Piloterr does not report usage against the per-key caps.
            MeterReading("key_requests_lifetime", "requests", limit=50000),
            MeterReading("key_requests_rolling_24h", "requests", limit=1000),
            MeterReading("key_requests_rolling_7d", "requests", limit=5000),
            MeterReading("key_requests_rolling_30d", "requests", limit=15000),
        ),
        account_info=(("key_alias", "partner-acme"), ("key_category", "partner-acme")),
        api_key_expiry_timestamp=JUN_30,
        api_key_active=True,
    )
    # Rolling windows have no reset time, and with no used figure no remaining either.
    for meter in readings.meters[3:]:
        assert meter.reset_timestamp is None
        assert meter.effective_remaining is None


def test_plan_rate_limits_and_fractional_percent() -> None:
    readings = _readings("usage_rate_limited_plan")
    assert readings.rate_limits == (("minute", 600.0), ("second", 20.0))
    # percent_used 8.8 is not used: the meter carries the exact used/limit instead.
    assert readings.meters[0] == MeterReading(
        "api_credits",
        "credits",
        used=8800,
        limit=100000,
        remaining=91200,
        reset_timestamp=MAY_28,
        period_start_timestamp=APR_28,
    )
    assert readings.meters[2] == MeterReading("credits", "credits", used=8800, remaining=91200)
    assert readings.account_info == (("key_alias", "staging"), ("key_category", "staging"))


def test_exhausted_subscription() -> None:
    readings = _readings("usage_exhausted")
    assert readings.meters == (
        MeterReading(
            "api_credits",
            "credits",
            used=2000,
            limit=2000,
            remaining=0,
            reset_timestamp=JUN_10,
            period_start_timestamp=MAY_10,
        ),
        MeterReading("extra_credits", "credits", used=0, limit=0, remaining=0),
        MeterReading("credits", "credits", used=2000, remaining=0),
    )
    assert readings.meters[0].effective_remaining == 0


# --- edge cases no fixture covers ----------------------------------------------------


def test_reset_falls_back_to_renewal_date_without_period() -> None:
    data = _base()
    data["period"] = None
    readings = parse(200, {}, _json(data))
    assert readings.meters[0] == MeterReading(
        "api_credits",
        "credits",
        used=1550,
        limit=2000,
        remaining=450,
        reset_timestamp=APR_25,
    )


def test_zero_subscription_ignores_dates_even_when_given() -> None:
    data = _base()
    data["subscription"] = {"used": 0, "total": 0, "remaining": 0, "percent_used": 0}
    readings = parse(200, {}, _json(data))
    assert readings.meters[0] == MeterReading(
        "api_credits", "credits", used=0, limit=0, remaining=0
    )


def test_numeric_strings_and_iso_datetime_expiry() -> None:
    data = _base()
    data["subscription"] = {"used": "1550", "total": "2000", "remaining": "450.5"}
    data["remaining"] = "450"
    data["rate_limit"] = {"per_minute": "60", "per_second": None}
    data["api_key"]["expires"] = "2026-06-30T12:00:00Z"
    data["api_key"]["quotas"]["daily"] = "100"
    readings = parse(200, {}, _json(data))
    assert readings.problems == ()
    assert readings.meters[0].remaining == 450.5
    assert readings.meters[0].limit == 2000
    assert readings.meters[2] == MeterReading("credits", "credits", used=1550, remaining=450)
    assert readings.meters[3] == MeterReading("key_requests_rolling_24h", "requests", limit=100)
    assert readings.rate_limits == (("minute", 60.0),)
    assert readings.api_key_expiry_timestamp == JUN_30 + 12 * 3600


def test_zero_per_key_cap_is_a_real_cap() -> None:
    data = _base()
    data["api_key"]["quotas"]["monthly"] = 0
    readings = parse(200, {}, _json(data))
    assert readings.meters[-1] == MeterReading("key_requests_rolling_30d", "requests", limit=0)


@pytest.mark.parametrize("word", ["unlimited", "Unlimited", " UNLIMITED "])
def test_unlimited_string_is_case_insensitive(word: str) -> None:
    data = _base()
    data["subscription"] = {"used": 10, "total": word, "remaining": word}
    data["rate_limit"] = {"per_minute": word, "per_second": 5}
    data["api_key"]["quotas"]["total"] = word
    readings = parse(200, {}, _json(data))
    assert readings.problems == ()
    assert readings.meters[0] == MeterReading(
        "api_credits",
        "credits",
        used=10,
        unlimited=True,
        reset_timestamp=APR_25,
        period_start_timestamp=MAR_25,
    )
    # Rate limit and per-key cap: "unlimited" means the same as null, nothing emitted.
    assert readings.rate_limits == (("second", 5.0),)
    assert [m.meter for m in readings.meters] == ["api_credits", "extra_credits", "credits"]


def test_bad_field_drops_only_its_meter() -> None:
    data = _base()
    data["credits"]["given"] = "lots"
    data["period"]["end"] = "soon"
    data["api_key"]["active"] = "yes"
    data["rate_limit"]["per_second"] = [1]
    readings = parse(200, {}, _json(data))
    assert [m.meter for m in readings.meters] == ["credits"]
    assert readings.problems == (
        "period.end: not a timestamp: 'soon'",
        "credits.given: expected a number, got 'lots'",
        "rate_limit.per_second: expected a number, got list",
        "api_key.active: expected a boolean, got 'yes'",
    )
    # The rest of the answer is still there.
    assert readings.account_info == PRODUCTION_KEY
    assert readings.api_key_active is None


def test_malformed_api_key_object_is_one_problem() -> None:
    data = _base()
    data["api_key"] = "production"
    readings = parse(200, {}, _json(data))
    assert [m.meter for m in readings.meters] == ["api_credits", "extra_credits", "credits"]
    assert readings.problems == ("api_key: expected an object, got str",)
    assert readings.account_info == ()


def test_inactive_key_in_a_200_is_reported() -> None:
    data = _base()
    data["api_key"]["active"] = False
    assert parse(200, {}, _json(data)).api_key_active is False


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"<html>502 Bad Gateway</html>", "not JSON"),
        (b"[]", "JSON list, not an object"),
        (b"{}", "no usage fields"),
        (b'{"account": {"name": "Acme"}}', "no usage fields"),
    ],
)
def test_unusable_200_is_a_parse_error(raw: bytes, fragment: str) -> None:
    with pytest.raises(PollError) as info:
        parse(200, {}, raw)
    assert info.value.reason is Reason.PARSE
    assert fragment in info.value.message


# --- errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason", "message"),
    [
        ("error_400", Reason.HTTP, "HTTP 400: Bad Request"),
        ("error_401_invalid_key", Reason.AUTH, "HTTP 401: Invalid API Key"),
        ("error_401_inactive_key", Reason.AUTH, "HTTP 401: Inactive API Key"),
        (
            "error_401_key_quota_monthly",
            Reason.RATE_LIMITED,
            "HTTP 401: Rate limit exceeded for the API key: quota monthly"
            " (per-key quota reached, not an auth failure)",
        ),
        ("error_402", Reason.PAYMENT, "HTTP 402: Payment required"),
        ("error_429", Reason.RATE_LIMITED, "HTTP 429: Rate limit exceeded"),
        ("error_500", Reason.SERVER, "HTTP 500: Internal Error"),
    ],
)
def test_error_bodies_are_classified(name: str, reason: Reason, message: str) -> None:
    response = recorded("piloterr", name)
    with pytest.raises(PollError) as info:
        parse(response.status, response.headers, response.body)
    assert info.value == PollError(reason, message, status=response.status)


def test_older_400_for_inactive_key_is_auth() -> None:
    with pytest.raises(PollError) as info:
        parse(400, {}, b'{"error": "Inactive API Key"}')
    assert info.value == PollError(Reason.AUTH, "HTTP 400: Inactive API Key", status=400)


def test_retry_after_is_passed_on_for_both_rate_limit_forms() -> None:
    for name in ("error_401_key_quota_monthly", "error_429"):
        response = recorded("piloterr", name)
        with pytest.raises(PollError) as info:
            parse(response.status, {"retry-after": "120"}, response.body)
        assert info.value.reason is Reason.RATE_LIMITED
        assert info.value.retry_after == 120


def test_non_json_5xx_body() -> None:
    with pytest.raises(PollError) as info:
        parse(502, {"content-type": "text/html"}, b"<html><body>Bad gateway</body></html>")
    assert info.value == PollError(
        Reason.SERVER, "HTTP 502: <html><body>Bad gateway</body></html>", status=502
    )


def test_forbidden_account_deactivated() -> None:
    with pytest.raises(PollError) as info:
        parse(403, {}, b'{"error": "Account deactivated"}')
    assert info.value.reason is Reason.FORBIDDEN


def test_provider_metadata() -> None:
    assert PROVIDER.name == "piloterr"
    # docs/providers/piloterr.md: the path appended to a base_url override.
    assert PROVIDER.path == "/v2/usage"
    assert PROVIDER.url(None) == "https://api.piloterr.com/v2/usage"
    assert PROVIDER.url("http://127.0.0.1:9/p/") == "http://127.0.0.1:9/p/v2/usage"
    assert PROVIDER.auth_headers("k") == {"x-api-key": "k"}
    assert (PROVIDER.default_interval, PROVIDER.min_interval) == (300, 60)
    assert PROVIDER.rate_limit_cooldown == 0


# --- figures the model refuses cost only their part ----------------------------------


def test_a_negative_remaining_is_a_parse_problem_for_that_meter() -> None:
    readings = parse(200, {}, edited("piloterr", "usage", {("remaining",): -450}))
    assert "credits" not in {m.meter for m in readings.meters}
    assert {"api_credits", "extra_credits"} <= {m.meter for m in readings.meters}
    assert readings.problems == (
        "meter credits remaining: -450.0 is negative; a quota figure never is",
    )


def test_a_negative_rate_limit_is_dropped_as_a_problem() -> None:
    raw = edited(
        "piloterr",
        "usage",
        {("rate_limit", "per_minute"): -1, ("rate_limit", "per_second"): 5},
    )
    readings = parse(200, {}, raw)
    assert readings.rate_limits == (("second", 5.0),)
    assert readings.problems == ("rate_limits minute: -1.0 is negative; a quota figure never is",)


def test_a_key_alias_with_control_characters_is_one_safe_line() -> None:
    raw = edited("piloterr", "usage", {("api_key", "alias"): "prod\r\n\ud800\x1b[31m"})
    assert dict(parse(200, {}, raw).account_info)["key_alias"] == "prod \ufffd [31m"
