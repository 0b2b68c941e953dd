"""Prometheus-style durations ("5m", "1h30m", "250ms"), as the Go exporters take them.

Same grammar as Prometheus' model.ParseDuration: units y, w, d, h, m, s, ms in that
order, each at most once, integers only; "0" alone is allowed.
"""

from __future__ import annotations

import re

_UNITS: tuple[tuple[str, float], ...] = (
    ("y", 365 * 24 * 3600.0),
    ("w", 7 * 24 * 3600.0),
    ("d", 24 * 3600.0),
    ("h", 3600.0),
    ("m", 60.0),
    ("s", 1.0),
    ("ms", 0.001),
)
_PATTERN = re.compile("".join(rf"(?:(\d+){unit})?" for unit, _ in _UNITS))


def parse_duration(text: str) -> float:
    """Seconds in a duration string; ValueError with a hint when it is not one."""
    text = text.strip()
    if text == "0":
        return 0.0
    match = _PATTERN.fullmatch(text)
    if not text or match is None:
        hint = " (add a unit, e.g. 300s or 5m)" if text.isdigit() else ""
        raise ValueError(f"not a duration: {text!r}{hint}")
    return sum(
        int(value) * factor
        for value, (_, factor) in zip(match.groups(), _UNITS, strict=True)
        if value is not None
    )


def format_duration(seconds: float) -> str:
    """The shortest Prometheus duration for a number of seconds ("5m", "1h30m")."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    parts: list[str] = []
    for unit, factor in _UNITS:
        unit_ms = round(factor * 1000)
        count, millis = divmod(millis, unit_ms)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
