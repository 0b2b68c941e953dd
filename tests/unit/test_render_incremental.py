"""exporter.render's rebuild costs O(changed), and its bytes are still exactly right.

The structural half counts what a rebuild redoes (accounts encoded, blocks joined,
blocks compressed, passes over every account) after one account changed; the other
half holds the incremental bytes to a from-scratch render of the same snapshot
(whose identity with prometheus_client tests/unit/test_render_encoding.py proves)
after any sequence of polls, reloads and clock moves, and the gzip answer to the
plain one.
"""

from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import replace
from functools import partial

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter import render as render_module
from exporter.families import ACCOUNT_FAMILIES, PREFIX
from exporter.render import (
    TEXT_0_0_4,
    Format,
    FormatCache,
    MetricsRenderer,
    Rendered,
)
from exporter.state import AccountState, ReloadStatus, Snapshot, StateStore
from tests.support.examples import examples
from tests.unit.test_families import NOW, parsed
from tests.unit.test_render_encoding import (
    ORDERED_FORMATS,
    accept_for,
    many_accounts,
    reference,
)

POLLS = [f.name for f in ACCOUNT_FAMILIES].index(PREFIX + "polls")


def text_cache(renderer: MetricsRenderer) -> FormatCache:
    return renderer._caches[TEXT_0_0_4]


def counts(cache: FormatCache) -> tuple[int, int, int, int, int]:
    return (
        cache.encoded,
        cache.joined,
        cache.deflated_blocks,
        cache.full_builds,
        cache.stale_passes,
    )


def delta(cache: FormatCache, before: tuple[int, ...]) -> dict[str, int]:
    names = ("encoded", "joined", "deflated", "full", "stale_passes")
    return {n: a - b for n, a, b in zip(names, counts(cache), before, strict=True)}


def from_scratch(snapshot: Snapshot, now: float, accept: str | None = None) -> bytes:
    return MetricsRenderer(process_metrics=False).render(snapshot, now, accept).body


# --- what a rebuild redoes ------------------------------------------------------------


