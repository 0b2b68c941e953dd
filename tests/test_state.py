"""exporter.state: per-account snapshots, staleness, error counters and the store.

Times are plain numbers passed in as `now`: AccountState never reads a clock, so
every staleness boundary here is exact.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import replace
from typing import Any

import pytest

from exporter.model import MeterReading, Readings, Reason
from exporter.state import AccountState, ReloadStatus, StateStore

NOW = 1_800_000_000.0
READINGS = Readings(meters=(MeterReading("ai_credits", "credits", used=1.0, limit=50.0),))


def account(provider: str = "pictory", name: str = "marketing", **kw: Any) -> AccountState:
    """An account polled every 5 min whose values expire after 15 min."""
    return replace(
        AccountState(provider=provider, account=name, interval=300.0, max_staleness=900.0),
        **kw,
    )


def succeeded(age: float) -> AccountState:
    """An account whose last good poll was `age` seconds before NOW."""
    return account(up=True, polled=True, readings=READINGS, last_success=NOW - age)


def polls_plus_one(state: AccountState) -> AccountState:
    return replace(state, polls_total=state.polls_total + 1)


# --- AccountState ----------------------------------------------------------------------


def test_a_new_account_is_down_unpolled_with_every_reason_at_zero() -> None:
    state = account()
    assert (state.up, state.polled) == (False, False)
    assert state.readings is None
    assert (state.last_success, state.last_poll_duration, state.last_poll_end) == (None,) * 3
    assert (state.last_error, state.last_error_reason, state.next_poll) == (None,) * 3
    assert (state.polls_total, state.consecutive_failures, state.failure_streak) == (0, 0, 0)
    # Every reason present from the start: the counter series exist before any error.
    assert state.errors_total == (
        (Reason.AUTH, 0),
        (Reason.FORBIDDEN, 0),
        (Reason.PAYMENT, 0),
        (Reason.RATE_LIMITED, 0),
        (Reason.HTTP, 0),
        (Reason.SERVER, 0),
        (Reason.TIMEOUT, 0),
        (Reason.NETWORK, 0),
        (Reason.PARSE, 0),
        (Reason.INTERNAL, 0),
    )


def test_key_is_provider_then_account() -> None:
    assert account("vertaaux", "prod").key == ("vertaaux", "prod")


@pytest.mark.parametrize("now", [0.0, NOW, NOW + 10**9])
def test_an_account_that_never_succeeded_is_stale_at_any_time(now: float) -> None:
    # Even with readings set, no last_success means nothing may be exported.
    state = account(readings=READINGS)
    assert state.is_stale(now) is True
    assert state.fresh_readings(now) is None


@pytest.mark.parametrize(
    ("age", "stale"),
    [
        (0.0, False),
        (300.0, False),
        # "older than max_staleness": exactly max_staleness is still exported.
        (900.0, False),
        (900.5, True),
        (3600.0, True),
        # A clock that stepped back (now before last_success) is not staleness.
        (-60.0, False),
    ],
)
def test_values_expire_only_when_older_than_max_staleness(age: float, stale: bool) -> None:
    state = succeeded(age)
    assert state.is_stale(NOW) is stale
    assert state.fresh_readings(NOW) is (None if stale else READINGS)


def test_failed_polls_keep_the_last_good_values_until_they_expire() -> None:
    # docs/metrics.md, Failure semantics: up goes to 0, values stay until max_staleness.
    state = replace(succeeded(600.0), up=False, consecutive_failures=2)
    assert state.fresh_readings(NOW) is READINGS
    assert state.fresh_readings(NOW + 300.0) is READINGS
    assert state.fresh_readings(NOW + 301.0) is None


def test_with_error_counts_one_reason_and_leaves_the_original_alone() -> None:
    before = succeeded(10.0)
    after = before.with_error(Reason.TIMEOUT)
    assert after.error_count(Reason.TIMEOUT) == 1
    assert before.error_count(Reason.TIMEOUT) == 0
    # Nothing but the counters changed.
    assert replace(after, errors_total=before.errors_total) == before


def test_error_counters_accumulate_per_reason_in_a_fixed_order() -> None:
    state = (
        account()
        .with_error(Reason.AUTH)
        .with_error(Reason.TIMEOUT)
        .with_error(Reason.AUTH)
        .with_error(Reason.PARSE)
        .with_error(Reason.AUTH)
    )
    assert {r: state.error_count(r) for r in Reason} == {
        Reason.AUTH: 3,
        Reason.FORBIDDEN: 0,
        Reason.PAYMENT: 0,
        Reason.RATE_LIMITED: 0,
        Reason.HTTP: 0,
        Reason.SERVER: 0,
        Reason.TIMEOUT: 1,
        Reason.NETWORK: 0,
        Reason.PARSE: 1,
        Reason.INTERNAL: 0,
    }
    # The order stays the contract's, so the rendered series order never shifts.
    assert [r for r, _ in state.errors_total] == list(Reason)


def test_account_state_is_frozen() -> None:
    state = account()
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.up = True  # type: ignore[misc]


def test_reload_status_starts_unsuccessful_and_never_reloaded() -> None:
    assert ReloadStatus() == ReloadStatus(successful=False, last_success=None)


# --- StateStore ------------------------------------------------------------------------


def test_a_new_store_is_empty_at_generation_zero() -> None:
    store = StateStore()
    assert store.snapshot() == (0, (), ReloadStatus())
    assert store.get(("pictory", "marketing")) is None


def test_set_accounts_orders_by_provider_then_account_and_bumps_generation_once() -> None:
    store = StateStore()
    store.set_accounts(
        [account("vertaaux", "prod"), account("pictory", "zz"), account("pictory", "aa")]
    )
    generation, states, _ = store.snapshot()
    assert generation == 1
    assert [s.key for s in states] == [
        ("pictory", "aa"),
        ("pictory", "zz"),
        ("vertaaux", "prod"),
    ]


def test_set_accounts_replaces_the_whole_set() -> None:
    store = StateStore()
    store.set_accounts([account("pictory", "a"), account("tornado", "b")])
    kept = account("tornado", "b", polls_total=7)
    store.set_accounts([kept, account("piloterr", "c")])
    generation, states, _ = store.snapshot()
    assert generation == 2
    assert store.get(("pictory", "a")) is None
    assert store.get(("tornado", "b")) is kept
    assert [s.key for s in states] == [("piloterr", "c"), ("tornado", "b")]


def test_reading_does_not_bump_the_generation() -> None:
    # The renderer reuses its output while the generation stands still.
    store = StateStore()
    store.set_accounts([account()])
    store.snapshot()
    store.get(("pictory", "marketing"))
    assert store.snapshot()[0] == 1


def test_update_swaps_in_the_changed_state_and_returns_it() -> None:
    store = StateStore()
    store.set_accounts([account()])
    new = store.update(("pictory", "marketing"), polls_plus_one)
    assert new is not None
    assert new.polls_total == 1
    assert store.get(("pictory", "marketing")) is new
    assert store.snapshot()[0] == 2


def test_update_of_an_account_reloaded_away_is_a_no_op() -> None:
    # A poll that finishes after a reload removed its account must not resurrect it.
    store = StateStore()
    store.set_accounts([account("pictory", "gone"), account("tornado", "b")])
    store.set_accounts([account("tornado", "b")])
    calls: list[AccountState] = []

    def change(state: AccountState) -> AccountState:
        calls.append(state)
        return state

    assert store.update(("pictory", "gone"), change) is None
    assert calls == []
    generation, states, _ = store.snapshot()
    assert generation == 2
    assert [s.key for s in states] == [("tornado", "b")]


def test_update_keeps_the_account_in_its_place() -> None:
    store = StateStore()
    store.set_accounts([account("pictory", "a"), account("pictory", "b"), account("tornado", "c")])
    store.update(("pictory", "a"), polls_plus_one)
    _, states, _ = store.snapshot()
    assert [(s.key, s.polls_total) for s in states] == [
        (("pictory", "a"), 1),
        (("pictory", "b"), 0),
        (("tornado", "c"), 0),
    ]


def test_a_snapshot_already_taken_is_not_changed_by_later_updates() -> None:
    # A /metrics render in progress keeps one consistent view of every account.
    store = StateStore()
    store.set_accounts([account()])
    old_generation, old_states, _ = store.snapshot()
    store.update(("pictory", "marketing"), lambda s: replace(s, up=True, polls_total=1))
    assert old_generation == 1
    assert [(s.up, s.polls_total) for s in old_states] == [(False, 0)]
    new_generation, new_states, _ = store.snapshot()
    assert new_generation == 2
    assert [(s.up, s.polls_total) for s in new_states] == [(True, 1)]


def test_a_change_that_raises_leaves_the_store_untouched() -> None:
    store = StateStore()
    original = account()
    store.set_accounts([original])

    def broken(_state: AccountState) -> AccountState:
        raise RuntimeError("bug in the writer")

    with pytest.raises(RuntimeError, match="bug in the writer"):
        store.update(("pictory", "marketing"), broken)
    assert store.get(("pictory", "marketing")) is original
    assert store.snapshot()[0] == 1


def test_set_reload_replaces_the_status_and_bumps_generation() -> None:
    store = StateStore()
    status = ReloadStatus(successful=True, last_success=NOW)
    store.set_reload(status)
    assert store.snapshot() == (1, (), status)


def test_concurrent_updates_are_never_lost() -> None:
    # Each update is a read-modify-write under the lock: no increment may vanish.
    store = StateStore()
    store.set_accounts([account()])
    threads_count, per_thread = 4, 2000
    barrier = threading.Barrier(threads_count)

    def writer() -> None:
        barrier.wait()
        for _ in range(per_thread):
            store.update(("pictory", "marketing"), polls_plus_one)

    threads = [threading.Thread(target=writer) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    state = store.get(("pictory", "marketing"))
    assert state is not None
    assert state.polls_total == threads_count * per_thread
    assert store.snapshot()[0] == 1 + threads_count * per_thread
