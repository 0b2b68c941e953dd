"""Prometheus-style durations: the grammar of Prometheus' model.ParseDuration."""

from __future__ import annotations

import re

import pytest

from exporter.durations import format_duration, parse_duration

DAY = 24 * 3600
GRAMMAR_HINT = "use whole numbers with units y, w, d, h, m, s, ms, largest first, e.g. 1h30m"
UNIT_HINT = "add a unit, e.g. 300s or 5m"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("0s", 0.0),
        ("0h0m", 0.0),
        ("1ms", 0.001),
        ("5ms", 0.005),
        ("250ms", 0.25),
        ("1s", 1.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1m5ms", 60.005),
        ("1s500ms", 1.5),
        ("1d", DAY),
        ("1w", 7 * DAY),
        ("1y", 365 * DAY),
        ("1y2w3d4h5m6s7ms", 365 * DAY + 14 * DAY + 3 * DAY + 4 * 3600 + 5 * 60 + 6.007),
        ("007s", 7.0),
        ("292y", 292 * 365 * DAY),
        # Surrounding whitespace (a quoted YAML value) is not worth an error.
        (" 5m ", 300.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, abs=1e-9)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", f"not a duration: '' ({GRAMMAR_HINT})"),
        ("   ", f"not a duration: '' ({GRAMMAR_HINT})"),
        # A bare number is the most likely slip: say what is missing.
        ("300", f"not a duration: '300' ({UNIT_HINT})"),
        ("5", f"not a duration: '5' ({UNIT_HINT})"),
        ("00", f"not a duration: '00' ({UNIT_HINT})"),
        ("-5m", f"not a duration: '-5m' ({GRAMMAR_HINT})"),
        ("+5m", f"not a duration: '+5m' ({GRAMMAR_HINT})"),
        ("1.5h", f"not a duration: '1.5h' ({GRAMMAR_HINT})"),
        ("5M", f"not a duration: '5M' ({GRAMMAR_HINT})"),
        ("5min", f"not a duration: '5min' ({GRAMMAR_HINT})"),
        ("5 m", f"not a duration: '5 m' ({GRAMMAR_HINT})"),
        ("5us", f"not a duration: '5us' ({GRAMMAR_HINT})"),
        ("1h1h", f"not a duration: '1h1h' ({GRAMMAR_HINT})"),
        # Units largest first, as Prometheus requires.
        ("30m1h", f"not a duration: '30m1h' ({GRAMMAR_HINT})"),
        ("1ms1s", f"not a duration: '1ms1s' ({GRAMMAR_HINT})"),
        ("m", f"not a duration: 'm' ({GRAMMAR_HINT})"),
        ("ms", f"not a duration: 'ms' ({GRAMMAR_HINT})"),
        ("5m garbage", f"not a duration: '5m garbage' ({GRAMMAR_HINT})"),
        # ASCII digits only: int() would happily read other scripts' digits.
        ("\u0663s", f"not a duration: '\u0663s' ({GRAMMAR_HINT})"),
        ("\u00b2", f"not a duration: '\u00b2' ({GRAMMAR_HINT})"),
        ("293y", "duration out of range: '293y' (the most is about 292y)"),
        # Would overflow a float rather than raise a plain OverflowError.
        ("9" * 400 + "y", f"duration out of range: '{'9' * 400}y' (the most is about 292y)"),
    ],
)
def test_parse_duration_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        parse_duration(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.0004, "0s"),
        (0.001, "1ms"),
        (0.25, "250ms"),
        (1, "1s"),
        (1.5, "1s500ms"),
        (59, "59s"),
        (60, "1m"),
        (90, "1m30s"),
        (300, "5m"),
        (900, "15m"),
        (3600, "1h"),
        (5400, "1h30m"),
        (DAY, "1d"),
        (DAY + 1, "1d1s"),
        (7 * DAY, "1w"),
        (14 * DAY, "2w"),
        # Years and weeks only when exact, like Prometheus' Duration.String.
        (8 * DAY, "8d"),
        (90 * DAY, "90d"),
        (14 * DAY + 1, "14d1s"),
        (365 * DAY, "1y"),
        (366 * DAY, "366d"),
        (730 * DAY, "2y"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    "text", ["1ms", "250ms", "1s500ms", "5m", "1h30m", "1d1s", "2w", "90d", "1y", "366d"]
)
def test_format_duration_round_trips(text: str) -> None:
    assert format_duration(parse_duration(text)) == text
