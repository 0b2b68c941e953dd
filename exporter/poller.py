"""Polling every account's quota endpoint in the background (the only vendor I/O).

One `httpx.AsyncClient` is shared by all accounts. A single scheduler loop keeps a
due time per account and starts a task for each account that is due; each task makes
one request under a concurrency bound, hands status, headers and body to the
provider's pure `parse`, and swaps a new `AccountState` into the store. The next due
time comes from `exporter.schedule`. A scrape never reaches this module.

Time is injected (`clock` for wall-clock timestamps, `monotonic` for scheduling) so
tests can drive the scheduler with `tick()` and `drain()` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Final

import httpx

from exporter import __version__
from exporter.config import AccountConfig, Config
from exporter.log import get_logger
from exporter.model import PollError, Readings, Reason
from exporter.providers.base import excerpt
from exporter.redaction import REDACTOR
from exporter.schedule import next_delay
from exporter.state import AccountState, StateStore

USER_AGENT: Final = f"saas-quota-exporter/{__version__}"
# Quota answers are a few KiB; anything near this is not a quota answer.
MAX_BODY_BYTES: Final = 1024 * 1024
DEFAULT_CONCURRENCY: Final = 8
# Upper bound of the random delay before the first poll of a second, third...
# account of the same provider; small, so the first round still ends quickly.
START_SPREAD: Final = 2.0


class BodyTooLarge(Exception):
    pass


def make_client() -> httpx.AsyncClient:
    """The one client: our User-Agent (Pictory's Cloudflare blocks generic ones)."""
    return httpx.AsyncClient(
        headers={
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            # Quota answers are small; asking for no compression also spares us
            # decompressing a bomb (httpx would still decode a server that ignores it,
            # chunk by chunk, under the same body cap).
            "Accept-Encoding": "identity",
        },
        follow_redirects=False,
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
    )


class Poller:
    def __init__(
        self,
        store: StateStore,
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.store = store
        self.client = client
        self.clock = clock
        self.monotonic = monotonic
        self.rng = rng or random.Random()
        self.max_body_bytes = max_body_bytes
        self._semaphore = asyncio.Semaphore(concurrency)
        self._accounts: dict[tuple[str, str], AccountConfig] = {}
        self._due: dict[tuple[str, str], float] = {}
        self._inflight: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._wakeup = asyncio.Event()
        self._first_round: set[tuple[str, str]] | None = None
        self.first_round_done = asyncio.Event()
        self._log = get_logger()

    # --- configuration ------------------------------------------------------------

    def apply_config(self, config: Config) -> None:
        """Adopt a (new) config: keep unchanged accounts as they are, poll new and
        changed ones at once, forget removed ones (their series go with them)."""
        wanted = {account.key: account for account in config.accounts}
        now = self.monotonic()
        previous = {s.key: s for s in self.store.snapshot()[1]}
        states: list[AccountState] = []
        starting: dict[str, int] = {}  # accounts of each provider starting now
        for key, account in wanted.items():
            old_config = self._accounts.get(key)
            old_state = previous.get(key)
            if old_config == account and old_state is not None:
                states.append(old_state)
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
                    )
                )
            else:
                states.append(
                    AccountState(
                        provider=account.provider,
                        account=account.account,
                        interval=account.interval,
                        max_staleness=account.max_staleness,
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
        self.store.set_accounts(states)
        self._wakeup.set()

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
        """Start a poll for every due account; the monotonic time of the next due one."""
        now = self.monotonic()
        for key, due in sorted(self._due.items(), key=lambda item: item[1]):
            if due <= now and key not in self._inflight:
                account = self._accounts[key]
                task = asyncio.create_task(self._run_poll(account), name=f"poll {key}")
                self._inflight[key] = task
                # Not due again until the poll finishes and reschedules it.
                self._due[key] = float("inf")
        pending = [due for due in self._due.values() if due != float("inf")]
        return min(pending) if pending else None

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
        try:
            await self.poll(account)
        finally:
            if self._inflight.get(account.key) is asyncio.current_task():
                del self._inflight[account.key]
            self._wakeup.set()

    async def poll(self, account: AccountConfig) -> None:
        """Poll one account once and record the outcome."""
        log = self._log.bind(provider=account.provider, account=account.account)
        async with self._semaphore:
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
                async with self.client.stream(
                    "GET",
                    account.url,
                    headers=adapter.auth_headers(account.api_key.reveal()),
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
        except httpx.TransportError as exc:
            raise PollError(Reason.NETWORK, _transport_message(exc)) from None
        try:
            readings = adapter.parse(status, headers, body)
        except PollError:
            raise
        except Exception as exc:  # an adapter bug must not kill the poller
            raise PollError(
                Reason.PARSE,
                f"adapter failed on the response: {type(exc).__name__}: {exc}",
                status=status,
                body_excerpt=excerpt(body),
            ) from None
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
        """The (decoded) body, reading no further than the cap."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BodyTooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    def _record(
        self,
        account: AccountConfig,
        outcome: Readings | PollError,
        duration: float,
        log: Any,
    ) -> None:
        if self._accounts.get(account.key) is not account:
            return  # reloaded away or changed while in flight
        now = self.clock()
        previous = self.store.get(account.key)
        if previous is None:
            return

        def outcome_of(state: AccountState) -> AccountState:
            state = replace(
                state,
                polled=True,
                polls_total=state.polls_total + 1,
                last_poll_duration=duration,
                last_poll_end=now,
            )
            if isinstance(outcome, PollError):
                return replace(
                    state.with_error(outcome.reason),
                    up=False,
                    last_error=REDACTOR.scrub(outcome.message),
                    last_error_reason=outcome.reason,
                    consecutive_failures=state.consecutive_failures + 1,
                    failure_streak=(
                        state.failure_streak + 1 if state.last_error_reason is outcome.reason else 1
                    ),
                )
            if outcome.problems:
                state = state.with_error(Reason.PARSE)
            return replace(
                state,
                up=True,
                readings=outcome,
                last_success=now,
                last_error=None,
                last_error_reason=None,
                consecutive_failures=0,
                failure_streak=0,
            )

        delays: list[float] = []

        def change(state: AccountState) -> AccountState:
            # One swap per poll (outcome and next poll together), so the render
            # cache is invalidated once, not twice.
            state = outcome_of(state)
            delay = next_delay(
                interval=account.interval,
                reason=outcome.reason if isinstance(outcome, PollError) else None,
                consecutive_failures=state.failure_streak,
                retry_after=outcome.retry_after if isinstance(outcome, PollError) else None,
                cooldown=account.adapter.rate_limit_cooldown,
                rng=self.rng,
            )
            delays.append(delay)
            return replace(state, next_poll=now + delay)

        if self.store.update(account.key, change) is None:
            return
        delay = delays[0]
        self._due[account.key] = self.monotonic() + delay
        self._log_outcome(outcome, previous, duration, delay, log)
        if self._first_round is not None and account.key in self._first_round:
            self._first_round.discard(account.key)
            self._check_first_round()

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
    ) -> None:
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


def _transport_message(exc: httpx.TransportError) -> str:
    kind = type(exc).__name__
    detail = str(exc) or "connection failed"
    return f"{kind}: {detail}"
