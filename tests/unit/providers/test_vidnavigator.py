"""VidNavigator adapter against the recorded responses in tests/fixtures/vidnavigator/."""

from __future__ import annotations

import json
from typing import Any

import pytest

from exporter.model import MeterReading, PollError, Readings, Reason
from exporter.providers.vidnavigator import PROVIDER, parse
from tests.unit.providers.fixtures import edited, recorded

# Unix seconds, worked out by hand (days since 1970-01-01 x 86400):
OCT_1_2023 = 1696118400  # 19631 days
NOV_1_2023 = 1698796800  # + 31 days (October)
MAR_1_2026 = 1772323200  # 20513 days
APR_1_2026 = 1775001600  # + 31 days (March)
MAY_1_2026 = 1777593600  # + 30 days (April)
JUN_1_2026 = 1780272000  # + 31 days (May)
MAY_5_2026 = 1777939200  # May 1 + 4 days
JUN_5_2026 = 1780617600  # Jun 1 + 4 days

GIB = 2**30


def _readings(name: str) -> Readings:
    readings = parse(200, {}, recorded("vidnavigator", name).body)
    assert readings.problems == ()
    assert readings.warnings == ()
    return readings


def _meters(readings: Readings) -> dict[str, MeterReading]:
    return {m.meter: m for m in readings.meters}


def _json(data: dict[str, Any]) -> bytes:
    """A 200 body in the vendor's success envelope."""
    return json.dumps({"status": "success", "data": data}).encode()


def _service(
    meter: str,
    used: float,
    reset: float,
    start: float,
    limit: float | None = None,
    remaining: float | None = None,
    *,
    unit: str = "requests",
    unlimited: bool = False,
) -> MeterReading:
    return MeterReading(
        meter,
        unit,
        used=used,
        limit=limit,
        remaining=remaining,
        unlimited=unlimited,
        reset_timestamp=reset,
        period_start_timestamp=start,
    )


# --- the three generations -------------------------------------------------------


def test_g1_legacy_uses_current_period_and_has_no_subscription_status() -> None:
    readings = _readings("usage_v1_legacy")
    r, s = NOV_1_2023, OCT_1_2023
    assert _meters(readings) == {
        "transcript_requests": _service("transcript_requests", 150, r, s, 1000, 850),
        "search_requests": _service("search_requests", 300, r, s, 5000, 4700),
        # "unlimited" limit/remaining: unlimited, used kept, no limit/remaining series.
        "analysis_requests": _service("analysis_requests", 75, r, s, unlimited=True),
        # 10 GB in the docs is 10 GiB; capacity, so no reset.
        "storage_bytes": MeterReading(
            "storage_bytes",
            "bytes",
            used=2.5 * GIB,
            limit=10 * GIB,
            remaining=7.5 * GIB,
        ),
    }
    assert readings.account_info == (
        ("plan", "pro"),
        ("plan_name", "Pro Plan"),
        ("schema_generation", "g1"),
    )
    assert _meters(readings)["analysis_requests"].effective_remaining is None


def test_g2_documented_example_maps_every_service() -> None:
    readings = _readings("usage_v2")
    # usage_period (Oct 1 - Nov 1), not billing_period (Oct 15 - Nov 15).
    r, s = NOV_1_2023, OCT_1_2023
    assert _meters(readings) == {
        "transcript_requests": _service("transcript_requests", 150, r, s, 1000, 850),
        "search_requests": _service("search_requests", 300, r, s, 5000, 4700),
        "analysis_requests": _service("analysis_requests", 75, r, s, unlimited=True),
        "scene_analyses": _service("scene_analyses", 50, r, s, 200, 150),
        "channel_scans": _service("channel_scans", 5, r, s, 10, 5),
        # unit "requests": a count, not a duration.
        "uploads": _service("uploads", 20, r, s, 100, 80),
        "storage_bytes": MeterReading(
            "storage_bytes",
            "bytes",
            used=2684354560,
            limit=10737418240,
            remaining=8053063680,
        ),
    }
    assert readings.account_info == (
        ("billing_interval", "month"),
        ("cancel_at_period_end", "false"),
        ("plan", "pro"),
        ("plan_name", "Pro Plan"),
        ("schema_generation", "g2"),
        ("subscription_status", "active"),
    )
    # Deterministic order: sorted by meter id.
    assert [m.meter for m in readings.meters] == sorted(m.meter for m in readings.meters)


