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
# [0-9], not \d: Prometheus takes ASCII digits only, and int() would take any script's.
_PATTERN = re.compile("".join(rf"(?:([0-9]+){unit})?" for unit, _ in _UNITS))
_NUMBER = re.compile(r"[0-9]+")
# Go's time.Duration limit, as Prometheus has it; past it a float would overflow too.
_MAX_MILLIS = (2**63 - 1) // 1_000_000


def parse_duration(text: str) -> float:
    """Seconds in a duration string; ValueError with a hint when it is not one."""
    text = text.strip()
    if text == "0":
        return 0.0
    match = _PATTERN.fullmatch(text)
    if not text or match is None:
        if _NUMBER.fullmatch(text):
            hint = "add a unit, e.g. 300s or 5m"
        else:
            hint = "use whole numbers with units y, w, d, h, m, s, ms, largest first, e.g. 1h30m"
        raise ValueError(f"not a duration: {text!r} ({hint})")
    millis = sum(
        int(value) * round(factor * 1000)
        for value, (_, factor) in zip(match.groups(), _UNITS, strict=True)
        if value is not None
    )
    if millis > _MAX_MILLIS:
        raise ValueError(f"duration out of range: {text!r} (the most is about 292y)")
    return millis / 1000


def format_duration(seconds: float) -> str:
    """A number of seconds as Prometheus writes it ("5m", "1h30m", "90d").

    Like Prometheus' Duration.String, years and weeks only when they divide it exactly:
    "90d" reads better than "12w6d".
    """
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    parts: list[str] = []
    for unit, factor in _UNITS:
        unit_ms = round(factor * 1000)
        if unit in ("y", "w") and millis % unit_ms:
            continue
        count, millis = divmod(millis, unit_ms)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
