"""The declarative provider format (exporter/providers/declarative/): loading with every
problem at file:line:col, value specs, `each`, rate-limit headers, bounds, equality,
and the contract over every shipped definition's recorded answers."""

from __future__ import annotations

import json
import math
import textwrap
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.model import MeterReading, PollError, Readings, Reason
from exporter.providers import PROVIDERS
from exporter.providers.base import Provider
from exporter.providers.declarative import (
    DefinitionError,
    DefinitionParser,
    load_provider,
    load_text,
)
from exporter.providers.declarative.ratelimit import harvest, parse_list
from exporter.providers.declarative.valuespec import go_duration, read_timestamp
from tests.support.examples import examples
from tests.unit.providers.fixtures import cases, recorded

SHIPPED = sorted(n for n, p in PROVIDERS.items() if isinstance(p.parse, DefinitionParser))
NOW = 1_780_000_000.0
DATE = "Thu, 28 May 2026 20:26:40 GMT"  # NOW as an HTTP date


def provider(yaml_text: str, name: str = "vendor") -> Provider:
    return load_provider(textwrap.dedent(yaml_text), name, "vendor.yaml")


def problems(yaml_text: str) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        load_text(textwrap.dedent(yaml_text), "vendor", "vendor.yaml")
    return list(info.value.problems)


BASE = """\
base_url: https://api.example.com
path: /usage
auth: {header: X-Key}
"""


# --- loading --------------------------------------------------------------------------


def test_every_problem_is_reported_at_once_with_its_position() -> None:
    found = problems(
        """\
        base_url: https://api.example.com
        path: /usage
        auth: {header: X-Key}
        colour: blue
        meters:
          - id: credits
            unit: credits
            used: used
          - id: credits
            unit: credits
            used: "data.[used"
          - id: video
            unit: seconds
            used: minutes
            scale: 60
          - id: api_credits
            unit: credits
            used: {path: used, format: epoch}
        """
    )
    assert found == [
        "vendor.yaml:4:1: colour: unknown key 'colour'; allowed keys: base_url, path, method,"
        " query, headers, auth, interval, min_interval, errors, info, key_expiry, key_active,"
        " rate_limits, rate_limit_headers, meters, max_meters, docs_url",
        "vendor.yaml:11:22: meters[1].used: bad JMESPath expression 'data.[used': Invalid"
        " jmespath expression",
        "vendor.yaml:12:9: meters[2].id: unit seconds: the id must end in _seconds (video_seconds)",
        "vendor.yaml:18:32: meters[3].used.format: format is for timestamps only",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            BASE + "meters: [{id: n, unit: credits, used: used, each: items}]\n",
            [],
        ),
        (
            BASE + "meters: [{id: storage_bytes, unit: credits, used: used}]\n",
            ["vendor.yaml:4:15: meters[0].id: an id ending in _bytes needs unit bytes"],
        ),
        (
            BASE + "meters: [{id: CamelCase, unit: credits, used: used}]\n",
            ["vendor.yaml:4:15: meters[0].id: a meter id is snake_case, e.g. api_credits"],
        ),
        (
            BASE + "meters: [{id: '{name}', unit: credits, used: used}]\n",
            ["vendor.yaml:4:15: meters[0].id: {name}: an id template needs `each`"],
        ),
        (
            "base_url: https://x.example\npath: /a/{params.sid}/{who}\nauth: {header: K}\n"
            "meters: [{id: c, unit: credits, used: u}]\n",
            ["vendor.yaml:2:23: path: {who}: a template names {params.NAME} or {account}"],
        ),
        (
            "base_url: ftp://x\nauth: {header: K, query: key}\nmeters: []\n",
            [
                "vendor.yaml:1:11: base_url: need http:// or https://, a host, no query",
                "vendor.yaml:2:7: auth: set exactly one of header, query and basic",
            ],
        ),
        (
            BASE + "errors: [{status: 999, reason: internal}]\n"
            "meters: [{id: c, unit: credits, used: u}]\n",
            [
                "vendor.yaml:4:19: errors[0].status: an HTTP status is 100-599",
                "vendor.yaml:4:32: errors[0].reason: use one of auth, forbidden, payment,"
                " rate_limited, http, server, timeout, network, parse",
            ],
        ),
        (
            BASE
            + "meters:\n  - {id: c, unit: credits, used: a}\n  - {id: c, unit: credits, used: b}\n",
            ["vendor.yaml:6:5: meters[1].id: meter id 'c' is also meters[0]'s"],
        ),
        (
            BASE + "rate_limits: {hour: x}\nmeters: [{id: c, unit: credits, used: u}]\n",
            ["vendor.yaml:4:15: rate_limits.hour: use one of second, minute, day"],
        ),
        (
            BASE + "max_meters: 0\nmeters: [{id: c, unit: credits}]\n",
            [
                "vendor.yaml:4:13: max_meters: must be 1-10000",
                "vendor.yaml:5:10: meters[0]: needs at least one of used, limit and remaining",
            ],
        ),
    ],
    ids=[
        "templated-id-ok",
        "suffix-without-unit",
        "not-snake-case",
        "template-without-each",
        "unknown-template-field",
        "bad-url-and-auth",
        "bad-error-rule",
        "id-clash",
        "bad-window",
        "bounds",
    ],
)
def test_load_problems(text: str, expected: list[str]) -> None:
    if not expected:
        load_text(text, "vendor", "vendor.yaml")
        return
    assert problems(text) == expected


