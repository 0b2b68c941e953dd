"""Pictory adapter against the recorded responses in tests/fixtures/pictory/."""

from __future__ import annotations

import pytest

from exporter.model import MeterReading, PollError, Reason
from exporter.providers.pictory import PROVIDER, parse
from tests.unit.providers.fixtures import edited, recorded


def _parse(name: str) -> dict[str, MeterReading]:
    readings = parse(200, {}, recorded("pictory", name).body)
    assert readings.problems == ()
    return {m.meter: m for m in readings.meters}


def test_documented_quota_converts_minutes_to_seconds() -> None:
    meters = _parse("quota")
    assert meters == {
        "video_seconds": MeterReading("video_seconds", "seconds", used=98 * 60, limit=14400 * 60),
        "transcription_seconds": MeterReading(
            "transcription_seconds", "seconds", used=0, limit=14400 * 60
        ),
        "voiceover_seconds": MeterReading(
            "voiceover_seconds", "seconds", used=33 * 60, limit=480 * 60
        ),
        "ai_credits": MeterReading("ai_credits", "credits", used=690, limit=22000),
    }
    # No remaining in the body: derived; no reset or period: absent.
    assert meters["voiceover_seconds"].effective_remaining == (480 - 33) * 60
    assert all(
        m.reset_timestamp is None and m.period_start_timestamp is None for m in meters.values()
    )
    assert not any(m.unlimited for m in meters.values())


def test_fractional_ai_credits_are_kept() -> None:
    meters = _parse("quota_fractional_ai_credits")
    assert meters["ai_credits"].used == pytest.approx(1873.6)
    assert meters["ai_credits"].effective_remaining == pytest.approx(22000 - 1873.6)


def test_exhausted_meters_have_zero_remaining() -> None:
    meters = _parse("quota_exhausted")
    assert meters["video_seconds"].used == meters["video_seconds"].limit == 600 * 60
    assert meters["video_seconds"].effective_remaining == 0
    assert meters["ai_credits"].effective_remaining == 0
    assert meters["transcription_seconds"].effective_remaining == (600 - 12) * 60


def test_limit_zero_is_a_real_cap_not_unlimited() -> None:
    meters = _parse("quota_voiceover_not_in_plan")
    voiceover = meters["voiceover_seconds"]
    assert voiceover.limit == 0
    assert voiceover.used == 0
    assert voiceover.unlimited is False
    assert voiceover.effective_remaining == 0


def test_bad_field_drops_only_that_meter() -> None:
    raw = (
        b'{"videoMinutes": {"used": "lots", "limit": 10},'
        b' "aiCredits": {"used": "1.5", "limit": 20}}'
    )
    readings = parse(200, {}, raw)
    assert [m.meter for m in readings.meters] == ["ai_credits"]
    assert readings.meters[0].used == 1.5
    assert readings.problems == ("videoMinutes.used: expected a number, got 'lots'",)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"<html>oops</html>", "not JSON"),
        (b"[1, 2]", "JSON list, not an object"),
        (b"{}", "no quota entries"),
    ],
)
def test_unusable_200_is_a_parse_error(raw: bytes, fragment: str) -> None:
    with pytest.raises(PollError) as info:
        parse(200, {}, raw)
    assert info.value.reason is Reason.PARSE
    assert fragment in info.value.message


@pytest.mark.parametrize(
    ("name", "reason", "message"),
    [
        ("error_401", Reason.AUTH, "HTTP 401: Unauthorized"),
        ("error_429", Reason.RATE_LIMITED, "HTTP 429: Too Many Requests"),
        ("error_legacy_envelope", Reason.HTTP, "HTTP 400: Error Message"),
    ],
)
def test_error_bodies_are_classified(name: str, reason: Reason, message: str) -> None:
    response = recorded("pictory", name)
    with pytest.raises(PollError) as info:
        parse(response.status, response.headers, response.body)
    assert info.value.reason is reason
    assert info.value.message == message
    assert info.value.status == response.status


def test_cloudflare_1010_plain_text_block_is_forbidden_with_a_hint() -> None:
    response = recorded("pictory", "error_403_cloudflare_1010")
    with pytest.raises(PollError) as info:
        parse(response.status, {"content-type": "text/plain"}, response.body)
    assert info.value.status == 403
    assert info.value.reason is Reason.FORBIDDEN
    assert "Cloudflare" in info.value.message
    assert "User-Agent" in info.value.message


def test_retry_after_on_429_is_passed_on() -> None:
    with pytest.raises(PollError) as info:
        parse(429, {"retry-after": "42"}, recorded("pictory", "error_429").body)
    assert info.value.retry_after == 42


def test_provider_metadata() -> None:
    assert PROVIDER.name == "pictory"
    # docs/providers/pictory.md: the path appended to a base_url override.
    assert PROVIDER.path == "/pictoryapis/v1/quota"
    assert PROVIDER.url(None) == "https://api.pictory.ai/pictoryapis/v1/quota"
    assert (
        PROVIDER.url("http://127.0.0.1:9/pictory/")
        == "http://127.0.0.1:9/pictory/pictoryapis/v1/quota"
    )
    # Raw key, no "Bearer" (docs/providers/pictory.md).
    assert PROVIDER.auth_headers("pictai_x") == {"Authorization": "pictai_x"}
    # docs/providers/README.md, Polling guidance: 300 s default, 60 s floor.
    assert (PROVIDER.default_interval, PROVIDER.min_interval) == (300, 60)


# --- figures the model refuses cost only their meter ---------------------------------


def test_minutes_that_overflow_when_scaled_cost_only_that_meter() -> None:
    # 1e308 is a valid JSON float; x 60 it is +Inf, which no query can use.
    readings = parse(200, {}, edited("pictory", "quota", {("videoMinutes", "limit"): 1e308}))
    assert [m.meter for m in readings.meters] == [
        "transcription_seconds",
        "voiceover_seconds",
        "ai_credits",
    ]
    assert readings.problems == (
        "meter video_seconds limit: inf is not a finite number (out of range after scaling)",
    )


def test_a_negative_figure_is_a_parse_problem_for_that_meter() -> None:
    readings = parse(200, {}, edited("pictory", "quota", {("aiCredits", "used"): -5}))
    assert "ai_credits" not in {m.meter for m in readings.meters}
    assert len(readings.meters) == 3
    assert readings.problems == (
        "meter ai_credits used: -5.0 is negative; a quota figure never is",
    )
