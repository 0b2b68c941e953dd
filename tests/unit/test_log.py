"""exporter.log: one line per event on the configured stream, registered keys scrubbed.

structlog's configuration and the process-wide REDACTOR are global: the autouse
fixture puts both back after every test, so these tests neither see nor leave keys
registered by other tests.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import structlog

from exporter.log import LEVELS, configure, get_logger, scrub_secrets
from exporter.redaction import REDACTOR, Redactor, Secret

KEY = "sk_live_4f2a9c7e1b"
# structlog's iso/utc TimeStamper: isoformat() with +00:00 spelled Z (no fraction
# when the microseconds happen to be 0).
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    saved = structlog.get_config()
    # A clean key set for this test; monkeypatch restores the real one afterwards.
    monkeypatch.setattr(REDACTOR, "_index", Redactor()._index)
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()
    structlog.configure(**saved)


def json_events(stream: io.StringIO) -> list[dict[str, Any]]:
    """Parse one JSON object per line, checking and dropping the (wall-clock) timestamp."""
    events = []
    for line in stream.getvalue().splitlines():
        event = json.loads(line)
        assert isinstance(event, dict)
        assert TIMESTAMP.fullmatch(event.pop("timestamp"))
        events.append(event)
    return events


class _Echo:
    """A vendor object whose str() repeats the key it was sent."""

    def __str__(self) -> str:
        return f"Echo(key={KEY})"


# --- rendering ------------------------------------------------------------------------


def test_json_format_writes_one_sorted_json_object_per_event() -> None:
    stream = io.StringIO()
    configure("info", "json", stream)
    log = get_logger(provider="pictory", account="marketing")
    log.info("poll succeeded", meters=3, duration_seconds=0.25)
    log.warning("poll failed", reason="timeout", status=None)

    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    # sort_keys=True: stable field order for diffing and grepping.
    for line in lines:
        keys = list(json.loads(line))
        assert keys == sorted(keys)
    assert json_events(stream) == [
        {
            "account": "marketing",
            "duration_seconds": 0.25,
            "event": "poll succeeded",
            "level": "info",
            "meters": 3,
            "provider": "pictory",
        },
        {
            "account": "marketing",
            "event": "poll failed",
            "level": "warning",
            "provider": "pictory",
            "reason": "timeout",
            "status": None,
        },
    ]


def test_json_keeps_multiline_text_and_tracebacks_on_one_line() -> None:
    # A log shipper splits on newlines: an embedded newline must not start an event.
    stream = io.StringIO()
    configure("info", "json", stream)
    log = get_logger()
    log.info("first\nsecond", detail="a\nb")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("poll crashed")

    events = json_events(stream)
    assert len(stream.getvalue().splitlines()) == 2
    assert events[0] == {"event": "first\nsecond", "detail": "a\nb", "level": "info"}
    assert events[1]["event"] == "poll crashed"
    assert events[1]["level"] == "error"
    assert events[1]["exception"].startswith("Traceback (most recent call last):\n")
    assert events[1]["exception"].endswith("\nValueError: boom")


def test_console_format_writes_one_human_line_per_event() -> None:
    stream = io.StringIO()
    configure("info", "console", stream)
    get_logger(provider="pictory", account="marketing").info("poll succeeded", meters=3)
    get_logger().warning("config warning", detail="interval below minimum")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first = re.fullmatch(
        r"(\S+) \[info\s*\] poll succeeded\s+account=marketing meters=3 provider=pictory",
        lines[0],
    )
    assert first is not None
    assert TIMESTAMP.fullmatch(first.group(1))
    # colors=False: no ANSI escapes in a file or a journal.
    assert "\x1b[" not in stream.getvalue()
    assert re.fullmatch(
        r"\S+ \[warning\s*\] config warning\s+detail='interval below minimum'", lines[1]
    )


@pytest.mark.parametrize(
    ("level", "emitted"),
    [
        ("debug", ["debug", "info", "warning", "error"]),
        ("info", ["info", "warning", "error"]),
        ("warning", ["warning", "error"]),
        ("error", ["error"]),
        ("WARNING", ["warning", "error"]),
    ],
)
def test_level_drops_events_below_it(level: str, emitted: list[str]) -> None:
    stream = io.StringIO()
    configure(level, "json", stream)
    log = get_logger()
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    assert [e["level"] for e in json_events(stream)] == emitted


@pytest.mark.parametrize("level", LEVELS)
def test_every_cli_level_is_accepted(level: str) -> None:
    stream = io.StringIO()
    configure(level, "json", stream)
    get_logger().error("always shown")
    assert json_events(stream) == [{"event": "always shown", "level": "error"}]


def test_context_variables_are_merged_into_the_event() -> None:
    stream = io.StringIO()
    configure("info", "json", stream)
    with structlog.contextvars.bound_contextvars(request_id="r-1"):
        get_logger().info("inside")
    get_logger().info("outside")
    assert json_events(stream) == [
        {"event": "inside", "level": "info", "request_id": "r-1"},
        {"event": "outside", "level": "info"},
    ]


# --- scrubbing --------------------------------------------------------------------------


def test_registered_key_is_scrubbed_from_every_field_of_a_json_event() -> None:
    REDACTOR.register(KEY)
    stream = io.StringIO()
    configure("info", "json", stream)
    with structlog.contextvars.bound_contextvars(url=f"https://vendor.test/v1?key={KEY}"):
        get_logger(provider="pictory", note=f"key {KEY}").warning(
            "vendor said %s",
            f"bad key {KEY}",
            body=f'{{"message": "bad key {KEY}"}}',
            nested={"errors": [{"detail": KEY}], "pair": (1, KEY)},
            error=ValueError(f"401 for {KEY}"),
            secret=Secret(KEY),
            echo=_Echo(),
            status=401,
            retry=None,
            active=False,
        )

    assert KEY not in stream.getvalue()
    assert json_events(stream) == [
        {
            "active": False,
            "body": '{"message": "bad key <redacted>"}',
            "echo": "Echo(key=<redacted>)",
            "error": "401 for <redacted>",
            "event": "vendor said bad key <redacted>",
            "level": "warning",
            "nested": {"errors": [{"detail": "<redacted>"}], "pair": [1, "<redacted>"]},
            "note": "key <redacted>",
            "provider": "pictory",
            "retry": None,
            "secret": "<redacted>",
            "status": 401,
            "url": "https://vendor.test/v1?key=<redacted>",
        }
    ]


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_registered_key_is_scrubbed_from_an_exception_traceback(fmt: str) -> None:
    # The key reaches the log through the exception text, not through any field.
    REDACTOR.register(KEY)
    stream = io.StringIO()
    configure("info", fmt, stream)
    try:
        raise RuntimeError(f"vendor echoed {KEY}")
    except RuntimeError:
        get_logger().exception("poll crashed")

    output = stream.getvalue()
    assert KEY not in output
    assert "RuntimeError: vendor echoed <redacted>" in output


def test_registered_key_is_scrubbed_in_console_format_too() -> None:
    REDACTOR.register(KEY)
    stream = io.StringIO()
    configure("info", "console", stream)
    get_logger(account="marketing").info(f"bad key {KEY}", body={"echo": [KEY]})

    output = stream.getvalue()
    assert KEY not in output
    assert re.fullmatch(
        r"\S+ \[info\s*\] bad key <redacted>\s+"
        r"account=marketing body=\{'echo': \['<redacted>'\]\}\n",
        output,
    )


def test_secret_object_renders_redacted_even_when_never_registered() -> None:
    # str(Secret) is the redaction: no registration needed for the typed road.
    stream = io.StringIO()
    configure("info", "json", stream)
    get_logger().info("loaded", api_key=Secret("never_registered_key"))
    assert json_events(stream) == [{"api_key": "<redacted>", "event": "loaded", "level": "info"}]


def test_scrub_processor_keeps_plain_values_and_container_types() -> None:
    REDACTOR.register(KEY)
    event = {
        "event": f"bad {KEY}",
        "count": 3,
        "ratio": 0.5,
        "ok": True,
        "missing": None,
        "pair": (KEY, 2),
        "items": [KEY, "plain"],
        "deep": {"a": {"b": [f"x{KEY}x"]}},
        "obj": Secret(KEY),
    }
    out = scrub_secrets(None, "info", event)
    assert out == {
        "event": "bad <redacted>",
        "count": 3,
        "ratio": 0.5,
        "ok": True,
        "missing": None,
        "pair": ("<redacted>", 2),
        "items": ["<redacted>", "plain"],
        "deep": {"a": {"b": ["x<redacted>x"]}},
        "obj": "<redacted>",
    }
    # Numbers and bools stay typed (JSON true/3, not "True"/"3").
    assert type(out["pair"]) is tuple
    assert type(out["ok"]) is bool
    assert type(out["count"]) is int


def test_scrub_processor_does_not_mutate_the_callers_objects() -> None:
    # A logged dict may be the caller's live data (a parsed vendor body): scrubbing
    # works on copies, so the caller's own values are not rewritten.
    REDACTOR.register(KEY)
    body = {"errors": [{"detail": KEY}]}
    event: dict[str, Any] = {"event": "x", "body": body}
    before = copy.deepcopy(event)
    scrub_secrets(None, "info", event)
    assert event == before
    assert body == {"errors": [{"detail": KEY}]}


def test_scrub_processor_with_no_keys_registered_passes_values_through() -> None:
    event = {"event": f"bad {KEY}", "n": 1, "items": [KEY]}
    assert scrub_secrets(None, "info", event) == event


def test_registered_key_is_scrubbed_from_dict_keys() -> None:
    REDACTOR.register(KEY)
    stream = io.StringIO()
    configure("info", "json", stream)
    get_logger().warning("vendor body", body={KEY: {"used": 3}})
    assert KEY not in stream.getvalue()


def test_a_namedtuple_value_is_logged_not_raised() -> None:
    REDACTOR.register(KEY)
    stream = io.StringIO()
    configure("info", "json", stream)
    get_logger().info("request", url=urlsplit(f"https://vendor.test/v1?key={KEY}"))
    assert json_events(stream) == [
        {
            "event": "request",
            "level": "info",
            "url": ["https", "vendor.test", "/v1", "key=<redacted>", ""],
        }
    ]


def test_a_transformed_key_is_scrubbed_from_fields_and_tracebacks() -> None:
    # A vendor echoes the key in another form; the log shows none of its forms.
    REDACTOR.register(KEY)
    stream = io.StringIO()
    configure("info", "json", stream)
    blob = base64.b64encode(f"user:{KEY}".encode()).decode()
    try:
        raise RuntimeError(f"vendor echoed Basic {blob}")
    except RuntimeError:
        get_logger().exception(
            "poll crashed",
            upper=f"bad key {KEY.upper()}",
            quoted=f"/v1?key={quote(KEY)}",
            split=f"bad key {KEY[:9]}\n{KEY[9:]}",
            # Cut to 200 characters before the scrub: 16 key characters left.
            body=("x" * 183 + " " + KEY)[:200] + "...",
        )
    output = stream.getvalue()
    for fragment in (KEY[:8], KEY[-8:], KEY.upper()[:8], blob[-8:], quote(KEY)[-8:]):
        assert fragment not in output
    event = json_events(stream)[0]
    assert event["upper"] == "bad key <redacted>"
    assert event["split"] == "bad key <redacted>"
    assert event["body"].endswith(" <redacted>...")
    assert "RuntimeError: vendor echoed Basic dXNlcjpz<redacted>" in event["exception"]


def test_provider_and_account_are_shown_even_when_a_key_contains_them() -> None:
    # 8 characters of a key are scrubbed anywhere, but `provider` and `account` are
    # the config's identifiers (shown on `/` and /metrics too): they stay, the rest
    # of the key goes.
    key = "demo-piloterr-scraping"
    REDACTOR.register(key)
    stream = io.StringIO()
    configure("info", "json", stream)
    get_logger(provider="piloterr", account="scraping").warning(
        "poll failed", error=f"bad {key}", note="scraping"
    )
    assert json_events(stream) == [
        {
            "account": "scraping",
            "error": "bad <redacted>",
            "event": "poll failed",
            "level": "warning",
            # Elsewhere the same word is 8 characters of the key.
            "note": "<redacted>",
            "provider": "piloterr",
        }
    ]


# --- first run: the Go exporters' level and format names --------------------------------


def test_warn_is_warning_as_in_the_go_exporters() -> None:
    stream = io.StringIO()
    configure("warn", "json", stream)
    log = get_logger()
    log.info("not shown")
    log.warning("shown")
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["shown"]


def test_logfmt_lines_start_with_time_level_and_message_and_are_scrubbed() -> None:
    REDACTOR.register(KEY)
    stream = io.StringIO()
    configure("info", "logfmt", stream)
    get_logger(provider="pictory", account="a").info(
        "poll failed", error=f"vendor said {KEY}", retry_in_seconds=30.0
    )
    (line,) = stream.getvalue().splitlines()
    assert re.fullmatch(
        rf"timestamp={TIMESTAMP.pattern} level=info event=\"poll failed\" provider=pictory"
        r" account=a error=\"vendor said <redacted>\" retry_in_seconds=30.0",
        line,
    ), line


def test_failing_accounts_keep_their_names_when_a_key_contains_one() -> None:
    """The demo's keys hold their account's name; the first-round line must not lose it."""
    REDACTOR.register("demo-pictory-marketing")
    stream = io.StringIO()
    configure("info", "json", stream)
    get_logger().info("first round", failing_accounts=["pictory/marketing auth"], other="marketing")
    record = json.loads(stream.getvalue())
    assert record["failing_accounts"] == ["pictory/marketing auth"]
    assert record["other"] == "<redacted>"  # anything else is scrubbed as before


def test_the_cli_offers_exactly_the_levels_and_formats_the_log_takes() -> None:
    from exporter import cli, log

    assert cli.LEVELS == log.LEVELS
    assert cli.FORMATS == log.FORMATS
    for level in log.LEVELS:
        configure(level, "logfmt", io.StringIO())