def test_g3_credit_pool_counters_channels_and_storage() -> None:
    readings = _readings("usage_v3_credits")
    r, s = JUN_1_2026, MAY_1_2026
    assert _meters(readings) == {
        # used = monthly_total - monthly_remaining = 80 - 58.505, without float noise.
        "credits": MeterReading(
            "credits",
            "credits",
            used=21.495,
            limit=80,
            remaining=58.505,
            reset_timestamp=r,
            period_start_timestamp=s,
        ),
        # Persistent ledger: remaining only, no reset.
        "purchased_credits": MeterReading("purchased_credits", "credits", remaining=50),
        "indexed_channels": MeterReading(
            "indexed_channels", "channels", used=4, limit=15, remaining=11
        ),
        "storage_bytes": MeterReading(
            "storage_bytes",
            "bytes",
            used=45 * GIB,
            limit=500 * GIB,
            remaining=455 * GIB,
        ),
        # Activity counters: used only.
        "standard_requests": _service("standard_requests", 1250, r, s),
        "residential_requests": _service("residential_requests", 740, r, s),
        "search_requests": _service("search_requests", 38, r, s),
        "analysis_requests": _service("analysis_requests", 412, r, s),
        "scene_analyses": _service("scene_analyses", 3, r, s),
        # 6.75 hours = 24300 seconds.
        "transcription_seconds": _service("transcription_seconds", 24300, r, s, unit="seconds"),
    }
    assert readings.account_info == (
        ("billing_interval", "month"),
        ("cancel_at_period_end", "false"),
        ("plan", "voyager"),
        ("plan_name", "Voyager"),
        ("schema_generation", "g3"),
        ("subscription_status", "active"),
    )
    assert readings.api_key_expiry_timestamp is None
    assert readings.api_key_active is None
    assert readings.rate_limits == ()
    assert readings.key_caps == ()


def test_g3_with_the_earlier_counter_key_names() -> None:
    readings = _readings("usage_v3_counter_keys_legacy")
    r, s = APR_1_2026, MAR_1_2026
    assert _meters(readings) == {
        "credits": MeterReading(
            "credits",
            "credits",
            used=6.101,
            limit=15,
            remaining=8.899,
            reset_timestamp=r,
            period_start_timestamp=s,
        ),
        "purchased_credits": MeterReading("purchased_credits", "credits", remaining=0),
        "indexed_channels": MeterReading(
            "indexed_channels", "channels", used=2, limit=3, remaining=1
        ),
        "storage_bytes": MeterReading(
            "storage_bytes",
            "bytes",
            used=3 * GIB,
            limit=50 * GIB,
            remaining=47 * GIB,
        ),
        # G1/G2 names without `unit`, used only (no limits in G3).
        "transcript_requests": _service("transcript_requests", 310, r, s),
        "youtube_transcript_requests": _service("youtube_transcript_requests", 120, r, s),
        "search_requests": _service("search_requests", 14, r, s),
        "analysis_requests": _service("analysis_requests", 57, r, s),
        "scene_analyses": _service("scene_analyses", 1, r, s),
        # video_uploads in hours: 2.5 h = 9000 s, under the time meter id.
        "upload_seconds": _service("upload_seconds", 9000, r, s, unit="seconds"),
    }
    assert ("plan", "navigator") in readings.account_info


def test_g3_unlimited_plan_on_yearly_billing() -> None:
    readings = _readings("usage_v3_unlimited")
    # usage_period (May) is the monthly reset; billing_period ends 2027-01-01.
    r, s = JUN_1_2026, MAY_1_2026
    assert _meters(readings) == {
        # Unlimited credits: no limit, no remaining, and no used figure either.
        "credits": MeterReading(
            "credits", "credits", unlimited=True, reset_timestamp=r, period_start_timestamp=s
        ),
        "purchased_credits": MeterReading("purchased_credits", "credits", remaining=0),
        "indexed_channels": MeterReading("indexed_channels", "channels", used=42, unlimited=True),
        "storage_bytes": MeterReading("storage_bytes", "bytes", used=1319413953331, unlimited=True),
        "standard_requests": _service("standard_requests", 48210, r, s),
        "residential_requests": _service("residential_requests", 9120, r, s),
        "search_requests": _service("search_requests", 830, r, s),
        "analysis_requests": _service("analysis_requests", 2604, r, s),
        "scene_analyses": _service("scene_analyses", 77, r, s),
        # 141.2 h x 3600 is exactly 508320 s (not 508319.99999999994).
        "transcription_seconds": _service("transcription_seconds", 508320, r, s, unit="seconds"),
    }
    assert readings.account_info == (
        ("billing_interval", "year"),
        ("cancel_at_period_end", "false"),
        ("plan", "odyssey"),
        ("plan_name", "Odyssey"),
        ("schema_generation", "g3"),
        ("subscription_status", "active"),
    )


