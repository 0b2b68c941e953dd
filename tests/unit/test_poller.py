"""The poller's scheduling with an injected clock and a scripted vendor.

Time never passes by itself here: `tick()` starts what is due at the fake clock's
time and `drain()` waits for those polls, so every assertion is exact.
"""

from __future__ import annotations

import asyncio
import collections
import gzip
import io
import itertools
import json
import math
import random
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.core import Metric

from exporter import log
from exporter.config import AccountConfig, Config, parse_config
from exporter.families import families
from exporter.model import AlertPolicy, AlertSettings, Readings, Reason
from exporter.poller import (
    DECODE_STEP,
    FULL_CHECK_SECONDS,
    START_SPREAD,
    DueTimes,
    Poller,
    _Inflate,
)
from exporter.providers import PROVIDERS
from exporter.state import StateStore
from exporter.transport import CLIENT_CONNECTIONS, USER_AGENT, Clients
from tests.fakes import FakeClock, ScriptedVendor, ok_json, status
from tests.support.examples import examples

pytestmark = pytest.mark.anyio

PICTORY = "/pictory/pictoryapis/v1/quota"
TORNADO = "/tornado/usage"
QUOTA = {"videoMinutes": {"used": 10, "limit": 100}, "aiCredits": {"used": 1.5, "limit": 50}}
USAGE = {"client_name": "x", "usage_count": 3, "storage_usage_gb": 1.0}


def config(interval: str = "60s", staleness: str = "3m", *extra: str) -> Config:
    text = f"""
global: {{interval: {interval}, timeout: 5s, max_staleness: {staleness}}}
accounts:
  - {{provider: pictory, account: a, api_key: pictai_secret_a, base_url: http://vendor.test/pictory}}
  - {{provider: tornado, account: b, api_key: sk_secret_bbbb, base_url: http://vendor.test/tornado}}
"""
    return parse_config(text + "".join(extra))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def vendor(clock: FakeClock) -> ScriptedVendor:
    return ScriptedVendor({PICTORY: ok_json(QUOTA), TORNADO: ok_json(USAGE)}, clock=clock)


@pytest.fixture
async def poller(clock: FakeClock, vendor: ScriptedVendor) -> AsyncIterator[Poller]:
    async with httpx.AsyncClient(transport=vendor.transport()) as client:
        yield Poller(
            StateStore(),
            client,
            clock=clock.time,
            monotonic=clock.monotonic,
            rng=random.Random(1),
        )


async def run_for(poller: Poller, clock: FakeClock, seconds: float, step: float = 1.0) -> None:
    """Advance the fake clock in steps, starting and finishing due polls at each."""
    end = clock.now + seconds
    while clock.now < end:
        poller.tick()
        await poller.drain()
        clock.advance(step)


async def test_first_round_polls_every_account_at_once(
    poller: Poller, vendor: ScriptedVendor
) -> None:
    poller.apply_config(config())
    assert not poller.first_round_done.is_set()
    poller.tick()
    await poller.drain()
    assert vendor.count(PICTORY) == 1
    assert vendor.count(TORNADO) == 1
    assert poller.first_round_done.is_set()


async def test_one_vendor_call_per_interval(
    poller: Poller, vendor: ScriptedVendor, clock: FakeClock
) -> None:
    poller.apply_config(config("60s"))
    await run_for(poller, clock, 3600)
    # An hour at 60 s +- 10 %: 55 to 66 calls, never a burst.
    for path in (PICTORY, TORNADO):
        assert 55 <= vendor.count(path) <= 66
        times = vendor.times(path)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= 54
        assert max(gaps) <= 67
    state = poller.store.get(("pictory", "a"))
    assert state is not None
    assert state.polls_total == vendor.count(PICTORY)


async def test_jitter_spreads_accounts_out_of_lockstep(
    poller: Poller, vendor: ScriptedVendor, clock: FakeClock
) -> None:
    poller.apply_config(config("60s"))
    await run_for(poller, clock, 600)
    assert vendor.times(PICTORY)[0] == vendor.times(TORNADO)[0]
    assert vendor.times(PICTORY)[1:] != vendor.times(TORNADO)[1:]


