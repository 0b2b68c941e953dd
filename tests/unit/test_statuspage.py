"""exporter.statuspage: the status page and its JSON as pure functions of one snapshot.

No server here: `landing_page(snapshot, now)` and `status_document(snapshot, now)`
are called directly on snapshots the tests build, so every order, figure and
estimate is checked exactly (tests/unit/test_web.py checks that `/` and
`/api/v1/status` serve them; tests/e2e/test_statuspage_browser.py renders the demo's
page in Chromium).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import __version__
from exporter.model import MeterReading, Readings, Reason
from exporter.redaction import REDACTOR
from exporter.state import AccountState, MeterHistory, ReloadStatus, Snapshot, StateStore
from exporter.statuspage import (
    MIN_POINTS,
    REFRESH_SECONDS,
    SCHEMA,
    Urgency,
    account_status,
    amount,
    landing_page,
    runs_out_at,
    span,
    status,
    status_document,
    status_json,
)
from tests.fakes import up_state
from tests.support.examples import examples

NOW = 1_800_000_000.0
HOUR = 3600.0
DAY = 86400.0


def snapshot(*accounts: AccountState, reload: ReloadStatus | None = None) -> Snapshot:
    """A store's snapshot of `accounts` (sorted as the store keeps them)."""
    store = StateStore()
    store.set_accounts(accounts)
    store.set_reload(reload or ReloadStatus(successful=True, last_success=NOW - 600))
    return store.snapshot()


def rising(meter: str, per_hour: float, used_now: float, points: int = 4) -> MeterHistory:
    """`points` readings of `meter` one hour apart, rising `per_hour`, ending at NOW."""
    return tuple(
        (NOW - (points - 1 - i) * HOUR, used_now - (points - 1 - i) * per_hour)
        for i in range(points)
    )


def account(
    name: str,
    *meters: MeterReading,
    history: dict[str, MeterHistory] | None = None,
    provider: str = "vertaaux",
) -> AccountState:
    return up_state(
        provider,
        name,
        Readings(meters=meters),
        NOW,
        history=tuple((history or {}).items()),
    )


class Rows(HTMLParser):
    """The page's meter rows, as `data-meter` values in document order, and its cells."""

    def __init__(self) -> None:
        super().__init__()
        self.meters: list[str] = []
        self.classes: list[str] = []
        self.cells: dict[str, dict[str, str]] = {}
        self._label: str | None = None
        self._scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-meter"):
            self.meters.append(str(a["data-meter"]))
            self.classes.append(str(a.get("class")))
            self.cells[self.meters[-1]] = {}
        if tag == "td" and self.meters:
            self._label = a.get("data-label")
        if tag == "script":
            self._scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._label = None

    def handle_data(self, data: str) -> None:
        if self._label and self.meters:
            cells = self.cells[self.meters[-1]]
            cells[self._label] = cells.get(self._label, "") + data


def rows(page: str) -> Rows:
    parser = Rows()
    parser.feed(page)
    return parser


# --- ordering ------------------------------------------------------------------------------