def test_g3_trial_exhausted_has_zero_remaining_everywhere() -> None:
    readings = _readings("usage_v3_trial_exhausted")
    r, s = JUN_5_2026, MAY_5_2026
    meters = _meters(readings)
    assert meters == {
        "credits": MeterReading(
            "credits",
            "credits",
            used=5,
            limit=5,
            remaining=0,
            reset_timestamp=r,
            period_start_timestamp=s,
        ),
        "purchased_credits": MeterReading("purchased_credits", "credits", remaining=0),
        "indexed_channels": MeterReading(
            "indexed_channels", "channels", used=2, limit=2, remaining=0
        ),
        "storage_bytes": MeterReading(
            "storage_bytes", "bytes", used=5 * GIB, limit=5 * GIB, remaining=0
        ),
        "standard_requests": _service("standard_requests", 2400, r, s),
        "residential_requests": _service("residential_requests", 820, r, s),
        "search_requests": _service("search_requests", 5, r, s),
        "analysis_requests": _service("analysis_requests", 60, r, s),
        "transcription_seconds": _service("transcription_seconds", 900, r, s, unit="seconds"),
    }
    # Exhausted is a real 0, not "unknown" and not unlimited.
    assert meters["credits"].effective_remaining == 0
    assert not any(m.unlimited for m in meters.values())
    assert readings.account_info == (
        ("billing_interval", "month"),
        ("cancel_at_period_end", "true"),
        ("plan", "trial"),
        ("plan_name", "Trial"),
        ("schema_generation", "g3"),
        ("subscription_status", "trialing"),
    )


# --- edge cases no fixture covers ----------------------------------------------------


def test_numeric_strings_and_unlimited_in_any_case() -> None:
    raw = _json(
        {
            "usage_period": {"start": "2026-05-01T00:00:00Z", "end": "2026-06-01T00:00:00Z"},
            "credits": {"monthly_total": "15", "monthly_remaining": " 7.5 ", "purchased": "2"},
            "storage": {"used_bytes": "1024", "limit_bytes": "UNLIMITED", "remaining_bytes": None},
            "channels_indexed": {"used": 1, "limit": "Unlimited", "remaining": "unlimited"},
        }
    )
    readings = parse(200, {}, raw)
    assert readings.problems == ()
    assert _meters(readings) == {
        "credits": MeterReading(
            "credits",
            "credits",
            used=7.5,
            limit=15,
            remaining=7.5,
            reset_timestamp=JUN_1_2026,
            period_start_timestamp=MAY_1_2026,
        ),
        "purchased_credits": MeterReading("purchased_credits", "credits", remaining=2),
        "storage_bytes": MeterReading("storage_bytes", "bytes", used=1024, unlimited=True),
        "indexed_channels": MeterReading("indexed_channels", "channels", used=1, unlimited=True),
    }
    assert readings.account_info == (("schema_generation", "g3"),)


def test_bad_field_drops_only_its_meter() -> None:
    raw = _json(
        {
            "usage_period": {"start": "2026-05-01T00:00:00Z", "end": "2026-06-01T00:00:00Z"},
            "credits": {"monthly_total": "lots", "monthly_remaining": 3, "purchased": 1},
            "channels_indexed": ["not", "an", "object"],
            "usage": {
                "standard_request": {"used": "many"},
                "search_request": {"used": 4},
                "residential_request": 7,
            },
            "storage": {"used_bytes": 10, "limit_bytes": 100},
        }
    )
    readings = parse(200, {}, raw)
    assert readings.problems == (
        "channels_indexed: expected an object, got list",
        "credits.monthly_total: expected a number, got 'lots'",
        "usage.standard_request.used: expected a number, got 'many'",
        "usage.residential_request: expected an object, got int",
    )
    assert _meters(readings) == {
        "purchased_credits": MeterReading("purchased_credits", "credits", remaining=1),
        "storage_bytes": MeterReading("storage_bytes", "bytes", used=10, limit=100),
        "search_requests": _service("search_requests", 4, JUN_1_2026, MAY_1_2026),
    }