async def test_requests_carry_our_user_agent_and_the_vendor_auth_header(clock: FakeClock) -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=QUOTA)

    transport = httpx.MockTransport(record)
    async with httpx.AsyncClient(transport=transport, headers={"User-Agent": USER_AGENT}) as client:
        poller = Poller(StateStore(), client, clock=clock.time, monotonic=clock.monotonic)
        poller.apply_config(config())
        poller.tick()
        await poller.drain()
    pictory = next(r for r in seen if r.url.path == PICTORY)
    assert pictory.headers["authorization"] == "pictai_secret_a"
    assert pictory.headers["user-agent"].startswith("saas-quota-exporter/")


async def test_retry_after_is_honoured(
    poller: Poller, vendor: ScriptedVendor, clock: FakeClock
) -> None:
    vendor.answers[PICTORY] = status(429, b'{"message": "slow down"}', {"Retry-After": "600"})
    poller.apply_config(config("60s"))
    await run_for(poller, clock, 1)
    assert vendor.count(PICTORY) == 1
    vendor.answers[PICTORY] = ok_json(QUOTA)
    await run_for(poller, clock, 598)
    assert vendor.count(PICTORY) == 1, "no request before Retry-After elapsed"
    await run_for(poller, clock, 5)
    assert vendor.count(PICTORY) == 2
    state = poller.store.get(("pictory", "a"))
    assert state is not None
    assert state.up
    assert state.error_count(Reason.RATE_LIMITED) == 1


async def test_one_failing_account_does_not_touch_another(
    poller: Poller, vendor: ScriptedVendor, clock: FakeClock
) -> None:
    vendor.answers[PICTORY] = status(500, b"<html>bad gateway</html>")
    poller.apply_config(config("60s"))
    await run_for(poller, clock, 300)
    a = poller.store.get(("pictory", "a"))
    b = poller.store.get(("tornado", "b"))
    assert a is not None
    assert b is not None
    assert not a.up
    assert a.error_count(Reason.SERVER) == a.polls_total
    assert b.up
    assert b.error_count(Reason.SERVER) == 0
    assert b.polls_total == vendor.count(TORNADO)
    assert 4 <= b.polls_total <= 6  # b kept its own rhythm while a was retrying


async def test_transient_failures_retry_sooner_then_settle_at_the_interval(
    poller: Poller, vendor: ScriptedVendor, clock: FakeClock
) -> None:
    vendor.answers[PICTORY] = status(503, b"")
    poller.apply_config(config("300s", "15m"))
    await run_for(poller, clock, 1200)
    gaps = [b - a for a, b in zip(vendor.times(PICTORY), vendor.times(PICTORY)[1:], strict=False)]
    # 10 s, 20 s, 40 s, ... each +-10 %, then capped at the 300 s interval.
    assert 9 <= gaps[0] <= 12
    assert 18 <= gaps[1] <= 23
    assert all(gap <= 331 for gap in gaps)
    assert max(gaps) >= 270


async def test_auth_failures_are_retried_at_the_normal_interval(
    poller: Poller, vendor: ScriptedVendor, clock: FakeClock
) -> None:
    vendor.answers[PICTORY] = status(401, b'{"message": "Unauthorized"}')
    poller.apply_config(config("60s"))
    await run_for(poller, clock, 600)
    assert 9 <= vendor.count(PICTORY) <= 11
    state = poller.store.get(("pictory", "a"))
    assert state is not None
    assert state.error_count(Reason.AUTH) == state.polls_total
    assert state.last_error == "HTTP 401: Unauthorized"


async def test_last_good_values_are_kept_until_max_staleness_then_dropped(
    poller: Poller, vendor: ScriptedVendor, clock: FakeClock
) -> None:
    def exported() -> tuple[Metric, ...]:
        return families(poller.store.snapshot(), clock.time())

    def used() -> float | None:
        for family in exported():
            for sample in family.samples:
                if sample.name == "saas_quota_used" and sample.labels == {
                    "provider": "pictory",
                    "account": "a",
                    "meter": "video_seconds",
                }:
                    return float(sample.value)
        return None

    poller.apply_config(config("60s", "3m"))
    await run_for(poller, clock, 1)
    assert used() == 600.0
    vendor.answers[PICTORY] = status(500)
    state = poller.store.get(("pictory", "a"))
    assert state is not None
    last_success = state.last_success
    assert last_success is not None
    while clock.now - last_success <= 180:
        assert used() == 600.0, "cached value must survive failures within max_staleness"
        await run_for(poller, clock, 10, step=10)
    assert used() is None, "stale values must be dropped, never zeroed"
    # The poll bookkeeping stays: up is 0, errors counted.
    samples = {
        (s.name, s.labels.get("account")): s.value for family in exported() for s in family.samples
    }
    assert samples[("saas_quota_up", "a")] == 0
    assert samples[("saas_quota_up", "b")] == 1


