"""The shared response helpers in exporter/providers/base.py, one contract at a time.

Every adapter leans on these, so a quirk here shows up in five vendors at once. The
values are worked out by hand: 2026-05-01T00:00:00Z is 20574 days after the epoch
(56 years x 365 + 14 leap days 1972..2024 + 31 + 28 + 31 + 30 days in 2026).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from exporter.model import PollError, Readings, Reason
from exporter.providers import pictory
from exporter.providers.base import (
    FieldError,
    Headers,
    Provider,
    classify_http_error,
    decode_json,
    error_message,
    excerpt,
    gather,
    is_unlimited,
    json_object,
    label_value,
    number,
    obj,
    retry_after_seconds,
    timestamp,
    unrecognised,
)

DAY = 86400
MAY_1_2026 = 20574 * DAY  # 1777593600
# base._EXCERPT_CHARS plus the "..." that marks a cut.
EXCERPT_MAX = 200 + len("...")


def test_hand_worked_epoch_constant() -> None:
    # Guards the arithmetic in the module docstring, so a typo cannot pass silently.
    assert MAY_1_2026 == 1777593600


def _field_error(where: str) -> Any:
    """pytest.raises for a FieldError whose message starts with the field name."""
    return pytest.raises(FieldError, match="^" + re.escape(where) + ":")


def _noop(_status: int, _headers: Headers, _body: bytes) -> Readings:
    return Readings()


# --- number() ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0.0),
        (42, 42.0),
        (1.5, 1.5),
        (0.02, 0.02),
        # Tornado's 403 body carries numbers as strings (docs/providers/README.md).
        ("1024.00", 1024.0),
        ("42", 42.0),
        (" 42 ", 42.0),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        # Negative numbers are numbers: whether one is acceptable is the caller's rule
        # (VertaaUX enterprise reads -1 as "no cap", other plans reject it).
        (-1, -1.0),
        ("-3.25", -3.25),
        # Large but finite values survive exactly where floats can hold them.
        (2**53, float(2**53)),
        (1.7e308, 1.7e308),
        ("1e300", 1e300),
    ],
)
def test_number_accepts_numbers_and_numeric_strings(value: Any, expected: float) -> None:
    result = number(value, "field")
    assert result == expected
    # Always a float, so readings never mix int and float for one meter.
    assert type(result) is float


def test_number_null_is_none_not_zero() -> None:
    # A null (or a missing key read with .get) is "the vendor did not say": no series.
    assert number(None, "field") is None
    empty: dict[str, Any] = {}
    assert number(empty.get("missing"), "field") is None


@pytest.mark.parametrize("value", [True, False])
def test_number_rejects_booleans(value: bool) -> None:
    # JSON true is not 1 credit, even though bool is an int subclass in Python.
    with _field_error("credits.used"):
        number(value, "credits.used")


@pytest.mark.parametrize(
    "value",
    ["lots", "", "   ", "0x10", "12 GB", "unlimited", "Unlimited", "1,000"],
)
def test_number_rejects_non_numeric_strings_naming_the_field(value: str) -> None:
    # "unlimited" is not a number: callers check is_unlimited first where it applies.
    with pytest.raises(FieldError) as info:
        number(value, "usage.video_searches.limit")
    assert str(info.value) == f"usage.video_searches.limit: expected a number, got {value!r}"


@pytest.mark.parametrize(
    ("value", "type_name"),
    [([1], "list"), ({"used": 1}, "dict"), (b"1", "bytes"), (object(), "object")],
)
def test_number_rejects_other_types_naming_the_field_and_type(value: Any, type_name: str) -> None:
    with pytest.raises(FieldError) as info:
        number(value, "subscription.used")
    assert str(info.value) == f"subscription.used: expected a number, got {type_name}"


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        "nan",
        "NaN",
        "inf",
        "-Infinity",
        # Finite in the text, infinite as a float.
        "1e400",
        "9" * 400,
    ],
)
def test_number_rejects_non_finite_values(value: Any) -> None:
    # NaN or inf in a gauge would poison every ratio a recording rule builds on it.
    with pytest.raises(FieldError, match=r"^storage\.used_bytes: expected a finite number"):
        number(value, "storage.used_bytes")


def test_number_error_is_a_value_error() -> None:
    # FieldError subclasses ValueError, so generic handlers still see a value problem.
    assert issubclass(FieldError, ValueError)


def test_number_huge_json_integer_is_a_field_error() -> None:
    value = json.loads("1" + "0" * 400)
    assert isinstance(value, int)
    with _field_error("videoMinutes.used"):
        number(value, "videoMinutes.used")


def test_huge_integer_in_one_field_costs_only_that_meter() -> None:
    raw = (
        b'{"videoMinutes": {"used": 1' + b"0" * 400 + b', "limit": 10},'
        b' "aiCredits": {"used": 1, "limit": 20}}'
    )
    readings = pictory.parse(200, {}, raw)
    assert [m.meter for m in readings.meters] == ["ai_credits"]
    assert len(readings.problems) == 1
    assert readings.problems[0].startswith("videoMinutes.used:")


# --- timestamp() --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        # VidNavigator: ISO 8601 with Z.
        "2026-05-01T00:00:00Z",
        # VertaaUX: milliseconds and Z.
        "2026-05-01T00:00:00.000Z",
        "2026-05-01T00:00:00+00:00",
        "2026-05-01T00:00:00.000+00:00",
        # Offsets are applied, not dropped.
        "2026-05-01T02:00:00+02:00",
        "2026-05-01T02:00:00+0200",
        "2026-04-30T20:00:00-04:00",
        "2026-04-30T19:30:00-04:30",
        # Lower-case z and t, and a space for the T.
        "2026-05-01t00:00:00z",
        "2026-05-01 00:00:00Z",
        "2026-05-01T00:00Z",
        # A naive datetime is read as UTC: vendors that omit the zone mean UTC.
        "2026-05-01T00:00:00",
        # Piloterr: date-only strings are 00:00 UTC.
        "2026-05-01",
        "  2026-05-01  ",
        # Tornado's SDK: epoch seconds, as numbers or numeric strings.
        MAY_1_2026,
        float(MAY_1_2026),
        str(MAY_1_2026),
        # Epoch milliseconds, accepted defensively.
        MAY_1_2026 * 1000,
        str(MAY_1_2026 * 1000),
        float(MAY_1_2026 * 1000),
    ],
)
def test_timestamp_reads_every_documented_encoding_of_one_instant(value: Any) -> None:
    result = timestamp(value, "reset_date")
    assert result == MAY_1_2026
    assert type(result) is float


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-05-01T00:00:00.250Z", MAY_1_2026 + 0.25),
        ("2026-05-01T00:00:00.5+00:00", MAY_1_2026 + 0.5),
        ("2026-05-01T00:00:01.000001Z", MAY_1_2026 + 1.000001),
        (MAY_1_2026 + 0.5, MAY_1_2026 + 0.5),
        (str(MAY_1_2026 * 1000 + 250), MAY_1_2026 + 0.25),
    ],
)
def test_timestamp_keeps_fractional_seconds(value: Any, expected: float) -> None:
    assert timestamp(value, "reset_date") == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # The epoch itself is a valid instant, not "missing".
        (0, 0.0),
        # Up to 1e12 a number is seconds (1e12 s is the year 33658)...
        (999_999_999_999, 999_999_999_999.0),
        (1e12, 1e12),
        # ...above it, milliseconds (1e12 ms is 2001-09-09).
        (1_000_000_000_001, 1_000_000_000.001),
        (2e12, 2e9),
    ],
)
def test_timestamp_seconds_versus_milliseconds_threshold(value: float, expected: float) -> None:
    assert timestamp(value, "billing_period_end") == pytest.approx(expected)


@pytest.mark.parametrize("value", [None, "", "   "])
def test_timestamp_null_or_blank_is_none(value: Any) -> None:
    # Null reset dates are documented (Piloterr renewal_date, VertaaUX enterprise).
    assert timestamp(value, "renewal_date") is None


@pytest.mark.parametrize(
    "value",
    [
        "next tuesday",
        "2026-13-01T00:00:00Z",
        "2026-05-01T25:00:00Z",
        "01/05/2026",
        "nan",
        "inf",
        # Negative epochs are refused as numbers and as numeric strings.
        "-1",
        -1,
        -1.5,
        float("nan"),
        float("inf"),
        True,
        False,
    ],
)
def test_timestamp_garbage_is_a_field_error_naming_the_field(value: Any) -> None:
    with _field_error("period.end"):
        timestamp(value, "period.end")


@pytest.mark.parametrize("value", ["2026-02-30", "2026-00-10", "2025-02-29"])
def test_timestamp_impossible_date_only_string_is_a_field_error(value: str) -> None:
    with pytest.raises(FieldError) as info:
        timestamp(value, "period.start")
    assert str(info.value) == f"period.start: not a date: {value!r}"


@pytest.mark.parametrize(
    ("value", "type_name"), [([MAY_1_2026], "list"), ({"seconds": 1}, "dict"), (b"1", "bytes")]
)
def test_timestamp_other_types_name_field_and_type(value: Any, type_name: str) -> None:
    with pytest.raises(FieldError) as info:
        timestamp(value, "api_key.expires")
    assert str(info.value) == f"api_key.expires: not a timestamp: {type_name}"


def test_timestamp_bare_digits_are_epoch_seconds_never_a_basic_iso_date() -> None:
    # "20260501" could be ISO 8601 basic format, but numeric strings are tried as epoch
    # first (Tornado's SDK sends epoch seconds as strings); no vendor sends basic dates.
    assert timestamp("20260501", "f") == 20260501.0


def test_timestamp_huge_json_integer_is_a_field_error() -> None:
    with _field_error("billing_period_end"):
        timestamp(json.loads("9" * 400), "billing_period_end")


# --- retry_after_seconds() ----------------------------------------------------------

# Retry-After HTTP dates relative to this injected "now" (Fri, 01 May 2026 00:00:00 GMT).
NOW = float(MAY_1_2026)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("120", 120.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("86400", 86400.0),
    ],
)
def test_retry_after_delta_seconds(raw: str, expected: float) -> None:
    assert retry_after_seconds({"retry-after": raw}, now=NOW) == expected


@pytest.mark.parametrize(
    "raw",
    [
        # IMF-fixdate, and the two obsolete formats RFC 9110 5.6.7 says to accept.
        "Fri, 01 May 2026 00:02:00 GMT",
        "Friday, 01-May-26 00:02:00 GMT",
        "Fri May  1 00:02:00 2026",
        # Numeric zones, and no zone at all (read as UTC).
        "Fri, 01 May 2026 02:02:00 +0200",
        "Fri, 01 May 2026 00:02:00 -0000",
        "Fri, 01 May 2026 00:02:00",
    ],
)
def test_retry_after_future_http_date_is_seconds_from_now(raw: str) -> None:
    assert retry_after_seconds({"retry-after": raw}, now=NOW) == 120.0


@pytest.mark.parametrize(
    "raw",
    [
        "Thu, 30 Apr 2026 23:59:00 GMT",
        "Fri, 01 May 2026 00:00:00 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT",
    ],
)
def test_retry_after_past_or_present_http_date_is_zero_not_negative(raw: str) -> None:
    # A date already passed means "now"; a negative delay would mean nothing useful.
    assert retry_after_seconds({"retry-after": raw}, now=NOW) == 0.0


def test_retry_after_now_of_zero_is_honoured_not_replaced_by_the_clock() -> None:
    # now=0.0 is falsy; the function must test for None, not for truthiness.
    assert retry_after_seconds({"retry-after": "Thu, 01 Jan 1970 00:01:00 GMT"}, now=0.0) == 60.0


def test_retry_after_past_http_date_without_injected_now_is_zero() -> None:
    # Uses the real clock, but any clock after 1994 gives the same answer.
    assert retry_after_seconds({"retry-after": "Sun, 06 Nov 1994 08:49:37 GMT"}) == 0.0


def test_retry_after_negative_delta_is_clamped_to_zero() -> None:
    # Invalid per RFC 9110 (delta-seconds is digits only); read as "no wait".
    assert retry_after_seconds({"retry-after": "-5"}, now=NOW) == 0.0


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "soon",
        "120 seconds",
        "Fri, 32 May 2026 00:02:00 GMT",
        "nan",
        "inf",
        "-inf",
        "1e400",
    ],
)
def test_retry_after_invalid_or_non_finite_is_none(raw: str) -> None:
    # None means "no hint": the poller falls back to its own backoff.
    assert retry_after_seconds({"retry-after": raw}, now=NOW) is None


def test_retry_after_missing_header_is_none() -> None:
    assert retry_after_seconds({}, now=NOW) is None
    assert retry_after_seconds({"x-ratelimit-reset": "1777593720"}, now=NOW) is None


# --- classify_http_error() ------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        # docs/providers/README.md, Error classification.
        (401, Reason.AUTH),
        (402, Reason.PAYMENT),
        (403, Reason.FORBIDDEN),
        (429, Reason.RATE_LIMITED),
        (500, Reason.SERVER),
        (502, Reason.SERVER),
        (503, Reason.SERVER),
        (504, Reason.SERVER),
        (599, Reason.SERVER),
        # Every other non-2xx answer is `http`. 408 is the server giving up on us, not
        # our own timeout (`timeout` is reserved for the poller's deadline).
        (400, Reason.HTTP),
        (404, Reason.HTTP),
        (405, Reason.HTTP),
        (408, Reason.HTTP),
        (410, Reason.HTTP),
        (413, Reason.HTTP),
        (451, Reason.HTTP),
        (301, Reason.HTTP),
        (304, Reason.HTTP),
    ],
)
def test_classify_status_to_design_reason(status: int, reason: Reason) -> None:
    error = classify_http_error(status, {}, b'{"error": "boom"}')
    assert error.reason is reason
    assert error.status == status
    assert error.message == f"HTTP {status}: boom"
    assert error.retry_after is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        # The envelopes our vendors use (base.error_message).
        (b'{"message": "Unauthorized"}', "Unauthorized"),
        (b'{"error": "Invalid API Key"}', "Invalid API Key"),
        (b'{"error": {"code": "rate_limited", "message": "Slow down"}}', "Slow down"),
        (b'{"error": {"error_message": "Legacy text"}}', "Legacy text"),
        (b'{"error": {"code": "quota_exceeded"}}', "quota_exceeded"),
        (b'{"detail": "Not authenticated"}', "Not authenticated"),
        # `message` wins over the machine code in `error`.
        (b'{"error": "unauthorized", "message": "Key revoked"}', "Key revoked"),
        # Not an envelope: the body itself, on one line.
        (b"<html>\n  <h1>502 Bad Gateway</h1>\n</html>", "<html> <h1>502 Bad Gateway</h1> </html>"),
        (b'{"unexpected": 1}', '{"unexpected": 1}'),
        (b"[1, 2]", "[1, 2]"),
        (b"", "(empty body)"),
        (b" \n\t ", "(empty body)"),
    ],
)
def test_classify_message_prefers_the_vendor_text(raw: bytes, message: str) -> None:
    error = classify_http_error(500, {}, raw)
    assert error.message == f"HTTP 500: {message}"
    assert str(error) == error.message


def test_classify_reads_retry_after_from_headers() -> None:
    error = classify_http_error(429, {"retry-after": "42"}, b"")
    assert error.reason is Reason.RATE_LIMITED
    assert error.retry_after == 42.0


def test_classify_explicit_retry_after_wins_over_the_header() -> None:
    # Adapters with a body hint (VidNavigator 503) pass their own figure in.
    error = classify_http_error(503, {"retry-after": "42"}, b"", retry_after=7.0)
    assert error.retry_after == 7.0
    # 0.0 is a real answer ("retry now"), not "no answer".
    error = classify_http_error(503, {"retry-after": "42"}, b"", retry_after=0.0)
    assert error.retry_after == 0.0


def test_classify_body_excerpt_is_bounded_and_single_line() -> None:
    raw = ("line one\n" + "x" * 5000).encode()
    error = classify_http_error(502, {}, raw)
    assert error.body_excerpt == excerpt(raw)
    assert len(error.body_excerpt) == EXCERPT_MAX
    assert error.body_excerpt.startswith("line one xxx")
    assert error.body_excerpt.endswith("...")
    # Non-JSON bodies become the message through the same excerpt.
    assert error.message == f"HTTP 502: {error.body_excerpt}"


def test_classify_never_copies_request_or_response_headers_into_the_error() -> None:
    # The key travels in a header; a gateway echoing request headers back in the
    # response must not put it into a message that is logged and shown on `/`.
    key = "pictai_sEcReT0123456789"
    hdrs = {"authorization": key, "x-api-key": key, "retry-after": "5"}
    error = classify_http_error(401, hdrs, b'{"message": "Unauthorized"}')
    assert key not in error.message
    assert key not in error.body_excerpt
    assert key not in repr(error)


def test_classify_long_multiline_json_message_stays_one_short_line() -> None:
    raw = json.dumps({"message": "first line\nsecond line " + "x" * 5000}).encode()
    error = classify_http_error(500, {}, raw)
    assert "\n" not in error.message
    assert len(error.message) <= len("HTTP 500: ") + EXCERPT_MAX


# --- excerpt(), unrecognised(), json helpers -----------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", ""),
        (b"short", "short"),
        (b"  a\n\tb\r\n  c  ", "a b c"),
        (b"x" * 200, "x" * 200),
        (b"x" * 201, "x" * 200 + "..."),
        # Invalid UTF-8 (a Latin-1 body) is replaced, not an exception.
        (b"caf\xe9", "caf\ufffd"),
        # Leading padding longer than the bytes read does not hide the text.
        (b" " * 1000 + b"real text", "real text"),
    ],
)
def test_excerpt_is_one_bounded_line(raw: bytes, expected: str) -> None:
    assert excerpt(raw) == expected


def test_excerpt_of_a_huge_body_reads_only_its_start() -> None:
    # A multi-megabyte HTML error page costs a few hundred bytes of decoding.
    result = excerpt(b"a" * 10_000_000)
    assert result == "a" * 200 + "..."


def test_unrecognised_is_a_parse_error_that_is_returned_not_raised() -> None:
    raw = b'{"status": "ok"}'
    error = unrecognised(200, raw, "no quota entries")
    assert isinstance(error, PollError)
    assert error.reason is Reason.PARSE
    assert error.status == 200
    assert error.retry_after is None
    assert error.message == 'no quota entries in response: \'{"status": "ok"}\''
    assert error.body_excerpt == '{"status": "ok"}'


def test_unrecognised_quotes_only_a_bounded_excerpt() -> None:
    raw = b"<html>" + b"y" * 10_000 + b"</html>"
    error = unrecognised(200, raw, "no usage fields")
    assert error.body_excerpt == excerpt(raw)
    assert len(error.body_excerpt) == EXCERPT_MAX
    assert error.message == f"no usage fields in response: {excerpt(raw)!r}"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"a": 1}', {"a": 1}),
        (b"[1, 2]", [1, 2]),
        (b'"text"', "text"),
        (b"<html></html>", None),
        (b"", None),
        (b"\xff\xfe\x00", None),
        (b'{"a": ', None),
    ],
)
def test_decode_json_never_raises(raw: bytes, expected: Any) -> None:
    # Gateways send HTML and plain text with any status (docs/providers/README.md).
    assert decode_json(raw) == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"<html>oops</html>", "response body is not JSON: '<html>oops</html>'"),
        (b"[1, 2]", "response body is JSON list, not an object: '[1, 2]'"),
        (b'"text"', "response body is JSON str, not an object"),
        (b"42", "response body is JSON int, not an object"),
    ],
)
def test_json_object_rejects_anything_but_an_object(raw: bytes, fragment: str) -> None:
    with pytest.raises(PollError) as info:
        json_object(200, raw)
    assert info.value.reason is Reason.PARSE
    assert info.value.status == 200
    assert fragment in info.value.message


def test_json_object_returns_the_object() -> None:
    assert json_object(200, b'{"plan": "pro"}') == {"plan": "pro"}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"message": "m"}, "m"),
        ({"error_message": "em"}, "em"),
        ({"detail": "d"}, "d"),
        ({"error": "e"}, "e"),
        ({"error": {"message": "nested"}}, "nested"),
        ({"error": {"code": 1010}}, "1010"),
        # Precedence: message, error_message, detail, then error.
        ({"detail": "d", "message": "m", "error": "e"}, "m"),
        ({"error": "e", "detail": "d"}, "d"),
        # Nothing usable.
        ({"message": ""}, None),
        ({"message": 5}, None),
        ({"error": {}}, None),
        ({"error": {"code": ""}}, None),
        ({}, None),
        ([], None),
        ("message", None),
        (None, None),
    ],
)
def test_error_message_envelopes(data: Any, expected: str | None) -> None:
    assert error_message(data) == expected


# --- small field helpers --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("unlimited", True),
        ("Unlimited", True),
        (" UNLIMITED ", True),
        ("unlimited!", False),
        ("", False),
        (None, False),
        (-1, False),
        (float("inf"), False),
        ("inf", False),
    ],
)
def test_is_unlimited_means_the_word_only(value: Any, expected: bool) -> None:
    # Only the explicit word counts; -1 or inf are never guessed to mean unlimited here.
    assert is_unlimited(value) is expected


def test_obj_returns_nested_objects_and_none_for_absent_or_null() -> None:
    data: dict[str, Any] = {"storage": {"used_bytes": 1}, "period": None}
    assert obj(data, "storage") == {"used_bytes": 1}
    assert obj(data, "period") is None
    assert obj(data, "missing") is None


@pytest.mark.parametrize(
    ("value", "type_name"), [([], "list"), ("x", "str"), (3, "int"), (True, "bool")]
)
def test_obj_other_types_are_a_field_error_with_the_path(value: Any, type_name: str) -> None:
    with pytest.raises(FieldError) as info:
        obj({"quotas": value}, "quotas", "api_key.")
    assert str(info.value) == f"api_key.quotas: expected an object, got {type_name}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("pro", "pro"),
        ("  pro  ", "pro"),
        (True, "true"),
        (False, "false"),
        (720, "720"),
        (1.5, "1.5"),
        ("", None),
        ("   ", None),
        (None, None),
        ({"plan": "pro"}, None),
        (["pro"], None),
    ],
)
def test_label_value(value: Any, expected: str | None) -> None:
    assert label_value(value) == expected


# --- gather() -------------------------------------------------------------------------


def test_gather_keeps_what_parsed_and_describes_the_rest_in_order() -> None:
    def bad(where: str) -> Callable[[], Any]:
        return lambda: number("lots", where)

    results, problems = gather(
        {
            "a": lambda: 1.0,
            "b": bad("b.used"),
            "c": lambda: None,
            "d": bad("d.limit"),
        }
    )
    # One bad field costs its own part only (docs/providers/README.md); None results are kept, so
    # callers can tell "parsed as absent" from "failed".
    assert results == {"a": 1.0, "c": None}
    assert problems == (
        "b.used: expected a number, got 'lots'",
        "d.limit: expected a number, got 'lots'",
    )


def test_gather_calls_every_part_exactly_once() -> None:
    calls: list[str] = []

    def part(name: str) -> Callable[[], str]:
        def run() -> str:
            calls.append(name)
            if name == "boom":
                raise FieldError("boom: bad")
            return name

        return run

    results, problems = gather({n: part(n) for n in ("x", "boom", "y")})
    assert calls == ["x", "boom", "y"]
    assert results == {"x": "x", "y": "y"}
    assert problems == ("boom: bad",)


def test_gather_of_nothing() -> None:
    assert gather({}) == ({}, ())


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("meter x reported twice"),
        KeyError("k"),
        TypeError("t"),
        PollError(Reason.PARSE, "p"),
    ],
)
def test_gather_lets_anything_but_field_errors_through(exc: Exception) -> None:
    # Only FieldError is a vendor problem. Anything else is an adapter bug (or a
    # deliberate PollError) and must surface; the poller reports it as a failed poll.
    def part() -> None:
        raise exc

    with pytest.raises(type(exc)):
        gather({"ok": lambda: 1, "bad": part})


# --- Provider -------------------------------------------------------------------------


def test_provider_defaults_match_the_polling_guidance() -> None:
    # docs/providers/README.md, Polling guidance: 300 s default, 60 s floor for every vendor.
    provider = Provider(
        name="example",
        default_base_url="https://api.example.com",
        path="/v1/usage",
        auth_header="X-API-Key",
        parse=_noop,
    )
    assert provider.default_interval == 300.0
    assert provider.min_interval == 60.0
    assert provider.rate_limit_cooldown == 0.0
    assert provider.auth_prefix == ""
    assert provider.docs_url == ""
    assert provider.key_warning is None


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        (None, "https://api.example.com/v1/usage"),
        # An empty override is no override.
        ("", "https://api.example.com/v1/usage"),
        ("http://127.0.0.1:9", "http://127.0.0.1:9/v1/usage"),
        # A proxy prefix is kept; trailing slashes never double up.
        ("http://127.0.0.1:9/example/", "http://127.0.0.1:9/example/v1/usage"),
        ("http://127.0.0.1:9/example//", "http://127.0.0.1:9/example/v1/usage"),
    ],
)
def test_provider_url_appends_the_path_to_the_base(base_url: str | None, expected: str) -> None:
    provider = Provider(
        name="example",
        default_base_url="https://api.example.com/",
        path="/v1/usage",
        auth_header="X-API-Key",
        parse=_noop,
    )
    assert provider.url(base_url) == expected


@pytest.mark.parametrize(("prefix", "expected"), [("", "k3y"), ("Bearer ", "Bearer k3y")])
def test_provider_auth_headers(prefix: str, expected: str) -> None:
    provider = Provider(
        name="example",
        default_base_url="https://api.example.com",
        path="/v1/usage",
        auth_header="Authorization",
        auth_prefix=prefix,
        parse=_noop,
    )
    assert provider.auth_headers("k3y") == {"Authorization": expected}


def test_provider_is_immutable() -> None:
    # Shared by every account and every reload: nobody may patch it in place.
    provider = pictory.PROVIDER
    with pytest.raises(dataclasses.FrozenInstanceError):
        provider.default_interval = 1.0  # type: ignore[misc]


def test_json_nested_past_the_recursion_limit_is_not_json() -> None:
    """A 1 MiB `[[[[...` body made json.loads raise RecursionError, which escaped every
    adapter's parse and was counted `internal` instead of `parse`."""
    body = b"[" * 200_000 + b"]" * 200_000
    assert decode_json(body) is None
    with pytest.raises(PollError) as caught:
        json_object(200, body)
    assert caught.value.reason is Reason.PARSE
