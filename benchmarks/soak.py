"""Load and soak: 20 concurrent scrapers while vendors fail and recover at random.

    python -m benchmarks.soak [--duration 60] [--json]

Starts the vendor simulator (all five vendors, ACCOUNTS keys) and the exporter's
console script, each as a child process, the exporter polling every second with a
sub-second timeout. A chaos thread keeps flipping random accounts between healthy
and a fault (500 with an HTML body, slower than the timeout, 429 with Retry-After,
connection reset, truncated JSON) and back. Meanwhile SCRAPERS threads GET /metrics
as fast as they can:

* even-numbered scrapers keep one HTTP/1.1 connection alive (as Prometheus does),
  odd-numbered ones open a fresh connection per scrape (as curl or a probe does);
* scrapers 0, 1 mod 4 ask for OpenMetrics with gzip (as Prometheus does), the rest
  for the plain text format without compression.

A scrape fails on a connection error, a status other than 200, a wrong content
type or encoding, a body that is not line by line an exposition (a regular
expression, on every scrape), one that the matching prometheus_client parser
rejects (every PARSE_EVERY-th scrape of each scraper: the parser costs ~12 ms of
this process's CPU per scrape, which on two cores would starve the exporter and
measure our GIL instead of its latency), or one that lacks `saas_quota_up` for any
configured account. Every second the exporter's threads, open file descriptors and
RSS are read from /proc/<pid>.

Prints the figures and checks them against the bounds below; exits 1 when a scrape
failed or a bound was broken, 2 when the run could not be set up.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import random
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from benchmarks.harness import (
    ExporterProcess,
    ProcStats,
    SimulatorProcess,
    account_name,
    cpu_seconds,
    make_accounts,
    mib,
    percentile,
    proc_stats,
)
from tests.support.config import simulator_config
from tests.support.simulator import Fault

SCRAPERS: Final = 20
# Three keys per vendor: enough for the poller to always have polls in flight.
ACCOUNTS: Final = 15
INTERVAL: Final = "1s"
TIMEOUT: Final = "800ms"
# Longer than TIMEOUT, so a "slow" account always ends in a poll timeout.
SLOW_SECONDS: Final = 2.0
# Short, so rate-limited accounts come back within the run (VidNavigator's own
# 60 s ban after a 429 still applies; that is the adapter's rule, not ours).
RETRY_AFTER_SECONDS: Final = 2
# One account changes state this often: with 15 accounts each one flips every
# ~3 s on average, so every account fails and recovers several times a minute.
CHAOS_STEP_SECONDS: Final = 0.2
SCRAPE_TIMEOUT_SECONDS: Final = 10.0  # Prometheus' default scrape_timeout
SAMPLE_SECONDS: Final = 1.0
PARSE_EVERY: Final = 10

# --- bounds ---------------------------------------------------------------------
# Threads: the HTTP server runs one thread per open connection. A keep-alive scraper
# holds one; a fresh-connection scraper holds at most two for a moment (the old
# connection's thread notices the close just after the next one is accepted). On
# top come the exporter's own threads when idle (main/asyncio loop, the accept loop,
# a resolver thread or two), measured at the start. Anything above means threads
# are piling up.
THREAD_SLACK: Final = SCRAPERS // 2 + 4
# File descriptors: one socket per scraper connection (two for a moment for
# fresh-connection scrapers, as for threads) and at most httpx's pool limit of 32
# vendor connections, on top of the idle baseline (log file, listening socket,
# epoll, stdio...). A leak of one fd per poll or per scrape breaks this within
# seconds.
FD_SLACK: Final = SCRAPERS + SCRAPERS // 2 + 32 + 8
# Memory: after warm-up (the 25 % mark) the working set is fixed: a bounded number
# of accounts, one cached rendering, a bounded number of threads. Measured growth
# over the rest of a 60 s run is under 1 MiB; 8 MiB leaves room for allocator noise
# and thread stacks coming and going, and still catches a leak of 1 KiB per scrape
# (~9000 scrapes after the mark) or 16 KiB per poll (~500 polls).
RSS_GROWTH_MIB: Final = 8.0
# A quota exporter for a handful of accounts has no business being bigger.
RSS_PEAK_MIB: Final = 150.0
# Once the scrapers have closed their connections, threads must come back down.
THREADS_AFTER_SLACK: Final = 2

HTML_500: Final = (
    b"<html><head><title>502 Bad Gateway</title></head>"
    b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)
TRUNCATED_JSON: Final = b'{"status": "success", "data": {"credits": {"monthly_total": 80, "mon'

FAULTS: Final[dict[str, Fault | None]] = {
    "healthy": None,
    "http_500_html": Fault(status=500, body=HTML_500, headers={"Content-Type": "text/html"}),
    "slow": Fault(status=200, delay=SLOW_SECONDS),
    "rate_limited": Fault(
        status=429,
        body=b'{"error": "rate limit exceeded"}',
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    ),
    "reset": Fault(reset=True),
    "truncated_json": Fault(status=200, body=TRUNCATED_JSON),
}
# Healthy as often as all faults together, so accounts spend about half the run up.
FAULT_WEIGHTS: Final = {"healthy": 5, **dict.fromkeys(list(FAULTS)[1:], 1)}

OPENMETRICS: Final = "application/openmetrics-text; version=1.0.0"
# One exposition line: a comment, or name{labels} value [timestamp].
_LINE: Final = rb"(?:#[^\n]*|[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^\n]*\})? [^ \n]+(?: [^ \n]+)?)\n"
EXPOSITION_LINES: Final = re.compile(rb"(?:" + _LINE + rb")+")


@dataclass
class ScrapeLog:
    """What one scraper saw; merged at the end (each thread owns its own)."""

    latencies: list[float] = field(default_factory=list)
    parsed: int = 0  # scrapes checked by the prometheus_client parser too
    failures: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    # The first few of each kind: one kind flooding `examples` hides the others.
    examples_by_kind: dict[str, list[str]] = field(default_factory=dict)

    def fail(self, kind: str, detail: str) -> None:
        self.failures[kind] += 1
        if len(self.examples) < 5:
            self.examples.append(f"{kind}: {detail[:300]}")
        of_kind = self.examples_by_kind.setdefault(kind, [])
        if len(of_kind) < 3:
            of_kind.append(detail[:300])


def check_exposition(
    body: bytes,
    headers: http.client.HTTPMessage,
    openmetrics: bool,
    accounts: int,
    full_parse: bool,
) -> str | None:
    """Why a 200 answer is not a complete exposition, or None when it is."""
    content_type = headers.get("Content-Type", "")
    wanted = "application/openmetrics-text" if openmetrics else "text/plain"
    if not content_type.startswith(wanted):
        return f"content type {content_type!r}, wanted {wanted}"
    if headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    elif openmetrics:
        return "asked for gzip, got no Content-Encoding"
    if EXPOSITION_LINES.fullmatch(body) is None:
        return f"not an exposition, line by line; ends with {body[-200:]!r}"
    if openmetrics and not body.endswith(b"\n# EOF\n"):
        return "OpenMetrics without the final # EOF"
    up = body.count(b"\nsaas_quota_up{")
    if full_parse:
        parse = parse_openmetrics if openmetrics else parse_text
        up = sum(len(f.samples) for f in parse(body.decode()) if f.name == "saas_quota_up")
    if up != accounts:
        return f"saas_quota_up has {up} series, wanted {accounts}"
    return None


def scraper_kind(index: int) -> tuple[bool, bool]:
    """(keep-alive, OpenMetrics with gzip) for scraper `index`."""
    return index % 2 == 0, index % 4 in (0, 1)


def kind_name(index: int) -> str:
    keepalive, openmetrics = scraper_kind(index)
    connection = "keep-alive" if keepalive else "fresh connection"
    return f"{connection}, {'OpenMetrics+gzip' if openmetrics else 'text'}"


def scraper(
    index: int,
    port: int,
    deadline: float,
    stop: threading.Event,
    accounts: int,
    parse_every: int,
    log: ScrapeLog,
) -> None:
    keepalive, openmetrics = scraper_kind(index)
    headers = (
        {"Accept": OPENMETRICS, "Accept-Encoding": "gzip"}
        if openmetrics
        else {"Accept": "text/plain", "Accept-Encoding": "identity"}
    )
    conn: http.client.HTTPConnection | None = None
    while time.monotonic() < deadline and not stop.is_set():
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=SCRAPE_TIMEOUT_SECONDS)
        started = time.perf_counter()
        try:
            conn.request("GET", "/metrics", headers=headers)
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            log.fail("connection", f"{type(exc).__name__}: {exc}")
            conn.close()
            conn = None
            continue
        elapsed = time.perf_counter() - started
        if not keepalive or response.will_close:
            conn.close()
            conn = None
        if response.status != 200:
            log.fail("status", f"{response.status}: {body[:200]!r}")
            continue
        full_parse = (len(log.latencies) + sum(log.failures.values())) % parse_every == 0
        try:
            problem = check_exposition(body, response.headers, openmetrics, accounts, full_parse)
            log.parsed += full_parse
        except Exception as exc:  # a parser error is exactly what we look for
            problem = f"unparsable: {type(exc).__name__}: {exc}"
        if problem is not None:
            log.fail("exposition", problem)
            continue
        log.latencies.append(elapsed)
    if conn is not None:
        conn.close()


def chaos(
    sim: SimulatorProcess, rng: random.Random, stop: threading.Event, applied: Counter[str]
) -> None:
    keys = list(sim.accounts)
    names = list(FAULT_WEIGHTS)
    weights = list(FAULT_WEIGHTS.values())
    while not stop.wait(CHAOS_STEP_SECONDS):
        key = rng.choice(keys)
        name = rng.choices(names, weights)[0]
        sim.set_fault(key, FAULTS[name])
        applied[name] += 1


def sampler(pid: int, stop: threading.Event, samples: list[tuple[float, ProcStats]]) -> None:
    """Append (monotonic time, stats) every SAMPLE_SECONDS until stopped."""
    while not stop.wait(SAMPLE_SECONDS):
        try:
            samples.append((time.monotonic(), proc_stats(pid)))
        except OSError:
            return  # the exporter died; the main thread reports it


@dataclass
class Check:
    name: str
    value: float
    bound: float
    why: str

    @property
    def ok(self) -> bool:
        return self.value <= self.bound


def poll_figures(port: int) -> dict[str, Any]:
    """Polls and errors by reason, from the exporter's own counters."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=SCRAPE_TIMEOUT_SECONDS)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    polls = 0.0
    errors: Counter[str] = Counter()
    for family in parse_text(text):
        for sample in family.samples:
            if sample.name == "saas_quota_polls_total":
                polls += sample.value
            elif sample.name == "saas_quota_poll_errors_total":
                errors[sample.labels["reason"]] += int(sample.value)
    return {"polls": int(polls), "poll_errors": {k: v for k, v in sorted(errors.items()) if v}}