async def test_partial_parse_exports_the_rest_and_counts_a_parse_error(
    poller: Poller, vendor: ScriptedVendor, clock: FakeClock
) -> None:
    vendor.answers[PICTORY] = ok_json(
        {"videoMinutes": {"used": "lots", "limit": 1}, "aiCredits": {"used": 2, "limit": 5}}
    )
    poller.apply_config(config())
    await run_for(poller, clock, 1)
    state = poller.store.get(("pictory", "a"))
    assert state is not None
    assert state.up
    assert state.readings is not None
    assert [m.meter for m in state.readings.meters] == ["ai_credits"]
    assert state.error_count(Reason.PARSE) == 1


async def test_reload_keeps_unchanged_accounts_and_polls_new_ones_at_once(
    poller: Poller, vendor: ScriptedVendor, clock: FakeClock
) -> None:
    poller.apply_config(config("60s"))
    await run_for(poller, clock, 30)
    before = poller.store.get(("pictory", "a"))
    vendor.answers["/vertaaux/api/v1/quota"] = ok_json(
        {"plan": "pro", "credits_total": 10, "credits_used": 1, "credits_remaining": 9}
    )
    added = (
        "  - {provider: vertaaux, account: c, api_key: vx_live_cccccc,"
        " base_url: http://vendor.test/vertaaux}\n"
    )
    poller.apply_config(config("60s", "3m", added))
    poller.tick()
    await poller.drain()
    assert vendor.count("/vertaaux/api/v1/quota") == 1, "added account is polled at once"
    assert vendor.count(PICTORY) == 1, "unchanged account keeps its schedule"
    assert poller.store.get(("pictory", "a")) == before
    # Removing an account removes its state (and so its series).
    text = """
global: {interval: 60s, timeout: 5s}
accounts:
  - {provider: tornado, account: b, api_key: sk_secret_bbbb, base_url: http://vendor.test/tornado}
"""
    poller.apply_config(parse_config(text))
    assert poller.store.get(("pictory", "a")) is None
    assert [s.key for s in poller.store.snapshot().accounts] == [("tornado", "b")]


async def test_the_accounts_alert_settings_reach_its_state_on_load_and_reload(
    poller: Poller, vendor: ScriptedVendor, clock: FakeClock
) -> None:
    """What /metrics exports per meter comes from the state: the config's `alerts:`
    with the adapter's defaults, and a reload's new settings replace the old ones."""
    vendor.answers["/vertaaux/api/v1/quota"] = ok_json(
        {"plan": "free", "credits_total": 3, "credits_used": 3, "credits_remaining": 0}
    )
    free = (
        "  - {provider: vertaaux, account: c, api_key: vx_live_cccccc,"
        " base_url: http://vendor.test/vertaaux%s}\n"
    )
    poller.apply_config(config("60s", "3m", free % ""))
    await run_for(poller, clock, 5)
    state = poller.store.get(("vertaaux", "c"))
    assert state is not None
    assert state.alerts == AlertPolicy(adapter=PROVIDERS["vertaaux"].alert_defaults)
    assert state.readings is not None
    meter = state.readings.meters[0]
    assert state.alerts.settings(state.readings, meter) == AlertSettings(
        warning=math.inf, critical=math.inf, forecast=False
    )
    poller.apply_config(config("60s", "3m", free % ", alerts: {critical: 1}"))
    changed = poller.store.get(("vertaaux", "c"))
    assert changed is not None
    assert changed.readings == state.readings, "cached values stay"
    assert changed.alerts.settings(state.readings, meter).critical == 1.0
    # A threshold edit is no reason to ask the vendor again: same schedule, no poll.
    polls = vendor.count("/vertaaux/api/v1/quota")
    due = poller._due[("vertaaux", "c")]
    poller.tick()
    await poller.drain()
    assert vendor.count("/vertaaux/api/v1/quota") == polls
    assert poller._due[("vertaaux", "c")] == due


