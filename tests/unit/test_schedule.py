"""The next-poll rules of exporter.schedule, one reason at a time."""

from __future__ import annotations

import math
import random

import pytest

from exporter.model import Reason
from exporter.schedule import JITTER, MAX_BACKOFF_INTERVALS, RETRY_BASE, next_delay


def _delays(reason: Reason | None, failures: int, **kw: float | None) -> list[float]:
    rng = random.Random(7)
    args: dict[str, float | None] = {"interval": 300.0, "retry_after": None, "cooldown": 0.0}
    args.update(kw)
    return [
        next_delay(
            interval=float(args["interval"] or 0),
            reason=reason,
            consecutive_failures=failures,
            retry_after=args["retry_after"],
            cooldown=float(args["cooldown"] or 0),
            rng=rng,
        )
        for _ in range(2000)
    ]


def _within(values: list[float], centre: float) -> None:
    assert min(values) >= centre * (1 - JITTER)
    assert max(values) <= centre * (1 + JITTER)
    # Jitter really spreads: not all the same, and both sides of the centre are used.
    assert min(values) < centre < max(values)


def test_success_is_the_interval_with_ten_percent_jitter() -> None:
    _within(_delays(None, 0), 300.0)


@pytest.mark.parametrize("reason", [Reason.AUTH, Reason.FORBIDDEN, Reason.PAYMENT, Reason.PARSE])
def test_rejections_are_retried_at_the_normal_interval_never_faster(reason: Reason) -> None:
    # However many times the key was rejected: no hammering, no growing silence.
    for failures in (1, 5, 50):
        _within(_delays(reason, failures), 300.0)


@pytest.mark.parametrize(
    ("failures", "centre"),
    [(1, RETRY_BASE), (2, 2 * RETRY_BASE), (3, 4 * RETRY_BASE), (5, 16 * RETRY_BASE), (9, 300.0)],
)
@pytest.mark.parametrize("reason", [Reason.SERVER, Reason.TIMEOUT, Reason.NETWORK])
def test_transient_faults_back_off_exponentially_up_to_the_interval(
    reason: Reason, failures: int, centre: float
) -> None:
    _within(_delays(reason, failures), centre)


def test_transient_retry_never_waits_longer_than_a_short_interval() -> None:
    _within(_delays(Reason.SERVER, 1, interval=4.0), 4.0)


@pytest.mark.parametrize(
    ("failures", "centre"),
    [(1, 300.0), (2, 600.0), (3, 1200.0), (4, 2400.0), (10, 300.0 * MAX_BACKOFF_INTERVALS)],
)
def test_rate_limits_double_the_interval_up_to_a_cap(failures: int, centre: float) -> None:
    _within(_delays(Reason.RATE_LIMITED, failures), centre)


def test_rate_limit_cooldown_is_a_floor() -> None:
    # VidNavigator bans the key for a minute: even a 10 s interval waits 60 s.
    assert min(_delays(Reason.RATE_LIMITED, 1, interval=10.0, cooldown=60.0)) == 60.0


@pytest.mark.parametrize("reason", list(Reason))
def test_retry_after_is_a_floor_that_jitter_never_shortens(reason: Reason) -> None:
    assert min(_delays(reason, 1, retry_after=3600.0)) == 3600.0
    # A Retry-After shorter than our own delay changes nothing.
    assert min(_delays(reason, 1, retry_after=1.0)) > 1.0


def test_internal_faults_are_retried_at_the_normal_interval_never_faster_never_slower() -> None:
    # Our own bug: sooner cannot fix it, later would slow the recovery once it is gone.
    for failures in (1, 5, 50):
        _within(_delays(Reason.INTERNAL, failures), 300.0)


@pytest.mark.parametrize("reason", list(Reason))
@pytest.mark.parametrize("failures", [1025, 5000, 10**9])
def test_any_run_of_failures_gives_a_finite_delay(reason: Reason, failures: int) -> None:
    """Before: 2**(failures - 1) overflowed a float after 1025 consecutive transient
    failures (OverflowError), the poll task died and the account was never due again."""
    delays = _delays(reason, failures)
    assert all(math.isfinite(d) for d in delays)
    assert max(delays) <= 300.0 * MAX_BACKOFF_INTERVALS * (1 + JITTER)


@pytest.mark.parametrize("retry_after", [86400.0 * 365, 1e300, math.inf])
@pytest.mark.parametrize("reason", list(Reason))
def test_a_huge_retry_after_never_stops_polling(reason: Reason, retry_after: float) -> None:
    """A vendor asking for a year (or 1e300 s) is waited a day at most, then polled."""
    delays = _delays(reason, 1, retry_after=retry_after)
    assert all(math.isfinite(d) for d in delays)
    assert max(delays) <= 86400.0


def test_a_retry_after_within_a_day_is_still_honoured_to_the_second() -> None:
    assert min(_delays(Reason.RATE_LIMITED, 1, retry_after=6 * 3600.0)) >= 6 * 3600.0