def test_meters_are_ordered_exhausted_then_running_out_then_by_used_share() -> None:
    snap = snapshot(
        account(
            "a",
            MeterReading("half", "credits", used=50.0, limit=100.0, reset_timestamp=NOW + DAY),
            MeterReading("full", "credits", used=3.0, limit=3.0, reset_timestamp=NOW + DAY),
            MeterReading("free", "credits", used=0.0, limit=0.0),
            MeterReading("open", "credits", used=7.0, unlimited=True),
        ),
        account(
            "b",
            # 90 % used, but at 1/h it lasts 10 h and resets in 5 h: not urgent.
            MeterReading(
                "ninety", "credits", used=90.0, limit=100.0, reset_timestamp=NOW + 5 * HOUR
            ),
            # 10 % used, but at 10/h it runs out in 9 h, before its reset in a day.
            MeterReading("fast", "credits", used=10.0, limit=100.0, reset_timestamp=NOW + DAY),
            # Runs out sooner still, and never resets.
            MeterReading("faster", "credits", used=20.0, limit=100.0),
            MeterReading("vague", "credits", used=4.0),
            history={
                "ninety": rising("ninety", 1.0, 90.0),
                "fast": rising("fast", 10.0, 10.0),
                "faster": rising("faster", 40.0, 20.0),
            },
        ),
        account(
            "c",
            MeterReading("gone", "credits", used=10.0, limit=10.0, reset_timestamp=NOW + HOUR),
        ),
    )
    page = rows(landing_page(snap, NOW))
    assert page.meters == [
        "vertaaux/a/full",  # exhausted, ties by provider/account/meter
        "vertaaux/c/gone",
        "vertaaux/b/faster",  # runs out in 2 h
        "vertaaux/b/fast",  # runs out in 9 h
        "vertaaux/b/ninety",  # then by used share
        "vertaaux/a/half",
        "vertaaux/b/vague",  # no limit known
        "vertaaux/a/open",  # unlimited
        "vertaaux/a/free",  # limit 0
    ]
    urgencies = [m.urgency for m in status(snap, NOW).meters]
    assert urgencies == [
        Urgency.EXHAUSTED,
        Urgency.EXHAUSTED,
        Urgency.RUNS_OUT_BEFORE_RESET,
        Urgency.RUNS_OUT_BEFORE_RESET,
        Urgency.OK,
        Urgency.OK,
        Urgency.UNKNOWN,
        Urgency.UNLIMITED,
        Urgency.LIMIT_ZERO,
    ]
    assert page.classes[0] == "meter u-exhausted"
    # The JSON lists each account's meters in the same order.
    document = status_document(snap, NOW)
    [b] = [a for a in document["accounts"] if a["account"] == "b"]
    assert [m["meter"] for m in b["meters"]] == ["faster", "fast", "ninety", "vague"]


# --- formatting ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (None, "seconds", "-"),
        (45.0, "seconds", "45s"),
        (12 * 60.0, "seconds", "12m"),
        (7 * HOUR + 5 * 60, "seconds", "7h 05m"),
        (600 * 60.0, "seconds", "10h 00m"),
        (1500 * HOUR, "seconds", "1,500h 00m"),
        (512.0, "bytes", "512 B"),
        (1536.0, "bytes", "1.5 KiB"),
        (12.25 * 2**20, "bytes", "12.2 MiB"),
        (700 * 2**30, "bytes", "700 GiB"),
        (1.5 * 2**30, "bytes", "1.5 GiB"),
        (2**40, "bytes", "1 TiB"),
        (0.0, "credits", "0"),
        (1700.0, "credits", "1,700"),
        (1234567.0, "requests", "1,234,567"),
        (140.4, "credits", "140.4"),
        (1244.667, "credits", "1,244.67"),
        (1e300, "credits", "1e+300"),
    ],
)
def test_figures_are_shown_in_their_unit(value: float | None, unit: str, shown: str) -> None:
    assert amount(value, unit) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-5.0, "0s"),
        (42.0, "42s"),
        (90.0, "2m"),
        (HOUR + 60, "1h 01m"),
        (DAY - 60, "23h 59m"),
        (3 * DAY + 4 * HOUR, "3d 4h"),
        (20 * 365 * DAY, "over 10 years"),
    ],
)
def test_times_ahead_are_shown_in_days_hours_and_minutes(seconds: float, shown: str) -> None:
    assert span(seconds) == shown


def test_a_row_shows_used_limit_remaining_resets_and_runs_out_in_the_meter_unit() -> None:
    snap = snapshot(
        account(
            "a",
            MeterReading(
                "video_seconds",
                "seconds",
                used=420 * 60.0,
                limit=600 * 60.0,
                reset_timestamp=NOW + 9 * DAY,
            ),
            MeterReading("storage_bytes", "bytes", used=700 * 2**30, limit=1024 * 2**30),
            history={"video_seconds": rising("video_seconds", 30 * 60.0, 420 * 60.0)},
            provider="pictory",
        )
    )
    page = rows(landing_page(snap, NOW))
    assert page.cells["pictory/a/video_seconds"] == {
        "used": "7h 00m",
        "limit": "10h 00m",
        "remaining": "3h 00m",
        "resets": "in 9d 0h",
        "runs out": "in 6h 00m",  # 3 h left at 30 min an hour
    }
    assert page.cells["pictory/a/storage_bytes"] == {
        "used": "700 GiB",
        "limit": "1 TiB",
        "remaining": "324 GiB",
        "resets": "no reset",
        "runs out": "not enough data",
    }
    html = landing_page(snap, NOW)
    assert 'style="width:70.0%"' in html
    assert ">70%<" in html


# --- estimates -----------------------------------------------------------------------------


