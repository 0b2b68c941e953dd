"""VertaaUX adapter against the recorded responses in tests/fixtures/vertaaux/."""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

import pytest

from exporter.model import MeterReading, PollError, Readings, Reason
from exporter.providers.vertaaux import PROVIDER, parse
from tests.unit.providers.fixtures import edited, recorded

# 2024-01-16T00:00:00Z: 19738 days after the epoch (54 years incl. 13 leap days = 19723
# days to 2024-01-01, + 15) x 86400. The docs' X-RateLimit-Reset example says the same.
RESET_2024_01_16 = 19738 * 86400
# 2026-05-16T00:00:00Z: 20454 days to 2026-01-01 (56 years, 14 leap days) + 135
# (Jan 31 + Feb 28 + Mar 31 + Apr 30 + 15) = 20589 days.
RESET_2026_05_16 = 20589 * 86400


def _ok(raw: dict[str, Any], hdrs: dict[str, str] | None = None) -> Readings:
    return parse(200, hdrs or {}, json.dumps(raw).encode())


def _credits(**kwargs: Any) -> MeterReading:
    return MeterReading("credits", "credits", **kwargs)


# --- recorded 200s ----------------------------------------------------------------


def test_documented_pro_quota_with_documented_headers() -> None:
    readings = parse(
        200, recorded("vertaaux", "quota_pro").headers, recorded("vertaaux", "quota_pro").body
    )
    assert readings == Readings(
        meters=(
            _credits(
                used=47,
                limit=1000,
                remaining=953,
                reset_timestamp=RESET_2024_01_16,
                # Documented as a daily window, but nothing gives its start.
                period_start_timestamp=None,
            ),
        ),
        account_info=(("plan", "pro"),),
    )
    assert RESET_2024_01_16 == 1705363200  # the docs' X-RateLimit-Reset value


def test_documented_pro_quota_needs_no_headers() -> None:
    # The body alone carries everything; the headers are only a fallback.
    with_headers = parse(
        200, recorded("vertaaux", "quota_pro").headers, recorded("vertaaux", "quota_pro").body
    )
    assert parse(200, {}, recorded("vertaaux", "quota_pro").body) == with_headers


def test_free_tier_exhausted_is_a_real_zero() -> None:
    readings = parse(
        200,
        recorded("vertaaux", "quota_free_exhausted").headers,
        recorded("vertaaux", "quota_free_exhausted").body,
    )
    assert readings == Readings(
        meters=(_credits(used=3, limit=3, remaining=0, reset_timestamp=RESET_2026_05_16),),
        account_info=(("plan", "free"),),
    )
    credits = readings.meters[0]
    assert credits.effective_remaining == 0
    assert credits.unlimited is False


def test_agency_quota() -> None:
    readings = parse(200, {}, recorded("vertaaux", "quota_agency").body)
    assert readings == Readings(
        meters=(_credits(used=1288, limit=5000, remaining=3712, reset_timestamp=RESET_2026_05_16),),
        account_info=(("plan", "agency"),),
    )


def test_enterprise_nulls_are_unlimited() -> None:
    readings = parse(200, {}, recorded("vertaaux", "quota_enterprise_unlimited").body)
    assert readings == Readings(
        meters=(_credits(used=2391, unlimited=True),),
        account_info=(("plan", "enterprise"),),
    )
    credits = readings.meters[0]
    assert credits.limit is None
    assert credits.remaining is None
    assert credits.effective_remaining is None
    # reset_date null and no X-RateLimit-Reset header: no reset series.
    assert credits.reset_timestamp is None


# --- header fallbacks ----------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        {"plan": "pro", "credits_used": 47},
        {
            "plan": "pro",
            "credits_total": None,
            "credits_used": 47,
            "credits_remaining": None,
            "reset_date": None,
        },
    ],
    ids=["missing", "null"],
)
def test_headers_stand_in_for_missing_or_null_body_fields(raw: dict[str, Any]) -> None:
    readings = _ok(raw, recorded("vertaaux", "quota_pro").headers)
    assert readings == Readings(
        meters=(_credits(used=47, limit=1000, remaining=953, reset_timestamp=RESET_2024_01_16),),
        account_info=(("plan", "pro"),),
    )


