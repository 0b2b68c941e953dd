"""The poller's scheduling invariant under any interleaving (Hypothesis stateful).

Every configured account is, at every moment, either in flight or due at a finite
time: whatever reloads (equal, changed, removed, added accounts), ticks, poll
outcomes (readings, classified errors, arbitrary exceptions) and failing bookkeeping
or logging come in whatever order. The vendor is scripted at the `_fetch` seam (each
poll waits on a future the machine resolves), so polls stay in flight across
reloads exactly as slow real ones do; the real-socket version of the reload case is
in tests/e2e/test_faults.py.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import httpx
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from exporter.config import AccountConfig, Config
from exporter.model import PollError, Readings, Reason
from exporter.poller import Poller
from exporter.providers import PROVIDERS
from exporter.redaction import Secret
from exporter.state import AccountState, StateStore
from tests.fakes import FakeClock
from tests.support.examples import examples

NAMES = ("a", "b", "c", "d")
INTERVALS = (60.0, 120.0)
LOST = "account had no next poll; rescheduled"


class RecordingLog:
    """Collects events instead of printing; can be made to fail like a closed stderr."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.broken = False

    def bind(self, **_fields: object) -> RecordingLog:
        return self

    def __getattr__(self, _level: str) -> Callable[..., None]:
        def emit(event: str, **_fields: object) -> None:
            if self.broken:
                raise BrokenPipeError("stderr is gone")
            self.events.append(event)

        return emit


class FlakyStore(StateStore):
    """A store whose per-poll update can be made to fail (a bug in the bookkeeping)."""

    broken = False

    def update(
        self, key: tuple[str, str], change: Callable[[AccountState], AccountState]
    ) -> AccountState | None:
        if self.broken:
            raise RuntimeError("bookkeeping bug")
        return super().update(key, change)


class ScriptedPoller(Poller):
    """Each poll waits on a future the test resolves with the outcome."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiting: list[asyncio.Future[Readings]] = []

    async def _fetch(self, account: AccountConfig) -> Readings:
        future: asyncio.Future[Readings] = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        return await future


OUTCOMES: dict[str, Callable[[], Readings | BaseException]] = {
    "readings": Readings,
    "server": lambda: PollError(Reason.SERVER, "HTTP 503"),
    "rate_limited": lambda: PollError(Reason.RATE_LIMITED, "slow down", retry_after=90.0),
    "auth": lambda: PollError(Reason.AUTH, "HTTP 401"),
    "runtime_error": lambda: RuntimeError("adapter bug"),
    "unicode": lambda: UnicodeEncodeError("ascii", "key\u200b", 3, 4, "no"),
    "invalid_url": lambda: httpx.InvalidURL("tab in URL"),
    "decoding": lambda: httpx.DecodingError("not gzip"),
    "key_error": lambda: KeyError("missing"),
}


class PollerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.client = httpx.AsyncClient()  # never used: `_fetch` is scripted
        self.store = FlakyStore()
        self.log = RecordingLog()
        self.poller = ScriptedPoller(
            self.store,
            self.client,
            clock=self.clock.time,
            monotonic=self.clock.monotonic,
            rng=random.Random(0),
        )
        self.poller._log = self.log
        self.tasks: list[asyncio.Task[None]] = []
        self.configured: set[tuple[str, str]] = set()
        self.current: dict[str, float] = {}

    def settle(self) -> None:
        """Let every runnable task go as far as it can."""
        for _ in range(8):
            self.loop.run_until_complete(asyncio.sleep(0))

    async def _tick(self) -> None:
        self.poller.tick()
        self.tasks.extend(self.poller._inflight.values())

    def apply(self, accounts: dict[str, float]) -> None:
        # Fresh objects every time: an unchanged account is equal, never identical.
        config = Config(
            accounts=tuple(
                AccountConfig(
                    "pictory",
                    name,
                    Secret(f"pictai_key_{name}"),
                    interval=interval,
                    timeout=5.0,
                    max_staleness=600.0,
                    base_url="http://vendor.test/pictory",
                    adapter=PROVIDERS["pictory"],
                )
                for name, interval in sorted(accounts.items())
            )
        )
        self.poller.apply_config(config)
        self.current = dict(accounts)
        self.configured = {("pictory", name) for name in accounts}
        self.settle()

    @rule(
        accounts=st.dictionaries(
            st.sampled_from(NAMES), st.sampled_from(INTERVALS), max_size=len(NAMES)
        )
    )
    def reload_anything(self, accounts: dict[str, float]) -> None:
        self.apply(accounts)

    @rule()
    def reload_unchanged(self) -> None:
        """SIGHUP with the same file: every account equal to the running one."""
        self.apply(self.current)

    @precondition(lambda self: bool(self.current))
    @rule(data=st.data())
    def reload_one_changed(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.current)))
        interval = data.draw(st.sampled_from([i for i in INTERVALS if i != self.current[name]]))
        self.apply({**self.current, name: interval})

    @precondition(lambda self: bool(self.current))
    @rule(data=st.data())
    def reload_one_removed(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.current)))
        self.apply({k: v for k, v in self.current.items() if k != name})

    @precondition(lambda self: len(self.current) < len(NAMES))
    @rule(data=st.data(), interval=st.sampled_from(INTERVALS))
    def reload_one_added(self, data: st.DataObject, interval: float) -> None:
        name = data.draw(st.sampled_from([n for n in NAMES if n not in self.current]))
        self.apply({**self.current, name: interval})

    @rule(seconds=st.floats(min_value=0.0, max_value=200.0))
    def tick(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.loop.run_until_complete(self._tick())
        self.settle()

    @precondition(lambda self: any(not f.done() for f in self.poller.waiting))
    @rule(data=st.data(), outcome=st.sampled_from(sorted(OUTCOMES)))
    def finish_a_poll(self, data: st.DataObject, outcome: str) -> None:
        open_polls = [f for f in self.poller.waiting if not f.done()]
        future = data.draw(st.sampled_from(open_polls))
        result = OUTCOMES[outcome]()
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
        self.settle()

    @rule(broken=st.booleans())
    def break_logging(self, broken: bool) -> None:
        self.log.broken = broken

    @rule(broken=st.booleans())
    def break_bookkeeping(self, broken: bool) -> None:
        self.store.broken = broken

    @invariant()
    def every_account_is_in_flight_or_due(self) -> None:
        assert self.poller.unscheduled() == []
        # ...by the poll's own ending, never by tick's repair.
        assert LOST not in self.log.events

    @invariant()
    def the_store_and_the_schedule_hold_exactly_the_configured_accounts(self) -> None:
        assert {s.key for s in self.store.snapshot().accounts} == self.configured
        assert set(self.poller._due) == self.configured
        assert set(self.poller._inflight) <= self.configured

    @invariant()
    def no_poll_task_ended_with_an_exception(self) -> None:
        for task in self.tasks:
            if task.done() and not task.cancelled():
                assert task.exception() is None, repr(task.exception())

    def teardown(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.settle()
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


PollerMachine.TestCase.settings = settings(
    max_examples=examples(60), stateful_step_count=40, deadline=None
)
test_poller_invariant = PollerMachine.TestCase
