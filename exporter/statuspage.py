"""The landing page at `/`: one snapshot rendered as a small HTML status page.

A pure function of a `Snapshot` and the time, like `exporter.families` for
`/metrics`; `exporter.web` takes the snapshot and serves the text. Everything
from a vendor is escaped, and errors are scrubbed of keys once more on the way out.
"""

from __future__ import annotations

import html

from exporter import __version__
from exporter.redaction import REDACTOR
from exporter.state import AccountState, Snapshot


def account_status(state: AccountState, now: float) -> str:
    """One word or phrase for the account's state, as the page's "state" column."""
    if not state.polled:
        return "pending"
    if state.up:
        return "up"
    if state.readings is not None and not state.is_stale(now):
        return "failing (serving cached values)"
    return "failing"


def _age(then: float | None, now: float) -> str:
    if then is None:
        return "never"
    seconds = max(now - then, 0)
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def landing_page(snapshot: Snapshot, now: float) -> str:
    """The page at `/` for `snapshot` at `now`: every account, its state, its last error."""
    rows = []
    for s in snapshot.accounts:
        next_in = "-" if s.next_poll is None else f"in {max(s.next_poll - now, 0):.0f}s"
        error = "" if s.last_error is None else REDACTOR.scrub(s.last_error)
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(cell))}</td>"
                for cell in (
                    s.provider,
                    s.account,
                    account_status(s, now),
                    _age(s.last_success, now),
                    next_in,
                    len(s.readings.meters) if s.readings else 0,
                    error,
                )
            )
            + "</tr>"
        )
    table = "\n".join(rows) or '<tr><td colspan="7">No accounts configured.</td></tr>'
    reload_state = "ok" if snapshot.reload.successful else "FAILED (running the previous config)"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>saas-quota-exporter</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}</style></head>
<body><h1>saas-quota-exporter {html.escape(__version__)}</h1>
<p>Quota and usage of paid SaaS APIs, polled in the background and served from a cache.</p>
<ul><li><a href="/metrics">/metrics</a></li><li><a href="/-/healthy">/-/healthy</a></li>
<li><a href="/-/ready">/-/ready</a></li></ul>
<p>Last config load: {reload_state}</p>
<table><tr><th>provider</th><th>account</th><th>state</th><th>last success</th>
<th>next poll</th><th>meters</th><th>last error</th></tr>
{table}
</table></body></html>
"""
