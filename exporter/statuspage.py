"""The status page at `/` and its JSON twin at `/api/v1/status`.

Both answer "what runs out next": one row per meter, the most urgent first
(exhausted, then predicted to run out before its reset, then the highest used
share), and the accounts that fail or went stale above them with their reason,
last error and the age of their values. `status(snapshot, now)` builds that view
once; `landing_page` renders it as HTML and `status_json` as JSON, so the two never
disagree. All three are pure functions of a `Snapshot` and the time, like
`exporter.families` for `/metrics`.

"Runs out in" comes from the exporter's own recent readings of a meter
(`AccountState.history`): a least-squares slope of used over time, at least
`MIN_POINTS` of them in the current period, and only when used went up. Anything
less says "not enough data" rather than guess.

Everything from a vendor is escaped, and errors are scrubbed of keys once more on
the way out. The page has no script and no external asset: a meta refresh keeps it
current, and below 600 px the table becomes one card per meter.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from exporter import __version__
from exporter.model import MeterReading
from exporter.redaction import REDACTOR
from exporter.state import AccountState, MeterHistory, Snapshot

# The JSON document's `schema`: bumped only when a key changes meaning or goes away.
SCHEMA: Final = 1
REFRESH_SECONDS: Final = 30
# Fewer readings than this make no trend worth showing.
MIN_POINTS: Final = 3
# Estimates further out than this are shown as such, not as a date in 3000 AD.
FAR: Final = 10 * 365 * 86400.0


class State(StrEnum):
    """An account's state on the page and in the JSON."""

    PENDING = "pending"  # not polled yet
    UP = "up"  # the last poll succeeded
    FAILING = "failing"  # the last poll failed; values (if any) still within max_staleness
    STALE = "stale"  # the last poll failed and the last values are past max_staleness


class Urgency(StrEnum):
    """How urgent a meter is, most urgent first (the page's sort order)."""

    EXHAUSTED = "exhausted"
    RUNS_OUT_BEFORE_RESET = "runs_out_before_reset"
    OK = "ok"
    UNKNOWN = "unknown"  # neither a limit nor a remaining figure
    UNLIMITED = "unlimited"
    LIMIT_ZERO = "limit_zero"  # the plan includes none of it


_RANK: Final = {u: i for i, u in enumerate(Urgency)}


@dataclass(frozen=True)
class MeterStatus:
    provider: str
    account: str
    meter: str
    unit: str
    used: float | None
    limit: float | None
    remaining: float | None
    unlimited: bool
    used_ratio: float | None
    reset_timestamp: float | None
    runs_out_timestamp: float | None
    urgency: Urgency


@dataclass(frozen=True)
class AccountStatus:
    provider: str
    account: str
    state: State
    reason: str | None
    last_error: str | None
    last_success: float | None
    values_age_seconds: float | None
    # The meters served now (none when stale or pending), most urgent first.
    meters: tuple[MeterStatus, ...]


@dataclass(frozen=True)
class Status:
    generated_at: float
    reload_ok: bool
    accounts: tuple[AccountStatus, ...]  # ordered by provider, then account

    @property
    def meters(self) -> tuple[MeterStatus, ...]:
        """Every meter of every account, most urgent first."""
        return tuple(sorted((m for a in self.accounts for m in a.meters), key=_urgency_key))


# --- the view ---------------------------------------------------------------------------


def account_state(state: AccountState, now: float) -> State:
    if not state.polled:
        return State.PENDING
    if state.up:
        return State.UP
    if state.readings is not None and state.is_stale(now):
        return State.STALE
    return State.FAILING


def account_status(state: AccountState, now: float) -> str:
    """One word or phrase for the account's state, as the page shows it."""
    shown = account_state(state, now)
    if shown is State.FAILING and state.fresh_readings(now) is not None:
        return "failing (serving cached values)"
    return shown.value


def runs_out_at(history: MeterHistory, remaining: float | None) -> float | None:
    """When `remaining` runs out at the trend of `history`; None without a trend.

    The trend is the least-squares slope of used over time; it needs MIN_POINTS
    readings, a time span and a rising used figure (the last above the first).
    """
    if remaining is None or len(history) < MIN_POINTS or history[-1][1] <= history[0][1]:
        return None
    t0 = history[0][0]
    times = [t - t0 for t, _ in history]  # relative, so the squares keep their precision
    used = [u for _, u in history]
    mean_t, mean_u = sum(times) / len(times), sum(used) / len(used)
    spread = sum((t - mean_t) ** 2 for t in times)
    if spread <= 0:
        return None
    slope = sum((t - mean_t) * (u - mean_u) for t, u in zip(times, used, strict=True)) / spread
    if not slope > 0 or not math.isfinite(slope):
        return None
    at = history[-1][0] + remaining / slope
    return at if math.isfinite(at) else None