def test_runs_out_follows_the_trend_of_the_recent_readings() -> None:
    # 10 an hour, 50 left: five hours after the last reading.
    assert runs_out_at(rising("m", 10.0, 50.0), 50.0) == pytest.approx(NOW + 5 * HOUR)
    # A noisy rise: the least-squares slope, not the last step.
    noisy = ((NOW - 3 * HOUR, 0.0), (NOW - 2 * HOUR, 12.0), (NOW - HOUR, 18.0), (NOW, 30.0))
    assert runs_out_at(noisy, 96.0) == pytest.approx(NOW + 96.0 / 9.6 * HOUR)


@pytest.mark.parametrize(
    "history",
    [
        (),
        rising("m", 10.0, 50.0, points=MIN_POINTS - 1),  # too few readings
        ((NOW - 2 * HOUR, 5.0), (NOW - HOUR, 5.0), (NOW, 5.0)),  # no increase
        ((NOW - 2 * HOUR, 5.0), (NOW - HOUR, 9.0), (NOW, 5.0)),  # up and back: no rise
        ((NOW, 1.0), (NOW, 2.0), (NOW, 3.0)),  # no time passed
    ],
)
def test_too_little_data_gives_no_estimate(history: MeterHistory) -> None:
    assert runs_out_at(history, 50.0) is None
    snap = snapshot(
        account("a", MeterReading("m", "credits", used=50.0, limit=100.0), history={"m": history})
    )
    assert rows(landing_page(snap, NOW)).cells["vertaaux/a/m"]["runs out"] == "not enough data"
    [meter] = status_document(snap, NOW)["accounts"][0]["meters"]
    assert (meter["runs_out_timestamp"], meter["urgency"]) == (None, "ok")


def test_an_estimate_past_the_reset_is_shown_but_not_urgent() -> None:
    snap = snapshot(
        account(
            "a",
            MeterReading("m", "credits", used=50.0, limit=100.0, reset_timestamp=NOW + HOUR),
            history={"m": rising("m", 10.0, 50.0)},
        )
    )
    [meter] = status(snap, NOW).meters
    assert meter.urgency is Urgency.OK
    assert meter.runs_out_timestamp == pytest.approx(NOW + 5 * HOUR)
    cell = rows(landing_page(snap, NOW)).cells["vertaaux/a/m"]["runs out"]
    assert cell == "in 5h 00m (after the reset)"


histories = st.lists(
    st.tuples(st.floats(min_value=0, max_value=1e7), st.floats(min_value=0, max_value=1e300)),
    max_size=12,
).map(lambda points: tuple(sorted((NOW + t, u) for t, u in points)))


@settings(max_examples=examples(300), deadline=None)
@given(history=histories, remaining=st.floats(min_value=0, max_value=1e300))
def test_an_estimate_is_finite_and_never_before_the_last_reading(
    history: MeterHistory, remaining: float
) -> None:
    at = runs_out_at(history, remaining)
    if at is not None:
        assert math.isfinite(at)
        assert at >= history[-1][0]
        assert len(history) >= MIN_POINTS
        assert history[-1][1] > history[0][1]


# --- unlimited and limit 0 -----------------------------------------------------------------


def test_unlimited_and_limit_zero_meters_are_shown_as_such() -> None:
    snap = snapshot(
        account(
            "a",
            MeterReading("jobs", "jobs", used=1200.0, unlimited=True),
            MeterReading("voiceover_seconds", "seconds", used=0.0, limit=0.0),
            provider="tornado",
        )
    )
    page = rows(landing_page(snap, NOW))
    assert page.cells["tornado/a/jobs"] == {
        "used": "1,200",
        "limit": "unlimited",
        "remaining": "-",
        "resets": "no reset",
        "runs out": "never (unlimited)",
    }
    assert page.cells["tornado/a/voiceover_seconds"]["limit"] == "0 (not in plan)"
    assert page.cells["tornado/a/voiceover_seconds"]["runs out"] == "none included"
    jobs, voiceover = status_document(snap, NOW)["accounts"][0]["meters"]
    assert (jobs["unlimited"], jobs["limit"], jobs["remaining"], jobs["used_ratio"]) == (
        True,
        None,
        None,
        None,
    )
    assert (jobs["urgency"], voiceover["urgency"]) == ("unlimited", "limit_zero")
    assert (voiceover["limit"], voiceover["used_ratio"]) == (0.0, None)


# --- failing, stale and pending accounts ---------------------------------------------------


