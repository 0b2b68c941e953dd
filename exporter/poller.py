"""Polling every account's quota endpoint in the background (the only vendor I/O).

One `httpx.AsyncClient` is shared by all accounts. A single scheduler loop keeps a
due time per account (`DueTimes`: a heap, so a tick costs O(log n) per poll it
starts, not a sort of every account) and starts a task for each account that is due;
each task makes one request under two concurrency bounds (every poll in flight, and
the polls in flight at one provider, so one vendor host never sees more than a polite
number of connections), hands status, headers and body to the
provider's pure `parse`, and swaps into the store what the pure
`AccountState.after_poll` makes of the outcome. The next due time comes from
`exporter.schedule`. A scrape never reaches this module.

Polling must never stop, so a poll always ends in a recorded outcome and a next due
time: `_run_poll` is the one place where whatever a poll raises ends (counted as
`internal`, logged with its traceback, rescheduled), and `tick()` checks that every
configured account is either in flight or due at a finite time, repairing and
reporting any that is not (an O(1) count on every tick, the full O(n) walk when the
count disagrees and every FULL_CHECK_SECONDS in any case).

Time is injected (`clock` for wall-clock timestamps, `monotonic` for scheduling) so
tests can drive the scheduler with `tick()` and `drain()` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import random
import time
import traceback
import zlib
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import replace
from typing import Any, Final

import httpx

from exporter.config import DEFAULT_CONCURRENCY, AccountConfig, Config
from exporter.log import get_logger
from exporter.model import PollError, Readings, Reason
from exporter.providers.base import excerpt, one_line
from exporter.redaction import REDACTOR
from exporter.schedule import next_delay
from exporter.state import AccountState, StateStore
from exporter.transport import Clients

# Quota answers are a few KiB; anything near this is not a quota answer.
MAX_BODY_BYTES: Final = 1024 * 1024
# The full walk of `unscheduled()` runs at least this often (monotonic seconds), on
# top of the O(1) count every tick: it catches what the count cannot (a finished
# task nobody cleared) at a cost of O(n) a minute, not O(n) a tick.
FULL_CHECK_SECONDS: Final = 60.0
# Upper bound of the random delay before the first poll of a second, third...
# account of the same provider; small, so the first round still ends quickly. It
# does not grow with the number of accounts: past a few hundred, the per-provider
# bound paces the first round anyway (10,000 keys at one vendor, 48 in flight, 200 ms
# a poll: about 42 s), and polls ending one by one spread the next rounds out.
START_SPREAD: Final = 2.0
# Decoded bytes one decompression step may produce: what a compressed body can cost
# in memory at once, whatever its ratio (a few KB of gzip can inflate to gigabytes).
DECODE_STEP: Final = 64 * 1024
# Exceptions raised while httpx builds or sends our own request: a key or base URL
# holding something HTTP cannot carry (U+200B, a newline, a TAB) that slipped past
# the config loader. Retrying cannot help; the config must change.
_UNSENDABLE: Final = (UnicodeEncodeError, httpx.InvalidURL, httpx.LocalProtocolError)


class BodyTooLarge(Exception):
    pass


_Key = tuple[str, str]


class DueTimes(MutableMapping[_Key, float]):
    """Each account's next due time (monotonic; inf while a poll is in flight), with
    the earliest finite one at hand in O(log n).

    A dict is the truth; a heap of (due, token, key) entries orders it. Setting a
    key gives it a fresh token and pushes one entry; an entry whose token is no
    longer its key's is stale and dropped when it reaches the top (lazy deletion),
    and the heap is rebuilt once stale entries outnumber live ones, so it stays
    O(n). Writing `due[key] = x` anywhere keeps the heap right, including a test
    that forces an account to inf to play a bug.
    """

    def __init__(self) -> None:
        self._due: dict[_Key, float] = {}
        self._token: dict[_Key, int] = {}
        self._heap: list[tuple[float, int, _Key]] = []
        self._tokens = itertools.count()
        self.finite = 0  # keys due at a finite time, for the O(1) self-check

    def __getitem__(self, key: _Key) -> float:
        return self._due[key]

    def __setitem__(self, key: _Key, due: float) -> None:
        old = self._due.get(key)
        if old is not None and math.isfinite(old):
            self.finite -= 1
        token = next(self._tokens)
        self._due[key] = due
        self._token[key] = token
        if math.isfinite(due):
            self.finite += 1
            heapq.heappush(self._heap, (due, token, key))
            if len(self._heap) > 2 * self.finite + 64:
                self._compact()

    def __delitem__(self, key: _Key) -> None:
        due = self._due.pop(key)
        del self._token[key]
        if math.isfinite(due):
            self.finite -= 1

    def __iter__(self) -> Iterator[_Key]:
        return iter(self._due)

    def __len__(self) -> int:
        return len(self._due)

    def _live(self, entry: tuple[float, int, _Key]) -> bool:
        return self._token.get(entry[2]) == entry[1]

    def _compact(self) -> None:
        self._heap = [entry for entry in self._heap if self._live(entry)]
        heapq.heapify(self._heap)

    def earliest(self) -> float | None:
        """The earliest finite due time, or None when nothing is due at all."""
        heap = self._heap
        while heap and not self._live(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> Iterator[_Key]:
        """Every key due at or before `now`, earliest first, each taken off the heap
        (the caller sets its next due time; one it leaves as it is is pushed back)."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if self._live(entry):
                yield entry[2]

    def push_back(self, key: _Key) -> None:
        """Put a key that `pop_due` gave but the caller left alone back on the heap."""
        due = self._due.get(key)
        if due is not None and math.isfinite(due):
            heapq.heappush(self._heap, (due, self._token[key], key))


