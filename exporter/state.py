"""The exporter's memory: one immutable state per account, swapped whole.

The poller is the only writer of accounts; `/metrics` and `/` are readers on other
threads. A writer replaces a frozen `AccountState` under a lock and bumps
`generation`; a reader takes one `Snapshot` (every account, the reload status and
the config's default interval, all from one moment) and renders only that, so a page
or an exposition is always consistent and the renderer knows when nothing changed.

What a poll outcome does to an account is `AccountState.after_poll`: pure, like
`exporter.schedule`, so the state machine is tested without a loop or a clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Final

from exporter.config import DEFAULT_INTERVAL
from exporter.model import NO_ALERT_POLICY, AlertPolicy, MeterReading, PollError, Readings, Reason
from exporter.redaction import REDACTOR

ALL_REASONS: Final = tuple(Reason)
# Readings of one meter kept for the status page's "runs out in" estimate: enough
# for a trend over the last hour at a 5 min interval, bounded whatever the uptime.
HISTORY_POINTS: Final = 12
# A reset time that moves by more than this starts a new period. Vendors that say
# "resets in N seconds" give a reset time that wobbles by a second or two per poll.
RESET_MOVED: Final = 60.0

# (poll end time, used) of one meter, oldest first.
MeterHistory = tuple[tuple[float, float], ...]


def _zero_errors() -> tuple[tuple[Reason, int], ...]:
    return tuple((reason, 0) for reason in ALL_REASONS)


@dataclass(frozen=True)
class AccountState:
    """What we know about one account right now."""

    provider: str
    account: str
    interval: float
    max_staleness: float
    # False until the first poll finishes, then whether the last poll succeeded.
    up: bool = False
    polled: bool = False
    # From the last successful poll; kept through failures until max_staleness.
    readings: Readings | None = None
    last_success: float | None = None
    last_poll_duration: float | None = None
    last_poll_end: float | None = None
    polls_total: int = 0
    errors_total: tuple[tuple[Reason, int], ...] = field(default_factory=_zero_errors)
    last_error: str | None = None
    last_error_reason: Reason | None = None
    consecutive_failures: int = 0
    # Consecutive failures for the same reason as the last one: backoff grows per
    # kind of fault, so a 429 after three timeouts starts from the first step.
    failure_streak: int = 0
    # Wall-clock time of the next scheduled poll, for the landing page.
    next_poll: float | None = None
    # meter -> its last HISTORY_POINTS (time, used) in the current period, from
    # successful polls only; the status page's "runs out in" (exporter.statuspage).
    history: tuple[tuple[str, MeterHistory], ...] = ()
    # The account's alert settings (config and adapter defaults), which /metrics
    # exports per meter for the shipped alert rules; set with the config.
    alerts: AlertPolicy = NO_ALERT_POLICY

    @cached_property
    def key(self) -> tuple[str, str]:
        # Cached in the instance's __dict__ (which a frozen dataclass still has):
        # the renderer and the poller ask for it per account, and a new tuple each
        # time was a measurable share of a rebuild at 10,000 accounts. It is no
        # field, so equality, hashing and replace() are as before.
        return (self.provider, self.account)

    def is_stale(self, now: float) -> bool:
        """True when the last good values are too old to export."""
        return self.last_success is None or now - self.last_success > self.max_staleness

    def fresh_readings(self, now: float) -> Readings | None:
        return None if self.is_stale(now) else self.readings

    def meter_history(self, meter: str) -> MeterHistory:
        """The recent (time, used) readings of `meter`, oldest first; () when none."""
        return dict(self.history).get(meter, ())

    def with_error(self, reason: Reason) -> AccountState:
        counts = tuple((r, n + 1 if r is reason else n) for r, n in self.errors_total)
        return replace(self, errors_total=counts)

    def error_count(self, reason: Reason) -> int:
        return dict(self.errors_total)[reason]

    def after_poll(
        self,
        outcome: Readings | PollError,
        *,
        now: float,
        duration: float,
        next_delay: Callable[[AccountState], float],
    ) -> AccountState:
        """This account once a poll that ended at `now` gave `outcome`.

        Every poll counts, whatever its outcome. A failure sets up to 0, counts its
        reason, keeps the last good readings (they expire by `max_staleness`, see
        `fresh_readings`) and grows both streaks; `failure_streak` restarts at 1 when
        the reason differs from the last one, so backoff grows per kind of fault.
        A success replaces the readings and clears the error and both streaks; parts
        of the answer that could not be parsed count one `parse` error all the same.
        It also appends each meter's used figure to its `history` (see
        `_next_history`); a failure leaves the history as it is.

        `next_delay` gives the seconds to the next poll for the account as it is
        after this outcome (the backoff depends on the streak this outcome makes);
        `next_poll` is `now` plus that.
        """
        state = replace(
            self,
            polled=True,
            polls_total=self.polls_total + 1,
            last_poll_duration=duration,
            last_poll_end=now,
        )
        if isinstance(outcome, PollError):
            state = replace(
                state.with_error(outcome.reason),
                up=False,
                # Vendor text echoing a key is scrubbed before it is kept anywhere.
                last_error=REDACTOR.scrub(outcome.message),
                last_error_reason=outcome.reason,
                consecutive_failures=self.consecutive_failures + 1,
                failure_streak=(
                    self.failure_streak + 1 if self.last_error_reason is outcome.reason else 1
                ),
            )
        else:
            if outcome.problems:
                state = state.with_error(Reason.PARSE)
            state = replace(
                state,
                up=True,
                readings=outcome,
                history=_next_history(self, outcome, now),
                last_success=now,
                last_error=None,
                last_error_reason=None,
                consecutive_failures=0,
                failure_streak=0,
            )
        return replace(state, next_poll=now + next_delay(state))


def _next_history(
    state: AccountState, readings: Readings, now: float
) -> tuple[tuple[str, MeterHistory], ...]:
    """Each meter's history once `readings` arrived at `now`.

    Only meters in `readings` with a used figure keep one (a meter gone from the
    answer takes its history with it). A meter's history starts over when its
    period looks reset: used went down, or its reset time moved by more than
    RESET_MOVED (or appeared or vanished). At most HISTORY_POINTS, the newest kept.
    """
    previous = {} if state.readings is None else {m.meter: m for m in state.readings.meters}
    history = []
    for reading in readings.meters:
        if reading.used is None:
            continue
        points = state.meter_history(reading.meter)
        before = previous.get(reading.meter)
        if points and (
            reading.used < points[-1][1] or before is None or _reset_moved(before, reading)
        ):
            points = ()
        history.append((reading.meter, (*points, (now, reading.used))[-HISTORY_POINTS:]))
    return tuple(history)


def _reset_moved(before: MeterReading, after: MeterReading) -> bool:
    if before.reset_timestamp is None or after.reset_timestamp is None:
        return before.reset_timestamp != after.reset_timestamp
    return abs(after.reset_timestamp - before.reset_timestamp) > RESET_MOVED


@dataclass(frozen=True)
class ReloadStatus:
    successful: bool = False
    last_success: float | None = None


@dataclass(frozen=True)
class Snapshot:
    """Everything a view renders, taken at one moment under the store's lock.

    `generation` changes whenever anything else here does, so equal generations
    of one store mean equal snapshots (the render cache's key).
    """

    generation: int
    accounts: tuple[AccountState, ...]  # ordered by provider, then account
    reload: ReloadStatus
    # The config's global interval, for the HELP text ("polled every 5m by default").
    default_interval: float
    # (index, count) of this replica's shard when the accounts are sharded, else None.
    shard: tuple[int, int] | None = None
    # The keys of `accounts`, in order: one object per StateStore.set_accounts, the
    # same object in every snapshot until the set changes. The renderer compares it
    # by identity to know that account i is the same account as last time, and so
    # finds what changed by comparing states position by position. None: unknown
    # (a snapshot built by hand), which costs the renderer a full pass. It says
    # nothing `accounts` does not, so it takes no part in equality.
    layout: tuple[tuple[str, str], ...] | None = field(default=None, compare=False, repr=False)


class StateStore:
    """Thread-safe home of the current `AccountState`s, the reload status and the
    default interval of the config applied last."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._accounts: dict[tuple[str, str], AccountState] = {}
        self._layout: tuple[tuple[str, str], ...] = ()  # Snapshot.layout
        self._reload = ReloadStatus()
        # The config's own default until a config is applied.
        self._default_interval = DEFAULT_INTERVAL
        self._shard: tuple[int, int] | None = None
        self._generation = 0

    @property
    def generation(self) -> int:
        """The generation the next snapshot would carry (see `Snapshot.generation`)."""
        with self._lock:
            return self._generation

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(
                generation=self._generation,
                accounts=tuple(self._accounts.values()),
                reload=self._reload,
                default_interval=self._default_interval,
                shard=self._shard,
                layout=self._layout,
            )

    def get(self, key: tuple[str, str]) -> AccountState | None:
        with self._lock:
            return self._accounts.get(key)

    def update(
        self, key: tuple[str, str], change: Callable[[AccountState], AccountState]
    ) -> AccountState | None:
        """Swap in change(current); a no-op for an account that is gone (reloaded away)."""
        with self._lock:
            current = self._accounts.get(key)
            if current is None:
                return None
            new = change(current)
            self._accounts[key] = new
            self._generation += 1
            return new

    def set_accounts(
        self, states: Iterable[AccountState], *, default_interval: float | None = None
    ) -> None:
        """Replace the whole set of accounts (config load and reload).

        A config being applied passes its `default_interval` too, so its accounts
        and its HELP text arrive in the same snapshot; None keeps the current one.
        """
        with self._lock:
            self._accounts = {s.key: s for s in sorted(states, key=lambda s: s.key)}
            # update() replaces values only, so the order holds until the next call.
            self._layout = tuple(self._accounts)
            if default_interval is not None:
                self._default_interval = default_interval
            self._generation += 1

    def set_shard(self, index: int, count: int) -> None:
        """This replica serves shard `index` of `count` (saas_quota_shard_info)."""
        with self._lock:
            self._shard = (index, count) if count > 1 else None
            self._generation += 1

    def set_reload(self, status: ReloadStatus) -> None:
        with self._lock:
            self._reload = status
            self._generation += 1

    def reload_failed(self) -> None:
        """A reload failed: unsuccessful, and the last success stays when it was."""
        with self._lock:
            self._reload = ReloadStatus(successful=False, last_success=self._reload.last_success)
            self._generation += 1
