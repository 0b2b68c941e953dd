"""OpenRouter `GET /api/v1/key` (exporter/providers/openrouter.yaml)."""

from __future__ import annotations

import pytest

from exporter.model import MeterReading, PollError, Reason
from exporter.providers import PROVIDERS
from tests.unit.providers.declared import error_case, parse_case


def test_monthly_limit_is_spent_against_monthly_usage() -> None:
    readings = parse_case("openrouter", "key_with_monthly_limit")
    assert readings.meters == (
        MeterReading("credits", "credits", used=25.5, limit=100, remaining=74.5),
        MeterReading("credits_all_time", "credits", used=25.5),
    )
    assert readings.account_info == (("free_tier", "false"), ("limit_reset", "monthly"))
    assert readings.api_key_expiry_timestamp == 1830297599.0  # 2027-12-31T23:59:59Z


def test_null_limit_is_unlimited() -> None:
    readings = parse_case("openrouter", "key_unlimited")
    assert readings.meters == (
        MeterReading("credits", "credits", used=12.75, unlimited=True),
        MeterReading("credits_all_time", "credits", used=12.75),
    )
    assert readings.api_key_expiry_timestamp is None


def test_no_reset_uses_all_time_usage() -> None:
    readings = parse_case("openrouter", "key_free_tier_no_reset")
    assert readings.meters[0] == MeterReading(
        "credits", "credits", used=0.1015644762, limit=5, remaining=4.8984355238
    )
    assert readings.account_info == (("free_tier", "true"),)


def test_an_answer_without_the_key_object_is_not_unlimited() -> None:
    # `unlimited_values: [null]` must not turn "nothing there" into "unlimited".
    with pytest.raises(PollError) as info:
        PROVIDERS["openrouter"].parse(200, {}, b'{"data": {}}')
    assert info.value.reason is Reason.PARSE


def test_errors() -> None:
    assert error_case("openrouter", "error_401_no_credentials").reason is Reason.AUTH
