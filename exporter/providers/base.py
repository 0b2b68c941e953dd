"""The one shape every vendor adapter has, and the response helpers they share.

An adapter is a `Provider` value: metadata (endpoint path, auth header, intervals)
plus a pure `parse(status, headers, body)` that turns one HTTP response into
`Readings` or raises `PollError`. No adapter does I/O; the poller does it for them.
That keeps every vendor testable from recorded bodies alone (the gidgethub way).

`headers` handed to `parse` always has lower-case names.
"""

from __future__ import annotations

import base64
import email.utils
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final
from urllib.parse import quote, urlencode

from exporter.model import AlertDefault, MeterReading, PollError, Readings, Reason, vendor_text
from exporter.model import FieldError as FieldError  # re-exported: adapters raise it

Headers = Mapping[str, str]
ParseFn = Callable[[int, Headers, bytes], Readings]

_EXCERPT_CHARS = 200


# `{params.NAME}` and `{account}` in a path, query value, header value or basic-auth
# username (declarative providers): filled in per account at request time.
TEMPLATE_FIELD: Final = re.compile(r"\{(params\.[A-Za-z_][A-Za-z0-9_]*|account)\}")


def render_template(
    text: str, params: Mapping[str, str], account: str, *, url_part: bool = False
) -> str:
    """`text` with its `{params.X}` / `{account}` fields filled in.

    In a URL path each value is percent-encoded whole (a `/` or `?` in a param cannot
    change which endpoint is called). A field whose param is absent stays as written:
    the config loader refuses such an account before any request is built.
    """

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        value = account if name == "account" else params.get(name.removeprefix("params."))
        if value is None:
            return match.group(0)
        return quote(value, safe="") if url_part else value

    return TEMPLATE_FIELD.sub(fill, text)


def template_params(text: str) -> tuple[str, ...]:
    """The param names a template uses, in order of first use."""
    names = [m.group(1).removeprefix("params.") for m in TEMPLATE_FIELD.finditer(text)]
    return tuple(dict.fromkeys(n for n in names if n != "account"))


@dataclass(frozen=True)
class Request:
    """What the poller sends for one account: never logged whole (it holds the key)."""

    method: str
    url: str
    headers: dict[str, str]

    def __repr__(self) -> str:
        return f"Request({self.method} <url and headers withheld: they carry the key>)"