def troubled() -> Snapshot:
    cached = Readings(meters=(MeterReading("credits", "credits", used=1.0, limit=3.0),))
    failing = AccountState(
        provider="vertaaux",
        account="audits",
        interval=300.0,
        max_staleness=900.0,
        polled=True,
        readings=cached,
        last_success=NOW - 400,
        last_error="HTTP 503: <b>maintenance</b> & back soon",
        last_error_reason=Reason.SERVER,
    )
    stale = replace(
        failing,
        account="old",
        last_success=NOW - 3600,
        last_error="no complete answer within 10s",
        last_error_reason=Reason.TIMEOUT,
    )
    pending = AccountState(provider="pictory", account="new", interval=60.0, max_staleness=180.0)
    up = account(
        "fine", MeterReading("credits", "credits", used=1.0, limit=10.0), provider="tornado"
    )
    return snapshot(up, failing, stale, pending)


def test_failing_stale_and_pending_accounts_come_first_with_reason_error_and_age() -> None:
    page = landing_page(troubled(), NOW)
    attention = page[page.index("Needs attention") : page.index("<h2>Meters</h2>")]
    items = re.findall(r"<li class=\"(\w+)\">(.*?)</li>", attention, re.S)
    assert [cls for cls, _ in items] == ["stale", "failing", "pending"]
    stale, failing, pending = (body for _, body in items)
    assert "vertaaux / old</strong>: stale (timeout)" in stale
    assert "values from 60m ago, past max staleness: not shown" in stale
    assert "no complete answer within 10s" in stale
    assert "vertaaux / audits</strong>: failing (server)" in failing
    assert "showing cached values from 7m ago" in failing
    # The vendor's error is escaped, never markup.
    assert "HTTP 503: &lt;b&gt;maintenance&lt;/b&gt; &amp; back soon" in failing
    assert "<b>maintenance</b>" not in page
    assert "pictory / new</strong>: pending" in pending
    # Cached values are shown and tagged; stale ones are not shown at all.
    meters = rows(page).meters
    assert meters == ["vertaaux/audits/credits", "tornado/fine/credits"]
    assert "cached 7m ago" in page


def test_the_json_gives_each_account_its_state_reason_error_and_values_age() -> None:
    document = status_document(troubled(), NOW)
    accounts = {(a["provider"], a["account"]): a for a in document["accounts"]}
    assert [k for k in accounts] == [
        ("pictory", "new"),
        ("tornado", "fine"),
        ("vertaaux", "audits"),
        ("vertaaux", "old"),
    ]
    expected: dict[tuple[str, str], tuple[Any, ...]] = {
        ("pictory", "new"): ("pending", None, None, None, None, 0),
        ("tornado", "fine"): ("up", None, None, NOW - 30, 30.0, 1),
        ("vertaaux", "audits"): (
            "failing",
            "server",
            "HTTP 503: <b>maintenance</b> & back soon",
            NOW - 400,
            400.0,
            1,
        ),
        ("vertaaux", "old"): (
            "stale",
            "timeout",
            "no complete answer within 10s",
            NOW - 3600,
            3600.0,
            0,
        ),
    }
    for key, a in accounts.items():
        shown = (
            a["state"],
            a["reason"],
            a["last_error"],
            a["last_success"],
            a["values_age_seconds"],
            len(a["meters"]),
        )
        assert shown == expected[key]


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        ({}, "pending"),
        ({"polled": True, "up": True, "last_success": NOW}, "up"),
        ({"polled": True, "last_success": NOW - 900}, "failing (serving cached values)"),
        ({"polled": True, "last_success": NOW - 901}, "stale"),
        ({"polled": True, "readings": None}, "failing"),
    ],
)
def test_account_status_follows_the_failure_semantics(
    fields: dict[str, object], shown: str
) -> None:
    cached = Readings(meters=(MeterReading("credits", "credits", used=1.0, limit=3.0),))
    state = AccountState("pictory", "a", 300.0, 900.0, readings=cached)
    assert account_status(replace(state, **fields), NOW) == shown  # type: ignore[arg-type]


# --- the JSON document ---------------------------------------------------------------------


