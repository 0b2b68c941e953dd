"""exporter.model: the normalised readings and their invariants.

These dataclasses are the one shape that crosses from the adapters to the poller and
the collector, so their validation and `effective_remaining` are pinned here exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import pytest

from exporter.model import MeterReading, PollError, Readings, Reason

# --- Reason ------------------------------------------------------------------------------


def test_reasons_are_exactly_the_reason_labels_of_the_metric_contract() -> None:
    # docs/metrics.md: saas_quota_poll_errors_total{reason=...}, every one pre-initialised.
    assert [r.value for r in Reason] == [
        "auth",
        "forbidden",
        "payment",
        "rate_limited",
        "http",
        "server",
        "timeout",
        "network",
        "parse",
        "internal",
    ]


def test_a_reason_is_its_label_string() -> None:
    # StrEnum: usable directly as a label value and in log fields.
    assert str(Reason.RATE_LIMITED) == "rate_limited"
    assert f"{Reason.PARSE}" == "parse"
    assert Reason("timeout") is Reason.TIMEOUT


# --- MeterReading --------------------------------------------------------------------------


def test_meter_reading_defaults_mean_the_vendor_did_not_say() -> None:
    reading = MeterReading("jobs", "jobs")
    assert (reading.used, reading.limit, reading.remaining) == (None, None, None)
    assert (reading.reset_timestamp, reading.period_start_timestamp) == (None, None)
    assert reading.unlimited is False
    assert reading.effective_remaining is None


@pytest.mark.parametrize(
    "numbers",
    [{"limit": 100.0}, {"remaining": 5.0}, {"limit": 0.0}, {"limit": 10.0, "remaining": 3.0}],
)
def test_an_unlimited_meter_with_a_limit_or_remaining_is_rejected(
    numbers: dict[str, float],
) -> None:
    # limit=0 is a real cap (docs/metrics.md), so it contradicts "unlimited" as much as 100.
    with pytest.raises(
        ValueError, match=r"^meter ai_credits: an unlimited meter has no limit or remaining$"
    ):
        MeterReading("ai_credits", "credits", unlimited=True, **numbers)


def test_an_unlimited_meter_may_still_report_usage() -> None:
    reading = MeterReading(
        "jobs", "jobs", used=42.0, unlimited=True, reset_timestamp=1_800_000_000.0
    )
    assert reading.used == 42.0
    assert reading.reset_timestamp == 1_800_000_000.0
    assert reading.effective_remaining is None


@pytest.mark.parametrize(
    ("used", "limit", "remaining", "expected"),
    [
        # Derived when the vendor gives no figure.
        (10.0, 100.0, None, 90.0),
        (100.0, 100.0, None, 0.0),
        # Over quota never goes negative.
        (120.0, 100.0, None, 0.0),
        # A zero cap is a real cap: nothing left.
        (0.0, 0.0, None, 0.0),
        (3.0, 0.0, None, 0.0),
        # The vendor's own figure wins, even when it disagrees with limit - used.
        (10.0, 100.0, 5.0, 5.0),
        (None, None, 7.0, 7.0),
        # 0 remaining is a value, not "unknown": no fall-through to the derivation.
        (10.0, 100.0, 0.0, 0.0),
        # Not enough to derive it: absent, never 0.
        (None, 100.0, None, None),
        (10.0, None, None, None),
        (None, None, None, None),
    ],
)
def test_effective_remaining(
    used: float | None, limit: float | None, remaining: float | None, expected: float | None
) -> None:
    reading = MeterReading("ai_credits", "credits", used=used, limit=limit, remaining=remaining)
    assert reading.effective_remaining == expected


def test_meter_reading_is_frozen() -> None:
    reading = MeterReading("jobs", "jobs", used=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        reading.used = 2.0  # type: ignore[misc]


# --- Readings ------------------------------------------------------------------------------


def test_readings_defaults_are_empty() -> None:
    readings = Readings()
    assert readings.meters == ()
    assert readings.account_info == ()
    assert readings.rate_limits == ()
    assert readings.key_caps == ()
    assert readings.problems == ()
    assert readings.warnings == ()
    assert readings.api_key_expiry_timestamp is None
    assert readings.api_key_active is None


def test_readings_keep_distinct_meters_in_order() -> None:
    meters = (
        MeterReading("video_seconds", "seconds", used=60.0),
        MeterReading("ai_credits", "credits", used=1.0),
    )
    assert [m.meter for m in Readings(meters=meters).meters] == ["video_seconds", "ai_credits"]


def test_a_meter_reported_twice_is_rejected() -> None:
    # Two values for one series would be a duplicate sample on /metrics; the unit
    # differing does not make it another meter.
    meters = (
        MeterReading("ai_credits", "credits", used=1.0),
        MeterReading("jobs", "jobs", used=2.0),
        MeterReading("ai_credits", "requests", used=3.0),
    )
    with pytest.raises(ValueError, match=r"^meter ai_credits reported twice$"):
        Readings(meters=meters)


def test_readings_compare_by_value() -> None:
    def build() -> Readings:
        return Readings(
            meters=(MeterReading("jobs", "jobs", used=1.0, limit=5.0),),
            account_info=(("plan", "pro"),),
            warnings=("billing_error",),
        )

    assert build() == build()
    assert build() != dataclasses.replace(build(), warnings=())
    assert hash(build()) == hash(build())


# --- PollError -----------------------------------------------------------------------------


def test_poll_error_str_is_its_message_only() -> None:
    # The message is what is logged and shown on `/`; status and body stay separate.
    error = PollError(Reason.SERVER, "HTTP 503 from vendor", status=503, body_excerpt="<html>")
    assert str(error) == "HTTP 503 from vendor"


def test_poll_error_defaults() -> None:
    error = PollError(Reason.NETWORK, "connection refused")
    assert error.status is None
    assert error.retry_after is None
    assert error.body_excerpt == ""


def test_poll_error_is_raised_and_caught_with_its_fields() -> None:
    with pytest.raises(PollError) as caught:
        raise PollError(Reason.RATE_LIMITED, "HTTP 429", status=429, retry_after=60.0)
    assert caught.value.reason is Reason.RATE_LIMITED
    assert caught.value.status == 429
    assert caught.value.retry_after == 60.0
    assert isinstance(caught.value, Exception)


def test_poll_error_equality_ignores_the_body_excerpt() -> None:
    # Same classification, different vendor noise: the same error.
    a = PollError(Reason.HTTP, "HTTP 418", status=418, body_excerpt="teapot")
    b = PollError(Reason.HTTP, "HTTP 418", status=418, body_excerpt="kettle")
    assert a == b
    assert hash(a) == hash(b)
    assert a != PollError(Reason.HTTP, "HTTP 418", status=400, body_excerpt="teapot")
    assert a != PollError(Reason.HTTP, "HTTP 418", status=418, retry_after=1.0)


@contextlib.contextmanager
def _passthrough() -> Iterator[None]:
    yield


def test_poll_error_passes_through_a_generator_context_manager_unchanged() -> None:
    with pytest.raises(PollError) as caught, _passthrough():
        raise PollError(Reason.TIMEOUT, "no answer within 10s")
    assert caught.value.reason is Reason.TIMEOUT


def test_poll_error_accepts_a_note() -> None:
    error = PollError(Reason.PARSE, "no meter could be parsed")
    error.add_note("while polling pictory/marketing")
    assert error.__notes__ == ["while polling pictory/marketing"]