@dataclass(frozen=True)
class Provider:
    """Everything the exporter needs to know about one vendor."""

    name: str
    # scheme://host[/prefix] that `base_url` in the config replaces.
    default_base_url: str
    # Appended to the base URL: "/v1/usage" (declarative ones may hold `{params.X}`).
    path: str
    # Header that carries the key, and what goes before the key in it ("" = raw key).
    auth_header: str
    parse: ParseFn
    auth_prefix: str = ""
    default_interval: float = 300.0
    # Below this the config loader warns: the vendor caches, bans or gains nothing.
    min_interval: float = 60.0
    # The least we wait after a 429 when the vendor sends no Retry-After.
    rate_limit_cooldown: float = 0.0
    # Polls of this vendor in flight at once (connections to its host), unless
    # global.provider_concurrency says otherwise. 48 at 200 ms a poll is 240 polls/s,
    # a first round of 10,000 keys at one vendor in about 42 s; kept alive and
    # reused, so a round costs 48 handshakes, not one per key. At steady state far
    # fewer are busy (10,000 keys every 5m at 200 ms is about 7 in flight).
    max_concurrency: int = 48
    docs_url: str = ""
    # A remark about a key worth a config warning (a sandbox key, say); it is given
    # the key and must never quote it.
    key_warning: Callable[[str], str | None] | None = None
    # The alert settings of meters this vendor makes noisy by design (a free tier
    # that runs out daily): the shipped rules read them as exported series, so no
    # alert expression names a vendor. The config's account settings override them.
    alert_defaults: tuple[AlertDefault, ...] = ()
    # The rest serves declarative providers; the defaults are the built-in five's
    # request: GET, no query, the key in `auth_header`.
    method: str = "GET"
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    # The key as this query parameter instead of a header ("" = not in the query).
    auth_query: str = ""
    # HTTP basic auth: this username template, the key as password (None = no basic).
    auth_basic_username: str | None = None
    # Every `{params.X}` the request templates name: an account must give them all.
    params: tuple[str, ...] = ()

    def url(
        self, base_url: str | None, params: Mapping[str, str] | None = None, account: str = ""
    ) -> str:
        """The endpoint without the key (safe to show): base URL, path and static query."""
        params = params or {}
        url = (base_url or self.default_base_url).rstrip("/") + render_template(
            self.path, params, account, url_part=True
        )
        query = [(k, render_template(v, params, account)) for k, v in self.query]
        return f"{url}?{urlencode(query)}" if query else url

    def auth_headers(self, api_key: str) -> dict[str, str]:
        if self.auth_basic_username is not None or not self.auth_header:
            return {}
        return {self.auth_header: f"{self.auth_prefix}{api_key}"}

    @property
    def auth_description(self) -> str:
        """How the key travels, as the docs write it (`x-api-key: <key>`)."""
        if self.auth_query:
            return f"?{self.auth_query}=<key>"
        if self.auth_basic_username is not None:
            return f"Authorization: Basic base64({self.auth_basic_username}:<key>)"
        return f"{self.auth_header}: {self.auth_prefix}<key>"

    def request(
        self,
        api_key: str,
        base_url: str | None,
        params: Mapping[str, str] | None = None,
        account: str = "",
    ) -> Request:
        """Method, URL and headers of one poll of one account (the key included)."""
        params = params or {}
        url = self.url(base_url, params, account)
        if self.auth_query:
            url += ("&" if "?" in url else "?") + urlencode({self.auth_query: api_key})
        headers = {k: render_template(v, params, account) for k, v in self.headers}
        if self.auth_basic_username is not None:
            user = render_template(self.auth_basic_username, params, account)
            token = base64.b64encode(f"{user}:{api_key}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        headers.update(self.auth_headers(api_key))
        return Request(self.method, url, headers)


# --- bodies -----------------------------------------------------------------------


def excerpt(body: bytes) -> str:
    """A short, single-line piece of a body for logs and errors."""
    # lstrip first: a body padded with whitespace still shows what it says.
    return one_line(body.lstrip()[: _EXCERPT_CHARS * 4].decode("utf-8", errors="replace"))


def one_line(text: str) -> str:
    """Vendor text as one short line: it goes into logs and onto `/`.

    `_EXCERPT_CHARS` characters at most, plus the marker of a cut; made safe by the
    same `vendor_text` the model applies to every message.
    """
    return vendor_text(text, _EXCERPT_CHARS)


def unrecognised(status: int, body: bytes, what: str) -> PollError:
    """A 200 whose body has none of the fields we look for: a `parse` failure.

    Exporting nothing silently would hide a changed API or the wrong endpoint.
    """
    return PollError(
        Reason.PARSE,
        f"{what} in response: {excerpt(body)!r}",
        status=status,
        body_excerpt=excerpt(body),
    )


def decode_json(body: bytes) -> Any:
    """The body as JSON, or None when it is not JSON (gateways send HTML and text)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: `[[[[...` nested past the interpreter's limit fits in the
        # 1 MiB cap; it is a body we cannot read (parse), not a bug of ours (internal).
        return None


def json_object(status: int, body: bytes) -> dict[str, Any]:
    """A 200 body that must be a JSON object; anything else is a `parse` error."""
    data = decode_json(body)
    if not isinstance(data, dict):
        what = "not JSON" if data is None else f"JSON {type(data).__name__}, not an object"
        raise PollError(
            Reason.PARSE,
            f"response body is {what}: {excerpt(body)!r}",
            status=status,
            body_excerpt=excerpt(body),
        )
    return data


def error_message(data: Any) -> str | None:
    """The human message of the error envelopes our vendors use, as one short line.

    Covers `{"message"}`, `{"error": "text"}`, `{"error": {"code", "message"}}` and
    the legacy `{"error": {"error_message"}}`; None when there is none.
    """
    if not isinstance(data, dict):
        return None
    for key in ("message", "error_message", "detail"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return one_line(value)
    err = data.get("error")
    if isinstance(err, str) and err.strip():
        return one_line(err)
    if isinstance(err, dict):
        return error_message(err) or (one_line(str(err.get("code"))) if err.get("code") else None)
    return None


def retry_after_seconds(headers: Headers, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        reference = now if now is not None else datetime.now(UTC).timestamp()
        seconds = when.timestamp() - reference
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def classify_http_error(
    status: int,
    headers: Headers,
    body: bytes,
    *,
    retry_after: float | None = None,
) -> PollError:
    """Default classification of a non-2xx answer (docs/providers/README.md, Error classification).

    Adapters call this for everything they have no vendor-specific rule for.
    """
    data = decode_json(body)
    message = error_message(data) or excerpt(body) or "(empty body)"
    if status == 401:
        reason = Reason.AUTH
    elif status == 402:
        reason = Reason.PAYMENT
    elif status == 403:
        reason = Reason.FORBIDDEN
    elif status == 429:
        reason = Reason.RATE_LIMITED
    elif status >= 500:
        reason = Reason.SERVER
    else:
        reason = Reason.HTTP
    if retry_after is None:
        retry_after = retry_after_seconds(headers)
    return PollError(
        reason,
        f"HTTP {status}: {message}",
        status=status,
        retry_after=retry_after,
        body_excerpt=excerpt(body),
    )


# --- fields -----------------------------------------------------------------------


def is_unlimited(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() == "unlimited"


def number(value: Any, where: str) -> float | None:
    """A numeric field as float: numbers and numeric strings; None for null.

    `"unlimited"` is not a number: callers check `is_unlimited` first where the
    vendor uses it. Booleans are rejected (JSON true is not 1 credit).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise FieldError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, int | float | str):
        try:
            result = float(value.strip() if isinstance(value, str) else value)
        except (ValueError, OverflowError):
            # OverflowError: an integer literal too big for a float, which json
            # parses happily; it must cost only this field, like any bad value.
            raise FieldError(f"{where}: expected a number, got {_short(value)}") from None
    else:
        raise FieldError(f"{where}: expected a number, got {type(value).__name__}")
    if not math.isfinite(result):
        raise FieldError(f"{where}: expected a finite number, got {value!r}")
    return result


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def timestamp(value: Any, where: str) -> float | None:
    """A point in time as Unix seconds.

    Accepts ISO 8601 (with `Z`, offsets or milliseconds), date-only strings (00:00
    UTC), Unix seconds and, defensively, Unix milliseconds (values above 1e12), as
    numbers or numeric strings. None for null.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if _DATE_ONLY.match(text):
            try:
                day = date.fromisoformat(text)
            except ValueError:
                raise FieldError(f"{where}: not a date: {value!r}") from None
            return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        try:
            return _epoch(float(text), where)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise FieldError(f"{where}: not a timestamp: {value!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    if isinstance(value, bool):
        raise FieldError(f"{where}: not a timestamp: {value!r}")
    if isinstance(value, int | float):
        try:
            return _epoch(float(value), where)
        except OverflowError:
            raise FieldError(f"{where}: not a timestamp: {_short(value)}") from None
    raise FieldError(f"{where}: not a timestamp: {type(value).__name__}")


def _short(value: Any) -> str:
    """A bad value's repr for an error message, bounded (a 400-digit literal...)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def _epoch(value: float, where: str) -> float:
    if not math.isfinite(value) or value < 0:
        raise FieldError(f"{where}: not a timestamp: {value!r}")
    return value / 1000.0 if value > 1e12 else value


