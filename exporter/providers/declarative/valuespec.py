"""Value specs: where one figure of a declarative provider comes from, and how it reads.

A spec is a JMESPath expression against the current context (the JSON body, or the
entry inside `each`), `{root: EXPR}` against the whole body, `{header: NAME}` a
response header, or `{value: X}` a constant; `format` says how a timestamp reads.
Specs are values (frozen, compared by their text), so two equal definitions compare
equal; the compiled expression rides along outside the comparison.
"""

from __future__ import annotations

import email.utils
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final

import jmespath
from jmespath.parser import ParsedResult

from exporter.providers.base import FieldError, Headers, number

SOURCES: Final = ("path", "root", "header", "value")
TIMESTAMP_FORMATS: Final = (
    "auto",
    "epoch",
    "epoch_ms",
    "iso8601",
    "http_date",
    "delta_seconds",
    "duration",
)
# `format: auto`: a number above this is epoch milliseconds (1e11 s is the year 5138).
EPOCH_MS_ABOVE: Final = 1e11

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Go's time.Duration text: "6m0s", "1h2m3.5s", "12ms", "-1.5h".
_GO_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_GO_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_GO_DURATION = re.compile(
    r"[-+]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h))+"
)


def compile_expression(text: str) -> ParsedResult:
    """A JMESPath expression, compiled; jmespath's ParseError when it is not one."""
    return jmespath.compile(text)


@dataclass(frozen=True)
class Context:
    """What a spec is evaluated against during one parse."""

    item: Any
    root: Any
    headers: Headers
    # The time of the answer (its Date header, else the parse's clock), for formats
    # that are relative to it.
    now: float


@dataclass(frozen=True)
class ValueSpec:
    source: str  # one of SOURCES
    # The expression (path/root), the lower-case header name, or "" for a constant.
    text: str = ""
    constant: Any = None
    format: str = "auto"
    compiled: ParsedResult | None = field(default=None, compare=False, repr=False, hash=False)

    @property
    def reads_body(self) -> bool:
        return self.source in ("path", "root")

    def raw(self, ctx: Context) -> Any:
        """The value as the answer has it; None when absent. JMESPathError may escape."""
        if self.source == "value":
            return self.constant
        if self.source == "header":
            return ctx.headers.get(self.text)
        assert self.compiled is not None
        return self.compiled.search(ctx.root if self.source == "root" else ctx.item)

    def describe(self) -> str:
        if self.source == "value":
            return f"value {self.constant!r}"
        return f"{self.source} {self.text}"


def read_number(raw: Any, where: str) -> float | None:
    """A figure: a JSON number or a numeric string; None for null or missing."""
    return number(raw, where)


def read_timestamp(raw: Any, fmt: str, now: float, where: str) -> float | None:
    """A point in time as Unix seconds, read as `fmt` says; None for null or "".

    `auto`: ISO 8601 / RFC 3339 (fraction and offset optional), date-only (00:00
    UTC), epoch seconds, or epoch milliseconds (a number above 1e11).
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise FieldError(f"{where}: not a timestamp: {type(raw).__name__}")
    text = raw.strip() if isinstance(raw, str) else None
    if fmt == "auto":
        value = _maybe_number(raw)
        if value is not None:
            return _finite(value / 1000.0 if value > EPOCH_MS_ABOVE else value, raw, where)
        assert text is not None
        return _iso(text, where)
    if fmt in ("epoch", "epoch_ms", "delta_seconds"):
        value = _maybe_number(raw)
        if value is None:
            raise FieldError(f"{where}: not a number of seconds: {_short(raw)}")
        if fmt == "epoch_ms":
            value /= 1000.0
        elif fmt == "delta_seconds":
            value += now
        return _finite(value, raw, where)
    if text is None:
        raise FieldError(f"{where}: expected a {fmt} string, got a number")
    if fmt == "iso8601":
        return _iso(text, where)
    if fmt == "http_date":
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            raise FieldError(f"{where}: not an HTTP date: {_short(raw)}") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return _finite(when.timestamp(), raw, where)
    if fmt == "duration":
        return _finite(now + go_duration(text, where), raw, where)
    raise FieldError(f"{where}: unknown timestamp format {fmt!r}")  # refused at load


def go_duration(text: str, where: str) -> float:
    """Seconds in a Go duration string ("6m0s", "12ms", "1h30m"; "0" alone too)."""
    if text in ("0", "+0", "-0"):
        return 0.0
    if not _GO_DURATION.fullmatch(text):
        raise FieldError(f"{where}: not a duration like 6m0s or 12ms: {_short(text)}")
    sign = -1.0 if text.startswith("-") else 1.0
    total = sum(float(amount) * _GO_UNITS[unit] for amount, unit in _GO_PART.findall(text))
    return sign * total


def _maybe_number(raw: Any) -> float | None:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        try:
            return float(raw)
        except OverflowError:
            return math.inf
    if isinstance(raw, str):
        try:
            return float(raw.strip())
        except ValueError:
            return None
    return None


def _iso(text: str, where: str) -> float:
    if _DATE_ONLY.match(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise FieldError(f"{where}: not a date: {_short(text)}") from None
        return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise FieldError(f"{where}: not an ISO 8601 timestamp: {_short(text)}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.timestamp()
    except (OverflowError, ValueError):
        raise FieldError(f"{where}: timestamp out of range: {_short(text)}") from None


def _finite(value: float, raw: Any, where: str) -> float:
    if not math.isfinite(value):
        raise FieldError(f"{where}: not a finite timestamp: {_short(raw)}")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."