def test_one_change_at_2000_accounts_redoes_only_its_blocks() -> None:
    store = many_accounts(2000)
    renderer = MetricsRenderer(process_metrics=False)
    renderer.render(store.snapshot(), NOW, None, "gzip")
    cache = text_cache(renderer)
    assert counts(cache)[:2] == (2000, 19 * math.ceil(2000 / 32))

    # A counter moves: one account encoded, one family's block joined and compressed.
    before = counts(cache)
    store.update(("pictory", "customer-01000"), lambda s: replace(s, polls_total=99))
    zipped = renderer.render(store.snapshot(), NOW, None, "gzip")
    assert delta(cache, before) == {
        "encoded": 1,
        "joined": 1,
        "deflated": 1,
        "full": 0,
        "stale_passes": 0,
    }
    assert gzip.decompress(zipped.body) == reference(store.snapshot(), NOW, TEXT_0_0_4)

    # Which block: the polls family's that holds the account, and no other.
    before = counts(cache)
    store.update(("pictory", "customer-01005"), lambda s: replace(s, polls_total=98))
    renderer.render(store.snapshot(), NOW)  # plain only: the block waits to be compressed
    position = [s.key for s in store.snapshot().accounts].index(("pictory", "customer-01005"))
    assert cache._families[POLLS].undeflated == {position // 32}
    assert not any(f.undeflated for i, f in enumerate(cache._families) if i != POLLS)

    # A poll with new readings touches more families of that account, never more
    # than one block of each, and no other account.
    other = parsed("tornado", "usage_key_with_limits")
    before = counts(cache)
    store.update(
        ("pictory", "customer-01500"),
        lambda s: replace(s, readings=other, polls_total=13, last_success=NOW - 5),
    )
    zipped = renderer.render(store.snapshot(), NOW, None, "gzip")
    done = delta(cache, before)
    assert done["encoded"] == 1
    assert 3 <= done["joined"] <= len(ACCOUNT_FAMILIES)
    # The block of customer-01005 was still waiting: compressed now, once.
    assert done["deflated"] == done["joined"] + 1
    assert (done["full"], done["stale_passes"]) == (0, 0)
    assert gzip.decompress(zipped.body) == reference(store.snapshot(), NOW, TEXT_0_0_4)


def test_the_background_rebuild_is_as_cheap_and_publishes_the_same_bytes() -> None:
    store = many_accounts(500)
    renderer = MetricsRenderer(process_metrics=False)
    renderer._wanted[TEXT_0_0_4] = renderer._wanted_gzip[TEXT_0_0_4] = math.inf
    renderer._rebuild(store.snapshot(), NOW)
    cache = text_cache(renderer)
    before = counts(cache)
    store.update(("pictory", "customer-00250"), lambda s: replace(s, polls_total=1))
    renderer._rebuild(store.snapshot(), NOW + 1)
    assert delta(cache, before) == {
        "encoded": 1,
        "joined": 1,
        "deflated": 1,
        "full": 0,
        "stale_passes": 0,
    }
    built = renderer._published[TEXT_0_0_4]
    assert built.body == reference(store.snapshot(), NOW + 1, TEXT_0_0_4)
    # The next expiry the thread waits for is the earliest of the accounts'.
    assert renderer._last_expiry <= NOW - 30 + 900
    assert renderer._last_expiry > NOW - 30 + 900 - 1e-3


def test_a_scrape_references_the_published_bytes_instead_of_copying_them() -> None:
    store = many_accounts(100)
    renderer = MetricsRenderer(process_metrics=False)
    first = renderer.render(store.snapshot(), NOW)
    again = renderer.render(store.snapshot(), NOW)
    assert isinstance(first, Rendered)
    assert len(first.chunks) == len(ACCOUNT_FAMILIES) + 1  # families, then the tail
    assert all(a is b for a, b in zip(first.chunks, again.chunks, strict=True))
    # A change replaces only the chunk of the family that changed.
    store.update(("pictory", "customer-00005"), lambda s: replace(s, polls_total=5))
    after = renderer.render(store.snapshot(), NOW)
    same = [a is b for a, b in zip(first.chunks, after.chunks, strict=True)]
    assert same.count(False) == 2  # the polls family, and the tail (rebuilt each time)
    assert not same[POLLS]
    zipped = renderer.render(store.snapshot(), NOW, None, "gzip")
    # The gzip answer: header, each family's kept deflate stream itself, the tail's,
    # the runtime metrics' final stream, the trailer.
    families = text_cache(renderer)._families
    assert len(zipped.chunks) == 1 + len(families) + 1 + 2
    assert all(c is f.deflated for c, f in zip(zipped.chunks[1:], families, strict=False))
    assert gzip.decompress(zipped.body) == after.body


def test_a_reload_that_changes_the_set_renders_right_and_keeps_the_others_fragments() -> None:
    store = many_accounts(300)
    renderer = MetricsRenderer(process_metrics=False)
    renderer.render(store.snapshot(), NOW, None, "gzip")
    cache = text_cache(renderer)
    kept = [s for s in store.snapshot().accounts if s.account != "customer-00100"]
    added = replace(kept[0], account="customer-00100a", polls_total=7)
    before = counts(cache)
    store.set_accounts([*kept, added])
    zipped = renderer.render(store.snapshot(), NOW, None, "gzip")
    assert gzip.decompress(zipped.body) == reference(store.snapshot(), NOW, TEXT_0_0_4)
    done = delta(cache, before)
    assert done["full"] == 1
    assert done["encoded"] == 1, "only the new account is encoded; the rest are kept"

    # A reload with the same accounts (a new layout object, equal keys) is no full pass.
    before = counts(cache)
    store.set_accounts(store.snapshot().accounts)
    assert renderer.render(store.snapshot(), NOW).body == reference(
        store.snapshot(), NOW, TEXT_0_0_4
    )
    assert delta(cache, before)["full"] == 0
    # Nor is the next poll: the new layout object is the one compared from now on.
    store.update(("pictory", "customer-00005"), lambda s: replace(s, polls_total=1))
    renderer.render(store.snapshot(), NOW)
    assert delta(cache, before) == {
        "encoded": 1,
        "joined": 1,
        "deflated": 0,
        "full": 0,
        "stale_passes": 0,
    }


def test_values_go_stale_at_the_right_time_without_any_change() -> None:
    # Ten accounts whose last successes are a second apart, nothing else moving.
    store = many_accounts(10)
    for index, state in enumerate(store.snapshot().accounts):
        store.update(state.key, partial(replace, last_success=NOW - 100 - index))
    snapshot = store.snapshot()
    renderer = MetricsRenderer(process_metrics=False)
    renderer.render(snapshot, NOW)
    cache = text_cache(renderer)
    deadlines = sorted(NOW - 100 - i + 900.0 for i in range(len(snapshot.accounts)))
    for index, deadline in enumerate(deadlines):
        for now in (math.nextafter(deadline, 0), deadline, math.nextafter(deadline, math.inf)):
            ours = renderer.render(snapshot, now).body
            assert ours == from_scratch(snapshot, now), (index, now - deadline)
        # The next expiry kept is the next account's (a hair early at most).
        following = deadlines[index + 1] if index + 1 < len(deadlines) else math.inf
        assert cache.expiry <= following
        assert cache.expiry > following - 1e-3 or following == math.inf
        # Between two expiries no render walks every account.
        passes = cache.stale_passes
        between = (deadline + following) / 2 if following < math.inf else deadline + 500
        assert renderer.render(snapshot, between).body == from_scratch(snapshot, between)
        assert cache.stale_passes == passes
    for now in (NOW + 2000, NOW + 3000):
        assert renderer.render(snapshot, now).body == from_scratch(snapshot, now)
    assert cache.expiry == math.inf
    assert cache.stale_passes == passes, "nothing left to expire: no more passes"


def test_the_clock_going_back_brings_values_back() -> None:
    snapshot = many_accounts(40).snapshot()
    renderer = MetricsRenderer(process_metrics=False)
    for now in (NOW, NOW + 2000, NOW):
        assert renderer.render(snapshot, now).body == from_scratch(snapshot, now)


def test_the_background_thread_republishes_when_values_expire() -> None:
    from tests.unit.test_render_encoding import Clock, body, wait_for

    store, clock = many_accounts(40), Clock(NOW)
    renderer = MetricsRenderer(process_metrics=False, min_interval=0.05)
    renderer.start(store.snapshot, clock)
    try:
        assert body(renderer) == reference(store.snapshot(), NOW, TEXT_0_0_4)
        clock.now = NOW + 900  # every last success (NOW - 30) is past max_staleness
        wait_for(lambda: body(renderer) == reference(store.snapshot(), NOW + 900, TEXT_0_0_4))
    finally:
        renderer.stop()


def test_wait_published_returns_once_the_bytes_show_the_generation() -> None:
    from tests.unit.test_render_encoding import Clock, body

    store, clock = many_accounts(40), Clock(NOW)
    # A long coalescing interval: the wait is what makes the thread build soon.
    renderer = MetricsRenderer(process_metrics=False, min_interval=0.5)
    renderer.start(store.snapshot, clock)
    try:
        store.reload_failed()
        generation = store.generation
        assert renderer.published_generation < generation
        assert renderer.wait_published(generation, timeout=10)
        assert renderer.published_generation >= generation
        assert b"saas_quota_config_last_reload_successful 0.0" in body(renderer)
        # Already there: no wait at all.
        assert renderer.wait_published(generation, timeout=0)
    finally:
        renderer.stop()
    # Without a thread `render` builds on call: nothing to wait for.
    assert MetricsRenderer(process_metrics=False).wait_published(10**9, timeout=0)


# --- any sequence of changes ----------------------------------------------------------

READINGS = [
    parsed("pictory", "quota"),
    parsed("tornado", "usage_key_with_limits"),
    parsed("vertaaux", "quota_pro"),
]


def account(number: int) -> AccountState:
    return AccountState(
        provider=("pictory", "tornado", "vertaaux")[number % 3],
        account=f"a{number:03d}",
        interval=300.0,
        max_staleness=(900.0, 60.0, 5.0)[number % 3],
        up=True,
        polled=True,
        readings=READINGS[number % 3],
        last_success=NOW - number % 7,
        last_poll_duration=0.25,
        polls_total=number,
    )


# One step: (kind, account number or set, a number to vary the change by).
STEP = st.one_of(
    st.tuples(st.just("poll"), st.integers(0, 99), st.integers(0, 5)),
    st.tuples(st.just("clock"), st.integers(-30, 400), st.just(0)),
    st.tuples(st.just("reload"), st.frozensets(st.integers(0, 99), max_size=60), st.just(0)),
    st.tuples(st.just("status"), st.booleans(), st.just(0)),
    st.tuples(st.just("nothing"), st.just(0), st.just(0)),
)
# Few formats, so a format's cache sees many steps; gzip or not at each.
SOME_FORMATS = [ORDERED_FORMATS[0], TEXT_0_0_4, ORDERED_FORMATS[-1]]
READ = st.tuples(st.sampled_from(SOME_FORMATS), st.booleans())


def apply_poll(state: AccountState, how: int, now: float) -> AccountState:
    """A change like one a poll makes: counters, new readings, a failure, nothing."""
    if how == 0:
        return replace(state, polls_total=state.polls_total + 1, last_success=now)
    if how == 1:
        following = (READINGS.index(state.readings) + 1) % 3 if state.readings in READINGS else 1
        return replace(state, readings=READINGS[following])
    if how == 2:
        return replace(state, up=False, consecutive_failures=state.consecutive_failures + 1)
    if how == 3:
        return replace(state, readings=None, last_success=None)
    if how == 4:
        return replace(state, readings=READINGS[0], last_success=now - 3)
    return replace(state)  # a new object, the same content


@settings(
    max_examples=examples(200),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.frozensets(st.integers(0, 99), max_size=70),
    st.lists(st.tuples(STEP, READ), max_size=30),
    st.sampled_from([4, 32]),
)
def test_any_sequence_of_changes_publishes_a_from_scratch_render(
    first: frozenset[int],
    steps: list[tuple[tuple[str, object, int], tuple[Format, bool]]],
    block: int,
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(render_module, "_BLOCK", block)  # small blocks: many boundaries
        store = StateStore()
        store.set_accounts(account(n) for n in first)
        renderer = MetricsRenderer(process_metrics=False)
        now = NOW
        for (kind, what, how), (fmt, gzipped) in steps:
            if kind == "poll":
                assert isinstance(what, int)
                key = account(what).key
                store.update(key, partial(apply_poll, how=how, now=now))
            elif kind == "clock":
                assert isinstance(what, int)
                now += what
            elif kind == "reload":
                assert isinstance(what, frozenset)
                # Accounts kept keep their state, as a reload keeps cached values.
                store.set_accounts([store.get(account(n).key) or account(n) for n in what])
            elif kind == "status":
                store.set_reload(ReloadStatus(successful=bool(what), last_success=now))
            snapshot = store.snapshot()
            answer = renderer.render(snapshot, now, accept_for(fmt), "gzip" if gzipped else None)
            expected = from_scratch(snapshot, now, accept_for(fmt))
            if gzipped:
                single = zlib.decompressobj(wbits=31)
                assert single.decompress(answer.body) == expected
                assert single.eof
                assert not single.unused_data
            else:
                assert answer.body == expected