async def test_oversized_body_is_a_parse_error_and_reading_stops(
    poller: Poller, vendor: ScriptedVendor, clock: FakeClock
) -> None:
    vendor.answers[PICTORY] = status(200, b"x" * (2 * 1024 * 1024))
    poller.apply_config(config())
    await run_for(poller, clock, 1)
    state = poller.store.get(("pictory", "a"))
    assert state is not None
    assert state.last_error_reason is Reason.PARSE
    assert "larger than 1048576 bytes" in (state.last_error or "")


async def test_gzip_bomb_is_capped_too(
    poller: Poller, vendor: ScriptedVendor, clock: FakeClock
) -> None:
    import gzip

    bomb = gzip.compress(b" " * (8 * 1024 * 1024))
    vendor.answers[PICTORY] = status(200, bomb, {"Content-Encoding": "gzip"})
    poller.apply_config(config())
    await run_for(poller, clock, 1)
    state = poller.store.get(("pictory", "a"))
    assert state is not None
    assert state.last_error_reason is Reason.PARSE


async def test_network_errors_are_classified(poller: Poller, clock: FakeClock) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    vendor = ScriptedVendor({PICTORY: refuse, TORNADO: slow}, clock=clock)
    async with httpx.AsyncClient(transport=vendor.transport()) as client:
        poller = Poller(StateStore(), client, clock=clock.time, monotonic=clock.monotonic)
        poller.apply_config(config())
        await run_for(poller, clock, 1)
        a = poller.store.get(("pictory", "a"))
        b = poller.store.get(("tornado", "b"))
    assert a is not None
    assert b is not None
    assert a.last_error_reason is Reason.NETWORK
    assert b.last_error_reason is Reason.TIMEOUT


async def test_backoff_grows_per_kind_of_fault(
    poller: Poller, vendor: ScriptedVendor, clock: FakeClock
) -> None:
    vendor.answers[PICTORY] = status(503)
    poller.apply_config(config("60s", "15m"))
    await run_for(poller, clock, 100)
    state = poller.store.get(("pictory", "a"))
    assert state is not None
    assert state.failure_streak >= 3
    vendor.answers[PICTORY] = status(429)
    before = vendor.count(PICTORY)
    while vendor.count(PICTORY) == before:
        await run_for(poller, clock, 1)
    limited_at = clock.now
    while vendor.count(PICTORY) == before + 1:
        await run_for(poller, clock, 1)
    # The first 429 waits one interval (+-10 %), not 2**streak intervals.
    assert 53 <= clock.now - limited_at <= 68


# --- a poll always ends in an outcome and a next poll ----------------------------------


async def run_checked(poller: Poller, clock: FakeClock, seconds: float) -> None:
    """run_for, also asserting that no poll task ended with an exception (on a real
    loop that is "Task exception was never retrieved" on stderr, outside the log)."""
    end = clock.now + seconds
    while clock.now < end:
        poller.tick()
        tasks = list(poller._inflight.values())
        await poller.drain()
        for task in tasks:
            assert task.cancelled() or task.exception() is None, task.exception()
        assert poller.unscheduled() == []
        clock.advance(1.0)


async def test_a_long_outage_does_not_break_the_backoff(
    poller: Poller, vendor: ScriptedVendor, clock: FakeClock
) -> None:
    """Before: the 1025th consecutive 5xx made next_delay overflow (2**1024 as a float)
    inside the bookkeeping; the account was never polled again."""
    vendor.answers[PICTORY] = status(503)
    poller.apply_config(config("60s", "15m"))
    poller.store.update(
        ("pictory", "a"),
        lambda s: replace(s, failure_streak=1100, last_error_reason=Reason.SERVER),
    )
    await run_checked(poller, clock, 200)
    assert vendor.count(PICTORY) >= 3
    state = poller.store.get(("pictory", "a"))
    assert state is not None
    assert state.last_error_reason is Reason.SERVER


class BrokenLog:
    """A logger whose every call fails, as printing to a closed stderr does."""

    def bind(self, **_fields: object) -> BrokenLog:
        return self

    def __getattr__(self, _name: str) -> Callable[..., None]:
        def fail(*_args: object, **_fields: object) -> None:
            raise BrokenPipeError("stderr is gone")

        return fail