def test_bad_period_field_costs_only_the_reset_series() -> None:
    raw = _json(
        {
            "usage_period": {"start": "2026-05-01T00:00:00Z", "end": "next month"},
            "usage": {"search_request": {"used": 4}},
        }
    )
    readings = parse(200, {}, raw)
    assert readings.problems == ("usage_period.end: not a timestamp: 'next month'",)
    assert readings.meters == (
        MeterReading(
            "search_requests",
            "requests",
            used=4,
            reset_timestamp=None,
            period_start_timestamp=MAY_1_2026,
        ),
    )


def test_used_cannot_be_unlimited() -> None:
    raw = _json({"usage": {"video_searches": {"used": "unlimited", "limit": 5}}})
    readings = parse(200, {}, raw)
    assert readings.meters == ()
    assert readings.problems == ("usage.video_searches.used: expected a number, got 'unlimited'",)


def test_units_decide_count_or_duration() -> None:
    raw = _json(
        {
            "current_period": {
                "start_date": "2023-10-01T00:00:00Z",
                "end_date": "2023-11-01T00:00:00Z",
            },
            "usage": {
                # Minutes are a duration too.
                "video_uploads": {"used": 30, "limit": 600, "remaining": 570, "unit": "Minutes"},
                # Hours by name when the unit is missing.
                "transcription_hour": {"used": 0.5},
                # A count key reported in hours: which meter it is would be a guess.
                "video_transcripts": {"used": 2, "unit": "hours"},
                # A duration key with a count unit: same.
                "standard_request": {"used": 2, "unit": "requests"},
            },
        }
    )
    readings = parse(200, {}, raw)
    r, s = NOV_1_2023, OCT_1_2023
    assert _meters(readings) == {
        "upload_seconds": _service("upload_seconds", 1800, r, s, 36000, 34200, unit="seconds"),
        "transcription_seconds": _service("transcription_seconds", 1800, r, s, unit="seconds"),
        "standard_requests": _service("standard_requests", 2, r, s),
    }
    assert readings.problems == (
        "usage.video_transcripts.unit: 'hours' is a duration; expected a count",
    )


def test_transcription_hour_with_a_count_unit_is_a_problem() -> None:
    raw = _json({"usage": {"transcription_hour": {"used": 3, "unit": "requests"}}})
    readings = parse(200, {}, raw)
    assert readings.meters == ()
    assert readings.problems == (
        "usage.transcription_hour.unit: expected a duration, got 'requests'",
    )


def test_unknown_usage_keys_are_skipped_with_a_warning() -> None:
    raw = _json(
        {
            "credits": {"monthly_total": 10, "monthly_remaining": 10, "purchased": 0},
            "usage": {
                "premium_request": {"used": 3},
                "standard_request": {"used": 1},
                "audio_minutes": {"used": 9, "unit": "minutes"},
            },
        }
    )
    readings = parse(200, {}, raw)
    assert readings.problems == ()
    assert readings.warnings == (
        "usage keys not mapped to a meter (skipped): 'audio_minutes', 'premium_request'",
    )
    assert [m.meter for m in readings.meters] == [
        "credits",
        "purchased_credits",
        "standard_requests",
    ]


def test_old_and_new_key_for_one_meter_keeps_the_new_one() -> None:
    raw = _json(
        {"usage": {"video_searches": {"used": 1}, "search_request": {"used": 2}}},
    )
    readings = parse(200, {}, raw)
    assert readings.meters == (MeterReading("search_requests", "requests", used=2),)
    assert readings.warnings == (
        "usage.video_searches skipped: usage.search_request reports the same meter",
    )


