"""exporter.statuspage: the landing page as a pure function of one snapshot.

No server here: `landing_page(snapshot, now)` is called directly, so every cell is
checked against a snapshot the test built (tests/test_web.py checks that `/`
serves it).
"""

from __future__ import annotations

import pytest

from exporter import __version__
from exporter.model import MeterReading, Readings
from exporter.redaction import REDACTOR
from exporter.state import AccountState, ReloadStatus, Snapshot, StateStore
from exporter.statuspage import account_status, landing_page
from tests.fakes import up_state

NOW = 1_800_000_000.0


def snapshot(*accounts: AccountState, reload: ReloadStatus | None = None) -> Snapshot:
    """A store's snapshot of `accounts` (sorted as the store keeps them)."""
    store = StateStore()
    store.set_accounts(accounts)
    store.set_reload(reload or ReloadStatus(successful=True, last_success=NOW - 600))
    return store.snapshot()


def up_account(provider: str = "tornado", account: str = "pipeline") -> AccountState:
    readings = Readings(
        meters=(
            MeterReading("storage_bytes", "bytes", used=10.0, limit=100.0),
            MeterReading("jobs", "jobs", used=3.0, unlimited=True),
        )
    )
    return up_state(provider, account, readings, NOW, polls_total=4, next_poll=NOW + 270)


def row(*cells: object) -> str:
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def test_landing_page_lists_every_account_with_its_state() -> None:
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
        next_poll=NOW + 30,
    )
    stale = AccountState(
        provider="vertaaux",
        account="old",
        interval=300.0,
        max_staleness=900.0,
        polled=True,
        readings=cached,
        last_success=NOW - 3600,
        last_error="no complete answer within 10s",
    )
    pending = AccountState(provider="pictory", account="new", interval=60.0, max_staleness=180.0)
    page = landing_page(snapshot(up_account(), failing, stale, pending), NOW)
    assert f"<h1>saas-quota-exporter {__version__}</h1>" in page
    for link in ("/metrics", "/-/healthy", "/-/ready"):
        assert f'<a href="{link}">{link}</a>' in page
    assert "Last config load: ok" in page
    assert row("pictory", "new", "pending", "never", "-", 0, "") in page
    assert row("tornado", "pipeline", "up", "30s ago", "in 270s", 2, "") in page
    # Failing within max_staleness: the cached values are still served, and the
    # vendor's error is shown escaped, never as markup.
    assert (
        row(
            "vertaaux",
            "audits",
            "failing (serving cached values)",
            "7m ago",
            "in 30s",
            1,
            "HTTP 503: &lt;b&gt;maintenance&lt;/b&gt; &amp; back soon",
        )
        in page
    )
    # Past max_staleness: nothing is served, though the page still counts the meters.
    gone = row("vertaaux", "old", "failing", "60m ago", "-", 1, "no complete answer within 10s")
    assert gone in page
    assert "<b>maintenance</b>" not in page
    # Sorted by provider and account, as the store keeps them.
    order = [page.index(f"<td>{name}</td>") for name in ("new", "pipeline", "audits", "old")]
    assert order == sorted(order)


def test_landing_page_never_shows_an_api_key() -> None:
    # A vendor that echoes the key back in its error: the config loader registers
    # every key with REDACTOR, and the page scrubs the error on the way out too.
    key = "sk_live_landing_page_key_4242"
    REDACTOR.register(key)
    failing = AccountState(
        provider="tornado",
        account="echo",
        interval=300.0,
        max_staleness=900.0,
        polled=True,
        last_error=f"HTTP 401: Invalid API Key {key}",
    )
    page = landing_page(snapshot(failing), NOW)
    assert key not in page
    assert (
        row(
            "tornado",
            "echo",
            "failing",
            "never",
            "-",
            0,
            "HTTP 401: Invalid API Key &lt;redacted&gt;",
        )
        in page
    )


def test_the_page_says_when_no_account_is_configured_and_when_a_reload_failed() -> None:
    page = landing_page(snapshot(), NOW)
    assert '<tr><td colspan="7">No accounts configured.</td></tr>' in page
    assert "Last config load: ok" in page
    failed = landing_page(snapshot(reload=ReloadStatus(False, NOW - 600)), NOW)
    assert "Last config load: FAILED (running the previous config)" in failed


CACHED = Readings(meters=(MeterReading("credits", "credits", used=1.0, limit=3.0),))


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({}, "pending"),
        ({"polled": True, "up": True, "readings": CACHED, "last_success": NOW}, "up"),
        (
            {"polled": True, "readings": CACHED, "last_success": NOW - 900},
            "failing (serving cached values)",
        ),
        ({"polled": True, "readings": CACHED, "last_success": NOW - 901}, "failing"),
        ({"polled": True}, "failing"),
    ],
)
def test_account_status_follows_the_failure_semantics(
    fields: dict[str, object], status: str
) -> None:
    state = AccountState("pictory", "a", 300.0, 900.0, **fields)  # type: ignore[arg-type]
    assert account_status(state, NOW) == status


@pytest.mark.parametrize(
    ("age", "shown"),
    [(0, "0s ago"), (119, "119s ago"), (120, "2m ago"), (7199, "120m ago"), (7200, "2.0h ago")],
)
def test_last_success_is_shown_as_an_age(age: float, shown: str) -> None:
    page = landing_page(
        snapshot(up_state("pictory", "a", Readings(), NOW, last_success=NOW - age)), NOW
    )
    assert f"<td>{shown}</td>" in page


def test_the_page_is_a_pure_function_of_the_snapshot_and_the_time() -> None:
    taken = snapshot(up_account())
    assert landing_page(taken, NOW) == landing_page(taken, NOW)
    assert "<td>in 270s</td>" in landing_page(taken, NOW)
    assert "<td>in 170s</td>" in landing_page(taken, NOW + 100)