async def test_a_failing_log_cannot_stop_polling(
    poller: Poller, vendor: ScriptedVendor, clock: FakeClock
) -> None:
    """Before: the exception from the log call escaped the poll task."""
    vendor.answers[TORNADO] = status(500, b"down")
    poller._log = BrokenLog()
    poller.apply_config(config("60s"))
    await run_checked(poller, clock, 200)
    assert vendor.count(PICTORY) >= 3
    assert vendor.count(TORNADO) >= 4
    a = poller.store.get(("pictory", "a"))
    assert a is not None
    assert a.up
    assert a.error_count(Reason.INTERNAL) == a.polls_total, "each broken log call is counted"


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    log.configure("debug", "json", stream=buffer)
    yield buffer
    log.configure()


async def test_tick_repairs_an_account_left_without_a_next_poll(
    logs: io.StringIO, poller: Poller, vendor: ScriptedVendor, clock: FakeClock
) -> None:
    """The self-check: whatever road left an account neither in flight nor due, the
    next tick reports it once, counts `internal` and schedules it (after the internal
    backoff, so a bug that keeps doing it cannot hammer the vendor)."""
    poller.apply_config(config("60s"))
    await run_for(poller, clock, 1)
    poller._due[("pictory", "a")] = float("inf")  # what the equal-reload bug did
    assert poller.unscheduled() == [("pictory", "a")]
    poller.tick()
    assert poller.unscheduled() == []
    state = poller.store.get(("pictory", "a"))
    assert state is not None
    assert state.error_count(Reason.INTERNAL) == 1
    events = [json.loads(line) for line in logs.getvalue().splitlines()]
    lost = [e for e in events if e["event"] == "account had no next poll; rescheduled"]
    assert [(e["level"], e["provider"], e["account"]) for e in lost] == [("error", "pictory", "a")]
    count = vendor.count(PICTORY)
    await run_for(poller, clock, 70)
    assert vendor.count(PICTORY) == count + 1
    assert poller.unscheduled() == []


# --- the scheduler: a heap, and a self-check that does not walk every account a tick


_KEYS = [("p", str(i)) for i in range(6)]
_DUE_OPS = st.lists(
    st.tuples(
        st.sampled_from(["set", "inf", "delete", "pop_due"]),
        st.sampled_from(_KEYS),
        st.integers(min_value=0, max_value=50).map(float),
    ),
    max_size=80,
)


@settings(max_examples=examples(200), deadline=None)
@given(ops=_DUE_OPS)
def test_due_times_behave_like_a_dict_sorted_on_every_read(
    ops: list[tuple[str, tuple[str, str], float]],
) -> None:
    """The heap with lazy deletion gives exactly what sorting a plain dict would:
    the earliest finite due time, and the keys due by a time, earliest first."""
    due = DueTimes()
    model: dict[tuple[str, str], float] = {}
    for op, key, value in ops:
        if op == "set":
            due[key] = model[key] = value
        elif op == "inf":
            due[key] = model[key] = float("inf")
        elif op == "delete" and key in model:
            del due[key], model[key]
        elif op == "pop_due":
            taken = list(due.pop_due(value))
            expected = sorted(
                (k for k, v in model.items() if v <= value), key=lambda k: (model[k], k)
            )
            assert sorted(taken) == sorted(expected)
            assert [model[k] for k in taken] == sorted(model[k] for k in taken)
            # What the caller leaves alone goes back; what it starts it sets to inf.
            for k in taken[::2]:
                due[k] = model[k] = float("inf")
            for k in taken[1::2]:
                due.push_back(k)
        assert dict(due) == model
        finite = [v for v in model.values() if v != float("inf")]
        assert due.earliest() == (min(finite) if finite else None)
        assert due.finite == len(finite)
        # Stale entries never pile up beyond a constant factor of the live ones.
        assert len(due._heap) <= 2 * due.finite + 64 + 1