def test_yaml_syntax_errors_have_a_position() -> None:
    assert problems("base_url: [\n")[0].startswith("vendor.yaml:2:1: YAML syntax error")


def test_a_character_yaml_refuses_is_reported_at_its_position_like_in_the_config() -> None:
    # The config's reader (exporter/yamlreader.py) words it; one reader, one wording.
    assert problems("base_url: https://x.example\npath: /a\x07b\n") == [
        "vendor.yaml:2:9: YAML syntax error: unacceptable character #x0007:"
        " special characters are not allowed"
    ]


def test_equal_definitions_are_equal_providers() -> None:
    text = BASE + "meters: [{id: c, unit: credits, used: u, limit: l}]\n"
    first, second = provider(text), provider("# a comment\n" + text)
    assert first == second
    assert hash(first) == hash(second)
    assert first != provider(text.replace("limit: l", "limit: m"))


# --- value specs --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "fmt", "expected"),
    [
        ("2026-05-28T20:26:40Z", "auto", NOW),
        ("2026-05-28T20:26:40.250+00:00", "auto", NOW + 0.25),
        ("2026-05-28T22:26:40+02:00", "iso8601", NOW),
        ("2026-05-28T20:26:40", "auto", NOW),
        ("2026-05-28", "auto", NOW - 73600),
        (NOW, "auto", NOW),
        (str(int(NOW)), "auto", NOW),
        (NOW * 1000, "auto", NOW),
        (NOW, "epoch", NOW),
        (NOW * 1000, "epoch_ms", NOW),
        (DATE, "http_date", NOW),
        (30, "delta_seconds", NOW + 30),
        ("6m0s", "duration", NOW + 360),
        ("12ms", "duration", NOW + 0.012),
        ("1h30m", "duration", NOW + 5400),
        (None, "auto", None),
    ],
)
def test_timestamps(raw: Any, fmt: str, expected: float | None) -> None:
    assert read_timestamp(raw, fmt, NOW, "t") == pytest.approx(expected)


@pytest.mark.parametrize("raw", ["soon", True, [1], "2026-13-45", "6 minutes", math.inf])
def test_bad_timestamps_are_field_errors(raw: Any) -> None:
    from exporter.model import FieldError

    fmt = "duration" if raw == "6 minutes" else "auto"
    with pytest.raises(FieldError):
        read_timestamp(raw, fmt, NOW, "t")


def test_go_durations() -> None:
    assert go_duration("1.5h", "d") == 5400
    assert go_duration("0", "d") == 0


def test_value_specs_header_constant_root_and_unlimited() -> None:
    p = provider(
        BASE
        + """\
info: {plan: {header: X-Plan}}
meters:
  - id: jobs
    unit: jobs
    used: used
    limit: {value: 100}
  - each: items
    id: "{name}"
    unit: credits
    used: used
    limit: cap
    reset: {root: period.end}
    unlimited_values: [-1]
  - id: seats
    unit: seats
    used: seats.used
    unlimited_if: seats.unlimited
"""
    )
    body = {
        "used": "7",
        "period": {"end": "2026-05-28T20:26:40Z"},
        "items": [{"name": "fastLane", "used": 1, "cap": -1}, {"name": "slow", "used": 2}],
        "seats": {"used": 3, "unlimited": True},
    }
    readings = p.parse(200, {"x-plan": "pro"}, json.dumps(body).encode())
    assert readings.meters == (
        MeterReading("jobs", "jobs", used=7, limit=100),
        MeterReading("fast_lane", "credits", used=1, unlimited=True, reset_timestamp=NOW),
        MeterReading("slow", "credits", used=2, reset_timestamp=NOW),
        MeterReading("seats", "seats", used=3, unlimited=True),
    )
    assert readings.account_info == (("plan", "pro"),)