def meter_status(state: AccountState, reading: MeterReading) -> MeterStatus:
    remaining = reading.effective_remaining
    ratio: float | None = None
    if reading.used is not None and reading.limit:
        ratio = reading.used / reading.limit
        if not math.isfinite(ratio):
            ratio = None
    runs_out = None
    if reading.unlimited:
        urgency = Urgency.UNLIMITED
    elif reading.limit == 0:
        urgency = Urgency.LIMIT_ZERO
    elif remaining is not None and remaining <= 0:
        urgency = Urgency.EXHAUSTED
    else:
        runs_out = runs_out_at(state.meter_history(reading.meter), remaining)
        reset = reading.reset_timestamp
        if runs_out is not None and (reset is None or runs_out < reset):
            urgency = Urgency.RUNS_OUT_BEFORE_RESET
        elif remaining is None and reading.limit is None:
            urgency = Urgency.UNKNOWN
        else:
            urgency = Urgency.OK
    return MeterStatus(
        provider=state.provider,
        account=state.account,
        meter=reading.meter,
        unit=reading.unit,
        used=reading.used,
        limit=reading.limit,
        remaining=remaining,
        unlimited=reading.unlimited,
        used_ratio=ratio,
        reset_timestamp=reading.reset_timestamp,
        runs_out_timestamp=runs_out,
        urgency=urgency,
    )


def _urgency_key(m: MeterStatus) -> tuple[int, float, str, str, str]:
    if m.urgency is Urgency.RUNS_OUT_BEFORE_RESET:
        second = m.runs_out_timestamp or 0.0  # the soonest first
    else:
        second = -(m.used_ratio or 0.0)  # the highest share first
    return (_RANK[m.urgency], second, m.provider, m.account, m.meter)


def status(snapshot: Snapshot, now: float) -> Status:
    """What `/` and `/api/v1/status` show for `snapshot` at `now`."""
    accounts = []
    for s in snapshot.accounts:
        readings = s.fresh_readings(now)
        meters = () if readings is None else tuple(meter_status(s, m) for m in readings.meters)
        accounts.append(
            AccountStatus(
                provider=s.provider,
                account=s.account,
                state=account_state(s, now),
                reason=None if s.last_error_reason is None else s.last_error_reason.value,
                last_error=None if s.last_error is None else REDACTOR.scrub(s.last_error),
                last_success=s.last_success,
                values_age_seconds=(
                    None if s.last_success is None else max(now - s.last_success, 0.0)
                ),
                meters=tuple(sorted(meters, key=_urgency_key)),
            )
        )
    return Status(generated_at=now, reload_ok=snapshot.reload.successful, accounts=tuple(accounts))


# --- JSON ---------------------------------------------------------------------------------


def status_document(snapshot: Snapshot, now: float) -> dict[str, Any]:
    """The `/api/v1/status` document (docs/deployment.md documents its keys)."""
    view = status(snapshot, now)
    return {
        "schema": SCHEMA,
        "generated_at": view.generated_at,
        "reload_ok": view.reload_ok,
        "accounts": [
            {
                "provider": a.provider,
                "account": a.account,
                "state": a.state.value,
                "reason": a.reason,
                "last_error": a.last_error,
                "last_success": a.last_success,
                "values_age_seconds": a.values_age_seconds,
                "meters": [
                    {
                        "meter": m.meter,
                        "unit": m.unit,
                        "used": m.used,
                        "limit": m.limit,
                        "remaining": m.remaining,
                        "unlimited": m.unlimited,
                        "used_ratio": m.used_ratio,
                        "reset_timestamp": m.reset_timestamp,
                        "runs_out_timestamp": m.runs_out_timestamp,
                        "urgency": m.urgency.value,
                    }
                    for m in a.meters
                ],
            }
            for a in view.accounts
        ],
    }


def status_json(snapshot: Snapshot, now: float) -> str:
    # Every figure is finite (exporter.model checks them, the ratios and estimates
    # here drop what overflows), so strict JSON never fails.
    return json.dumps(status_document(snapshot, now), allow_nan=False, ensure_ascii=False) + "\n"


# --- formatting ---------------------------------------------------------------------------


def _number(value: float) -> str:
    if abs(value) >= 1e15:
        return f"{value:.3g}"
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _clock(seconds: float) -> str:
    """A length of time in seconds, as hours and minutes."""
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes}m"
    return f"{_number(minutes // 60)}h {minutes % 60:02d}m"