def test_body_wins_over_disagreeing_headers() -> None:
    # Headers can be a cache generation apart from the body; the body is the answer.
    readings = parse(
        200,
        recorded("vertaaux", "quota_free_exhausted").headers,
        recorded("vertaaux", "quota_agency").body,
    )
    assert readings.meters == (
        _credits(used=1288, limit=5000, remaining=3712, reset_timestamp=RESET_2026_05_16),
    )


def test_headers_alone_give_limit_and_remaining_but_no_used() -> None:
    # No usage figure anywhere: used stays unknown rather than derived.
    readings = _ok({"plan": "free"}, recorded("vertaaux", "quota_free_exhausted").headers)
    assert readings == Readings(
        meters=(_credits(used=None, limit=3, remaining=0, reset_timestamp=RESET_2026_05_16),),
        account_info=(("plan", "free"),),
    )


def test_missing_remaining_is_derived_not_invented() -> None:
    readings = _ok({"plan": "pro", "credits_total": 1000, "credits_used": 47})
    assert readings.meters == (_credits(used=47, limit=1000),)
    assert readings.meters[0].remaining is None
    assert readings.meters[0].effective_remaining == 953


# --- numbers ----------------------------------------------------------------------------


def test_numeric_strings_and_fractions_are_accepted() -> None:
    readings = _ok(
        {
            "plan": "pro",
            "credits_total": "1000",
            "credits_used": "47.5",
            "credits_remaining": " 952.5 ",
            "reset_date": "2024-01-16T00:00:00.000Z",
        }
    )
    assert readings.meters == (
        _credits(used=47.5, limit=1000, remaining=952.5, reset_timestamp=RESET_2024_01_16),
    )


def test_reset_date_with_offset_and_epoch_header() -> None:
    # Same instant written with an offset instead of Z.
    readings = _ok({"plan": "pro", "credits_total": 1, "reset_date": "2024-01-16T01:00:00+01:00"})
    assert readings.meters[0].reset_timestamp == RESET_2024_01_16
    # Header in epoch milliseconds is read defensively too.
    readings = _ok({"plan": "pro", "credits_total": 1}, {"x-ratelimit-reset": "1705363200000"})
    assert readings.meters[0].reset_timestamp == RESET_2024_01_16


# --- enterprise / unlimited ------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "remaining"),
    [
        (None, None),
        ("missing", "missing"),
        (-1, -1),
        ("unlimited", "unlimited"),
        ("Unlimited", None),
        ("UNLIMITED", 5),
        ("n/a", "n/a"),
        ({"soft": 1}, None),
        # A total with a number but a remaining that says "no cap" is still no cap.
        (100000, "unlimited"),
        (100000, -1),
    ],
)
def test_enterprise_no_cap_encodings_are_unlimited(total: Any, remaining: Any) -> None:
    raw: dict[str, Any] = {"plan": "enterprise", "credits_used": 12}
    if total != "missing":
        raw["credits_total"] = total
    if remaining != "missing":
        raw["credits_remaining"] = remaining
    readings = _ok(raw)
    assert readings == Readings(
        meters=(_credits(used=12, unlimited=True),),
        account_info=(("plan", "enterprise"),),
    )


def test_enterprise_plan_name_is_case_insensitive_but_kept_as_sent() -> None:
    readings = _ok({"plan": "Enterprise", "credits_used": 1, "credits_total": None})
    assert readings.meters == (_credits(used=1, unlimited=True),)
    assert readings.account_info == (("plan", "Enterprise"),)


def test_enterprise_with_a_number_is_a_real_cap() -> None:
    readings = _ok(
        {"plan": "enterprise", "credits_total": 0, "credits_used": 0, "credits_remaining": 0}
    )
    assert readings.meters == (_credits(used=0, limit=0, remaining=0),)
    assert readings.meters[0].unlimited is False


