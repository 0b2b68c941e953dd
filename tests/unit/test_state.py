"""exporter.state: per-account states, what a poll outcome does to one, staleness,
error counters, and the store with its snapshots.

Times are plain numbers passed in as `now`: AccountState never reads a clock, so
every staleness boundary here is exact.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from exporter.config import DEFAULT_INTERVAL
from exporter.model import MeterReading, PollError, Readings, Reason
from exporter.redaction import REDACTOR
from exporter.state import (
    HISTORY_POINTS,
    RESET_MOVED,
    AccountState,
    ReloadStatus,
    Snapshot,
    StateStore,
)

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


# --- AccountState.after_poll: what a poll outcome does to an account -------------------

END = NOW + 5.0  # when the poll under test ended


def every(seconds: float) -> Callable[[AccountState], float]:
    """A `next_delay` that always says `seconds` (the backoff is exporter.schedule's)."""
    return lambda _state: seconds


def polled(state: AccountState, outcome: Readings | PollError, delay: float = 60.0) -> AccountState:
    return state.after_poll(outcome, now=END, duration=0.25, next_delay=every(delay))


def test_a_success_sets_up_replaces_the_values_and_clears_the_error() -> None:
    before = replace(
        succeeded(600.0),
        up=False,
        polls_total=7,
        last_error="HTTP 503",
        last_error_reason=Reason.SERVER,
        consecutive_failures=3,
        failure_streak=2,
    ).with_error(Reason.SERVER)
    fresh = Readings(meters=(MeterReading("ai_credits", "credits", used=2.0, limit=50.0),))
    after = polled(before, fresh, delay=300.0)
    assert (after.up, after.polled, after.readings) == (True, True, fresh)
    assert (after.last_success, after.last_poll_end, after.last_poll_duration) == (END, END, 0.25)
    assert (after.last_error, after.last_error_reason) == (None, None)
    assert (after.consecutive_failures, after.failure_streak) == (0, 0)
    assert after.polls_total == 8
    # Counters only ever grow: the earlier error stays counted.
    assert after.errors_total == before.errors_total
    assert after.next_poll == END + 300.0
    assert after.fresh_readings(END) is fresh


def test_a_failure_keeps_the_last_good_values_and_counts_its_reason() -> None:
    before = succeeded(60.0)
    after = polled(before, PollError(Reason.TIMEOUT, "no complete answer within 10s"))
    assert (after.up, after.polled) == (False, True)
    assert after.readings is READINGS
    assert after.last_success == before.last_success
    assert after.error_count(Reason.TIMEOUT) == 1
    assert (after.last_error, after.last_error_reason) == (
        "no complete answer within 10s",
        Reason.TIMEOUT,
    )
    assert (after.consecutive_failures, after.failure_streak) == (1, 1)
    assert (after.polls_total, after.last_poll_end, after.last_poll_duration) == (1, END, 0.25)
    # Within max_staleness the values are still served; past it, never.
    assert after.fresh_readings(END) is READINGS
    assert after.fresh_readings(NOW - 60.0 + 901.0) is None


def test_the_failure_streak_restarts_when_the_reason_changes() -> None:
    state = account()
    timeline = [
        Reason.TIMEOUT,
        Reason.TIMEOUT,
        Reason.TIMEOUT,
        Reason.RATE_LIMITED,
        Reason.RATE_LIMITED,
    ]
    streaks = []
    for reason in timeline:
        state = polled(state, PollError(reason, f"{reason.value} fault"))
        streaks.append((state.consecutive_failures, state.failure_streak))
    assert streaks == [(1, 1), (2, 2), (3, 3), (4, 1), (5, 2)]
    assert state.error_count(Reason.TIMEOUT) == 3
    assert state.error_count(Reason.RATE_LIMITED) == 2
    assert polled(state, Readings()).failure_streak == 0


def test_unparsed_parts_of_a_success_count_one_parse_error_and_stay_up() -> None:
    partial = Readings(meters=READINGS.meters, problems=("meter 'x': not a number",))
    after = polled(account(), partial)
    assert after.up is True
    assert after.readings is partial
    assert after.error_count(Reason.PARSE) == 1
    assert after.last_error is None


def test_a_kept_error_is_scrubbed_of_registered_keys() -> None:
    key = "sk_live_after_poll_key_0042"
    REDACTOR.register(key)
    after = polled(account(), PollError(Reason.AUTH, f"HTTP 401: Invalid API Key {key}"))
    assert after.last_error == "HTTP 401: Invalid API Key <redacted>"


def test_next_delay_is_asked_about_the_account_as_this_outcome_leaves_it() -> None:
    # The backoff depends on the streak this very outcome makes, so the delay is
    # computed from the new state, and next_poll is that far after the poll's end.
    asked: list[AccountState] = []

    def delay(state: AccountState) -> float:
        asked.append(state)
        return 12.5 * state.failure_streak

    start = replace(account(), last_error_reason=Reason.SERVER, failure_streak=2)
    after = start.after_poll(
        PollError(Reason.SERVER, "HTTP 503"), now=END, duration=1.0, next_delay=delay
    )
    assert len(asked) == 1
    assert asked[0] == replace(after, next_poll=start.next_poll)
    assert after.failure_streak == 3
    assert after.next_poll == END + 37.5


def test_after_poll_is_pure() -> None:
    before = succeeded(30.0)
    outcome = PollError(Reason.SERVER, "HTTP 502")
    first = polled(before, outcome)
    assert polled(before, outcome) == first
    assert before == succeeded(30.0)


# --- AccountState.history: the recent readings behind "runs out in" ----------------------


def credits(used: float | None, reset: float | None = None, name: str = "credits") -> Readings:
    return Readings(
        meters=(MeterReading(name, "credits", used=used, limit=100.0, reset_timestamp=reset),)
    )


def poll_at(state: AccountState, outcome: Readings | PollError, when: float) -> AccountState:
    return state.after_poll(outcome, now=when, duration=0.1, next_delay=every(60.0))


def test_each_success_appends_its_used_figure_to_the_meter_history() -> None:
    state = account()
    for i, used in enumerate((1.0, 2.0, 2.0, 5.0)):
        state = poll_at(state, credits(used, reset=NOW + 86400), NOW + 60 * i)
    assert state.meter_history("credits") == (
        (NOW, 1.0),
        (NOW + 60, 2.0),
        (NOW + 120, 2.0),
        (NOW + 180, 5.0),
    )
    assert state.meter_history("other") == ()


def test_the_history_is_bounded_to_the_newest_points() -> None:
    state = account()
    for i in range(HISTORY_POINTS * 3):
        state = poll_at(state, credits(float(i)), NOW + i)
    points = state.meter_history("credits")
    assert len(points) == HISTORY_POINTS
    assert points[-1] == (NOW + HISTORY_POINTS * 3 - 1, HISTORY_POINTS * 3 - 1.0)
    assert points[0] == (NOW + HISTORY_POINTS * 2, HISTORY_POINTS * 2.0)


def test_a_failure_keeps_the_history_as_it_is() -> None:
    state = poll_at(poll_at(account(), credits(1.0), NOW), credits(2.0), NOW + 60)
    failed = poll_at(state, PollError(Reason.TIMEOUT, "slow"), NOW + 120)
    assert failed.history == state.history
    # The next success carries on from it.
    assert poll_at(failed, credits(3.0), NOW + 180).meter_history("credits")[-1] == (
        NOW + 180,
        3.0,
    )


@pytest.mark.parametrize(
    ("second", "kept"),
    [
        (credits(0.5, reset=NOW + 86400), False),  # used went down: a new period
        (credits(3.0, reset=NOW + 2 * 86400), False),  # the reset moved a period on
        (credits(3.0, reset=NOW + 86400 + RESET_MOVED + 1), False),
        (credits(3.0, reset=None), False),  # the reset vanished
        (credits(3.0, reset=NOW + 86400 + 2), True),  # "resets in N s" rounding wobble
        (credits(3.0, reset=NOW + 86400 - RESET_MOVED), True),
        (credits(2.0, reset=NOW + 86400), True),  # unchanged is still this period
    ],
)
def test_the_history_starts_over_when_the_period_resets(second: Readings, kept: bool) -> None:
    first = poll_at(account(), credits(2.0, reset=NOW + 86400), NOW)
    after = poll_at(first, second, NOW + 60)
    used = second.meters[0].used
    expected = ((NOW, 2.0), (NOW + 60, used)) if kept else ((NOW + 60, used),)
    assert after.meter_history("credits") == expected


def test_a_meter_without_a_used_figure_or_gone_from_the_answer_has_no_history() -> None:
    state = poll_at(account(), credits(1.0), NOW)
    assert poll_at(state, credits(None), NOW + 60).meter_history("credits") == ()
    assert poll_at(state, credits(4.0, name="other"), NOW + 60).history == (
        ("other", ((NOW + 60, 4.0),)),
    )


# --- StateStore ------------------------------------------------------------------------


def test_a_new_store_is_empty_at_generation_zero() -> None:
    store = StateStore()
    assert store.snapshot() == Snapshot(0, (), ReloadStatus(), DEFAULT_INTERVAL)
    assert store.get(("pictory", "marketing")) is None


def test_set_accounts_orders_by_provider_then_account_and_bumps_generation_once() -> None:
    store = StateStore()
    store.set_accounts(
        [account("vertaaux", "prod"), account("pictory", "zz"), account("pictory", "aa")]
    )
    snapshot = store.snapshot()
    assert snapshot.generation == 1
    assert [s.key for s in snapshot.accounts] == [
        ("pictory", "aa"),
        ("pictory", "zz"),
        ("vertaaux", "prod"),
    ]


def test_set_accounts_replaces_the_whole_set() -> None:
    store = StateStore()
    store.set_accounts([account("pictory", "a"), account("tornado", "b")])
    kept = account("tornado", "b", polls_total=7)
    store.set_accounts([kept, account("piloterr", "c")])
    snapshot = store.snapshot()
    assert snapshot.generation == 2
    assert store.get(("pictory", "a")) is None
    assert store.get(("tornado", "b")) is kept
    assert [s.key for s in snapshot.accounts] == [("piloterr", "c"), ("tornado", "b")]


def test_reading_does_not_bump_the_generation() -> None:
    # The renderer reuses its output while the generation stands still.
    store = StateStore()
    store.set_accounts([account()])
    store.snapshot()
    store.get(("pictory", "marketing"))
    assert store.snapshot().generation == 1


def test_update_swaps_in_the_changed_state_and_returns_it() -> None:
    store = StateStore()
    store.set_accounts([account()])
    new = store.update(("pictory", "marketing"), polls_plus_one)
    assert new is not None
    assert new.polls_total == 1
    assert store.get(("pictory", "marketing")) is new
    assert store.snapshot().generation == 2


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
    snapshot = store.snapshot()
    assert snapshot.generation == 2
    assert [s.key for s in snapshot.accounts] == [("tornado", "b")]


def test_update_keeps_the_account_in_its_place() -> None:
    store = StateStore()
    store.set_accounts([account("pictory", "a"), account("pictory", "b"), account("tornado", "c")])
    store.update(("pictory", "a"), polls_plus_one)
    assert [(s.key, s.polls_total) for s in store.snapshot().accounts] == [
        (("pictory", "a"), 1),
        (("pictory", "b"), 0),
        (("tornado", "c"), 0),
    ]


def test_a_snapshot_already_taken_is_not_changed_by_later_updates() -> None:
    # A /metrics render in progress keeps one consistent view of every account.
    store = StateStore()
    store.set_accounts([account()])
    old = store.snapshot()
    store.update(("pictory", "marketing"), lambda s: replace(s, up=True, polls_total=1))
    assert old.generation == 1
    assert [(s.up, s.polls_total) for s in old.accounts] == [(False, 0)]
    new = store.snapshot()
    assert new.generation == 2
    assert [(s.up, s.polls_total) for s in new.accounts] == [(True, 1)]


def test_a_change_that_raises_leaves_the_store_untouched() -> None:
    store = StateStore()
    original = account()
    store.set_accounts([original])

    def broken(_state: AccountState) -> AccountState:
        raise RuntimeError("bug in the writer")

    with pytest.raises(RuntimeError, match="bug in the writer"):
        store.update(("pictory", "marketing"), broken)
    assert store.get(("pictory", "marketing")) is original
    assert store.snapshot().generation == 1


def test_set_reload_replaces_the_status_and_bumps_generation() -> None:
    store = StateStore()
    status = ReloadStatus(successful=True, last_success=NOW)
    store.set_reload(status)
    assert store.snapshot() == Snapshot(1, (), status, DEFAULT_INTERVAL)


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
    assert store.snapshot().generation == 1 + threads_count * per_thread


def test_a_snapshot_is_named_and_frozen() -> None:
    snapshot = StateStore().snapshot()
    assert (snapshot.generation, snapshot.accounts) == (0, ())
    assert (snapshot.reload, snapshot.default_interval) == (ReloadStatus(), DEFAULT_INTERVAL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.generation = 5  # type: ignore[misc]


def test_a_config_applied_sets_its_default_interval_with_its_accounts() -> None:
    # One swap: the HELP text and the accounts of one config come in one snapshot.
    store = StateStore()
    store.set_accounts([account()], default_interval=60.0)
    snapshot = store.snapshot()
    assert (snapshot.generation, snapshot.default_interval) == (1, 60.0)
    assert [s.key for s in snapshot.accounts] == [("pictory", "marketing")]
    # Setting accounts without a config (tests, tools) keeps the interval.
    store.set_accounts([])
    assert store.snapshot().default_interval == 60.0
    assert store.snapshot().generation == 2


def test_a_failed_reload_keeps_the_time_of_the_last_success() -> None:
    store = StateStore()
    store.reload_failed()
    assert store.snapshot().reload == ReloadStatus(successful=False, last_success=None)
    store.set_reload(ReloadStatus(successful=True, last_success=NOW))
    store.reload_failed()
    snapshot = store.snapshot()
    assert snapshot.reload == ReloadStatus(successful=False, last_success=NOW)
    assert snapshot.generation == 3


def test_the_layout_is_one_object_until_the_set_of_accounts_changes() -> None:
    # exporter.render diffs states by position while the layout is the same object.
    store = StateStore()
    store.set_accounts([account(name="b"), account(name="a")])
    first = store.snapshot()
    assert first.layout == (("pictory", "a"), ("pictory", "b"))
    assert first.layout == tuple(s.key for s in first.accounts)
    store.update(("pictory", "b"), lambda s: replace(s, polls_total=1))
    store.set_reload(ReloadStatus(successful=True))
    store.set_shard(0, 2)
    assert store.snapshot().layout is first.layout
    store.set_accounts(store.snapshot().accounts)
    assert store.snapshot().layout is not first.layout
    assert store.snapshot().layout == first.layout
    # It says nothing the accounts do not: no part of equality.
    assert dataclasses.replace(first, layout=None) == first


def test_the_cached_key_is_no_field() -> None:
    state = account()
    assert state.key is state.key
    moved = replace(state, account="other")
    assert moved.key == ("pictory", "other")
    assert replace(state) == state
    assert hash(replace(state)) == hash(state)
    assert "key" not in {f.name for f in dataclasses.fields(AccountState)}