def amount(value: float | None, unit: str) -> str:
    """A meter figure in its unit: seconds as hours and minutes, bytes in binary
    multiples, everything else a count with thousands separators."""
    if value is None:
        return "-"
    if unit == "seconds":
        return _clock(value)
    if unit == "bytes":
        for size, name in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if value >= size:
                return f"{_number(round(value / size, 1))} {name}"
        return f"{_number(value)} B"
    return _number(value)


def span(seconds: float) -> str:
    """How far away a time is: "45s", "12m", "7h 05m", "3d 4h"."""
    seconds = max(seconds, 0.0)
    if seconds >= FAR:
        return "over 10 years"
    if seconds < 86400:
        return _clock(seconds)
    hours = round(seconds / 3600)
    return f"{hours // 24}d {hours % 24}h"


def age(then: float | None, now: float) -> str:
    if then is None:
        return "never"
    seconds = max(now - then, 0)
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def resets_in(m: MeterStatus, now: float) -> str:
    if m.reset_timestamp is None:
        return "no reset"
    return "now" if m.reset_timestamp <= now else f"in {span(m.reset_timestamp - now)}"


def runs_out_in(m: MeterStatus, now: float) -> str:
    if m.urgency is Urgency.EXHAUSTED:
        return "exhausted"
    if m.urgency is Urgency.UNLIMITED:
        return "never (unlimited)"
    if m.urgency is Urgency.LIMIT_ZERO:
        return "none included"
    if m.runs_out_timestamp is None:
        return "not enough data"
    shown = "now" if m.runs_out_timestamp <= now else f"in {span(m.runs_out_timestamp - now)}"
    if m.urgency is Urgency.OK:
        return f"{shown} (after the reset)"
    return shown


# --- HTML ---------------------------------------------------------------------------------