def test_enterprise_header_limit_fills_a_null_body_total() -> None:
    # A number from the vendor beats our guess that null means unlimited.
    readings = _ok(
        {"plan": "enterprise", "credits_used": 10, "credits_total": None},
        {"x-ratelimit-limit": "250000", "x-ratelimit-remaining": "249990"},
    )
    assert readings.meters == (_credits(used=10, limit=250000, remaining=249990),)


def test_enterprise_negative_header_limit_is_unlimited() -> None:
    readings = _ok({"plan": "enterprise", "credits_used": 10}, {"x-ratelimit-limit": "-1"})
    assert readings.meters == (_credits(used=10, unlimited=True),)


# --- bad fields -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (
            {"plan": "pro", "credits_total": "unlimited", "credits_used": 1},
            "credits_total: expected a number, got 'unlimited'",
        ),
        (
            {"plan": "pro", "credits_total": -1, "credits_used": 1},
            "credits_total: expected a non-negative number, got -1",
        ),
        (
            {"plan": "agency", "credits_total": 5000, "credits_remaining": "lots"},
            "credits_remaining: expected a number, got 'lots'",
        ),
        (
            {"plan": "free", "credits_total": 3, "credits_used": "three"},
            "credits_used: expected a number, got 'three'",
        ),
        (
            {"plan": "free", "credits_total": 3, "credits_used": -2},
            "credits_used: expected a non-negative number, got -2",
        ),
        (
            {"plan": "enterprise", "credits_used": True},
            "credits_used: expected a number, got True",
        ),
    ],
)
def test_bad_credit_field_drops_the_meter_but_keeps_the_plan(
    raw: dict[str, Any], problem: str
) -> None:
    readings = _ok(raw)
    assert readings.meters == ()
    assert readings.problems == (problem,)
    assert readings.account_info == (("plan", raw["plan"]),)


def test_bad_header_fallback_names_the_header() -> None:
    readings = _ok({"plan": "pro", "credits_used": 1}, {"x-ratelimit-limit": "many"})
    assert readings.meters == ()
    assert readings.problems == ("header x-ratelimit-limit: expected a number, got 'many'",)


def test_bad_reset_date_costs_only_the_reset() -> None:
    # A present but unreadable reset_date is not papered over by the header: the
    # problem is counted, the counts are still exported.
    readings = _ok(
        {"plan": "pro", "credits_total": 1000, "credits_used": 47, "reset_date": "tomorrow"},
        recorded("vertaaux", "quota_pro").headers,
    )
    assert readings.meters == (_credits(used=47, limit=1000, remaining=953),)
    assert readings.problems == ("reset_date: not a timestamp: 'tomorrow'",)


def test_missing_total_on_a_paid_plan_keeps_used_but_is_a_problem() -> None:
    readings = _ok({"plan": "pro", "credits_used": 47})
    assert readings.meters == (_credits(used=47),)
    assert readings.problems == (
        "credits_total: missing, and no x-ratelimit-limit header, on a non-enterprise plan",
    )


def test_all_null_credits_on_a_paid_plan_is_no_meter() -> None:
    readings = _ok({"plan": "pro", "credits_total": None, "credits_used": None})
    assert readings.meters == ()
    assert readings.problems == ("credits_total, credits_used, credits_remaining: all null",)