async def test_a_quiet_tick_does_not_walk_every_account(
    poller: Poller, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ticks while nothing is due cost O(1): the full self-check walks the accounts
    once per FULL_CHECK_SECONDS, not on every tick (it did on every tick, next to a
    sort of every due time: 37 % of a core at 3,000 quiet accounts)."""
    poller.apply_config(config("300s", "15m"))
    poller.tick()
    await poller.drain()
    walks = 0
    unscheduled = poller.unscheduled

    def counting() -> list[tuple[str, str]]:
        nonlocal walks
        walks += 1
        return unscheduled()

    monkeypatch.setattr(poller, "unscheduled", counting)
    for _ in range(1000):
        clock.advance(0.01)  # 10 s of ticks, nothing due
        poller.tick()
    assert walks <= 1
    clock.advance(FULL_CHECK_SECONDS)
    poller.tick()
    assert walks >= 1


async def test_tick_starts_due_accounts_in_due_order_and_returns_the_next(
    poller: Poller, clock: FakeClock
) -> None:
    poller.apply_config(config("60s"))
    poller.tick()
    await poller.drain()
    pictory, tornado = ("pictory", "a"), ("tornado", "b")
    poller._due[pictory] = clock.monotonic() + 5
    poller._due[tornado] = clock.monotonic() + 3
    assert poller.tick() == clock.monotonic() + 3
    clock.advance(3)
    assert poller.tick() == clock.monotonic() + 2
    assert set(poller._inflight) == {tornado}
    await poller.drain()
    clock.advance(2)
    poller.tick()
    assert pictory in poller._inflight
    await poller.drain()


class GatedPoller(Poller):
    """Each poll's request waits at a gate the test opens, counting what is in flight."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.gate = asyncio.Event()
        self.now: collections.Counter[str] = collections.Counter()
        self.peak: collections.Counter[str] = collections.Counter()

    async def _fetch(self, account: AccountConfig) -> Readings:
        self.now[account.provider] += 1
        self.now["all"] += 1
        for name in (account.provider, "all"):
            self.peak[name] = max(self.peak[name], self.now[name])
        try:
            await self.gate.wait()
        finally:
            self.now[account.provider] -= 1
            self.now["all"] -= 1
        return Readings()


def many(count: int, concurrency: str = "") -> Config:
    lines = "".join(
        f"  - {{provider: {p}, account: a{i}, api_key: key_{p}_{i:05d}}}\n"
        for i in range(count)
        for p in ("pictory", "tornado")
    )
    return parse_config(f"global: {{interval: 5m{concurrency}}}\naccounts:\n{lines}")


async def test_polls_in_flight_keep_to_the_global_and_the_per_provider_bound(
    clock: FakeClock,
) -> None:
    async with httpx.AsyncClient() as client:
        poller = GatedPoller(StateStore(), client, clock=clock.time, monotonic=clock.monotonic)
        poller.apply_config(many(20, ", concurrency: 5, provider_concurrency: 3"))
        clock.advance(START_SPREAD)
        poller.tick()
        for _ in range(20):
            await asyncio.sleep(0)
        # Both bounds bite: 3 of a vendor at most, 5 in all, and the slots are used.
        assert sorted([poller.peak["pictory"], poller.peak["tornado"]]) == [2, 3]
        assert poller.peak["all"] == 5
        poller.gate.set()
        await poller.drain()
        assert poller.first_round_done.is_set()


async def test_each_provider_has_its_own_default_bound(clock: FakeClock) -> None:
    async with httpx.AsyncClient() as client:
        poller = GatedPoller(StateStore(), client, clock=clock.time, monotonic=clock.monotonic)
        config = many(60, ", concurrency: 1000")
        narrow = replace(PROVIDERS["tornado"], max_concurrency=2)
        config = replace(
            config,
            accounts=tuple(
                replace(a, adapter=narrow) if a.provider == "tornado" else a
                for a in config.accounts
            ),
        )
        poller.apply_config(config)
        clock.advance(START_SPREAD)
        poller.tick()
        for _ in range(20):
            await asyncio.sleep(0)
        assert poller.peak["tornado"] == 2
        assert poller.peak["pictory"] == PROVIDERS["pictory"].max_concurrency
        poller.gate.set()
        await poller.drain()


async def test_the_pools_hold_one_connection_per_poll_in_flight_in_small_pools() -> None:
    """77 polls in flight get 10 pools of 8 connections, all kept alive: a pool's
    walk of its connections stays 8 x 8 steps (exporter/transport.py says why)."""
    async with Clients(77) as clients:
        pools = [c._transport._pool for c in clients.clients]  # type: ignore[attr-defined]
        assert len(pools) == 10
        assert {p._max_connections for p in pools} == {CLIENT_CONNECTIONS}
        assert {p._max_keepalive_connections for p in pools} == {CLIENT_CONNECTIONS}
        assert clients.max_connections == 80
        # One TLS context (one CA bundle in memory) for every pool.
        contexts = {id(p._ssl_context) for p in pools}
        assert len(contexts) == 1


async def test_leases_never_queue_inside_a_pool_and_stay_at_home_when_free() -> None:
    async with Clients(24) as clients:
        held = [clients.lease("pictory") for _ in range(24)]
        lent = [lease.__enter__() for lease in held]
        # 24 leases over 3 pools: 8 each, never 9 in one pool.
        assert sorted(clients.in_flight()) == [8, 8, 8]
        # Past the bound (a reload held to the pools made at start): the least busy.
        extra = clients.lease("pictory")
        extra.__enter__()
        assert max(clients.in_flight()) == 9
        extra.__exit__(None, None, None)
        for lease in held:
            lease.__exit__(None, None, None)
        assert clients.in_flight() == (0, 0, 0)
        # One at a time, a provider always gets its home pool: connections are reused.
        homes = set()
        for _ in range(5):
            with clients.lease("pictory") as client:
                homes.add(id(client))
        assert len(homes) == 1
        assert len({id(c) for c in lent}) == 3


def test_the_first_round_of_10000_accounts_starts_within_the_spread() -> None:
    """Start offsets stay within START_SPREAD whatever the count: past a few hundred
    accounts the concurrency bounds pace the first round (10,000 at 200 ms: about
    42 s at one vendor), so a wider spread would only make it later."""
    poller = Poller(StateStore(), httpx.AsyncClient(), rng=random.Random(3))
    poller.apply_config(many(5000))
    offsets = [due - poller.monotonic() for due in poller._due.values()]
    assert len(offsets) == 10_000
    assert max(offsets) <= START_SPREAD
    per_vendor = PROVIDERS["pictory"].max_concurrency
    assert 5000 * 0.2 / per_vendor + START_SPREAD < 60


# --- decoding: bounded steps, any chunking ---------------------------------------------


@settings(max_examples=examples(60), deadline=None)
@given(
    payload=st.binary(max_size=4096) | st.just(bytes(300_000)),
    coding=st.sampled_from(["gzip", "deflate", "raw-deflate"]),
    cuts=st.lists(st.integers(min_value=0, max_value=400_000), max_size=8),
)
def test_decoding_any_chunking_gives_the_body_in_bounded_steps(
    payload: bytes, coding: str, cuts: list[int]
) -> None:
    if coding == "gzip":
        packed = gzip.compress(payload)
    elif coding == "deflate":
        packed = zlib.compress(payload)
    else:
        packed = zlib.compress(payload, wbits=-zlib.MAX_WBITS)
    layer = _Inflate("gzip" if coding == "gzip" else "deflate")
    bounds = sorted({0, len(packed), *(c for c in cuts if c < len(packed))})
    pieces = [
        piece
        for start, end in itertools.pairwise(bounds)
        for piece in layer.feed(packed[start:end])
    ]
    layer.finish()
    assert b"".join(pieces) == payload
    assert all(len(piece) <= DECODE_STEP for piece in pieces)


async def test_a_poll_in_flight_across_an_alerts_only_reload_is_recorded(
    clock: FakeClock,
) -> None:
    async with httpx.AsyncClient() as client:
        poller = GatedPoller(StateStore(), client, clock=clock.time, monotonic=clock.monotonic)
        poller.apply_config(many(1))
        clock.advance(START_SPREAD)
        poller.tick()
        await asyncio.sleep(0)
        assert poller.now["all"] == 2
        poller.apply_config(many(1, ", alerts: {warning: 0.5}"))
        assert poller.now["all"] == 2, "nothing cancelled"
        poller.gate.set()
        await poller.drain()
        for key in (("pictory", "a0"), ("tornado", "a0")):
            state = poller.store.get(key)
            assert state is not None
            assert state.polls_total == 1, "the outcome of the poll in flight counts"
            assert state.alerts.fleet.warning == 0.5
            assert math.isfinite(poller._due[key])