def test_a_bad_figure_costs_its_meter_only() -> None:
    p = provider(
        BASE + "meters:\n  - {id: a, unit: credits, used: a}\n  - {id: b, unit: credits, used: b}\n"
    )
    readings = p.parse(200, {}, b'{"a": "lots", "b": 2}')
    assert readings.meters == (MeterReading("b", "credits", used=2),)
    assert readings.problems == ("meter a.used: expected a number, got 'lots'",)


def test_each_over_an_object_with_key_seconds_suffix_and_max_meters() -> None:
    p = provider(
        BASE
        + "max_meters: 3\nmeters:\n"
        + "  - {each: usage, id: '{key}', unit: seconds, used: minutes, scale: 60}\n"
    )
    body = {"usage": {f"tier{i}": {"minutes": i} for i in range(5)}}
    readings = p.parse(200, {}, json.dumps(body).encode())
    assert [m.meter for m in readings.meters] == ["tier0_seconds", "tier1_seconds", "tier2_seconds"]
    assert readings.meters[2].used == 120
    assert readings.problems == (
        "more than max_meters (3) meters in the answer; the extra ones dropped",
    )


def test_each_duplicate_ids_keep_the_first() -> None:
    p = provider(BASE + "meters:\n  - {each: items, id: '{n}', unit: credits, used: u}\n")
    readings = p.parse(200, {}, b'{"items": [{"n": "a", "u": 1}, {"n": "A", "u": 2}]}')
    assert readings.meters == (MeterReading("a", "credits", used=1),)
    assert readings.problems == ("meter a: reported twice; the later one dropped",)


def test_error_rules_first_match_wins_else_the_shared_classification() -> None:
    p = provider(
        BASE
        + """\
errors:
  - {status: 401, body_matches: "(?i)rate limit", reason: rate_limited}
  - {status: [456, 457], reason: payment}
  - {status: 200, body_matches: '"error"', reason: server}
meters: [{id: c, unit: credits, used: u}]
"""
    )

    def reason(status: int, body: bytes) -> Reason:
        with pytest.raises(PollError) as info:
            p.parse(status, {"retry-after": "7"}, body)
        return info.value.reason

    assert reason(401, b'{"message": "Rate limit exceeded"}') is Reason.RATE_LIMITED
    assert reason(401, b'{"message": "bad key"}') is Reason.AUTH
    assert reason(457, b"") is Reason.PAYMENT
    assert reason(200, b'{"error": "oops"}') is Reason.SERVER
    assert reason(500, b"") is Reason.SERVER
    assert p.parse(201, {}, b'{"u": 1}').meters[0].used == 1


def test_a_body_that_is_not_json_is_a_parse_failure_unless_only_headers_are_read() -> None:
    with pytest.raises(PollError) as info:
        provider(BASE + "meters: [{id: c, unit: credits, used: u}]\n").parse(200, {}, b"<html>")
    assert info.value.reason is Reason.PARSE
    headers_only = provider(
        BASE + "meters: [{id: c, unit: credits, used: {header: X-Used}, limit: {value: 10}}]\n"
    )
    assert headers_only.parse(200, {"x-used": "4"}, b"<html>").meters == (
        MeterReading("c", "credits", used=4, limit=10),
    )


def test_request_with_query_auth_params_and_account() -> None:
    p = provider(
        """\
        base_url: https://api.example.com/
        path: /v1/{params.team}/{account}
        method: post
        query: {format: json, team: "{params.team}"}
        headers: {X-Team: "{params.team}"}
        auth: {query: auth_key}
        meters: [{id: c, unit: credits, used: u}]
        """
    )
    assert p.params == ("team",)
    request = p.request("s3cret", None, {"team": "a b"}, "prod")
    assert request.method == "POST"
    assert request.url == (
        "https://api.example.com/v1/a%20b/prod?format=json&team=a+b&auth_key=s3cret"
    )
    assert request.headers == {"X-Team": "a b"}
    # The URL shown in logs and on `/` never has the key.
    assert "s3cret" not in p.url(None, {"team": "a b"}, "prod")


# --- rate-limit headers ----------------------------------------------------------------


def test_ietf_draft_11_structured_fields() -> None:
    meters, found = harvest(
        {
            "ratelimit-policy": '"burst";q=100;w=60, "daily";q=1000;w=86400',
            "ratelimit": '"burst";r=50;t=30, "daily";r=999;t=3600',
        },
        NOW,
    )
    assert found == []
    assert meters == [
        MeterReading(
            "ratelimit_burst",
            "requests",
            limit=100,
            remaining=50,
            used=50,
            reset_timestamp=NOW + 30,
        ),
        MeterReading(
            "ratelimit_daily",
            "requests",
            limit=1000,
            remaining=999,
            used=1,
            reset_timestamp=NOW + 3600,
        ),
    ]