def test_missing_or_odd_plan_gives_no_plan_label() -> None:
    readings = _ok({"credits_total": 3, "credits_used": 1, "credits_remaining": 2})
    assert readings.account_info == ()
    assert readings.meters == (_credits(used=1, limit=3, remaining=2),)
    huge = _ok({"plan": "x" * 500, "credits_total": 3, "credits_used": 1})
    assert huge.account_info == ()
    # Without a plan nothing is enterprise, so "unlimited" stays a problem.
    readings = _ok({"credits_total": "unlimited", "credits_used": 1})
    assert readings.meters == ()
    assert readings.problems == ("credits_total: expected a number, got 'unlimited'",)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"<html>maintenance</html>", "not JSON"),
        (b'[{"plan": "pro"}]', "JSON list, not an object"),
        (b"{}", "no credits fields"),
        (b'{"plan": "pro", "reset_date": "2024-01-16T00:00:00.000Z"}', "no credits fields"),
    ],
)
def test_unusable_200_is_a_parse_error(raw: bytes, fragment: str) -> None:
    with pytest.raises(PollError) as info:
        parse(200, {}, raw)
    assert info.value.reason is Reason.PARSE
    assert info.value.status == 200
    assert fragment in info.value.message


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason", "message", "retry_after"),
    [
        (
            "error_401_unauthorized",
            Reason.AUTH,
            "HTTP 401: unauthorized: Invalid or missing API key",
            None,
        ),
        (
            "error_401_api_key_revoked",
            Reason.AUTH,
            "HTTP 401: api_key_revoked: This API key has been revoked. Generate a new key"
            " from your dashboard. (revoked at 2025-01-10T12:30:00Z)",
            None,
        ),
        (
            "error_429_rate_limit_exceeded",
            Reason.RATE_LIMITED,
            "HTTP 429: rate_limit_exceeded: Rate limit exceeded. Retry after the time given"
            " in Retry-After. [request_id req_0f3c9a1b2d4e]",
            41520,
        ),
        (
            "error_429_quota_exceeded",
            Reason.RATE_LIMITED,
            "HTTP 429: quota_exceeded: Daily audit quota exhausted for plan 'free'."
            " [request_id req_7a21c0de9f10]",
            41520,
        ),
    ],
)
def test_recorded_errors_are_classified(
    name: str, reason: Reason, message: str, retry_after: float | None
) -> None:
    # Each case brings the headers it was answered with (the 429s their Retry-After).
    response = recorded("vertaaux", name)
    with pytest.raises(PollError) as info:
        parse(response.status, response.headers, response.body)
    assert info.value.reason is reason
    assert info.value.message == message
    assert info.value.status == response.status
    assert info.value.retry_after == retry_after


def test_429_without_retry_after_leaves_the_wait_to_the_poller() -> None:
    with pytest.raises(PollError) as info:
        parse(429, {}, recorded("vertaaux", "error_429_rate_limit_exceeded").body)
    assert info.value.reason is Reason.RATE_LIMITED
    assert info.value.retry_after is None
    assert PROVIDER.rate_limit_cooldown == 0


def test_retry_after_as_http_date() -> None:
    past = "Wed, 21 Oct 2015 07:28:00 GMT"
    with pytest.raises(PollError) as info:
        parse(
            429, {"retry-after": past}, recorded("vertaaux", "error_429_rate_limit_exceeded").body
        )
    assert info.value.retry_after == 0.0
    future = email.utils.formatdate(time.time() + 3600, usegmt=True)
    with pytest.raises(PollError) as info:
        parse(
            429, {"retry-after": future}, recorded("vertaaux", "error_429_rate_limit_exceeded").body
        )
    assert info.value.retry_after is not None
    assert 3590 <= info.value.retry_after <= 3600


def _envelope(code: str, message: str = "text", **extra: Any) -> bytes:
    return json.dumps({"error": code, "message": message, **extra}).encode()


@pytest.mark.parametrize(
    ("status", "raw", "reason", "message"),
    [
        (
            403,
            _envelope("forbidden", "IP address not in allow-list"),
            Reason.FORBIDDEN,
            "HTTP 403: forbidden: IP address not in allow-list",
        ),
        # docs/providers/vertaaux.md, Errors: a 403 that says the key is bad is an auth problem.
        (
            403,
            _envelope("api_key_revoked", "revoked"),
            Reason.AUTH,
            "HTTP 403: api_key_revoked: revoked",
        ),
        (
            401,
            _envelope("api_key_invalid", "API key format is invalid"),
            Reason.AUTH,
            "HTTP 401: api_key_invalid: API key format is invalid",
        ),
        # quota_exceeded's status is only inferred; the code decides on any 4xx.
        (
            403,
            _envelope("quota_exceeded", "Daily audit quota exhausted"),
            Reason.RATE_LIMITED,
            "HTTP 403: quota_exceeded: Daily audit quota exhausted",
        ),
        (402, _envelope("payment_required", "Card declined"), Reason.PAYMENT, None),
        (404, _envelope("not_found", "No such route"), Reason.HTTP, None),
        (500, _envelope("internal_error", "Boom"), Reason.SERVER, "HTTP 500: internal_error: Boom"),
        # A code without a message is still said once.
        (503, b'{"error": "unavailable"}', Reason.SERVER, "HTTP 503: unavailable"),
        # Not the VertaaUX envelope: status alone, excerpt of the body.
        (
            502,
            b"<html><body>502 Bad Gateway</body></html>",
            Reason.SERVER,
            "HTTP 502: <html><body>502 Bad Gateway</body></html>",
        ),
        (504, b"", Reason.SERVER, "HTTP 504: (empty body)"),
        (401, b'{"message": "Unauthorized"}', Reason.AUTH, "HTTP 401: Unauthorized"),
    ],
)
def test_other_errors(status: int, raw: bytes, reason: Reason, message: str | None) -> None:
    with pytest.raises(PollError) as info:
        parse(status, {}, raw)
    assert info.value.reason is reason
    assert info.value.status == status
    if message is not None:
        assert info.value.message == message