def run(duration: float, seed: int, parse_every: int = PARSE_EVERY) -> dict[str, Any]:
    rng = random.Random(seed)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    with SimulatorProcess(make_accounts(ACCOUNTS, prefix="soak")) as sim:
        config = simulator_config(sim, name=account_name, interval=INTERVAL, timeout=TIMEOUT)
        with ExporterProcess(config) as exporter:
            try:
                return _measure(sim, exporter, duration, parse_every, rng, stop, threads)
            finally:
                stop.set()
                for thread in threads:
                    thread.join(SCRAPE_TIMEOUT_SECONDS + 5)


def _measure(
    sim: SimulatorProcess,
    exporter: ExporterProcess,
    duration: float,
    parse_every: int,
    rng: random.Random,
    stop: threading.Event,
    threads: list[threading.Thread],
) -> dict[str, Any]:
    time.sleep(1.0)  # let the second poll round settle the pool of vendor connections
    applied: Counter[str] = Counter()
    logs = [ScrapeLog() for _ in range(SCRAPERS)]
    vendor_requests_before = sim.requests_total()
    start = proc_stats(exporter.pid)
    cpu_before = cpu_seconds(exporter.pid)
    began = time.monotonic()
    deadline = began + duration
    samples: list[tuple[float, ProcStats]] = [(began, start)]
    threads.append(
        threading.Thread(target=sampler, args=(exporter.pid, stop, samples), name="sampler")
    )
    threads.append(threading.Thread(target=chaos, args=(sim, rng, stop, applied), name="chaos"))
    threads += [
        threading.Thread(
            target=scraper,
            args=(i, exporter.port, deadline, stop, ACCOUNTS, parse_every, logs[i]),
            name=f"scraper-{i}",
        )
        for i in range(SCRAPERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads[2:]:
        thread.join(duration + SCRAPE_TIMEOUT_SECONDS + 5)
    wall = time.monotonic() - began
    cpu = cpu_seconds(exporter.pid) - cpu_before
    stop.set()  # chaos and sampler
    for thread in threads[:2]:
        thread.join(5)
    # The last sample taken under load (the scrapers stop at the deadline).
    end = [s for t, s in samples if t <= deadline - SAMPLE_SECONDS / 2][-1]
    # Every vendor healthy again; the figures below are the exporter's own.
    for key in sim.accounts:
        sim.set_fault(key, None)
    vendor_requests = sim.requests_total() - vendor_requests_before
    # Handler threads of the closed connections finish within moments; give a loaded
    # machine up to 10 s before calling what is left a leak.
    settle_by = time.monotonic() + 10.0
    after = proc_stats(exporter.pid)
    while after.threads > start.threads + THREADS_AFTER_SLACK and time.monotonic() < settle_by:
        time.sleep(0.2)
        after = proc_stats(exporter.pid)
    polls = poll_figures(exporter.port)
    alive = exporter.alive()
    exit_code = exporter.stop()

    latencies = [x for log in logs for x in log.latencies]
    failures: Counter[str] = Counter()
    for log in logs:
        failures.update(log.failures)
    examples = [e for log in logs for e in log.examples][:10]
    failed = sum(failures.values())
    quarter = next((s for t, s in samples if t >= began + duration / 4), start)
    peak = ProcStats(
        threads=max(s.threads for _, s in samples),
        fds=max(s.fds for _, s in samples),
        rss_bytes=max(s.rss_bytes for _, s in samples),
    )
    checks = [
        Check("failed scrapes", failed, 0, "every scrape must succeed"),
        Check(
            "peak threads",
            peak.threads,
            start.threads + SCRAPERS + THREAD_SLACK,
            f"start + {SCRAPERS} scrapers + {THREAD_SLACK}",
        ),
        Check(
            "threads after load",
            after.threads,
            start.threads + THREADS_AFTER_SLACK,
            f"start + {THREADS_AFTER_SLACK}",
        ),
        Check("peak fds", peak.fds, start.fds + FD_SLACK, f"start + {FD_SLACK}"),
        Check(
            "RSS growth 25%->end (MiB)",
            round(mib(end.rss_bytes - quarter.rss_bytes), 2),
            RSS_GROWTH_MIB,
            "leak detector",
        ),
        Check("peak RSS (MiB)", round(mib(peak.rss_bytes), 1), RSS_PEAK_MIB, "absolute ceiling"),
        Check("exporter exit code", 0 if alive and exit_code == 0 else 1, 0, "alive, exits 0"),
    ]
    return {
        "duration_seconds": round(wall, 2),
        "scrapers": SCRAPERS,
        "accounts": ACCOUNTS,
        "interval": INTERVAL,
        "timeout": TIMEOUT,
        "scrapes": len(latencies) + failed,
        "failed_scrapes": failed,
        "failures_by_kind": dict(failures),
        "failure_examples": examples,
        "scrapes_per_second": round((len(latencies) + failed) / wall, 1),
        "fully_parsed_scrapes": sum(log.parsed for log in logs),
        "exporter_cpu_percent": round(100 * cpu / wall),
        "latency_ms_by_kind": {
            name: {
                q: round(percentile(kind, p) * 1000, 2)
                for q, p in (("p50", 50), ("p99", 99), ("max", 100))
            }
            for name in sorted({kind_name(i) for i in range(SCRAPERS)})
            for kind in [
                [x for i, log in enumerate(logs) if kind_name(i) == name for x in log.latencies]
            ]
        },
        "latency_ms": {
            name: round(percentile(latencies, q) * 1000, 2)
            for name, q in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))
        },
        "vendor_requests": vendor_requests,
        **polls,
        "faults_applied": dict(applied),
        "process": {
            name: {
                "threads": s.threads,
                "fds": s.fds,
                "rss_mib": round(mib(s.rss_bytes), 1),
            }
            for name, s in (
                ("start", start),
                ("at_25_percent", quarter),
                ("peak", peak),
                ("end", end),
                ("after_load", after),
            )
        },
        "exporter_exit_code": exit_code,
        "checks": [{**asdict(c), "ok": c.ok} for c in checks],
        "passed": all(c.ok for c in checks),
    }


