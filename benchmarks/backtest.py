"""Backtest the shipped quota alerts on 30-day usage traces.

    .venv/bin/python -m benchmarks.backtest                      # every scenario (make backtest)
    .venv/bin/python -m benchmarks.backtest --scenario outage    # some of them
    .venv/bin/python -m benchmarks.backtest --rules-dir DIR      # other rule files
    .venv/bin/python -m benchmarks.backtest --markdown           # the table for docs/alerting.md

Each scenario is one meter of one account over 30 days, at the exporter's real
granularity: Prometheus scrapes every 60 s, the exporter polls the vendor every 5 min,
so values change only at polls. The traces are written as OpenMetrics, backfilled into a
real TSDB with `promtool tsdb create-blocks-from openmetrics`, and a real Prometheus is
started on those blocks. Prometheus evaluates rules only at the present, so the past is
replayed through its HTTP API: every meter alert of the shipped alerts file is queried
over the whole month with query_range at the evaluation interval (1m), with each
recorded series replaced by its recording rule's expression (the same PromQL on the
same data, evaluated by the same engine), and the alert state machine (`for:`,
`keep_firing_for:`) is replayed on the result exactly as the rule manager runs it.
Prometheus runs with a lookback of 2m, which stands in for the staleness markers a
failed scrape writes (backfilled data has none).

Per scenario and alert it prints: fired or not, when it first fired, the lead time
before exhaustion, the number of firing episodes and the time spent firing. It exits 1
when a goal is missed:

- a scenario that exhausts before its reset: SaasQuotaPredictedExhaustion fires at least
  24 h before, or at least half of the time from the start of the burn when that is
  shorter than 48 h, and SaasQuotaAlmostExhausted (both severities) fires before it;
- a scenario that never exhausts: no SaasQuotaPredictedExhaustion,
  SaasQuotaBurningTooFast, SaasQuotaExhausted or SaasQuotaAlmostExhausted, whatever
  share it reaches (97 % at the reset is not news: the reset comes first);
- a top-up that removes the risk: the forecast and threshold alerts stop within 6 h;
- every alert: at most one firing episode per scenario (no flapping).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

import yaml

REPO: Final = Path(__file__).resolve().parents[1]
RULES_DIR: Final = REPO / "deploy" / "prometheus"
HOUR: Final = 3600
DAY: Final = 86400
SCRAPE: Final = 60  # Prometheus scrape and rule evaluation interval
POLL: Final = 300  # the exporter's poll interval: values change only here
LENGTH: Final = 30 * DAY
LIMIT: Final = 10_000.0
JOB_LABELS: Final = 'job="saas-quota",instance="backtest",provider="sim",meter="credits"'
METER_ALERTS: Final = (
    ("SaasQuotaAlmostExhausted", "warning"),
    ("SaasQuotaAlmostExhausted", "critical"),
    ("SaasQuotaExhausted", "critical"),
    ("SaasQuotaPredictedExhaustion", "warning"),
    ("SaasQuotaBurningTooFast", "warning"),
)
FORECAST: Final = "SaasQuotaPredictedExhaustion"
THRESHOLD: Final = "SaasQuotaAlmostExhausted"
# Query ranges of at most this many evaluations (Prometheus refuses > 11000 points).
CHUNK: Final = 7 * DAY


@dataclass(frozen=True)
class Poll:
    """What one poll of the vendor returned (None: the series is not exported)."""

    used: float
    limit: float | None
    reset: float | None  # seconds from the trace start
    period_start: float | None
    unlimited: bool = False


@dataclass(frozen=True)
class Scenario:
    """One meter's month. `exhausts_at` (seconds from the start, None: never) is when
    the meter runs out before its reset; `burn_start` when the burn that exhausts it
    began; `outages` are (start, end) spans without scrapes."""

    name: str
    description: str
    source: Source
    exhausts_at: float | None = None
    burn_start: float = 0.0
    outages: tuple[tuple[float, float], ...] = ()
    averted_at: float | None = None  # a top-up removed the risk: the forecast must stop
    quick: bool = False  # in the reduced set CI runs

    def required_lead(self) -> float:
        assert self.exhausts_at is not None
        burn = self.exhausts_at - self.burn_start
        return 24 * HOUR if burn >= 48 * HOUR else burn / 2


class Source(Protocol):
    def polls(self) -> list[Poll]:
        """What each poll returned, at offsets 0, POLL, 2 * POLL, ... LENGTH."""
        ...


class Meter:
    """Integrates a burn rate (share of LIMIT per day) poll by poll, with noise, a cap
    at the limit (vendors refuse requests past it), window resets and top-ups."""

    def __init__(
        self,
        name: str,
        rate: Callable[[float], float],
        *,
        start_used: float = 0.0,
        period: float | None = LENGTH,
        period_start: float = 0.0,
        limit: Callable[[float], float] = lambda t: LIMIT,
    ) -> None:
        self.name = name
        self.rate = rate
        self.start_used = start_used
        self.period = period
        self.period_start = period_start
        self.limit = limit

    def polls(self) -> list[Poll]:
        rng = random.Random(self.name)  # the same trace on every run
        used, start, out = self.start_used, self.period_start, []
        for t in range(0, LENGTH + 1, POLL):
            if t:
                if self.period is not None and t >= start + self.period:
                    start += self.period
                    used = 0.0
                used += LIMIT * self.rate(t) * POLL / DAY * rng.uniform(0.5, 1.5)
                used = min(used, self.limit(t))
            reset = None if self.period is None else start + self.period
            out.append(
                Poll(
                    used=math.floor(used),
                    limit=self.limit(t),
                    reset=reset,
                    period_start=None if self.period is None else start,
                )
            )
        return out


@dataclass(frozen=True)
class Fixed:
    """A meter given as a function of time."""

    poll: Callable[[float], Poll]

    def polls(self) -> list[Poll]:
        return [self.poll(t) for t in range(0, LENGTH + 1, POLL)]


def _weekly(weekday: float, weekend: float) -> Callable[[float], float]:
    """A burn that differs on weekdays and weekends; the trace starts on a Monday."""
    return lambda t: weekend if (t // DAY) % 7 >= 5 else weekday


def _steps(*steps: tuple[float, float]) -> Callable[[float], float]:
    """A burn given as (from this time, this rate) steps."""

    def rate(t: float) -> float:
        current = 0.0
        for start, value in steps:
            if t >= start:
                current = value
        return current

    return rate


def _weekly_exhaust_time(weekday: float, weekend: float) -> float:
    used, t = 0.0, 0.0
    rate = _weekly(weekday, weekend)
    while used < 1:
        t += POLL
        used += rate(t) * POLL / DAY
    return t


def _unlimited(t: float) -> Poll:
    return Poll(
        used=math.floor(50_000 + 20_000 * t / DAY),
        limit=None,
        reset=LENGTH,
        period_start=0.0,
        unlimited=True,
    )


def _limit_zero(t: float) -> Poll:
    return Poll(used=0.0, limit=0.0, reset=LENGTH, period_start=0.0)


# Weekday and weekend burn (share of the limit per day) of the two weekly scenarios.
WEEKLY_EXHAUSTS: Final = (0.058, 0.006)
WEEKLY_UNDER: Final = (0.036, 0.004)

SCENARIOS: Final = (
    Scenario(
        "steady-exhausts",
        "steady burn, runs out on day 15 of a 30-day window",
        Meter("steady-exhausts", lambda t: 1 / 15),
        exhausts_at=15 * DAY,
    ),
    Scenario(
        "steady-under-cap",
        "steady burn, 97 % used when the window resets",
        Meter("steady-under-cap", lambda t: 0.97 / 30),
        # The closest call for SaasQuotaAlmostExhausted: from a burn margin of ~1.18 on,
        # the 3 % left at the reset no longer counts as lasting.
        quick=True,
    ),
    Scenario(
        "weekly-exhausts",
        "weekdays 5.8 %/day, weekends 0.6 %/day: runs out on day 22",
        Meter("weekly-exhausts", _weekly(*WEEKLY_EXHAUSTS)),
        exhausts_at=_weekly_exhaust_time(*WEEKLY_EXHAUSTS),
    ),
    Scenario(
        "weekly-under",
        "weekdays 3.6 %/day, weekends 0.4 %/day: 84 % used at the reset",
        Meter("weekly-under", _weekly(*WEEKLY_UNDER)),
        quick=True,
    ),
    Scenario(
        "burst-then-flat",
        "0.3 %/day, a 40 % batch in one hour on day 10, then 0.3 %/day again",
        Meter("burst-then-flat", _steps((0, 0.003), (10 * DAY, 9.6), (10 * DAY + HOUR, 0.003))),
        quick=True,
    ),
    Scenario(
        "reset-mid",
        "starts 15 days into its window at 45 %, 3 %/day: 90 % at the reset on day 15, "
        "45 % at the end",
        Meter("reset-mid", lambda t: 0.03, start_used=0.45 * LIMIT, period_start=-15 * DAY),
    ),
    Scenario(
        "top-up",
        "would run out on day 12; on day 8 a top-up triples the limit",
        Meter("top-up", lambda t: 1 / 12, limit=lambda t: LIMIT if t < 8 * DAY else 3 * LIMIT),
        # The forecast is right until the top-up: it must warn a day ahead of day 12.
        exhausts_at=12 * DAY,
        averted_at=8 * DAY,
    ),
    Scenario("unlimited", "unlimited plan, 20 000 credits a day", Fixed(_unlimited)),
    Scenario("limit-zero", "a limit of 0 (not in the plan)", Fixed(_limit_zero)),
    Scenario(
        "lifetime-slow",
        "no reset (lifetime or capacity): 60 % to 100 % over 28 days",
        Meter("lifetime-slow", lambda t: 0.4 / 28, start_used=0.6 * LIMIT, period=None),
        exhausts_at=28 * DAY,
    ),
    Scenario(
        "outage",
        "steady burn that runs out on day 20; the exporter is down for 2 h on day 10",
        Meter("outage", lambda t: 1 / 20),
        exhausts_at=20 * DAY,
        outages=((10 * DAY, 10 * DAY + 2 * HOUR),),
        quick=True,
    ),
    Scenario(
        "sudden-burn",
        "0.5 %/day, then on day 20 a burn that runs out 36 h later",
        Meter("sudden-burn", _steps((0, 0.005), (20 * DAY, 0.9 / 1.5))),
        exhausts_at=20 * DAY + 36 * HOUR,
        burn_start=20 * DAY,
        quick=True,
    ),
)


# --- the trace as OpenMetrics ------------------------------------------------------------


FAMILIES: Final = (
    "saas_quota_used",
    "saas_quota_limit",
    "saas_quota_remaining",
    "saas_quota_unlimited",
    "saas_quota_reset_timestamp_seconds",
    "saas_quota_period_start_timestamp_seconds",
)


def _samples(poll: Poll, start: float) -> dict[str, float | None]:
    """The exporter's series for one poll (None: not exported)."""
    remaining = None if poll.limit is None else max(0.0, poll.limit - poll.used)
    return {
        "saas_quota_used": poll.used,
        "saas_quota_limit": poll.limit,
        "saas_quota_remaining": remaining,
        "saas_quota_unlimited": 1.0 if poll.unlimited else 0.0,
        "saas_quota_reset_timestamp_seconds": None if poll.reset is None else start + poll.reset,
        "saas_quota_period_start_timestamp_seconds": None
        if poll.period_start is None
        else start + poll.period_start,
    }