def test_older_draft_and_x_ratelimit_forms() -> None:
    older, _ = harvest(
        {
            "ratelimit-limit": "100, 100;w=21600",
            "ratelimit-remaining": "40",
            "ratelimit-reset": "60",
            "x-ratelimit-limit": "5",
        },
        NOW,
    )
    assert older == [
        MeterReading(
            "ratelimit", "requests", used=60, limit=100, remaining=40, reset_timestamp=NOW + 60
        )
    ]
    epoch, _ = harvest(
        {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4999",
            "x-ratelimit-used": "1",
            "x-ratelimit-reset": "1691591363",
        },
        NOW,
    )
    assert epoch[0].reset_timestamp == 1691591363
    delta, _ = harvest({"x-ratelimit-remaining": "3", "x-ratelimit-reset": "20"}, NOW)
    assert delta == [MeterReading("ratelimit", "requests", remaining=3, reset_timestamp=NOW + 20)]


def test_bad_rate_limit_headers_are_problems_not_failures() -> None:
    meters, found = harvest({"ratelimit-policy": '"a";q=', "x-ratelimit-limit": "many"}, NOW)
    assert meters == []
    assert len(found) == 2
    with pytest.raises(ValueError, match="unterminated"):
        parse_list('"open')


def test_rate_limit_headers_in_a_definition_use_the_date_header() -> None:
    p = provider(BASE + "rate_limit_headers: true\n")
    readings = p.parse(
        200, {"date": DATE, "x-ratelimit-limit": "10", "x-ratelimit-reset": "5"}, b"not json"
    )
    assert readings.meters == (
        MeterReading("ratelimit", "requests", limit=10, reset_timestamp=NOW + 5),
    )


# --- the contract over every shipped definition ------------------------------------------


@pytest.mark.parametrize("vendor", SHIPPED)
def test_shipped_definition_has_cases_a_test_module_and_a_page(vendor: str) -> None:
    from pathlib import Path

    here = Path(__file__).parent
    assert (here / f"test_{vendor}.py").is_file()
    assert any(not c.startswith("error_") for c in cases(vendor))
    assert PROVIDERS[vendor].docs_url.startswith("https://")


SHIPPED_CASES = [(v, c) for v in SHIPPED for c in cases(v)]


@pytest.mark.parametrize(
    ("vendor", "case"), SHIPPED_CASES, ids=[f"{v}/{c}" for v, c in SHIPPED_CASES]
)
def test_recorded_case_contract(vendor: str, case: str) -> None:
    answer = recorded(vendor, case)
    parse = PROVIDERS[vendor].parse
    if case.startswith("error_"):
        assert answer.status >= 400
        with pytest.raises(PollError) as info:
            parse(answer.status, answer.headers, answer.body)
        assert info.value.status == answer.status
        assert info.value.reason is not Reason.PARSE
        assert info.value.message.startswith(f"HTTP {answer.status}: ")
        return
    readings = parse(answer.status, answer.headers, answer.body)
    assert readings.meters
    assert readings.problems == ()
    assert parse(answer.status, answer.headers, answer.body) == readings
    for m in readings.meters:
        if m.used is not None and m.limit is not None and m.remaining is not None:
            assert m.remaining == pytest.approx(m.limit - m.used)
        assert (m.unit == "seconds") == m.meter.endswith("_seconds")
        for stamp in (m.reset_timestamp, m.period_start_timestamp):
            assert stamp is None or 946684800 < stamp < 1e10


# --- any answer: Readings or PollError ------------------------------------------------------

_ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=10,
)


@pytest.mark.parametrize("vendor", [*SHIPPED, "headers"])
@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    status=st.integers(min_value=100, max_value=599),
    headers=st.dictionaries(
        st.sampled_from(
            [
                "ratelimit",
                "ratelimit-policy",
                "ratelimit-limit",
                "x-ratelimit-reset",
                "x-ratelimit-limit",
                "date",
                "retry-after",
            ]
        ),
        st.text(max_size=30),
    ),
    body=_ANY.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=64),
)
def test_any_answer_gives_readings_or_a_poll_error(
    vendor: str, status: int, headers: dict[str, str], body: bytes
) -> None:
    parse = (
        provider(BASE + "rate_limit_headers: true\n").parse
        if vendor == "headers"
        else PROVIDERS[vendor].parse
    )
    result: Readings | PollError
    try:
        result = parse(status, headers, body)
    except PollError as error:
        result = error
    assert isinstance(result, Readings) or isinstance(result.reason, Reason)
