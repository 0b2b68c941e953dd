"""SendGrid `GET /v3/user/credits` (exporter/providers/sendgrid.yaml): date-only resets."""

from __future__ import annotations

from exporter.model import MeterReading, Reason
from tests.unit.providers.declared import error_case, parse_case


def test_documented_credits_with_date_only_reset() -> None:
    readings = parse_case("sendgrid", "credits")
    assert readings.meters == (
        MeterReading(
            "email_credits",
            "credits",
            used=0,
            limit=200,
            remaining=200,
            reset_timestamp=1359676800.0,  # 2013-02-01T00:00:00Z
            period_start_timestamp=1356998400.0,  # 2013-01-01T00:00:00Z
        ),
        MeterReading("overage_credits", "credits", used=0),
    )
    assert readings.account_info == (("reset_frequency", "monthly"),)


def test_overdrawn() -> None:
    readings = parse_case("sendgrid", "credits_overdrawn")
    assert readings.meters[0].remaining == 0
    assert readings.meters[1] == MeterReading("overage_credits", "credits", used=1250)


def test_errors() -> None:
    assert error_case("sendgrid", "error_401").reason is Reason.AUTH