def write_openmetrics(scenarios: Sequence[Scenario], start: float, directory: Path) -> list[Path]:
    """Every scenario's series, one sample per scrape, one OpenMetrics file per day.

    One file per day because promtool re-reads its whole input for every 2 h block it
    writes: a month in one file takes minutes, a day at a time seconds.
    """
    polls = {s.name: s.source.polls() for s in scenarios}
    files = []
    for day in range(0, LENGTH, DAY):
        lines: dict[str, list[str]] = {name: [] for name in FAMILIES}
        for scenario in scenarios:
            labels = f'{{{JOB_LABELS},account="{scenario.name}"}}'
            last = LENGTH + 1 if day + DAY >= LENGTH else day + DAY
            for offset in range(day, last, SCRAPE):
                if any(a <= offset < b for a, b in scenario.outages):
                    continue
                ts = f"{start + offset:.0f}"
                values = _samples(polls[scenario.name][offset // POLL], start)
                for name, value in values.items():
                    if value is not None:
                        # 15 digits, not :g's 6: a Unix timestamp in :g is rounded to
                        # 10 000 s, which moved every reset and window start by up to
                        # 1.4 h, by an amount that depended on the hour of the run.
                        lines[name].append(f"{name}{labels} {value:.15g} {ts}\n")
        path = directory / f"day-{day // DAY:02d}.om"
        with path.open("w") as out:
            for name in FAMILIES:
                out.write(f"# TYPE {name} gauge\n")
                out.writelines(lines[name])
            out.write("# EOF\n")
        files.append(path)
    return files


# --- the rules -------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertRule:
    name: str
    severity: str
    expr: str
    for_seconds: float
    keep_firing_seconds: float


def _seconds(text: str | None) -> float:
    if not text:
        return 0.0
    units = {"ms": 0.001, "s": 1, "m": 60, "h": HOUR, "d": DAY, "w": 7 * DAY}
    total = 0.0
    for number, unit in re.findall(r"(\d+)(ms|s|m|h|d|w)", text):
        total += int(number) * units[unit]
    return total


def load_rules(rules_dir: Path) -> tuple[dict[str, str], list[AlertRule]]:
    """The recording rules (name -> expr) and the meter alerts of the shipped files."""
    recorded: dict[str, str] = {}
    alerts: list[AlertRule] = []
    for path in sorted(rules_dir.glob("*.yml")):
        document = yaml.safe_load(path.read_text())
        if not isinstance(document, dict) or "groups" not in document:
            continue
        for group in document["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    recorded[rule["record"]] = rule["expr"]
                elif (rule["alert"], rule["labels"]["severity"]) in METER_ALERTS:
                    alerts.append(
                        AlertRule(
                            rule["alert"],
                            rule["labels"]["severity"],
                            rule["expr"],
                            _seconds(rule.get("for")),
                            _seconds(rule.get("keep_firing_for")),
                        )
                    )
    return recorded, alerts


_SELF: Final = re.compile(r'ALERTS\{alertname="(\w+)", alertstate="firing"\}')


def split_latch(expr: str, name: str) -> tuple[str, str | None]:
    """An expression that reads its own firing ALERTS series (hysteresis), as two.

    query_range cannot see ALERTS of the past, so the expression is evaluated twice:
    with that selector matching nothing (when the alert may start) and matching every
    meter (while it fires, it holds). The replay then combines them step by step as the
    rule manager does, which sees the previous evaluation's ALERTS sample.
    """
    found = {m.group(1) for m in _SELF.finditer(expr)}
    if not found:
        return expr, None
    if found != {name}:
        raise ValueError(f"{name} reads the ALERTS of {found - {name}}")
    return _SELF.sub("(saas_quota_limit < 0)", expr), _SELF.sub("saas_quota_limit", expr)


def inline(expr: str, recorded: dict[str, str]) -> str:
    """`expr` with every recorded series replaced by its rule's expression.

    A recording rule's output carries its input's labels and no metric name, exactly
    like the parenthesised expression, so the result is the same at every instant.
    """
    names = sorted(recorded, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(n) for n in names) + r"(?![\w:])")
    for _ in range(10):
        match = pattern.search(expr)
        if match is None:
            return expr
        following = expr[match.end() : match.end() + 1]
        if following in ("{", "["):
            raise ValueError(f"{match.group()}{following}...: selectors on recorded series")
        expr = pattern.sub(lambda m: "(" + recorded[m.group()].strip() + ")", expr)
    raise ValueError("recording rules nest deeper than 10")


# --- Prometheus ----------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def prometheus(data: Path, binary: str) -> Iterator[str]:
    """A Prometheus serving the backfilled blocks in `data` (no scrapes, no rules)."""
    port = _free_port()
    config = data.parent / "prometheus.yml"
    config.write_text("global:\n  evaluation_interval: 1m\n")
    log = (data.parent / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            "--storage.tsdb.retention.time=100y",
            f"--web.listen-address=127.0.0.1:{port}",
            "--query.lookback-delta=2m",
            "--query.timeout=10m",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(url + "/-/ready", timeout=5) as response,  # noqa: S310
            ):
                if response.status == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise RuntimeError(
                    "Prometheus did not start: " + (data.parent / "prometheus.log").read_text()
                )
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def query_range(url: str, expr: str, start: float, end: float) -> dict[str, set[float]]:
    """account -> the evaluation times at which `expr` returned a sample."""
    active: dict[str, set[float]] = {}
    chunk_start = start
    while chunk_start <= end:
        chunk_end = min(end, chunk_start + CHUNK)
        body = urllib.parse.urlencode(
            {"query": expr, "start": chunk_start, "end": chunk_end, "step": SCRAPE}
        ).encode()
        request = urllib.request.Request(url + "/api/v1/query_range", data=body)  # noqa: S310
        with urllib.request.urlopen(request, timeout=600) as response:  # noqa: S310
            result = json.load(response)
        if result["status"] != "success":
            raise RuntimeError(f"query failed: {result}")
        for series in result["data"]["result"]:
            account = series["metric"].get("account", "?")
            active.setdefault(account, set()).update(float(ts) for ts, _ in series["values"])
        chunk_start = chunk_end + SCRAPE
    return active


# --- the alert state machine ------------------------------------------------------------------


@dataclass
class Outcome:
    """One alert on one scenario: its firing episodes as (start, end) offsets."""

    episodes: list[tuple[float, float]] = field(default_factory=list)

    @property
    def fired(self) -> bool:
        return bool(self.episodes)

    @property
    def first(self) -> float | None:
        return self.episodes[0][0] if self.episodes else None

    @property
    def firing_seconds(self) -> float:
        return sum(end - start for start, end in self.episodes)


def replay(
    active: set[float], rule: AlertRule, start: float, end: float, holds: set[float] | None = None
) -> Outcome:
    """Prometheus' alerting state machine over the evaluation times start..end.

    `holds`: where the expression returns a sample as long as the alert fired at the
    previous evaluation (see split_latch).
    """
    holds = holds or set()
    outcome = Outcome()
    active_at: float | None = None
    firing_since: float | None = None
    last_active = -math.inf
    t = start
    while t <= end + 1e-6:
        if t in active or (firing_since is not None and t in holds):
            last_active = t
            if active_at is None:
                active_at = t
            if firing_since is None and t - active_at >= rule.for_seconds:
                firing_since = t
        elif firing_since is not None and t - last_active <= rule.keep_firing_seconds:
            pass  # keep_firing_for: still firing although the expression is empty
        else:
            if firing_since is not None:
                outcome.episodes.append((firing_since - start, t - start))
            active_at = firing_since = None
        t += SCRAPE
    if firing_since is not None:
        outcome.episodes.append((firing_since - start, end - start))
    return outcome


# --- running it --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    scenario: Scenario
    alert: str
    severity: str
    outcome: Outcome
    problem: str | None


def judge(scenario: Scenario, rule: AlertRule, outcome: Outcome) -> str | None:
    """The goal this outcome misses, or None."""
    if len(outcome.episodes) > 1:
        return f"{len(outcome.episodes)} firing episodes (flapping)"
    if scenario.exhausts_at is not None:
        if rule.name not in (FORECAST, THRESHOLD):
            return None
        if scenario.averted_at is not None:
            if any(end > scenario.averted_at + 6 * HOUR for _, end in outcome.episodes):
                return "still firing 6 h after the top-up"
            if rule.name == THRESHOLD:
                return None  # the share never reached a threshold before the top-up
        if outcome.first is None or outcome.first > scenario.exhausts_at:
            return "never warned before the exhaustion"
        lead = scenario.exhausts_at - outcome.first
        if rule.name == FORECAST and lead < scenario.required_lead():
            return f"lead {_hours(lead)} < {_hours(scenario.required_lead())}"
        return None
    if not outcome.fired:
        return None
    # A meter that never runs out needs no one, whatever share it reaches: the
    # threshold alert too must know that the reset comes first.
    return "fired on a meter that never runs out"


def run(scenarios: Sequence[Scenario], rules_dir: Path, workdir: Path) -> list[Row]:
    promtool = shutil.which("promtool")
    binary = shutil.which("prometheus")
    if promtool is None or binary is None:
        raise SystemExit("promtool and prometheus must be installed (apt-get install prometheus)")
    recorded, alerts = load_rules(rules_dir)
    # Whole hours, so evaluation times line up with the 60 s scrapes; recent enough to
    # stay inside any retention.
    end = math.floor(time.time() / HOUR) * HOUR - HOUR
    start = end - LENGTH
    began = time.monotonic()
    traces = write_openmetrics(scenarios, start, workdir)
    _log(f"wrote {sum(t.stat().st_size for t in traces) >> 20} MiB of OpenMetrics", began)
    data = workdir / "data"
    for trace in traces:
        backfill = [promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet"]
        subprocess.run([*backfill, str(trace), str(data)], check=True, capture_output=True)
        trace.unlink()
    _log("backfilled", began)
    rows = []
    with prometheus(data, binary) as url:
        for rule in alerts:
            _log("Prometheus ready" if rule is alerts[0] else "", began)
            starts, holds = split_latch(rule.expr, rule.name)
            active = query_range(url, inline(starts, recorded), start, end)
            held = {} if holds is None else query_range(url, inline(holds, recorded), start, end)
            _log(f"evaluated {rule.name} ({rule.severity})", began)
            for scenario in scenarios:
                outcome = replay(
                    active.get(scenario.name, set()),
                    rule,
                    start,
                    end,
                    held.get(scenario.name, set()),
                )
                problem = judge(scenario, rule, outcome)
                rows.append(Row(scenario, rule.name, rule.severity, outcome, problem))
    order = {s.name: i for i, s in enumerate(scenarios)}
    rows.sort(key=lambda r: (order[r.scenario.name], METER_ALERTS.index((r.alert, r.severity))))
    return rows


def _log(message: str, began: float) -> None:
    if message:
        print(f"[{time.monotonic() - began:5.1f} s] {message}", file=sys.stderr)


def _hours(seconds: float) -> str:
    if seconds >= 2 * DAY:
        return f"{seconds / DAY:.1f} d"
    return f"{seconds / HOUR:.1f} h"


def table(rows: Sequence[Row], markdown: bool) -> str:
    header = (
        "scenario",
        "alert",
        "fired",
        "first fired",
        "lead before exhaustion",
        "episodes",
        "time firing",
        "goal",
    )
    lines = []
    for row in rows:
        o = row.outcome
        name = row.alert.removeprefix("SaasQuota")
        if row.alert == "SaasQuotaAlmostExhausted":
            name += f" ({row.severity})"
        lead = "-"
        if row.scenario.exhausts_at is not None and o.first is not None:
            lead = _hours(row.scenario.exhausts_at - o.first)
            if o.first > row.scenario.exhausts_at:
                lead = "after"
        lines.append(
            (
                row.scenario.name,
                name,
                "yes" if o.fired else "no",
                f"day {o.first / DAY:.2f}" if o.first is not None else "-",
                lead,
                str(len(o.episodes)),
                _hours(o.firing_seconds) if o.fired else "-",
                "MISSED: " + row.problem if row.problem else "ok",
            )
        )
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(x) for x in column) for column in zip(header, *lines, strict=True)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, *lines]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.backtest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    names = [s.name for s in SCENARIOS]
    parser.add_argument("--scenario", action="append", choices=names, help="repeatable")
    parser.add_argument("--quick", action="store_true", help="the reduced set CI runs")
    parser.add_argument("--rules-dir", type=Path, default=RULES_DIR)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    chosen = [s for s in SCENARIOS if (not args.scenario or s.name in args.scenario)]
    if args.quick:
        chosen = [s for s in chosen if s.quick]
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="saas-quota-backtest-") as tmp:
        rows = run(chosen, args.rules_dir, Path(tmp))
    print(table(rows, args.markdown))
    print("\nscenarios:")
    for s in chosen:
        ends = (
            "never runs out"
            if s.exhausts_at is None
            else f"runs out on day {s.exhausts_at / DAY:.2f}"
        )
        print(f"  {s.name}: {s.description} ({ends})")
    missed = [r for r in rows if r.problem]
    print(f"\n{len(missed)} goal(s) missed; {time.monotonic() - began:.0f} s", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
