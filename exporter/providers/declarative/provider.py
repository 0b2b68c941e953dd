"""A definition as a `Provider`: its pure `parse`, and `explain` for the probe.

`parse(status, headers, body)` returns `Readings` or raises `PollError`, nothing else:
a vendor answer that does not fit the definition costs only the meters it breaks
(each one a problem in `Readings.problems`), and an answer with nothing usable is a
`parse` failure. The parser is a frozen value holding the definition, so two providers
built from equal definitions compare equal (a reload that leaves a definition alone
leaves its accounts alone).
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from dataclasses import dataclass
from typing import Any, Final

from jmespath.exceptions import JMESPathError

from exporter.model import FieldError, MeterReading, PollError, Readings, Reason
from exporter.providers.base import (
    Headers,
    Provider,
    classify_http_error,
    decode_json,
    error_message,
    excerpt,
    is_unlimited,
    label_value,
    number,
    quota_reading,
    retry_after_seconds,
)
from exporter.providers.declarative import ratelimit
from exporter.providers.declarative.schema import Definition, MeterSpec
from exporter.providers.declarative.valuespec import Context, ValueSpec, read_timestamp

# `errors[].body_matches` looks at this much of a body (a regex over megabytes is slow).
MATCH_BYTES: Final = 64 * 1024
# What a vendor's answer can break in one meter, besides our FieldError: an expression
# function given the wrong type (JMESPathError), a value beyond float range.
_PART_ERRORS: Final = (
    FieldError,
    JMESPathError,
    ValueError,
    TypeError,
    OverflowError,
    RecursionError,
)
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_NOT_ID = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Explanation:
    """A parse with its reasons: the readings, and why each absent meter is absent."""

    readings: Readings
    absent: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DefinitionParser:
    """The `parse` of a declarative provider; equal when the definitions are."""

    definition: Definition

    def __call__(self, status: int, headers: Headers, body: bytes) -> Readings:
        return self.explain(status, headers, body).readings

    def explain(self, status: int, headers: Headers, body: bytes) -> Explanation:
        d = self.definition
        rule_error = self._rule(status, headers, body)
        if rule_error is not None:
            raise rule_error
        if not 200 <= status <= 299:
            raise classify_http_error(status, headers, body)
        data = _decode(status, body) if d.needs_body else None
        ctx = Context(item=data, root=data, headers=headers, now=_answer_time(headers))
        meters: list[MeterReading] = []
        problems: list[str] = []
        absent: list[tuple[str, str]] = []
        for spec in d.meters:
            if spec.each is None:
                self._one(spec, ctx, spec.id, meters, problems, absent)
            else:
                self._each(spec, ctx, meters, problems, absent)
        if d.rate_limit_headers:
            found, header_problems = ratelimit.harvest(headers, ctx.now)
            meters.extend(found)
            problems.extend(header_problems)
        meters = self._bounded(meters, problems)
        info = self._info(ctx, problems)
        expiry = self._part(
            problems, "key_expiry", lambda: _timestamp(d.key_expiry, ctx, "key_expiry")
        )
        active = self._part(problems, "key_active", lambda: _active(d.key_active, ctx))
        rate_limits = []
        for window, rate_spec in d.rate_limits:
            value = self._part(problems, f"rate_limits.{window}", lambda s=rate_spec: _rate(s, ctx))
            if value is not None:
                rate_limits.append((window, value))
        if not meters and not problems:
            why = "; ".join(f"{m}: {reason}" for m, reason in absent) or "no meters defined"
            raise PollError(
                Reason.PARSE,
                f"no meter of {d.name} in the response ({why}): {excerpt(body)!r}",
                status=status,
                body_excerpt=excerpt(body),
            )
        return Explanation(
            Readings(
                meters=tuple(meters),
                account_info=tuple(info),
                api_key_expiry_timestamp=expiry,
                api_key_active=active,
                rate_limits=tuple(rate_limits),
                problems=tuple(dict.fromkeys(problems)),
            ),
            tuple(absent),
        )

    # --- errors ------------------------------------------------------------------------

    def _rule(self, status: int, headers: Headers, body: bytes) -> PollError | None:
        """The first `errors` rule that matches: a rule without `status` only matches
        a non-2xx answer, one with `status` matches that status (a 200 too)."""
        success = 200 <= status <= 299
        text: str | None = None
        for rule in self.definition.errors:
            if rule.statuses and status not in rule.statuses:
                continue
            if not rule.statuses and success:
                continue
            if rule.pattern is not None:
                if text is None:
                    text = body[:MATCH_BYTES].decode("utf-8", errors="replace")
                if rule.pattern.search(text) is None:
                    continue
            message = error_message(decode_json(body)) or excerpt(body) or "(empty body)"
            return PollError(
                rule.reason,
                f"HTTP {status}: {message}",
                status=status,
                retry_after=retry_after_seconds(headers),
                body_excerpt=excerpt(body),
            )
        return None

    # --- meters ------------------------------------------------------------------------

    def _one(
        self,
        spec: MeterSpec,
        ctx: Context,
        meter_id: str,
        meters: list[MeterReading],
        problems: list[str],
        absent: list[tuple[str, str]],
    ) -> None:
        try:
            reading = _reading(spec, ctx, meter_id)
        except _PART_ERRORS as exc:
            problems.append(_problem(meter_id, exc))
            return
        if reading is None:
            absent.append((meter_id, _absence(spec)))
        else:
            meters.append(reading)

    def _each(
        self,
        spec: MeterSpec,
        ctx: Context,
        meters: list[MeterReading],
        problems: list[str],
        absent: list[tuple[str, str]],
    ) -> None:
        assert spec.each is not None
        try:
            collection = spec.each.raw(ctx)
        except _PART_ERRORS as exc:
            problems.append(_problem(spec.id, exc))
            return
        entries: list[tuple[int, str | None, Any]]
        if collection is None:
            absent.append((spec.id, f"each: {spec.each.text} is absent or null"))
            return
        if isinstance(collection, list):
            entries = [(i, None, item) for i, item in enumerate(collection)]
        elif isinstance(collection, dict):
            entries = [(i, str(k), v) for i, (k, v) in enumerate(collection.items())]
        else:
            problems.append(
                f"meter {spec.id}: each: {spec.each.text} gave {type(collection).__name__},"
                " not a list or an object"
            )
            return
        limit = self.definition.max_meters
        for index, key, item in entries:
            if len(meters) > limit:
                break  # the rest is cut and counted by _bounded
            entry = Context(item=item, root=ctx.root, headers=ctx.headers, now=ctx.now)
            try:
                meter_id = _render_id(spec, entry, index, key)
            except _PART_ERRORS as exc:
                problems.append(_problem(f"{spec.id} [{key if key is not None else index}]", exc))
                continue
            self._one(spec, entry, meter_id, meters, problems, absent)

    def _bounded(self, meters: list[MeterReading], problems: list[str]) -> list[MeterReading]:
        """One reading per id (later duplicates dropped) and at most max_meters of them."""
        kept: list[MeterReading] = []
        seen: set[str] = set()
        for reading in meters:
            if reading.meter in seen:
                problems.append(f"meter {reading.meter}: reported twice; the later one dropped")
                continue
            seen.add(reading.meter)
            kept.append(reading)
        limit = self.definition.max_meters
        if len(kept) > limit:
            problems.append(
                f"more than max_meters ({limit}) meters in the answer; the extra ones dropped"
            )
            kept = kept[:limit]
        return kept

    # --- account-level series ----------------------------------------------------------

    def _info(self, ctx: Context, problems: list[str]) -> list[tuple[str, str]]:
        info = []
        for label, spec in self.definition.info:
            value = self._part(problems, f"info.{label}", lambda s=spec: label_value(s.raw(ctx)))
            if value is not None:
                info.append((label, value))
        return info

    @staticmethod
    def _part(problems: list[str], where: str, read: Any) -> Any:
        try:
            return read()
        except _PART_ERRORS as exc:
            problems.append(_problem(where, exc))
            return None


def _reading(spec: MeterSpec, ctx: Context, meter_id: str) -> MeterReading | None:
    raws = {
        name: (None if s is None else s.raw(ctx))
        for name, s in (("used", spec.used), ("limit", spec.limit), ("remaining", spec.remaining))
    }
    unlimited = False
    if spec.unlimited_if is not None:
        unlimited = spec.unlimited_if.raw(ctx) is True
    if None in spec.unlimited_values and any(v is not None for v in raws.values()):
        # `null` listed: a limit or remaining the definition asks for, given as null,
        # beside a figure that is there. An answer with none of the meter's figures
        # says nothing about it (a wrong endpoint, an error body): absent, never
        # "unlimited".
        unlimited = unlimited or any(
            s is not None and raws[name] is None
            for name, s in (("limit", spec.limit), ("remaining", spec.remaining))
        )
    return quota_reading(
        meter_id,
        spec.unit,
        used=raws["used"],
        limit=raws["limit"],
        remaining=raws["remaining"],
        where=f"meter {meter_id}",
        scale=spec.scale,
        unlimited=unlimited,
        unlimited_values=tuple(v for v in spec.unlimited_values if v is not None),
        reset_timestamp=_timestamp(spec.reset, ctx, f"meter {meter_id}.reset"),
        period_start_timestamp=_timestamp(spec.period_start, ctx, f"meter {meter_id}.period_start"),
    )


def _absence(spec: MeterSpec) -> str:
    asked = [s.describe() for s in (spec.used, spec.limit, spec.remaining) if s is not None]
    return f"none of {', '.join(asked)} in the answer (null or missing)"


def _render_id(spec: MeterSpec, entry: Context, index: int, key: str | None) -> str:
    pieces: list[str] = []
    for part in spec.parts:
        if part.kind == "text":
            pieces.append(part.text)
        elif part.kind == "index":
            pieces.append(str(index))
        elif part.kind == "key":
            if key is None:
                raise FieldError(f"id {spec.id}: {{key}} needs `each` to give an object")
            pieces.append(key)
        else:
            assert part.spec is not None
            value = part.spec.raw(entry)
            if value is None or isinstance(value, dict | list):
                shown = "nothing" if value is None else type(value).__name__
                raise FieldError(f"id {spec.id}: {{{part.text}}} gave {shown}, not a name")
            pieces.append(label_value(value) or "")
    meter_id = normalise_id("".join(pieces))
    if not meter_id:
        raise FieldError(f"id {spec.id}: the entry gives an empty id")
    return with_unit_suffix(meter_id, spec.unit, spec.id)


def normalise_id(text: str) -> str:
    """snake_case: camelCase split, anything but letters and digits becomes `_`."""
    text = _CAMEL.sub(r"\1_\2", text).lower()
    text = _NOT_ID.sub("_", text).strip("_")
    if text and text[0].isdigit():
        text = f"meter_{text}"
    return text[:120]


def with_unit_suffix(meter_id: str, unit: str, template: str) -> str:
    """docs/metrics.md, Units: seconds and bytes meters end so, and only they do."""
    for suffix_unit in ("seconds", "bytes"):
        ends = meter_id.endswith(f"_{suffix_unit}") or meter_id == suffix_unit
        if unit == suffix_unit and not ends:
            meter_id = f"{meter_id}_{suffix_unit}"
        elif unit != suffix_unit and ends:
            raise FieldError(
                f"id {template}: {meter_id!r} ends in _{suffix_unit} but the unit is {unit}"
            )
    return meter_id


def _timestamp(spec: ValueSpec | None, ctx: Context, where: str) -> float | None:
    if spec is None:
        return None
    return read_timestamp(spec.raw(ctx), spec.format, ctx.now, where)


def _active(spec: ValueSpec | None, ctx: Context) -> bool | None:
    if spec is None:
        return None
    raw = spec.raw(ctx)
    if raw is None or isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    raise FieldError(f"key_active: expected a boolean, got {type(raw).__name__}")


def _rate(spec: ValueSpec, ctx: Context) -> float | None:
    raw = spec.raw(ctx)
    # "unlimited" is no request-rate cap: nothing to export.
    return None if is_unlimited(raw) else number(raw, "rate limit")


def _problem(where: str, exc: Exception) -> str:
    text = str(exc)
    return text if isinstance(exc, FieldError) else f"{where}: {type(exc).__name__}: {text}"


def _decode(status: int, body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise PollError(
            Reason.PARSE,
            f"response body is not JSON: {excerpt(body)!r}",
            status=status,
            body_excerpt=excerpt(body),
        ) from None


def _answer_time(headers: Headers) -> float:
    """When the vendor answered: its Date header, else now (delta_seconds, duration)."""
    raw = headers.get("date")
    if raw:
        try:
            when = email.utils.parsedate_to_datetime(raw)
            stamp = when.timestamp()
            if stamp > 0:
                return stamp
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    return time.time()


def build_provider(definition: Definition) -> Provider:
    """The `Provider` value the rest of the exporter uses for a definition."""
    auth = definition.auth
    return Provider(
        name=definition.name,
        default_base_url=definition.base_url,
        path=definition.path,
        auth_header="Authorization" if auth.basic_username is not None else auth.header,
        auth_prefix=auth.prefix,
        parse=DefinitionParser(definition),
        default_interval=definition.interval,
        min_interval=definition.min_interval,
        docs_url=definition.docs_url,
        method=definition.method,
        query=definition.query,
        headers=definition.headers,
        auth_query=auth.query,
        auth_basic_username=auth.basic_username,
        params=definition.params,
    )
