"""/metrics latency with one vendor answering after 5 s, for 5, 50 and 200 accounts.

    python -m benchmarks.scrape_latency [--accounts 5,50,200] [--windows 2] [--json]

Part 1, over real sockets: the exporter's console script polls the vendor simulator
(run in a child process, so its work does not skew this process's timing); one
account's vendor takes SLOW_SECONDS to answer (its own timeout is longer, so the
poll succeeds). Only while that slow poll is in flight (WINDOWS times, from the
moment the vendor sees the request until half a second before it answers), one
client makes back-to-back GETs of /metrics on a keep-alive connection (text format,
as Prometheus keeps its connection) and times each; the exporter's CPU use over the
same time is read from /proc. Two cases:

* polling: every other account is polled every 2 s, so the snapshot changes many
  times a second with 50 or 200 accounts and most scrapes re-render;
* unchanged: every other account is polled once an hour, so after the first round
  the snapshot stays the same and scrapes are served from the render cache.

Part 2, in this process: `MetricsRenderer.render` on a store filled by one real poll
round, timed with an unchanged snapshot (a cache hit), with the snapshot changed
before each call (a miss), and with requests alternating between the text format and
OpenMetrics on an unchanged snapshot (what a Prometheus plus a curl-style scraper do).

Prints a table; nothing is asserted (speed belongs to benchmarks, not to tests).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import sys
import time
from typing import Any, Final

from benchmarks.harness import (
    ExporterProcess,
    SimulatorProcess,
    account_name,
    cpu_seconds,
    make_accounts,
    percentile,
)
from exporter.config import parse_config
from exporter.log import configure as configure_logging
from exporter.poller import Poller
from exporter.render import MetricsRenderer
from exporter.state import StateStore
from exporter.transport import make_client
from tests.support.config import simulator_config
from tests.support.simulator import Fault, VendorSimulator

SLOW_SECONDS: Final = 5.0
# The slow account's own schedule: its timeout outlasts the vendor's 5 s, and it is
# polled again soon after, so the measurement can wait for a poll to be in flight.
SLOW_OVERRIDES: Final = {"interval": "6s", "timeout": "5500ms"}
CASES: Final = {"polling": "2s", "unchanged": "1h"}
TIMEOUT: Final = "1s"
WINDOWS: Final = 2
# A window closes this long before the slow vendor answers.
WINDOW_MARGIN: Final = 0.5
RENDER_CALLS: Final = 200
OPENMETRICS: Final = "application/openmetrics-text; version=1.0.0"


def measure_http(accounts: int, interval: str, windows: int) -> dict[str, Any]:
    """Sequential /metrics latencies, taken only while the slow vendor's poll is in
    flight: in windows that open when the vendor sees the slow request and close
    half a second before it answers."""
    with SimulatorProcess(make_accounts(accounts, prefix="lat")) as sim:
        slow = next(iter(sim.accounts))
        sim.set_fault(slow, Fault(status=200, delay=SLOW_SECONDS))
        config = simulator_config(
            sim,
            name=account_name,
            overrides={slow: SLOW_OVERRIDES},
            interval=interval,
            timeout=TIMEOUT,
        )
        with ExporterProcess(config) as exporter:
            latencies: list[float] = []
            failures = 0
            size = 0
            busy = 0.0  # seconds spent measuring, for the exporter's CPU share
            cpu = 0.0
            conn = http.client.HTTPConnection("127.0.0.1", exporter.port, timeout=10)
            try:
                for _ in range(windows):
                    # Ready means the first round, the slow poll included, is done;
                    # wait for the next slow poll to start.
                    seen = sim.request_count(slow)
                    deadline = time.monotonic() + 30
                    while sim.request_count(slow) == seen:
                        if time.monotonic() > deadline:
                            raise RuntimeError("the slow account was not polled within 30 s")
                        time.sleep(0.02)
                    window_end = time.monotonic() + SLOW_SECONDS - WINDOW_MARGIN
                    cpu_before, began = cpu_seconds(exporter.pid), time.monotonic()
                    while time.monotonic() < window_end:
                        started = time.perf_counter()
                        try:
                            conn.request("GET", "/metrics")
                            response = conn.getresponse()
                            body = response.read()
                        except (OSError, http.client.HTTPException):
                            failures += 1
                            conn.close()
                            conn = http.client.HTTPConnection(
                                "127.0.0.1", exporter.port, timeout=10
                            )
                            continue
                        latencies.append(time.perf_counter() - started)
                        size = len(body)
                        failures += response.status != 200
                    cpu += cpu_seconds(exporter.pid) - cpu_before
                    busy += time.monotonic() - began
            finally:
                conn.close()
    return {
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "max_ms": round(percentile(latencies, 100) * 1000, 2),
        "requests": len(latencies) + failures,
        "failed": failures,
        "windows": windows,
        "body_kib": round(size / 1024, 1),
        "exporter_cpu_percent": round(100 * cpu / busy) if busy else None,
    }


def measure_render(accounts: int, calls: int) -> dict[str, Any]:
    """MetricsRenderer.render: cache hit, cache miss, and alternating formats."""
    with VendorSimulator(make_accounts(accounts, prefix="render")) as sim:
        text = simulator_config(sim, name=account_name, interval="1h", timeout="5s")
        config = parse_config(text, source="<bench>")
        store = StateStore()

        async def one_round() -> None:
            async with make_client() as client:
                poller = Poller(store, client)
                poller.apply_config(config)
                # tick/drain, not run(): on Python 3.11 a cancel() that lands in the
                # loop turn a poll ends in is swallowed by run()'s asyncio.wait_for
                # (CPython gh-86296), and run() would then sleep for the interval.
                deadline = time.monotonic() + 30
                while not poller.first_round_done.is_set() and time.monotonic() < deadline:
                    poller.tick()
                    await poller.drain()
                    await asyncio.sleep(0.05)

        asyncio.run(one_round())
        if not all(s.up for s in store.snapshot().accounts):
            raise RuntimeError("the in-process poll round did not reach every account")
    renderer = MetricsRenderer()
    reload = store.snapshot().reload

    def scrape(accept: str | None) -> None:
        # What a request costs exporter.web: take the snapshot, then render it.
        renderer.render(store.snapshot(), time.time(), accept, None)

    def timed(before: Any, accept: Any) -> tuple[float, int]:
        renders = renderer.renders
        total = 0.0
        for i in range(calls):
            before()
            started = time.perf_counter()
            scrape(accept(i))
            total += time.perf_counter() - started
        return total / calls, renderer.renders - renders

    scrape(None)  # warm the cache
    hit, hit_renders = timed(lambda: None, lambda i: None)
    miss, miss_renders = timed(lambda: store.set_reload(reload), lambda i: None)
    scrape(None)
    alternating, alt_renders = timed(lambda: None, lambda i: OPENMETRICS if i % 2 else None)
    return {
        "hit_us": round(hit * 1e6, 1),
        "hit_renders": hit_renders,
        "miss_ms": round(miss * 1000, 3),
        "miss_renders": miss_renders,
        "alternating_ms": round(alternating * 1000, 3),
        "alternating_renders": alt_renders,
        "calls": calls,
    }


def report(results: list[dict[str, Any]]) -> str:
    lines = [
        f"/metrics latency over HTTP while a vendor takes {SLOW_SECONDS:g} s to answer"
        " (back-to-back keep-alive GETs, text format, only while its poll is in flight)",
        f"{'accounts':>8}  {'body KiB':>8}  {'case':<9}  {'GETs':>6}  {'p50 ms':>7}  {'p99 ms':>7}"
        f"  {'max ms':>7}  {'failed':>6}  {'exporter CPU':>12}",
    ]
    for r in results:
        for case in CASES:
            h = r[case]
            lines.append(
                f"{r['accounts']:>8}  {h['body_kib']:>8}  {case:<9}  {h['requests']:>6}"
                f"  {h['p50_ms']:>7}"
                f"  {h['p99_ms']:>7}  {h['max_ms']:>7}  {h['failed']:>6}"
                f"  {h['exporter_cpu_percent']:>11}%"
            )
    lines += [
        "",
        "MetricsRenderer.render in process, text format (mean per call; renders = times the"
        " quota part was rendered again)",
        f"{'accounts':>8}  {'hit us':>8}  {'miss ms':>8}  {'text/OpenMetrics alternating ms':>31}",
    ]
    for r in results:
        m = r["render"]
        lines.append(
            f"{r['accounts']:>8}  {m['hit_us']:>8}  {m['miss_ms']:>8}"
            f"  {m['alternating_ms']:>12} ({m['alternating_renders']}/{m['calls']} renders)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--accounts", default="5,50,200", help="comma-separated account counts (5,50,200)"
    )
    parser.add_argument(
        "--windows",
        type=int,
        default=WINDOWS,
        help=f"slow polls to measure during, per case (each ~{SLOW_SECONDS - WINDOW_MARGIN:g} s)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    configure_logging("warning", stream=sys.stderr)  # the in-process poll round
    try:
        counts = [int(n) for n in args.accounts.split(",")]
    except ValueError:
        parser.error("--accounts takes comma-separated numbers")
    if any(n < 1 for n in counts) or args.windows < 1:
        parser.error("account counts and --windows must be positive")
    results = []
    try:
        for n in counts:
            row: dict[str, Any] = {"accounts": n}
            for case, interval in CASES.items():
                row[case] = measure_http(n, interval, args.windows)
            row["render"] = measure_render(n, RENDER_CALLS)
            results.append(row)
            if not args.json:
                print(f"... {n} accounts done", file=sys.stderr, flush=True)
    except (OSError, RuntimeError) as exc:
        print(f"scrape_latency: could not run: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(results, indent=2) if args.json else report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
