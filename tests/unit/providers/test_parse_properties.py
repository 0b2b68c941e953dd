"""Every adapter's `parse`, against anything a vendor (or a proxy) could send.

Driven from the registry, so a new vendor is covered by adding it there and its
recorded bodies under tests/fixtures/<name>/. For any status, headers and body,
`parse` returns `Readings` or raises a classified `PollError`, never anything else;
every exported figure is finite (and non-negative where it is a quota figure);
every label, message and problem is strict UTF-8, on one line and bounded; and the
result renders on /metrics (text and OpenMetrics) and on `/`.

The bodies are random bytes, random JSON, and mutations of the recorded fixtures
(a leaf replaced by a hostile value, a known field added or removed), since random
bytes alone almost never reach the field readers behind `json_object`.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.model import (
    CUT,
    LABEL_CHARS,
    MESSAGE_CHARS,
    PollError,
    Readings,
    Reason,
    is_label_name,
)
from exporter.providers import PROVIDERS
from exporter.providers.declarative import DefinitionParser
from exporter.render import MetricsRenderer
from exporter.state import AccountState, StateStore
from exporter.statuspage import landing_page
from tests.fakes import up_state
from tests.support.examples import examples
from tests.unit.providers.fixtures import cases, recorded

NOW = 1_780_000_000.0
VENDORS = sorted(PROVIDERS)
DECLARATIVE = frozenset(n for n, p in PROVIDERS.items() if isinstance(p.parse, DefinitionParser))
# Per test and vendor: about 15 s for the whole file on a shared 2-core machine.
SETTINGS = settings(
    max_examples=examples(100),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- what a vendor could send ------------------------------------------------------

# Any character, with lone surrogates and control characters made likely: json.loads
# returns both from escapes, and neither may reach an encoder.
_CHARS = st.one_of(
    st.characters(),
    st.characters(categories=["Cs"]),
    st.characters(categories=["Cc"]),
)
_TEXT = st.text(_CHARS, max_size=40)
_HOSTILE_STRINGS = st.sampled_from(
    [
        "unlimited",
        "UNLIMITED",
        "1e309",
        "-1",
        "-0",
        "NaN",
        "inf",
        "1" * 400,
        "2026-13-45",
        "2026-05-01T00:00:00Z",
        "99999-01-01",
        "",
        " ",
        "\ud800",
        "\x00\r\n",
        "x" * 100_000,
    ]
)
_NUMBERS = st.one_of(
    st.floats(),  # NaN and infinities too: json.loads accepts NaN and Infinity
    st.integers(),
    st.sampled_from([1e308, -1e308, 1.7976931348623157e308, 5e-324, -0.0, -1, 2**64, 10**400]),
)
_LEAVES = st.one_of(st.none(), st.booleans(), _NUMBERS, _TEXT, _HOSTILE_STRINGS)
JSON_VALUES = st.recursive(
    _LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(_TEXT, children, max_size=3),
    ),
    max_leaves=8,
)

STATUSES = st.one_of(
    st.just(200),
    st.sampled_from([400, 401, 402, 403, 404, 429, 451, 500, 502, 503]),
    st.integers(min_value=-1, max_value=1000),
)

_HEADER_NAMES = st.one_of(
    st.sampled_from(
        [
            "retry-after",
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
            "x-request-id",
            "content-type",
        ]
    ),
    st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20),
)
_HEADER_VALUES = st.one_of(
    _TEXT,
    _HOSTILE_STRINGS,
    st.sampled_from(["Wed, 21 Oct 2015 07:28:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT"]),
    _NUMBERS.map(str),
)
RANDOM_HEADERS = st.dictionaries(_HEADER_NAMES, _HEADER_VALUES, max_size=5)


@cache
def corpus(vendor: str) -> tuple[tuple[Any, ...], tuple[dict[str, str], ...], tuple[str, ...]]:
    """The vendor's recorded JSON bodies, header maps and every key they use."""
    bodies: list[Any] = []
    header_maps: list[dict[str, str]] = [{}]
    keys: set[str] = set()
    for case in cases(vendor):
        response = recorded(vendor, case)
        if response.headers and response.headers not in header_maps:
            header_maps.append(response.headers)
        try:
            data = json.loads(response.body)
        except ValueError:
            continue  # a plain-text or HTML body: random bytes cover those
        bodies.append(data)
        keys.update(_keys(data))
    return tuple(bodies), tuple(header_maps), tuple(sorted(keys))


