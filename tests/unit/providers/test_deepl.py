"""DeepL `GET /v2/usage` (exporter/providers/deepl.yaml): Free and Pro shapes."""

from __future__ import annotations

from typing import Any

from exporter.model import MeterReading, Reason
from exporter.providers import PROVIDERS
from tests.unit.providers.declared import error_case, meters, parse_case

START = 1770303482.0  # 2026-02-05T14:58:02Z
END = 1772722682.0  # 2026-03-05T14:58:02Z


def test_free_answer_has_the_account_meter_only() -> None:
    readings = parse_case("deepl", "free")
    assert readings.meters == (
        MeterReading("characters", "characters", used=180118, limit=1250000),
    )
    assert readings.problems == ()


def test_pro_answer_has_key_and_product_meters() -> None:
    found = meters(parse_case("deepl", "pro"))
    period: dict[str, Any] = {"reset_timestamp": END, "period_start_timestamp": START}
    assert found == {
        "characters": MeterReading(
            "characters", "characters", used=2150000, limit=20000000, **period
        ),
        # 1000000000000: no key-level limit set.
        "api_key_characters": MeterReading(
            "api_key_characters", "characters", used=1880000, unlimited=True, **period
        ),
        "translate_characters": MeterReading(
            "translate_characters", "characters", used=900000, **period
        ),
        "write_characters": MeterReading("write_characters", "characters", used=1250000, **period),
        "translate_api_key_characters": MeterReading(
            "translate_api_key_characters", "characters", used=880000, **period
        ),
        "write_api_key_characters": MeterReading(
            "write_api_key_characters", "characters", used=1000000, **period
        ),
    }
    assert found["characters"].effective_remaining == 17850000


def test_pro_without_cost_control_is_unlimited() -> None:
    found = meters(parse_case("deepl", "pro_unlimited"))
    assert found["characters"].unlimited
    assert found["characters"].limit is None
    assert found["characters"].used == 3000
    assert found["characters"].reset_timestamp == 1751242352.0  # 2025-06-30T00:12:32Z


def test_errors() -> None:
    assert error_case("deepl", "error_456_quota_exceeded").reason is Reason.PAYMENT
    assert error_case("deepl", "error_403_wrong_key").reason is Reason.AUTH


def test_request_carries_the_deepl_auth_scheme() -> None:
    request = PROVIDERS["deepl"].request("k3y:fx", "https://api.deepl.com")
    assert request.url == "https://api.deepl.com/v2/usage"
    assert request.headers == {"Authorization": "DeepL-Auth-Key k3y:fx"}
