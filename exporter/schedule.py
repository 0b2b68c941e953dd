"""When to poll an account next, given how its last poll went.

Pure arithmetic, kept apart from the asyncio loop so the rules can be tested alone:

* success: the interval, with +-10 % jitter so accounts drift out of lockstep;
* the vendor said no to the key (auth, forbidden, payment) or the answer made no
  sense (parse, other 4xx): the normal interval; retrying sooner changes nothing
  and a rejected key must never be hammered;
* transient faults (5xx, timeout, network): a quick retry that doubles with each
  consecutive failure, capped at the interval, so a blip heals fast and an outage
  costs the vendor a handful of extra calls at most;
* rate limited: the interval doubled per consecutive 429, capped at
  `MAX_BACKOFF_INTERVALS` intervals, and never less than the provider's cooldown
  (VidNavigator bans a key for a minute);
* internal (the exporter's own fault: a bug, or a config value only the HTTP library
  rejects): the normal interval, never sooner and never growing. Retrying sooner
  cannot fix our own code and would hit the vendor for nothing; growing the delay
  would slow the recovery once the cause is gone (a vendor fixing its headers, a
  reload fixing a key), and one counted error per interval is what keeps the fault
  visible on `saas_quota_poll_errors_total{reason="internal"}`;
* `Retry-After` from the vendor is a floor on every one of these, itself capped at
  `MAX_RETRY_AFTER` (one day) or the rate-limit cap, whichever is longer: a vendor
  asking for a year, or for 1e300 seconds, must not stop the watching for good (a
  daily quota that resets tomorrow is the longest wait worth honouring).

Any number of consecutive failures gives a finite delay: the doubling stops long
before a float could overflow (a vendor down for days must not break the schedule).
"""

from __future__ import annotations

import random
from typing import Final

from exporter.model import Reason

JITTER: Final = 0.1
# First retry after a transient fault, before doubling.
RETRY_BASE: Final = 10.0
MAX_BACKOFF_INTERVALS: Final = 8
MAX_RETRY_AFTER: Final = 86400.0
# 2**64 times any base is past every cap above, and still a finite float: a longer
# streak would make `2**exponent` an int too large to convert (OverflowError).
_MAX_EXPONENT: Final = 64

TRANSIENT: Final = frozenset({Reason.SERVER, Reason.TIMEOUT, Reason.NETWORK})


def jittered(seconds: float, rng: random.Random) -> float:
    return seconds * rng.uniform(1.0 - JITTER, 1.0 + JITTER)


def next_delay(
    *,
    interval: float,
    reason: Reason | None,
    consecutive_failures: int,
    retry_after: float | None,
    cooldown: float,
    rng: random.Random,
) -> float:
    """Seconds until the next poll. `reason` None means the poll succeeded."""
    if reason is None:
        return jittered(interval, rng)
    exponent = min(max(consecutive_failures - 1, 0), _MAX_EXPONENT)
    if reason in TRANSIENT:
        delay = jittered(min(min(RETRY_BASE, interval) * 2**exponent, interval), rng)
    elif reason is Reason.RATE_LIMITED:
        delay = jittered(min(interval * 2**exponent, interval * MAX_BACKOFF_INTERVALS), rng)
        delay = max(delay, cooldown)
    else:
        delay = jittered(interval, rng)
    if retry_after is not None:
        # A floor, never shortened by jitter: "no request before it elapses"; but a
        # bounded one (see the module docstring).
        delay = max(delay, min(retry_after, max(MAX_RETRY_AFTER, interval * MAX_BACKOFF_INTERVALS)))
    return delay