def test_credits_remaining_above_total_gives_used_zero_not_negative() -> None:
    raw = _json({"credits": {"monthly_total": 5, "monthly_remaining": 6}})
    readings = parse(200, {}, raw)
    assert readings.meters == (MeterReading("credits", "credits", used=0, limit=5, remaining=6),)


def test_credits_with_only_a_total_has_no_used_and_remaining_is_derived_later() -> None:
    raw = _json({"credits": {"monthly_total": 0}})
    readings = parse(200, {}, raw)
    # 0 is a real cap; remaining comes from MeterReading.effective_remaining.
    assert readings.meters == (MeterReading("credits", "credits", limit=0),)
    assert readings.meters[0].effective_remaining is None


def test_missing_sections_are_tolerated_and_interval_falls_back_to_billing_period() -> None:
    raw = _json(
        {
            "billing_period": {"interval": "year"},
            "subscription": {"plan_id": "navigator"},
            "storage": {"used_bytes": 5},
        }
    )
    readings = parse(200, {}, raw)
    assert readings.meters == (MeterReading("storage_bytes", "bytes", used=5),)
    assert readings.account_info == (("billing_interval", "year"), ("plan", "navigator"))


def test_empty_storage_object_is_a_problem() -> None:
    raw = _json({"storage": {"used_formatted": "1 GB"}, "usage": {"search_request": {"used": 1}}})
    readings = parse(200, {}, raw)
    assert readings.problems == ("storage: none of used_bytes, limit_bytes, remaining_bytes given",)
    assert [m.meter for m in readings.meters] == ["search_requests"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"<html>oops</html>", "response body is not JSON: '<html>oops</html>'"),
        (b"[1, 2]", "response body is JSON list, not an object: '[1, 2]'"),
        (b'{"status": "success"}', 'no data object in response: \'{"status": "success"}\''),
        (
            b'{"status": "success", "data": {"generated_at": "2026-05-20T08:15:00Z"}}',
            "no usage figures in response: "
            '\'{"status": "success", "data": {"generated_at": "2026-05-20T08:15:00Z"}}\'',
        ),
        (
            b'{"status": "error", "error": "internal", "message": "boom"}',
            "HTTP 200 with an error envelope: boom (internal)",
        ),
    ],
)
def test_unusable_200_is_a_parse_error(raw: bytes, message: str) -> None:
    with pytest.raises(PollError) as info:
        parse(200, {}, raw)
    assert info.value.reason is Reason.PARSE
    assert info.value.message == message
    assert info.value.status == 200


# --- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason", "message", "retry_after"),
    [
        (
            "error_401",
            Reason.AUTH,
            "HTTP 401: Invalid or missing API key (unauthorized)",
            None,
        ),
        # The 1-minute key ban: at least 60 s even with no Retry-After header.
        (
            "error_429",
            Reason.RATE_LIMITED,
            "HTTP 429: Rate limit exceeded. This API key is temporarily blocked for 60 seconds."
            " (rate_limit_exceeded)",
            60,
        ),
        # retry_after_seconds from the body.
        ("error_503_overload", Reason.SERVER, "HTTP 503: Too busy (system_overload)", 30),
    ],
)
def test_error_fixtures_are_classified(
    name: str, reason: Reason, message: str, retry_after: float | None
) -> None:
    response = recorded("vidnavigator", name)
    with pytest.raises(PollError) as info:
        parse(response.status, response.headers, response.body)
    assert info.value.reason is reason
    assert info.value.message == message
    assert info.value.status == response.status
    assert info.value.retry_after == retry_after


@pytest.mark.parametrize(("header", "expected"), [("5", 60), ("120", 120)])
def test_429_retry_after_header_never_below_the_ban(header: str, expected: float) -> None:
    with pytest.raises(PollError) as info:
        parse(429, {"retry-after": header}, recorded("vidnavigator", "error_429").body)
    assert info.value.retry_after == expected


def test_503_retry_after_header_wins_over_the_body() -> None:
    with pytest.raises(PollError) as info:
        parse(503, {"retry-after": "10"}, recorded("vidnavigator", "error_503_overload").body)
    assert info.value.reason is Reason.SERVER
    assert info.value.retry_after == 10