def obj(data: Mapping[str, Any], key: str, where: str = "") -> dict[str, Any] | None:
    """A nested object, None when absent or null, FieldError when another type."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise FieldError(f"{where}{key}: expected an object, got {type(value).__name__}")
    return value


def label_value(value: Any) -> str | None:
    """A scalar as an info-label value; None for null, objects and empty strings."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip()
    return text or None


def gather(
    parts: Mapping[str, Callable[[], Any]],
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Run each named part; keep the results that parsed, describe the rest.

    One bad field costs its own meter only: docs/providers/README.md (Parsing rules) says a
    non-numeric value is a parse error "for that meter only". `FieldError` comes
    from the field readers here and from the model's own checks (`MeterReading`
    refuses a non-finite or negative figure), so both cost only their part.
    """
    results: dict[str, Any] = {}
    problems: list[str] = []
    for name, part in parts.items():
        try:
            results[name] = part()
        except FieldError as exc:
            problems.append(str(exc))
    return results, tuple(problems)


# --- one meter's figures ------------------------------------------------------------


def _matches_sentinel(raw: Any, sentinels: Sequence[Any]) -> bool:
    """Whether a raw vendor value is one of the "unlimited" sentinels (1e12, null...)."""
    for sentinel in sentinels:
        if sentinel is None:
            if raw is None:
                return True
            continue
        if isinstance(raw, bool) or isinstance(sentinel, bool):
            if raw is sentinel:
                return True
            continue
        if isinstance(sentinel, int | float):
            try:
                value = number(raw, "")
            except FieldError:
                continue
            if value is not None and value == float(sentinel):
                return True
        elif raw == sentinel:
            return True
    return False


def quota_reading(
    meter: str,
    unit: str,
    *,
    used: Any = None,
    limit: Any = None,
    remaining: Any = None,
    where: str = "",
    scale: float = 1.0,
    unlimited: bool = False,
    unlimited_values: Sequence[Any] = (),
    derive: bool = True,
    reset_timestamp: float | None = None,
    period_start_timestamp: float | None = None,
) -> MeterReading | None:
    """One meter from raw vendor values: the reading every adapter makes.

    `"unlimited"` (any case) in limit or remaining, a limit or remaining equal to one
    of `unlimited_values`, or `unlimited=True` make the meter unlimited (no limit, no
    remaining). Numbers and numeric strings are read with `number` and multiplied by
    `scale`; with `derive`, any two of used/limit/remaining give the third (remaining
    itself is left to `MeterReading.effective_remaining`). None when the vendor gave
    none of the three and no unlimited flag: the meter is absent, never 0. (A `null`
    sentinel is the caller's to check: only it knows whether the field was asked for.)
    A bad figure
    raises FieldError naming `where` and the field, so it costs this meter only.
    """
    prefix = f"{where}." if where else ""
    if (
        unlimited
        or is_unlimited(limit)
        or is_unlimited(remaining)
        or (limit is not None and _matches_sentinel(limit, unlimited_values))
        or (remaining is not None and _matches_sentinel(remaining, unlimited_values))
    ):
        used_value = number(used, f"{prefix}used")
        return MeterReading(
            meter,
            unit,
            used=None if used_value is None else used_value * scale,
            unlimited=True,
            reset_timestamp=reset_timestamp,
            period_start_timestamp=period_start_timestamp,
        )
    figures = {
        name: number(raw, f"{prefix}{name}")
        for name, raw in (("used", used), ("limit", limit), ("remaining", remaining))
    }
    if all(value is None for value in figures.values()):
        return None
    u, lim, rem = (None if v is None else v * scale for v in figures.values())
    if derive:
        if u is None and lim is not None and rem is not None:
            u = lim - rem
        elif lim is None and u is not None and rem is not None:
            lim = u + rem
    return MeterReading(
        meter,
        unit,
        used=u,
        limit=lim,
        remaining=rem,
        reset_timestamp=reset_timestamp,
        period_start_timestamp=period_start_timestamp,
    )
