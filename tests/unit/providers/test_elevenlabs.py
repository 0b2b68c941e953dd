"""ElevenLabs `GET /v1/user/subscription` (exporter/providers/elevenlabs.yaml)."""

from __future__ import annotations

from exporter.model import MeterReading, Reason
from exporter.providers import PROVIDERS
from tests.unit.providers.declared import error_case, parse_case


def test_documented_subscription() -> None:
    readings = parse_case("elevenlabs", "subscription")
    assert readings.meters == (
        MeterReading(
            "characters", "characters", used=1000, limit=10000, reset_timestamp=1738356858
        ),
        MeterReading("voice_slots", "voices", used=1, limit=10),
        MeterReading("professional_voice_slots", "voices", used=0, limit=1),
        MeterReading("voice_add_edits", "edits", used=0),
    )
    assert readings.account_info == (("plan", "starter"), ("status", "active"))
    assert readings.problems == ()


def test_older_fields_give_limit_only_voice_meters() -> None:
    readings = parse_case("elevenlabs", "subscription_older_fields")
    assert readings.meters == (
        MeterReading(
            "characters", "characters", used=100000, limit=100000, reset_timestamp=1735689600
        ),
        MeterReading("voice_slots", "voices", limit=30),
        MeterReading("professional_voice_slots", "voices", limit=1),
        MeterReading("voice_add_edits", "edits", used=12, limit=95),
    )
    assert readings.account_info == (("plan", "creator"), ("status", "trialing"))


def test_errors_and_request() -> None:
    assert error_case("elevenlabs", "error_401_invalid_key").reason is Reason.AUTH
    assert PROVIDERS["elevenlabs"].request("xi", None).headers == {"xi-api-key": "xi"}