def report(result: dict[str, Any]) -> str:
    lat = result["latency_ms"]
    lines = [
        f"soak: {result['scrapers']} scrapers for {result['duration_seconds']:.1f} s,"
        f" {result['accounts']} accounts polled every {result['interval']}"
        f" (timeout {result['timeout']}), vendors failing at random",
        f"  scrapes            {result['scrapes']} ({result['scrapes_per_second']}/s),"
        f" failed {result['failed_scrapes']} {result['failures_by_kind'] or ''}"
        f" ({result['fully_parsed_scrapes']} also run through prometheus_client's parser)",
        f"  latency ms         p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}"
        f"  max {lat['max']}",
        *(
            f"    {name + ':':<34} p50 {k['p50']}  p99 {k['p99']}  max {k['max']}"
            for name, k in result["latency_ms_by_kind"].items()
        ),
        f"  exporter CPU       {result['exporter_cpu_percent']}% of one core",
        f"  polls              {result['polls']} by the exporter's counter,"
        f" {result['vendor_requests']} requests seen by the vendors during the load",
        f"  poll errors        {result['poll_errors']}",
        f"  faults applied     {result['faults_applied']}",
        "  exporter process   threads  fds  RSS MiB",
    ]
    for name, s in result["process"].items():
        lines.append(f"    {name:<16} {s['threads']:>7} {s['fds']:>4} {s['rss_mib']:>8}")
    for example in result["failure_examples"]:
        lines.append(f"  failure: {example}")
    for c in result["checks"]:
        verdict = "ok  " if c["ok"] else "FAIL"
        lines.append(f"  {verdict} {c['name']}: {c['value']} <= {c['bound']} ({c['why']})")
    lines.append("PASSED" if result["passed"] else "FAILED")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--seed", type=int, default=None, help="seed of the chaos (random)")
    parser.add_argument(
        "--parse-every",
        type=int,
        default=PARSE_EVERY,
        help="run every Nth scrape of each scraper through prometheus_client's parser"
        " (1: all of them; every scrape gets the cheap checks)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.duration <= 0:
        parser.error("--duration must be positive")
    if args.parse_every < 1:
        parser.error("--parse-every must be at least 1")
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    try:
        result = run(args.duration, seed, args.parse_every)
    except (OSError, RuntimeError) as exc:
        print(f"soak: could not run: {exc}", file=sys.stderr)
        return 2
    result["seed"] = seed
    print(json.dumps(result, indent=2) if args.json else report(result), flush=True)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