def test_the_json_schema_is_the_documented_one() -> None:
    snap = snapshot(account("a", MeterReading("m", "credits", used=1.0, limit=4.0)))
    document = json.loads(status_json(snap, NOW))
    assert document == status_document(snap, NOW)
    assert set(document) == {"schema", "generated_at", "reload_ok", "accounts"}
    assert (document["schema"], document["generated_at"], document["reload_ok"]) == (
        SCHEMA,
        NOW,
        True,
    )
    [a] = document["accounts"]
    assert set(a) == {
        "provider",
        "account",
        "state",
        "reason",
        "last_error",
        "last_success",
        "values_age_seconds",
        "meters",
    }
    assert a["meters"] == [
        {
            "meter": "m",
            "unit": "credits",
            "used": 1.0,
            "limit": 4.0,
            "remaining": 3.0,
            "unlimited": False,
            "used_ratio": 0.25,
            "reset_timestamp": None,
            "runs_out_timestamp": None,
            "urgency": "ok",
        }
    ]


def test_the_json_stays_strict_for_figures_at_the_float_limit() -> None:
    # used / limit overflows to inf: no ratio rather than a non-JSON Infinity.
    snap = snapshot(account("a", MeterReading("m", "credits", used=1e308, limit=1e-308)))
    [meter] = json.loads(status_json(snap, NOW))["accounts"][0]["meters"]
    assert meter["used_ratio"] is None
    landing_page(snap, NOW).encode("utf-8")


# --- keys, escaping, the page itself -------------------------------------------------------


def test_neither_the_page_nor_the_json_ever_shows_an_api_key() -> None:
    # A vendor that echoes the key back in its error: the config loader registers
    # every key with REDACTOR, and the views scrub the error on the way out too.
    key = "sk_live_status_page_key_4242"
    REDACTOR.register(key)
    failing = AccountState(
        provider="tornado",
        account="echo",
        interval=300.0,
        max_staleness=900.0,
        polled=True,
        last_error=f"HTTP 401: Invalid API Key {key}",
        last_error_reason=Reason.AUTH,
    )
    page = landing_page(snapshot(failing), NOW)
    document = status_json(snapshot(failing), NOW)
    assert key not in page
    assert key not in document
    assert "HTTP 401: Invalid API Key &lt;redacted&gt;" in page
    assert (
        json.loads(document)["accounts"][0]["last_error"] == "HTTP 401: Invalid API Key <redacted>"
    )


def test_vendor_text_in_meter_names_and_units_is_escaped() -> None:
    hostile = MeterReading('<img src=x onerror="alert(1)">', "<u>nit</u>", used=1.0, limit=2.0)
    page = landing_page(snapshot(account("a", hostile)), NOW)
    assert "<img" not in page
    assert "<u>" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert rows(page).meters == ['vertaaux/a/<img src=x onerror="alert(1)">']


def test_the_page_refreshes_itself_and_loads_nothing_from_elsewhere() -> None:
    page = landing_page(troubled(), NOW)
    assert f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' in page
    assert '<meta name="viewport" content="width=device-width,initial-scale=1">' in page
    assert "@media (max-width:600px)" in page
    assert rows(page)._scripts == 0
    assert not re.search(r"(src|href)=\"(?!/)", page), "only the exporter's own paths"
    assert "url(" not in page
    assert "@import" not in page
    assert f"<h1>saas-quota-exporter {__version__}</h1>" in page
    for link in ("/metrics", "/api/v1/status", "/-/healthy", "/-/ready"):
        assert f'<a href="{link}">{link}</a>' in page


def test_the_page_says_when_no_account_is_configured_and_when_a_reload_failed() -> None:
    page = landing_page(snapshot(), NOW)
    assert "<p>No accounts configured.</p>" in page
    assert "Last config load: ok" in page
    failed = landing_page(snapshot(reload=ReloadStatus(False, NOW - 600)), NOW)
    assert "Last config load: FAILED (running the previous config)" in failed
    assert status_document(snapshot(reload=ReloadStatus(False, None)), NOW)["reload_ok"] is False


def test_the_views_are_pure_functions_of_the_snapshot_and_the_time() -> None:
    taken = snapshot(
        account(
            "a",
            MeterReading("m", "credits", used=50.0, limit=100.0, reset_timestamp=NOW + DAY),
            history={"m": rising("m", 10.0, 50.0)},
        )
    )
    assert landing_page(taken, NOW) == landing_page(taken, NOW)
    assert status_json(taken, NOW) == status_json(taken, NOW)
    assert rows(landing_page(taken, NOW)).cells["vertaaux/a/m"]["runs out"] == "in 5h 00m"
    later = rows(landing_page(taken, NOW + 600)).cells["vertaaux/a/m"]
    assert (later["runs out"], later["resets"]) == ("in 4h 50m", "in 23h 50m")