@pytest.mark.parametrize(
    ("status", "raw", "reason", "message"),
    [
        # `error` as an object {code, message} (the JS SDK handles both shapes).
        (
            402,
            b'{"status": "error", "error": {"code": "usage_limit_reached", "message": "Upgrade"}}',
            Reason.PAYMENT,
            "HTTP 402: Upgrade (usage_limit_reached)",
        ),
        (
            403,
            b'{"status": "error", "error": "forbidden", "message": "API key revoked"}',
            Reason.AUTH,
            "HTTP 403: API key revoked (forbidden)",
        ),
        (
            403,
            b'{"status": "error", "error": "forbidden", "message": "Account suspended"}',
            Reason.FORBIDDEN,
            "HTTP 403: Account suspended (forbidden)",
        ),
        (
            451,
            b'{"status": "error", "error": "geo_restricted"}',
            Reason.FORBIDDEN,
            "HTTP 451: geo_restricted",
        ),
        (
            413,
            b'{"status": "error", "error": "storage_quota_exceeded", "message": "Full"}',
            Reason.HTTP,
            "HTTP 413: Full (storage_quota_exceeded)",
        ),
        # Gateways answer 5xx with HTML: never assume JSON.
        (
            502,
            b"<html>\n<body><h1>502 Bad Gateway</h1></body>\n</html>",
            Reason.SERVER,
            "HTTP 502: <html> <body><h1>502 Bad Gateway</h1></body> </html>",
        ),
        (500, b"", Reason.SERVER, "HTTP 500: (empty body)"),
    ],
)
def test_other_errors(status: int, raw: bytes, reason: Reason, message: str) -> None:
    with pytest.raises(PollError) as info:
        parse(status, {}, raw)
    assert info.value.reason is reason
    assert info.value.message == message
    assert info.value.retry_after is None


def test_provider_metadata() -> None:
    assert PROVIDER.name == "vidnavigator"
    # docs/providers/vidnavigator.md: the path appended to a base_url override.
    assert PROVIDER.path == "/v1/usage"
    assert PROVIDER.url(None) == "https://api.vidnavigator.com/v1/usage"
    assert PROVIDER.url("http://127.0.0.1:9/vn/") == "http://127.0.0.1:9/vn/v1/usage"
    assert PROVIDER.auth_headers("vn_key") == {"X-API-Key": "vn_key"}
    assert PROVIDER.default_interval == 300
    assert PROVIDER.min_interval == 60
    assert PROVIDER.rate_limit_cooldown == 60
    assert PROVIDER.docs_url == "https://docs.vidnavigator.com/api-reference/endpoint/usage"


# --- figures the model refuses cost only their meter ---------------------------------


def test_hours_that_overflow_when_scaled_cost_only_that_meter() -> None:
    raw = edited(
        "vidnavigator",
        "usage_v3_credits",
        {("data", "usage", "transcription_hour", "used"): 1e308},
    )
    readings = parse(200, {}, raw)
    meters = {m.meter for m in readings.meters}
    assert "transcription_seconds" not in meters
    assert {"credits", "standard_requests", "storage_bytes"} <= meters
    assert readings.problems == (
        "meter transcription_seconds used: inf is not a finite number (out of range after scaling)",
    )


def test_a_negative_storage_figure_is_a_parse_problem_for_that_meter() -> None:
    raw = edited("vidnavigator", "usage_v3_credits", {("data", "storage", "used_bytes"): -1})
    readings = parse(200, {}, raw)
    assert "storage_bytes" not in {m.meter for m in readings.meters}
    assert "credits" in {m.meter for m in readings.meters}
    assert readings.problems == (
        "meter storage_bytes used: -1.0 is negative; a quota figure never is",
    )


def test_a_plan_name_with_a_lone_surrogate_is_valid_utf8() -> None:
    raw = edited(
        "vidnavigator",
        "usage_v3_credits",
        {("data", "subscription", "plan_name"): "Voy\ud800"},
    )
    assert dict(parse(200, {}, raw).account_info)["plan_name"] == "Voy\ufffd"


def test_an_error_message_with_a_lone_surrogate_is_valid_utf8() -> None:
    raw = json.dumps({"status": "error", "error": "boom", "message": "bad \ud800"}).encode()
    with pytest.raises(PollError) as caught:
        parse(500, {}, raw)
    assert caught.value.message == "HTTP 500: bad \ufffd (boom)"
