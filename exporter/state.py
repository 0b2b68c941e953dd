"""The exporter's memory: one immutable snapshot per account, swapped whole.

The poller is the only writer; `/metrics` and `/` are readers on other threads. A
writer replaces a frozen `AccountState` under a lock and bumps `generation`, so a
reader always sees a consistent account and the renderer knows when nothing changed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Final

from exporter.model import Readings, Reason

ALL_REASONS: Final = tuple(Reason)


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

    @property
    def key(self) -> tuple[str, str]:
        return (self.provider, self.account)

    def is_stale(self, now: float) -> bool:
        """True when the last good values are too old to export."""
        return self.last_success is None or now - self.last_success > self.max_staleness

    def fresh_readings(self, now: float) -> Readings | None:
        return None if self.is_stale(now) else self.readings

    def with_error(self, reason: Reason) -> AccountState:
        counts = tuple((r, n + 1 if r is reason else n) for r, n in self.errors_total)
        return replace(self, errors_total=counts)

    def error_count(self, reason: Reason) -> int:
        return dict(self.errors_total)[reason]


@dataclass(frozen=True)
class ReloadStatus:
    successful: bool = False
    last_success: float | None = None


class StateStore:
    """Thread-safe home of the current `AccountState`s and the reload status."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._accounts: dict[tuple[str, str], AccountState] = {}
        self._reload = ReloadStatus()
        self._generation = 0

    def snapshot(self) -> tuple[int, tuple[AccountState, ...], ReloadStatus]:
        with self._lock:
            return self._generation, tuple(self._accounts.values()), self._reload

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

    def set_accounts(self, states: Iterable[AccountState]) -> None:
        """Replace the whole set of accounts (config load and reload)."""
        with self._lock:
            self._accounts = {s.key: s for s in sorted(states, key=lambda s: s.key)}
            self._generation += 1

    def set_reload(self, status: ReloadStatus) -> None:
        with self._lock:
            self._reload = status
            self._generation += 1
