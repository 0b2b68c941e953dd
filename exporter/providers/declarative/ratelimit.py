"""Rate-limit response headers as meters (`rate_limit_headers: true`), unit `requests`.

Three generations, read in this order of preference:

* IETF draft 11 structured fields: `RateLimit-Policy: "name";q=100;w=60` (the limit
  `q` per window `w`) and `RateLimit: "name";r=50;t=30` (remaining `r`, reset in `t`
  seconds), one meter `ratelimit_<name>` per policy name.
* The older draft form `RateLimit-Limit: 100, 100;w=21600`, `RateLimit-Remaining`,
  `RateLimit-Reset` (delta seconds): meter `ratelimit`.
* `X-RateLimit-Limit` / `-Remaining` / `-Used` / `-Reset` (a reset above 1e9 is epoch
  seconds, else delta seconds): meter `ratelimit`, unless the older form gave it.

Header values are vendor text: only numbers are taken from them, and the policy name
becomes part of a meter id after snake_case normalisation and a length bound, never a
label of its own. A header that does not read costs its meter only (a problem).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from exporter.model import FieldError, MeterReading
from exporter.providers.base import Headers, quota_reading

UNIT: Final = "requests"
# A policy name is vendor text that ends up in a meter id: bounded.
MAX_NAME_CHARS: Final = 48
# Header values longer than this are not rate-limit fields.
MAX_FIELD_CHARS: Final = 4096

_TOKEN = re.compile(r"[A-Za-z*][A-Za-z0-9:/!#$%&'*+\-.^_`|~]*")
_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_NUMBER = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,3})?")


@dataclass(frozen=True)
class Item:
    """One member of a structured-field list: its bare value and its parameters."""

    value: Any
    params: dict[str, Any]


def parse_list(text: str) -> list[Item]:
    """An RFC 8941 list of items with parameters (strings, tokens, numbers, booleans).

    Inner lists and byte sequences are not used by the rate-limit fields and are
    refused; so is anything malformed (ValueError), as a whole header.
    """
    if len(text) > MAX_FIELD_CHARS:
        raise ValueError("field too long")
    pos, items = 0, []
    text = text.strip()
    while pos < len(text):
        value, pos = _bare(text, pos)
        params: dict[str, Any] = {}
        while pos < len(text) and text[pos] == ";":
            pos += 1
            while pos < len(text) and text[pos] == " ":
                pos += 1
            key_match = _KEY.match(text, pos)
            if not key_match:
                raise ValueError(f"bad parameter key at {pos}")
            key, pos = key_match.group(0), key_match.end()
            if pos < len(text) and text[pos] == "=":
                params[key], pos = _bare(text, pos + 1)
            else:
                params[key] = True
        items.append(Item(value, params))
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text):
            if text[pos] != ",":
                raise ValueError(f"expected ',' at {pos}")
            pos += 1
            while pos < len(text) and text[pos] in " \t":
                pos += 1
            if pos >= len(text):
                raise ValueError("trailing comma")
    return items


def _bare(text: str, pos: int) -> tuple[Any, int]:
    if pos >= len(text):
        raise ValueError("value expected")
    char = text[pos]
    if char == '"':
        out, pos = [], pos + 1
        while pos < len(text):
            char = text[pos]
            if char == "\\":
                if pos + 1 >= len(text) or text[pos + 1] not in '"\\':
                    raise ValueError("bad escape")
                out.append(text[pos + 1])
                pos += 2
            elif char == '"':
                return "".join(out), pos + 1
            elif not " " <= char <= "~":
                raise ValueError("bad character in string")
            else:
                out.append(char)
                pos += 1
        raise ValueError("unterminated string")
    if char == "?":
        if text[pos + 1 : pos + 2] in ("0", "1"):
            return text[pos + 1] == "1", pos + 2
        raise ValueError("bad boolean")
    number = _NUMBER.match(text, pos)
    if number:
        raw = number.group(0)
        return (float(raw) if "." in raw else int(raw)), number.end()
    token = _TOKEN.match(text, pos)
    if token:
        return token.group(0), token.end()
    raise ValueError(f"unexpected character at {pos}")


def meter_name(policy: str) -> str:
    """`ratelimit_<policy>` in snake_case, bounded."""
    name = re.sub(r"[^a-z0-9]+", "_", policy.lower()).strip("_")[:MAX_NAME_CHARS].strip("_")
    return f"ratelimit_{name}" if name else "ratelimit"


def harvest(headers: Headers, now: float) -> tuple[list[MeterReading], list[str]]:
    """The rate-limit meters the headers describe, and what could not be read."""
    meters: list[MeterReading] = []
    problems: list[str] = []
    if "ratelimit-policy" in headers or "ratelimit" in headers:
        try:
            meters.extend(_structured(headers, now))
        except (ValueError, FieldError) as exc:
            problems.append(f"RateLimit/RateLimit-Policy headers: {exc}")
    legacy: MeterReading | None = None
    for form in (_older, _x_ratelimit):
        try:
            legacy = form(headers, now)
        except (ValueError, FieldError) as exc:
            problems.append(str(exc))
            continue
        if legacy is not None:
            break
    if legacy is not None and all(m.meter != legacy.meter for m in meters):
        meters.append(legacy)
    return meters, problems


def _structured(headers: Headers, now: float) -> list[MeterReading]:
    policies = parse_list(headers.get("ratelimit-policy", ""))
    states = parse_list(headers.get("ratelimit", ""))
    names: dict[str, dict[str, Any]] = {}
    for item in policies:
        names.setdefault(_policy_name(item), {})["limit"] = item.params.get("q")
    for item in states:
        entry = names.setdefault(_policy_name(item), {})
        entry["remaining"] = item.params.get("r")
        entry["reset"] = item.params.get("t")
    result: list[MeterReading] = []
    seen: set[str] = set()
    for policy, figures in names.items():
        meter = meter_name(policy)
        if meter in seen:
            continue
        seen.add(meter)
        reset = figures.get("reset")
        reading = quota_reading(
            meter,
            UNIT,
            limit=_integer(figures.get("limit"), f"{meter} q"),
            remaining=_integer(figures.get("remaining"), f"{meter} r"),
            where=meter,
            reset_timestamp=None if reset is None else now + _integer(reset, f"{meter} t"),
        )
        if reading is not None:
            result.append(reading)
    return result


def _policy_name(item: Item) -> str:
    if not isinstance(item.value, str):
        raise ValueError("a policy name must be a string or token")
    return item.value


def _integer(value: Any, where: str) -> float:
    if value is None:
        return None  # type: ignore[return-value]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise FieldError(f"{where}: expected a non-negative number, got {value!r}")
    return float(value)


def _first_number(headers: Headers, name: str) -> float | None:
    """The leading number of `100, 100;w=21600` or `100;w=60`; None when absent."""
    raw = headers.get(name)
    if raw is None:
        return None
    head = raw.split(",", 1)[0].split(";", 1)[0].strip()
    if len(head) > 32:
        raise FieldError(f"{name}: not a number")
    try:
        value = float(head)
    except ValueError:
        raise FieldError(f"{name}: not a number: {head[:20]!r}") from None
    if not value >= 0 or value == float("inf"):
        raise FieldError(f"{name}: not a non-negative number: {head[:20]!r}")
    return value


def _older(headers: Headers, now: float) -> MeterReading | None:
    limit = _first_number(headers, "ratelimit-limit")
    remaining = _first_number(headers, "ratelimit-remaining")
    reset = _first_number(headers, "ratelimit-reset")
    if limit is None and remaining is None:
        return None
    return quota_reading(
        "ratelimit",
        UNIT,
        limit=limit,
        remaining=remaining,
        where="RateLimit-*",
        reset_timestamp=None if reset is None else now + reset,
    )


def _x_ratelimit(headers: Headers, now: float) -> MeterReading | None:
    limit = _first_number(headers, "x-ratelimit-limit")
    remaining = _first_number(headers, "x-ratelimit-remaining")
    used = _first_number(headers, "x-ratelimit-used")
    reset = _first_number(headers, "x-ratelimit-reset")
    if limit is None and remaining is None and used is None:
        return None
    if reset is not None and reset <= 1e9:
        reset += now
    return quota_reading(
        "ratelimit",
        UNIT,
        used=used,
        limit=limit,
        remaining=remaining,
        where="X-RateLimit-*",
        reset_timestamp=reset,
    )
