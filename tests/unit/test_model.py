"""exporter.model: the normalised readings and their invariants.

These dataclasses are the one shape that crosses from the adapters to the poller and
the collector, so their validation and `effective_remaining` are pinned here exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import model
from exporter.model import (
    LABEL_CHARS,
    MESSAGE_CHARS,
    AlertDefault,
    AlertPolicy,
    AlertSettings,
    MeterReading,
    PollError,
    Readings,
    Reason,
    vendor_text,
)
from exporter.redaction import REDACTED, Redactor
from tests.support.examples import examples

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


# --- vendor_text: the one rule for vendor strings --------------------------------------

KEY = "vx_live_9f8e7d6c5b4a3210"


@pytest.fixture
def redactor(monkeypatch: pytest.MonkeyPatch) -> Redactor:
    """A fresh scrubber knowing KEY, in place of the process-wide one."""
    fresh = Redactor()
    fresh.register(KEY)
    monkeypatch.setattr(model, "REDACTOR", fresh)
    return fresh


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # json.loads returns lone surrogates happily; UTF-8 cannot encode them.
        ("pro \ud800 plan", "pro \ufffd plan"),
        ("\udfff\ud800", "\ufffd\ufffd"),
        # Control characters (NUL, ESC, DEL, C1) become spaces, then collapse.
        ("a\x00b\x1bc\x7fd\x85e\x9bf", "a b c d e f"),
        ("  line one\r\n\tline two  ", "line one line two"),
        # Bidi overrides would reorder the text on a page or in a terminal.
        ("evil\u202etxt.exe\u2066x\u2069", "evil txt.exe x"),
        # Ordinary non-ASCII text is kept as it is.
        ("Équipe \u2013 東京 😀", "Équipe \u2013 東京 😀"),
        (b"caf\xe9 \xff", "caf\ufffd \ufffd"),
        ("", ""),
    ],
)
def test_vendor_text_is_always_valid_utf8_on_one_line(raw: str | bytes, expected: str) -> None:
    text = vendor_text(raw, 200)
    assert text == expected
    text.encode("utf-8")  # strict: must not raise


def test_vendor_text_is_bounded_and_marks_the_cut() -> None:
    assert vendor_text("x" * 10, 10) == "x" * 10
    assert vendor_text("x" * 11, 10) == "x" * 10 + "..."
    # A huge string (a 1 MiB vendor field) costs a bounded result.
    assert len(vendor_text("y " * 1_000_000, LABEL_CHARS)) == LABEL_CHARS + len(model.CUT)


@pytest.mark.usefixtures("redactor")
def test_vendor_text_scrubs_secrets_before_cutting() -> None:
    assert vendor_text(f"key {KEY} rejected", 200) == f"key {REDACTED} rejected"
    # Cut after the scrub: a key straddling the cut leaves no prefix of itself behind.
    text = vendor_text("x" * 120 + KEY, LABEL_CHARS)
    assert KEY[:8] not in text
    # Control characters around the key do not shield it from the scrubber.
    assert KEY not in vendor_text(f"\n\n{KEY}\x00", 200)


@settings(max_examples=examples(300), deadline=None)
@given(raw=st.one_of(st.text(), st.binary()), limit=st.integers(min_value=1, max_value=300))
def test_vendor_text_property(raw: str | bytes, limit: int) -> None:
    text = vendor_text(raw, limit)
    text.encode("utf-8")
    assert len(text) <= limit + len(model.CUT)
    assert text == text.strip()
    assert not any(ch.isspace() and ch != " " for ch in text)
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in text)
    # Idempotent: a value normalised twice (dataclasses.replace) does not change.
    assert vendor_text(text, limit + len(model.CUT)) == text


# --- figures: finite, and never negative where a quota figure is meant -------------------


def _figures(field: str, value: float) -> dict[str, Any]:
    return {field: value}


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, 10**400])
@pytest.mark.parametrize("field", ["used", "limit", "remaining"])
def test_a_non_finite_figure_is_refused(field: str, bad: float) -> None:
    # 1e308 minutes x 60 is +Inf: an exposition value no query can use.
    with pytest.raises(ValueError, match=rf"^meter video_seconds {field}: .* not a finite number"):
        MeterReading("video_seconds", "seconds", **_figures(field, bad))


@pytest.mark.parametrize("bad", [math.inf, math.nan])
@pytest.mark.parametrize("field", ["reset_timestamp", "period_start_timestamp"])
def test_a_non_finite_timestamp_is_refused(field: str, bad: float) -> None:
    with pytest.raises(ValueError, match=rf"^meter jobs {field}: .* not a finite number"):
        MeterReading("jobs", "jobs", **_figures(field, bad))


@pytest.mark.parametrize("field", ["used", "limit", "remaining"])
def test_a_negative_figure_is_refused(field: str) -> None:
    # The one rule: a negative used/limit/remaining is a parse problem for that meter.
    with pytest.raises(ValueError, match=rf"^meter credits {field}: -1.0 is negative"):
        MeterReading("credits", "credits", **_figures(field, -1.0))


def test_zero_and_large_finite_figures_are_kept() -> None:
    reading = MeterReading("bytes", "bytes", used=0.0, limit=1.7e308, remaining=0)
    assert (reading.used, reading.limit, reading.remaining) == (0.0, 1.7e308, 0)


def test_the_refusal_is_a_field_error_so_gather_costs_only_that_meter() -> None:
    from exporter.providers.base import FieldError, gather

    results, problems = gather(
        {
            "bad": lambda: MeterReading("video_seconds", "seconds", used=1e308 * 60),
            "good": lambda: MeterReading("ai_credits", "credits", used=1.0),
        }
    )
    assert list(results) == ["good"]
    assert problems == (
        "meter video_seconds used: inf is not a finite number (out of range after scaling)",
    )
    assert issubclass(FieldError, ValueError)


def test_meter_and_unit_names_are_normalised() -> None:
    reading = MeterReading("jobs\ud800\n", "jo\x00bs")
    assert (reading.meter, reading.unit) == ("jobs\ufffd", "jo bs")


# --- Readings: labels, rate limits, key caps, messages -----------------------------------


def test_readings_make_label_values_safe() -> None:
    readings = Readings(account_info=(("plan", "Pro\ud800\x00 " + "x" * 500),))
    ((name, value),) = readings.account_info
    assert name == "plan"
    assert value.startswith("Pro\ufffd x")
    assert len(value) == LABEL_CHARS + len(model.CUT)


@pytest.mark.parametrize("name", ["", "9plan", "plan-name", "plän", "__reserved", "a b"])
def test_an_invalid_label_name_is_dropped_as_a_problem(name: str) -> None:
    readings = Readings(account_info=((name, "x"), ("plan", "pro")))
    assert readings.account_info == (("plan", "pro"),)
    assert readings.problems == (f"account_info: {name!r} is not a valid label name",)


@pytest.mark.parametrize("bad", [math.inf, math.nan, -1.0, 10**400])
def test_a_bad_rate_limit_or_key_cap_is_dropped_as_a_problem(bad: float) -> None:
    readings = Readings(
        meters=(MeterReading("jobs", "jobs", used=1.0),),
        rate_limits=(("minute", bad), ("second", 5.0)),
        key_caps=(("max_filesize_bytes", bad), ("max_duration_seconds", 60.0)),
    )
    assert readings.rate_limits == (("second", 5.0),)
    assert readings.key_caps == (("max_duration_seconds", 60.0),)
    assert [p.split(":")[0] for p in readings.problems] == [
        "rate_limits minute",
        "key_caps max_filesize_bytes",
    ]
    assert len(readings.meters) == 1


def test_a_non_finite_key_expiry_is_dropped_as_a_problem() -> None:
    readings = Readings(api_key_expiry_timestamp=math.inf)
    assert readings.api_key_expiry_timestamp is None
    assert readings.problems == (
        "api_key_expiry: inf is not a finite number (out of range after scaling)",
    )


def test_readings_make_problems_and_warnings_safe_and_bounded() -> None:
    readings = Readings(problems=("bad \ud800\nfield",), warnings=("w" * 5000, "tab\there"))
    assert readings.problems == ("bad \ufffd field",)
    assert readings.warnings == ("w" * MESSAGE_CHARS + "...", "tab here")


def test_normalised_readings_are_stable_under_replace() -> None:
    readings = Readings(account_info=(("plan", "a\ud800"),), problems=("p\x00",))
    assert dataclasses.replace(readings) == readings


# --- PollError: the message is logged and shown on `/` -----------------------------------


def test_poll_error_message_and_excerpt_are_made_safe() -> None:
    error = PollError(Reason.SERVER, "HTTP 500: \ud800 boom\r\n", body_excerpt="\x00" + "z" * 5000)
    assert error.message == "HTTP 500: \ufffd boom"
    assert str(error) == error.message
    assert error.body_excerpt == "z" * MESSAGE_CHARS + "..."
    error.message.encode("utf-8")


@pytest.mark.usefixtures("redactor")
def test_poll_error_message_is_scrubbed() -> None:
    assert KEY not in PollError(Reason.AUTH, f"bad key {KEY}").message


@pytest.mark.parametrize("bad", [math.inf, math.nan, -5.0])
def test_poll_error_ignores_a_retry_after_that_cannot_be_honoured(bad: float) -> None:
    # An infinite wait would never poll the account again.
    assert PollError(Reason.RATE_LIMITED, "HTTP 429", retry_after=bad).retry_after is None


# --- alert settings -------------------------------------------------------------------

_LAYER = st.builds(
    AlertSettings,
    warning=st.one_of(st.none(), st.floats(0.01, 2.0), st.just(math.inf)),
    critical=st.one_of(st.none(), st.floats(0.01, 2.0), st.just(math.inf)),
    forecast=st.one_of(st.none(), st.booleans()),
    forecast_horizon=st.one_of(st.none(), st.floats(1.0, 1e8)),
)


@settings(max_examples=examples(100), deadline=None)
@given(
    meter=_LAYER,
    account=_LAYER,
    vendor=_LAYER,
    fleet=_LAYER,
    plan=st.sampled_from(["free", "FREE", "pro"]),
)
def test_each_alert_setting_comes_from_the_most_specific_layer_that_sets_it(
    meter: AlertSettings,
    account: AlertSettings,
    vendor: AlertSettings,
    fleet: AlertSettings,
    plan: str,
) -> None:
    policy = AlertPolicy(
        fleet=fleet,
        account=account,
        meters=(("credits", meter),),
        adapter=(AlertDefault(vendor, meter="credits", account_info=(("plan", "free"),)),),
    )
    readings = Readings(
        meters=(MeterReading("credits", "credits"),), account_info=(("plan", plan),)
    )
    got = policy.settings(readings, readings.meters[0])
    layers = [meter, account, vendor, fleet] if plan.lower() == "free" else [meter, account, fleet]
    for name in ("warning", "critical", "forecast", "forecast_horizon"):
        values = [getattr(layer, name) for layer in layers if getattr(layer, name) is not None]
        assert getattr(got, name) == (values[0] if values else None), name
    # Another meter of the account: only the account's and global settings apply.
    other = MeterReading("seats", "seats")
    assert policy.settings(readings, other) == account.over(fleet)
    assert got.horizon == (0.0 if got.forecast is False else got.forecast_horizon)