class Poller:
    def __init__(
        self,
        store: StateStore,
        client: httpx.AsyncClient | Clients,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        max_connections: int | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        """`client` is the `Clients` made at start (or one httpx client lent to
        every poll). `max_connections` is the size of its pools (None: unbounded),
        which cannot change once made: a reload raising global.concurrency past it
        is held to it until a restart."""
        self.store = store
        self.clients = client if isinstance(client, Clients) else Clients.wrapping(client)
        self.clock = clock
        self.monotonic = monotonic
        self.rng = rng or random.Random()
        self.max_body_bytes = max_body_bytes
        self.max_connections = max_connections
        # The bounds of polls in flight, set from each config applied (`_set_bounds`).
        self._bound = (DEFAULT_CONCURRENCY, asyncio.Semaphore(DEFAULT_CONCURRENCY))
        self._provider_bounds: dict[str, tuple[int, asyncio.Semaphore]] = {}
        self._accounts: dict[tuple[str, str], AccountConfig] = {}
        self._due = DueTimes()
        self._inflight: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._wakeup = asyncio.Event()
        self._first_round: set[tuple[str, str]] | None = None
        # When the full walk of the self-check last ran (monotonic); -inf: never.
        self._checked_at = -math.inf
        self.first_round_done = asyncio.Event()
        self._log = get_logger()

    # --- configuration ------------------------------------------------------------

    def apply_config(self, config: Config) -> None:
        """Adopt a (new) config: keep unchanged accounts as they are, poll new and
        changed ones at once, forget removed ones (their series go with them)."""
        wanted = {account.key: account for account in config.accounts}
        self._set_bounds(config)
        now = self.monotonic()
        previous = {s.key: s for s in self.store.snapshot().accounts}
        states: list[AccountState] = []
        starting: dict[str, int] = {}  # accounts of each provider starting now
        for key, account in wanted.items():
            old_config = self._accounts.get(key)
            old_state = previous.get(key)
            if old_config == account and old_state is not None:
                states.append(old_state)
                continue
            if (
                old_config is not None
                and old_state is not None
                and _polls_alike(old_config, account)
            ):
                # Only `alerts:` changed: the thresholds are exported from the state,
                # so the state takes them; the schedule and a poll in flight stay
                # (re-polling 10,000 keys for a threshold edit would burst every vendor).
                states.append(replace(old_state, alerts=account.alert_policy))
                continue
            if old_config is not None:
                # Changed key, URL or schedule: what is in flight answers for the old one.
                self._cancel(key)
            if old_state is not None:
                # Same provider and account: the cached values and counters still
                # describe this account, so they stay until the new poll replaces them.
                states.append(
                    replace(
                        old_state,
                        interval=account.interval,
                        max_staleness=account.max_staleness,
                        alerts=account.alert_policy,
                    )
                )
            else:
                states.append(
                    AccountState(
                        provider=account.provider,
                        account=account.account,
                        interval=account.interval,
                        max_staleness=account.max_staleness,
                        alerts=account.alert_policy,
                    )
                )
            self._due[key] = now + self._start_offset(account, starting)
            starting[account.provider] = starting.get(account.provider, 0) + 1
        for key in set(self._accounts) - set(wanted):
            self._cancel(key)
            self._due.pop(key, None)
        self._accounts = wanted
        if self._first_round is None:
            self._first_round = set(wanted)
            if not wanted:
                self.first_round_done.set()
        else:
            self._first_round &= set(wanted)
            self._check_first_round()
        # The config's interval travels with its accounts, for the HELP text.
        self.store.set_accounts(states, default_interval=config.interval)
        self._wakeup.set()

    def _set_bounds(self, config: Config) -> None:
        """Adopt the config's concurrency bounds. A bound that changes gets a new
        semaphore: polls in flight finish under the old one, so for one poll's time
        the two together may exceed the new bound, never more than that."""
        wanted = config.concurrency
        if self.max_connections is not None and wanted > self.max_connections:
            with contextlib.suppress(Exception):
                self._log.warning(
                    "global.concurrency is above the connection pool made at start;"
                    " restart to raise it",
                    concurrency=wanted,
                    pool=self.max_connections,
                )
            wanted = self.max_connections
        if self._bound[0] != wanted:
            self._bound = (wanted, asyncio.Semaphore(wanted))
        bounds: dict[str, tuple[int, asyncio.Semaphore]] = {}
        for account in config.accounts:
            if account.provider in bounds:
                continue
            limit = config.provider_concurrency or account.adapter.max_concurrency
            old = self._provider_bounds.get(account.provider)
            bounds[account.provider] = (
                old if old is not None and old[0] == limit else (limit, asyncio.Semaphore(limit))
            )
        self._provider_bounds = bounds

    def _start_offset(self, account: AccountConfig, starting: dict[str, int]) -> float:
        """The first account of a provider starts at once; the others a little later,
        at random, so no two keys of one vendor are ever polled in lockstep."""
        if not starting.get(account.provider):
            return 0.0
        return self.rng.uniform(0.0, min(START_SPREAD, account.interval * 0.1))

    def _cancel(self, key: tuple[str, str]) -> None:
        task = self._inflight.pop(key, None)
        if task is not None:
            task.cancel()

    # --- scheduling ---------------------------------------------------------------

    def tick(self) -> float | None:
        """Start a poll for every due account; the monotonic time of the next due one.

        O(k log n) for k accounts due now, plus the self-check's O(1) count.
        """
        now = self.monotonic()
        self._check_schedule(now)
        left: list[tuple[str, str]] = []
        for key in self._due.pop_due(now):
            if key in self._inflight:
                # Due while its poll is still running (not reached by any road today):
                # left due, as before, and started by a tick after the poll ends.
                left.append(key)
                continue
            account = self._accounts[key]
            task = asyncio.create_task(self._run_poll(account), name=f"poll {key}")
            self._inflight[key] = task
            # Not due again until the poll finishes and reschedules it.
            self._due[key] = math.inf
        for key in left:
            self._due.push_back(key)
        return self._due.earliest()

    def _check_schedule(self, now: float) -> None:
        """The self-check, cheap enough for every tick: an account neither due at a
        finite time nor in flight makes the count below fall short, and then (or once
        a FULL_CHECK_SECONDS have passed) the full walk finds and repairs it."""
        short = self._due.finite + len(self._inflight) < len(self._accounts)
        if short or now - self._checked_at >= FULL_CHECK_SECONDS:
            self._checked_at = now
            self._reschedule_lost(now)

    def unscheduled(self) -> list[tuple[str, str]]:
        """Configured accounts that are neither in flight nor due at a finite time:
        accounts nothing would ever poll again. Always empty unless there is a bug."""
        lost = []
        for key in self._accounts:
            task = self._inflight.get(key)
            if task is not None and not task.done():
                continue
            if not math.isfinite(self._due.get(key, math.inf)):  # missing counts as lost
                lost.append(key)
        return lost

    def _reschedule_lost(self, now: float) -> None:
        """The self-check behind "polling never stops": an account that lost its next
        poll (a bug on a road `_run_poll` does not cover) is counted as `internal`,
        reported, and polled again after the `internal` backoff, never silently
        forgotten."""
        for key in self.unscheduled():
            self._inflight.pop(key, None)  # a finished task nobody cleared
            account = self._accounts[key]
            # The `internal` backoff without its jitter: nothing here may fail.
            delay = account.interval
            self._due[key] = now + delay
            # Neither the count nor the report may undo the repair above.
            with contextlib.suppress(Exception):
                self.store.update(key, lambda state: state.with_error(Reason.INTERNAL))
            with contextlib.suppress(Exception):
                self._log.error(
                    "account had no next poll; rescheduled",
                    provider=account.provider,
                    account=account.account,
                    reason=Reason.INTERNAL.value,
                    retry_in_seconds=round(delay, 1),
                )

    async def drain(self) -> None:
        """Wait for every poll in flight (tests, and shutdown)."""
        while self._inflight:
            await asyncio.gather(*self._inflight.values(), return_exceptions=True)

    async def run(self) -> None:
        """The scheduler loop; runs until cancelled."""
        try:
            while True:
                self._wakeup.clear()
                next_due = self.tick()
                timeout = None if next_due is None else max(next_due - self.monotonic(), 0.0)
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
                # cancel that lands as the wait completes (CPython gh-86296), and
                # shutdown would then hang for its whole grace period.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wakeup.wait()
        finally:
            for key in list(self._inflight):
                self._cancel(key)

    # --- one poll -----------------------------------------------------------------

    async def _run_poll(self, account: AccountConfig) -> None:
        """The body of every poll task, and the one place a poll's exceptions end.

        `poll` records what is classified (readings, or a `PollError`); anything else
        raised on the way (by httpx, an adapter, the bookkeeping or a log call) ends
        here, in `_contain`, so no task ever dies with "Task exception was never
        retrieved" and no account is left without a next poll. CancelledError (a
        reload or shutdown cancelling this poll) passes: it is a BaseException.
        """
        task = asyncio.current_task()
        started = self.monotonic()
        try:
            await self.poll(account)
        except Exception as exc:
            self._contain(account, exc, self.monotonic() - started)
        finally:
            if self._inflight.get(account.key) is task:
                del self._inflight[account.key]
            self._wakeup.set()

    def _contain(self, account: AccountConfig, exc: Exception, duration: float) -> None:
        """Record an unexpected exception as an `internal` outcome of this poll."""
        key = account.key
        # Not current: reloaded away or changed, and the reload scheduled what follows.
        current = _polls_alike(self._accounts.get(key), account)
        recorded = math.isfinite(self._due.get(key, math.inf))
        if current and not recorded:
            # The due time first: plain arithmetic, so nothing below can leave the
            # account without one; `_record` refines it with the backoff.
            self._due[key] = self.monotonic() + account.interval
        error = _internal_error(exc, account.api_key.reveal())
        log = self._log.bind(provider=account.provider, account=account.account)
        # If the bookkeeping or the log itself fails (stderr gone, say), the due time
        # above stands, and tick's self-check repairs anything else.
        with contextlib.suppress(Exception):
            if current and not recorded:
                self._record(account, error, duration, log)
                return
            if current:
                # The outcome was recorded, then something after it failed.
                self.store.update(key, lambda state: state.with_error(Reason.INTERNAL))
            log.error(
                "poll failed",
                reason=Reason.INTERNAL.value,
                status=None,
                error=error.message,
                traceback=_traceback_text(exc, account.api_key.reveal()),
            )

    async def poll(self, account: AccountConfig) -> None:
        """Poll one account once and record the outcome."""
        log = self._log.bind(provider=account.provider, account=account.account)
        # The vendor's bound first: a poll waiting for a busy vendor holds no slot
        # of the global bound that a poll of another vendor could use.
        provider = self._provider_bounds.get(account.provider)
        if provider is None:  # a config without this account's provider (a test)
            provider = self._provider_bounds.setdefault(
                account.provider,
                (
                    account.adapter.max_concurrency,
                    asyncio.Semaphore(account.adapter.max_concurrency),
                ),
            )
        async with provider[1], self._bound[1]:
            started = self.monotonic()
            outcome: Readings | PollError
            try:
                outcome = await self._fetch(account)
            except PollError as exc:
                outcome = exc
            duration = self.monotonic() - started
        self._record(account, outcome, duration, log)

    async def _fetch(self, account: AccountConfig) -> Readings:
        adapter = account.adapter
        try:
            async with asyncio.timeout(account.timeout):
                # httpx's timeout is per socket operation; the outer one bounds a
                # server that drips its answer byte by byte.
                request = account.request()
                with self.clients.lease(account.provider) as client:
                    async with client.stream(
                        request.method,
                        request.url,
                        headers=request.headers,
                        timeout=account.timeout,
                    ) as response:
                        body = await self._read_capped(response)
                        status = response.status_code
                        headers = {k.lower(): v for k, v in response.headers.items()}
        except (TimeoutError, httpx.TimeoutException):
            raise PollError(
                Reason.TIMEOUT, f"no complete answer within {account.timeout:g}s"
            ) from None
        except BodyTooLarge:
            raise PollError(
                Reason.PARSE,
                f"response body larger than {self.max_body_bytes} bytes; stopped reading",
            ) from None
        except httpx.DecodingError as exc:
            raise PollError(Reason.PARSE, f"response body could not be decoded: {exc}") from None
        except _UNSENDABLE:
            raise  # our own request is at fault, not the network: `internal`
        except httpx.TransportError as exc:
            raise PollError(Reason.NETWORK, _transport_message(exc, account.url)) from None
        try:
            readings = adapter.parse(status, headers, body)
            if not isinstance(readings, Readings):
                raise TypeError(f"parse returned {type(readings).__name__}, not Readings")
        except PollError:
            raise
        except Exception as exc:
            # An adapter bug: `internal` (in `_run_poll`), with what triggered it.
            exc.add_note(f"adapter {account.provider}: HTTP {status}, body {excerpt(body)!r}")
            raise
        if readings.problems and not readings.meters:
            # Nothing usable at all: that is a failed poll, not a partial one.
            raise PollError(
                Reason.PARSE,
                "no meter could be parsed: " + "; ".join(readings.problems),
                status=status,
                body_excerpt=excerpt(body),
            )
        return readings

    async def _read_capped(self, response: httpx.Response) -> bytes:
        """The decoded body, reading and decoding no further than the cap.

        The raw bytes are decoded here, not by httpx: httpx inflates a whole network
        chunk at once, so a gzip bomb of a few KB costs hundreds of MB before any cap
        is checked. Here each step yields at most DECODE_STEP bytes and the cap
        counts decoded bytes, so memory stays near the cap whatever the ratio.
        """
        codings = [
            coding.strip().lower()
            for coding in response.headers.get_list("content-encoding", split_commas=True)
        ]
        codings = [c for c in codings if c and c != "identity"]
        label = ", ".join(codings)
        layers = [_layer(coding, response.status_code) for coding in codings]
        chunks: list[bytes] = []
        size = raw_size = 0
        try:
            async for raw in response.aiter_raw():
                # Raw bytes count too: a stream of empty deflate blocks decodes to
                # nothing, forever.
                raw_size += len(raw)
                if raw_size > 2 * self.max_body_bytes:
                    raise BodyTooLarge
                for piece in _decode(layers, raw):
                    size += len(piece)
                    if size > self.max_body_bytes:
                        raise BodyTooLarge
                    chunks.append(piece)
            for layer in reversed(layers):
                layer.finish()
        except zlib.error as exc:
            raise PollError(
                Reason.PARSE,
                f"response body says Content-Encoding: {one_line(label)} but is not"
                f" valid {one_line(label)}: {exc}",
                status=response.status_code,
            ) from None
        return b"".join(chunks)

    def _record(
        self,
        account: AccountConfig,
        outcome: Readings | PollError,
        duration: float,
        log: Any,
    ) -> None:
        if not _polls_alike(self._accounts.get(account.key), account):
            # Reloaded away or changed while in flight (the reload scheduled the new
            # config). Compared by value: a reload with an unchanged account (or one
            # whose `alerts:` alone changed) keeps this poll in flight and waits for
            # its outcome.
            return
        now = self.clock()
        previous = self.store.get(account.key)
        if previous is None:
            return

        retry_after = outcome.retry_after if isinstance(outcome, PollError) else None
        delays: list[float] = []

        def delay_after(state: AccountState) -> float:
            delay = self._delay(account, state.last_error_reason, state.failure_streak, retry_after)
            delays.append(delay)
            return delay

        def change(state: AccountState) -> AccountState:
            # One swap per poll (outcome and next poll together), so the render
            # cache is invalidated once, not twice.
            return state.after_poll(outcome, now=now, duration=duration, next_delay=delay_after)

        if self.store.update(account.key, change) is None:
            return
        delay = delays[0]
        self._due[account.key] = self.monotonic() + delay
        self._log_outcome(outcome, previous, duration, delay, log, account.api_key.reveal())
        if self._first_round is not None and account.key in self._first_round:
            self._first_round.discard(account.key)
            self._check_first_round()

    def _delay(
        self,
        account: AccountConfig,
        reason: Reason | None,
        streak: int,
        retry_after: float | None,
    ) -> float:
        return next_delay(
            interval=account.interval,
            reason=reason,
            consecutive_failures=streak,
            retry_after=retry_after,
            cooldown=account.adapter.rate_limit_cooldown,
            rng=self.rng,
        )

    def _check_first_round(self) -> None:
        if self._first_round is not None and not self._first_round:
            self.first_round_done.set()

    def _log_outcome(
        self,
        outcome: Readings | PollError,
        previous: AccountState,
        duration: float,
        delay: float,
        log: Any,
        api_key: str,
    ) -> None:
        if isinstance(outcome, PollError) and outcome.reason is Reason.INTERNAL:
            cause = outcome.__cause__
            first = previous.last_error_reason is not Reason.INTERNAL
            log.error(
                "poll failed",
                reason=outcome.reason.value,
                status=outcome.status,
                error=outcome.message,
                retry_in_seconds=round(delay, 1),
                # Once per run of internal failures: the traceback does not change.
                traceback=(
                    _traceback_text(cause, api_key) if first and cause is not None else None
                ),
            )
            return
        if isinstance(outcome, PollError):
            log.warning(
                "poll failed",
                reason=outcome.reason.value,
                status=outcome.status,
                error=outcome.message,
                body=outcome.body_excerpt or None,
                retry_in_seconds=round(delay, 1),
            )
            return
        if previous.polled and not previous.up:
            log.info("poll recovered", failures=previous.consecutive_failures)
        for problem in outcome.problems:
            log.warning("part of the response could not be parsed", reason="parse", error=problem)
        old_warnings = previous.readings.warnings if previous.readings else ()
        for warning in outcome.warnings:
            if warning not in old_warnings:
                log.warning("vendor reported a problem", detail=warning)
        log.debug("poll succeeded", duration_seconds=round(duration, 3), meters=len(outcome.meters))


def _polls_alike(current: AccountConfig | None, account: AccountConfig) -> bool:
    """Whether `current` polls exactly as `account` does: equal but for `alerts:`."""
    return current is not None and current == replace(account, alerts=current.alerts)


class _Inflate:
    """One gzip or deflate layer of a body, decoded at most DECODE_STEP bytes a step."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._gzip = coding in ("gzip", "x-gzip")
        # deflate is meant to be zlib-wrapped (RFC 9110) but some servers send it
        # raw; the first two bytes tell which (the zlib header check, RFC 1950).
        self._head = b""
        self._inflater: Any = None
        self._fed = False

    def _start(self, data: bytes) -> bytes:
        if self._gzip:
            self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            return data
        self._head += data
        if len(self._head) < 2:
            return b""
        first, second = self._head[0], self._head[1]
        wrapped = first & 0x0F == 8 and (first << 8 | second) % 31 == 0
        self._inflater = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        data, self._head = self._head, b""
        return data

    def feed(self, data: bytes) -> Iterator[bytes]:
        if data:
            self._fed = True
        if self._inflater is None:
            data = self._start(data)
            if self._inflater is None:
                return
        while True:
            inflater = self._inflater
            if inflater.eof:
                data = inflater.unused_data + data
                if not data:
                    return
                # gzip members may follow one another (RFC 1952); after the end of
                # a deflate stream nothing is legitimate.
                if not self._gzip:
                    raise zlib.error("data after the end of the compressed stream")
                self._inflater = inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = inflater.decompress(data, DECODE_STEP)
            data = inflater.unconsumed_tail
            if out:
                yield out
            # A full step may leave output pending inside zlib: go round again.
            if not data and len(out) < DECODE_STEP and not inflater.eof:
                return

    def finish(self) -> None:
        if self._fed and (self._inflater is None or not self._inflater.eof):
            raise zlib.error("the compressed stream ends early (truncated body)")


def _layer(coding: str, status: int) -> _Inflate:
    if coding in ("gzip", "x-gzip", "deflate"):
        return _Inflate(coding)
    raise PollError(
        Reason.PARSE,
        f"response uses Content-Encoding {one_line(coding)!r}, which the exporter does not"
        " decode (it asks for identity and understands gzip and deflate)",
        status=status,
    )


def _decode(layers: list[_Inflate], raw: bytes) -> Iterator[bytes]:
    """Raw bytes through every layer, last applied first, one bounded piece at a time."""
    pieces: Iterable[bytes] = (raw,)
    for layer in reversed(layers):
        pieces = _through(layer, pieces)
    yield from pieces


def _through(layer: _Inflate, pieces: Iterable[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield from layer.feed(piece)


def _scrub_key(text: str, api_key: str) -> str:
    """Text with the account's key removed, also as Python escapes it in an exception
    text (repr of str or bytes: a newline shows as a backslash and an n), then every
    other known key."""
    if len(api_key) >= 6:
        forms = {
            api_key,
            repr(api_key)[1:-1],
            api_key.encode("unicode_escape").decode("ascii"),
            repr(api_key.encode("utf-8", "backslashreplace"))[2:-1],
        }
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(form, "<redacted>")
    return REDACTOR.scrub(text)


def _internal_error(exc: BaseException, api_key: str) -> PollError:
    """The `internal` outcome for an exception no rule classified."""
    try:
        detail = str(exc)
    except Exception:
        detail = "(the exception could not be shown)"
    message = f"unexpected {type(exc).__name__}: {detail}"
    if isinstance(exc, _UNSENDABLE):
        message = (
            "the request could not be sent: check this account's api_key and base_url"
            " for invisible or control characters, then reload; " + message
        )
    error = PollError(Reason.INTERNAL, one_line(_scrub_key(message, api_key)))
    error.__cause__ = exc
    return error


def _traceback_text(exc: BaseException, api_key: str) -> str:
    """The traceback as one scrubbed text field (never raw on stderr)."""
    return _scrub_key("".join(traceback.format_exception(exc)), api_key)


def _transport_message(exc: httpx.TransportError, url: str) -> str:
    """`ConnectError talking to api.example.com:443: ...`: which host failed, the first
    thing to check (DNS, firewall, proxy), from the URL's host and port alone; its path
    and query are never shown (a vendor may take the key in the query)."""
    kind = type(exc).__name__
    detail = str(exc) or "connection failed"
    try:
        parts = httpx.URL(url)
        host = f"[{parts.host}]" if ":" in parts.host else parts.host
        where = f" talking to {host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    except (httpx.InvalidURL, ValueError):
        where = ""
    return f"{kind}{where}: {detail}"