def test_request_id_header_is_used_when_the_body_has_none() -> None:
    with pytest.raises(PollError) as info:
        parse(
            401, {"x-request-id": "req_hdr1"}, recorded("vertaaux", "error_401_unauthorized").body
        )
    assert info.value.message == (
        "HTTP 401: unauthorized: Invalid or missing API key [request_id req_hdr1]"
    )


def test_huge_error_message_is_clipped() -> None:
    with pytest.raises(PollError) as info:
        parse(500, {}, _envelope("internal_error", "x" * 5000))
    assert info.value.message == "HTTP 500: internal_error: " + "x" * 200 + "..."


def test_non_200_success_status_is_not_parsed_as_quota() -> None:
    with pytest.raises(PollError) as info:
        parse(204, {}, b"")
    assert info.value.reason is Reason.HTTP


# --- metadata -------------------------------------------------------------------------------


def test_provider_metadata() -> None:
    assert PROVIDER.name == "vertaaux"
    # docs/providers/vertaaux.md: the path appended to a base_url override.
    assert PROVIDER.path == "/api/v1/quota"
    assert PROVIDER.url(None) == "https://vertaaux.ai/api/v1/quota"
    assert PROVIDER.url("http://127.0.0.1:9/vx/") == "http://127.0.0.1:9/vx/api/v1/quota"
    assert PROVIDER.auth_headers("vx_live_x") == {"X-API-Key": "vx_live_x"}
    assert PROVIDER.default_interval == 300
    # The vendor caches quota answers for 60 s.
    assert PROVIDER.min_interval == 60


@pytest.mark.parametrize(
    ("key", "warns"),
    [
        # docs/providers/vertaaux.md: vx_test_ keys hit the sandbox, whose quota is not live usage.
        ("vx_test_Q8pLzK2mN4rT6vW", True),
        ("vx_live_Q8pLzK2mN4rT6vW", False),
        # Legacy sk_ keys are production keys.
        ("sk_Q8pLzK2mN4rT6vW", False),
        # The prefix counts only at the start.
        ("vx_live_vx_test_", False),
    ],
)
def test_vertaaux_warns_about_sandbox_keys_only(key: str, warns: bool) -> None:
    check = PROVIDER.key_warning
    assert check is not None
    remark = check(key)
    assert (remark is not None) is warns
    if remark is not None:
        assert "sandbox" in remark


# --- vendor text is made safe at the model -------------------------------------------


def test_a_plan_with_a_lone_surrogate_is_valid_utf8() -> None:
    raw = edited("vertaaux", "quota_pro", {("plan",): "pro\ud800\x00"})
    readings = parse(200, recorded("vertaaux", "quota_pro").headers, raw)
    assert readings.account_info == (("plan", "pro\ufffd"),)


def test_an_error_message_with_a_lone_surrogate_is_valid_utf8() -> None:
    raw = json.dumps({"error": "internal_error", "message": "\udfff\ud800"}).encode()
    with pytest.raises(PollError) as caught:
        parse(500, {}, raw)
    assert caught.value.message == "HTTP 500: internal_error: \ufffd\ufffd"
    caught.value.message.encode("utf-8")