_CSS: Final = """
:root{color-scheme:light;--red:#c62828;--amber:#ef8f00;--ok:#2e7d32;--muted:#666}
body{font:15px/1.4 system-ui,sans-serif;margin:0;padding:1em 1.5em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:.2em 0}h2{font-size:1.1em;margin:1.2em 0 .4em}
.muted{color:var(--muted)}a{color:#1a5fb4}nav a{margin-right:1em}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{padding:.4em .6em;border-bottom:1px solid #e3e3e3;text-align:left;vertical-align:middle}
th{font-size:.85em;color:var(--muted);font-weight:600}th.num,td.num{text-align:right;white-space:nowrap}
.meter-name{font-weight:600}.where{font-size:.85em;color:var(--muted)}
.share{display:flex;align-items:center;gap:.5em;white-space:nowrap}
.bar{flex:none;width:9em;height:.8em;background:#e6e6e6;border-radius:.4em;overflow:hidden}
.bar span{display:block;height:100%;background:var(--ok)}
tr.u-exhausted .bar span{background:var(--red)}
tr.u-runs_out_before_reset .bar span,.bar span.high{background:var(--amber)}
tr.u-exhausted td.out{color:var(--red);font-weight:600}
tr.u-runs_out_before_reset td.out{color:var(--amber);font-weight:600}
.tag{display:inline-block;font-size:.8em;padding:0 .4em;border-radius:.3em;background:#eee}
.problems{list-style:none;padding:0;margin:0}
.problems li{background:#fff;border-left:4px solid var(--red);padding:.5em .8em;margin:.4em 0}
.problems li.pending{border-color:#999}
.problems .err{font-family:ui-monospace,monospace;font-size:.85em;word-break:break-word}
@media (max-width:600px){
body{padding:.6em}table,tbody,tr,td{display:block;width:auto}thead{display:none}
tr{background:#fff;border:1px solid #ddd;border-radius:.4em;margin:.5em 0;padding:.4em}
tr.u-exhausted{border-left:4px solid var(--red)}
tr.u-runs_out_before_reset{border-left:4px solid var(--amber)}
td{border:none;padding:.15em .2em;text-align:left}
td.num,td.when{display:inline-block;width:47%;text-align:left;white-space:normal}
td[data-label]::before{content:attr(data-label) ": ";color:var(--muted);font-size:.85em}
.bar{flex:1}}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _problem(a: AccountStatus, now: float) -> str:
    name = f"<strong>{_e(a.provider)} / {_e(a.account)}</strong>"
    if a.state is State.PENDING:
        return f'<li class="pending">{name}: pending, the first poll has not finished</li>'
    reason = f" ({_e(a.reason)})" if a.reason else ""
    if a.last_success is None:
        values = "no values yet"
    elif a.state is State.STALE:
        values = f"values from {_e(age(a.last_success, now))}, past max staleness: not shown"
    else:
        values = f"showing cached values from {_e(age(a.last_success, now))}"
    error = "" if a.last_error is None else f'<div class="err">{_e(a.last_error)}</div>'
    return f'<li class="{a.state.value}">{name}: {a.state.value}{reason}, {values}{error}</li>'


def _bar(m: MeterStatus) -> str:
    if m.used_ratio is None:
        return ""
    percent = min(max(m.used_ratio, 0.0), 1.0) * 100
    high = ' class="high"' if m.used_ratio >= 0.8 else ""
    return (
        f'<div class="bar" role="img" aria-label="{percent:.0f}% used">'
        f'<span{high} style="width:{percent:.1f}%"></span></div>'
    )


def _td(label: str, body: str, cls: str = "") -> str:
    # data-label names the cell in the phone layout, where each row is a card.
    klass = f' class="{cls}"' if cls else ""
    named = f' data-label="{label}"' if label else ""
    return f"<td{named}{klass}>{body}</td>"


def _row(m: MeterStatus, cached: dict[tuple[str, str], str], now: float) -> str:
    key = (m.provider, m.account)
    tag = f' <span class="tag">cached {_e(cached[key])}</span>' if key in cached else ""
    # The unit when the figures do not show it and the meter's name does not say it.
    unit = "" if m.unit in ("seconds", "bytes") or m.unit in m.meter else f" ({_e(m.unit)})"
    if m.unlimited:
        limit = "unlimited"
    elif m.limit == 0:
        limit = "0 (not in plan)"
    else:
        limit = amount(m.limit, m.unit)
    share = "" if m.used_ratio is None else f"{m.used_ratio * 100:.0f}%"
    if m.unlimited or m.limit == 0:
        share = limit
    name = (
        f'<div class="meter-name">{_e(m.meter)}{unit}</div>'
        f'<div class="where">{_e(m.provider)} / {_e(m.account)}{tag}</div>'
    )
    tds = "".join(
        (
            _td("", name),
            _td("", f'<div class="share">{_bar(m)}<span>{share}</span></div>'),
            _td("used", _e(amount(m.used, m.unit)), "num"),
            _td("limit", _e(limit), "num"),
            _td("remaining", _e("-" if m.unlimited else amount(m.remaining, m.unit)), "num"),
            _td("resets", _e(resets_in(m, now)), "when"),
            _td("runs out", _e(runs_out_in(m, now)), "when out"),
        )
    )
    return (
        f'<tr class="meter u-{m.urgency.value}" '
        f'data-meter="{_e(m.provider)}/{_e(m.account)}/{_e(m.meter)}">{tds}</tr>'
    )


def landing_page(snapshot: Snapshot, now: float) -> str:
    """The page at `/` for `snapshot` at `now`."""
    view = status(snapshot, now)
    order = {State.STALE: 0, State.FAILING: 1, State.PENDING: 2}
    troubled = sorted(
        (a for a in view.accounts if a.state is not State.UP), key=lambda a: order[a.state]
    )
    cached = {
        (a.provider, a.account): age(a.last_success, now)
        for a in view.accounts
        if a.state is State.FAILING and a.meters
    }
    problems = ""
    if troubled:
        items = "\n".join(_problem(a, now) for a in troubled)
        problems = f'<h2>Needs attention</h2>\n<ul class="problems">\n{items}\n</ul>'
    meters = view.meters
    if meters:
        rows = "\n".join(_row(m, cached, now) for m in meters)
        table = (
            '<table><thead><tr><th>meter</th><th>used share</th><th class="num">used</th>'
            '<th class="num">limit</th>'
            '<th class="num">remaining</th><th>resets</th><th>runs out</th></tr></thead>\n'
            f"<tbody>\n{rows}\n</tbody></table>"
        )
    elif not view.accounts:
        table = "<p>No accounts configured.</p>"
    else:
        table = "<p>No meter values yet.</p>"
    ups = sum(1 for a in view.accounts if a.state is State.UP)
    reload_state = "ok" if view.reload_ok else "FAILED (running the previous config)"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<title>saas-quota-exporter</title><style>{_CSS}</style></head>
<body><h1>saas-quota-exporter {_e(__version__)}</h1>
<p class="muted">{len(view.accounts)} accounts, {ups} up, {len(meters)} meters.
Most urgent first; refreshes every {REFRESH_SECONDS}s. Last config load: {reload_state}</p>
<nav><a href="/metrics">/metrics</a><a href="/api/v1/status">/api/v1/status</a>
<a href="/-/healthy">/-/healthy</a><a href="/-/ready">/-/ready</a></nav>
{problems}
<h2>Meters</h2>
{table}
</body></html>
"""