def _keys(data: Any) -> Iterator[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield key
            yield from _keys(value)
    elif isinstance(data, list):
        for value in data:
            yield from _keys(value)


def _containers(data: Any) -> Iterator[dict[str, Any] | list[Any]]:
    if isinstance(data, dict | list):
        yield data
        for value in data.values() if isinstance(data, dict) else data:
            yield from _containers(value)


def _slots(data: Any) -> list[tuple[dict[str, Any] | list[Any], Any]]:
    """Every (container, key or index) of a JSON document that holds a value."""
    return [
        (container, key)
        for container in _containers(data)
        for key in (container if isinstance(container, dict) else range(len(container)))
    ]


# The values that broke exports: numbers near the float limit (scaled to +Inf),
# negatives, huge integers, and strings no encoder takes. Listed several times in
# `one_of` below so they are drawn far more often than random JSON.
_DANGEROUS = st.one_of(
    st.sampled_from([1e308, 1.7976931348623157e308, -1, -0.5, -1e308, 10**400, 2**1024]),
    st.floats(min_value=1e300, max_value=1.7e308),
    st.floats(max_value=-1e-9),
    _HOSTILE_STRINGS,
)
MUTANT_VALUES = st.one_of(_DANGEROUS, _DANGEROUS, _DANGEROUS, JSON_VALUES)


@st.composite
def mutated_fixture(draw: st.DrawFn, vendor: str) -> bytes:
    """A recorded body with one to four values replaced, fields added or removed."""
    bodies, _, keys = corpus(vendor)
    doc = copy.deepcopy(draw(st.sampled_from(bodies)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        slots = _slots(doc)
        operation = draw(st.sampled_from(["replace", "replace", "replace", "add", "delete"]))
        if operation == "add" or not slots:
            # A field the recorded body lacks (a cap, a limit): known names reach the
            # adapters' readers, random ones do not.
            container = draw(st.sampled_from(list(_containers(doc))))
            if isinstance(container, dict):
                container[draw(st.sampled_from(keys) | _TEXT)] = draw(MUTANT_VALUES)
            continue
        container, key = draw(st.sampled_from(slots))
        if operation == "delete" and isinstance(container, dict):
            del container[key]
        else:
            container[key] = draw(MUTANT_VALUES)
    return json.dumps(doc).encode()


def headers_for(vendor: str) -> st.SearchStrategy[dict[str, str]]:
    _, header_maps, _ = corpus(vendor)
    return st.one_of(st.sampled_from(header_maps), RANDOM_HEADERS)


# --- what must hold ----------------------------------------------------------------


def _safe_text(text: str, limit: int) -> None:
    text.encode("utf-8")  # strict: a lone surrogate raises here
    assert len(text) <= limit + len(CUT), text[:80]
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in text), text[:80]


def _figure(value: float | None, *, non_negative: bool = True) -> None:
    if value is None:
        return
    assert math.isfinite(value), value
    if non_negative:
        assert value >= 0, value


def outcome(vendor: str, status: int, headers: dict[str, str], body: bytes) -> Readings | PollError:
    """What `parse` gives; any other exception fails the test with its traceback."""
    try:
        return PROVIDERS[vendor].parse(status, headers, body)
    except PollError as error:
        return error


def check(vendor: str, status: int, headers: dict[str, str], body: bytes) -> None:
    """parse gives Readings or a classified PollError, and the result is exportable."""
    readings = outcome(vendor, status, headers, body)
    if isinstance(readings, PollError):
        assert isinstance(readings.reason, Reason)
        _safe_text(readings.message, MESSAGE_CHARS)
        _safe_text(readings.body_excerpt, MESSAGE_CHARS)
        _figure(readings.retry_after)
        render(vendor, None, readings)
        return
    assert isinstance(readings, Readings)
    # Declarative providers take any 2xx as success (docs/writing-a-provider.md).
    success = 200 <= status <= 299 if vendor in DECLARATIVE else status == 200
    assert success or not readings.meters, f"a {status} answer exported figures"
    for m in readings.meters:
        _safe_text(m.meter, LABEL_CHARS)
        _safe_text(m.unit, LABEL_CHARS)
        for value in (m.used, m.limit, m.remaining, m.effective_remaining):
            _figure(value)
        _figure(m.reset_timestamp, non_negative=False)
        _figure(m.period_start_timestamp, non_negative=False)
    for name, label in readings.account_info:
        assert is_label_name(name), name
        _safe_text(label, LABEL_CHARS)
    for name, value in (*readings.rate_limits, *readings.key_caps):
        _safe_text(name, LABEL_CHARS)
        _figure(value)
    _figure(readings.api_key_expiry_timestamp, non_negative=False)
    for text in (*readings.problems, *readings.warnings):
        _safe_text(text, MESSAGE_CHARS)
    render(vendor, readings, None)


def render(vendor: str, readings: Readings | None, error: PollError | None) -> None:
    """The outcome beside a healthy account: every format renders, the other stays."""
    store = StateStore()
    healthy = up_state("pictory", "healthy", Readings(), NOW)
    if readings is not None:
        state = up_state(vendor, "fuzzed", readings, NOW)
    else:
        assert error is not None
        state = AccountState(
            vendor, "fuzzed", 300.0, 900.0, polled=True, last_error=error.message
        ).with_error(error.reason)
    store.set_accounts([healthy, state])
    snapshot = store.snapshot()
    landing_page(snapshot, NOW).encode("utf-8")
    renderer = MetricsRenderer(process_metrics=False)
    for accept in (None, "application/openmetrics-text; version=1.0.0"):
        text = renderer.render(snapshot, NOW, accept, None).body.decode("utf-8")
        assert 'saas_quota_up{account="healthy",provider="pictory"} 1.0' in text


# --- the properties, one set per registered vendor ------------------------------------


@pytest.mark.parametrize("vendor", VENDORS)
@SETTINGS
@given(data=st.data())
def test_any_bytes_any_headers_any_status(vendor: str, data: st.DataObject) -> None:
    check(
        vendor,
        data.draw(STATUSES, "status"),
        data.draw(headers_for(vendor), "headers"),
        data.draw(st.binary(max_size=512), "body"),
    )


@pytest.mark.parametrize("vendor", VENDORS)
@SETTINGS
@given(data=st.data())
def test_any_json_any_headers_any_status(vendor: str, data: st.DataObject) -> None:
    value = data.draw(JSON_VALUES | st.dictionaries(_TEXT, JSON_VALUES, max_size=4), "json")
    check(
        vendor,
        data.draw(STATUSES, "status"),
        data.draw(headers_for(vendor), "headers"),
        json.dumps(value).encode(),
    )


@pytest.mark.parametrize("vendor", VENDORS)
@settings(SETTINGS, max_examples=examples(400))
@given(data=st.data())
def test_mutated_recorded_bodies(vendor: str, data: st.DataObject) -> None:
    # Mostly 200: that is where the field readers and unit conversions run.
    status = data.draw(st.one_of(st.just(200), st.just(200), STATUSES), "status")
    check(
        vendor,
        status,
        data.draw(headers_for(vendor), "headers"),
        data.draw(mutated_fixture(vendor), "body"),
    )


@pytest.mark.parametrize("vendor", VENDORS)
def test_every_vendor_has_recorded_bodies_to_mutate(vendor: str) -> None:
    # The mutation strategy needs at least one; a new vendor must bring fixtures.
    bodies, _, _ = corpus(vendor)
    assert any(isinstance(b, dict) for b in bodies)
