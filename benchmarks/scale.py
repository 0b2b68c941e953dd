"""Scale: the table of issue 11 for 100 / 1,000 / 3,000 / 10,000 accounts.

For each account count it runs the exporter as a child process against a stand-in
vendor (an asyncio server in its own process answering the five vendors' recorded
bodies from tests/fixtures, optionally after a fixed latency: far faster than the
ThreadingHTTPServer simulator, so the vendor is never the bottleneck), and a
static-bytes server (another process) serving the exporter's own exposition bytes.
Scrapes of the two alternate in short windows in the same run, so both see the same
machine load. Figures:

- exposition size and series; render time after a change (in this process, on a
  store of the same accounts: `MetricsRenderer.render` after one account changed);
- /metrics p50/p99/max for 1 and 10 concurrent clients, while no poll lands
  (interval 1h after the first round) and while polls land (the --interval), and
  each as a ratio to the static server;
- first-round time (start to /-/ready) at 0 and 200 ms vendor latency;
- steady state: `--intervals` whole intervals (3 by default) of polls landing with
  one Prometheus-like scraper (OpenMetrics, gzip, every 15 s): CPU % of one core, RSS
  and its peak, and polls on time (no gap between two polls of an account longer
  than the interval plus its 10 % jitter plus 2 s). Polls on time are counted again
  over the latency windows above, where 1 and then 10 clients scrape back to back.

The interval while polls land is 60 s up to 3,000 accounts and 5 minutes above
(issue 11's figures), unless `--interval` says otherwise.

Run from the repository root: `python -m benchmarks.scale` (`make bench-scale`);
`--quick` is 100 and 1,000 accounts with short windows (under ~2 minutes);
`--accounts 100,3000` picks the counts. Timing goals are printed, never asserted.
It uses only the public MetricsRenderer.render call, so the same script measures
an older checkout too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import itertools
import multiprocessing
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any, Final

from benchmarks.harness import ExporterProcess, cpu_seconds, percentile, proc_stats
from exporter.providers import PROVIDERS
from exporter.render import MetricsRenderer
from exporter.state import AccountState, ReloadStatus, StateStore
from tests.unit.providers.fixtures import recorded

# One recorded success case per vendor: ~34 series an account on average.
CASES: Final = (
    ("pictory", "quota"),
    ("tornado", "usage_key_with_limits"),
    ("piloterr", "usage_expiring_key"),
    ("vidnavigator", "usage_v3_unlimited"),
    ("vertaaux", "quota_pro"),
)
_ACCOUNT_PATH: Final = re.compile(rb"^/a/(\d+)(/[^ ?]*)")


# --- the stand-in vendor ------------------------------------------------------------


def _vendor_main(latency: float, conn: Connection) -> None:
    """Answer every vendor's path with its recorded case; log (account, time) per poll.

    Each account has its own base_url `/a/<index>`, so a poll names its account in
    the path whatever header the vendor's key travels in.
    """
    answers: dict[bytes, bytes] = {}
    for provider, case in CASES:
        rec = recorded(provider, case)
        head = [f"HTTP/1.1 {rec.status} OK", f"Content-Length: {len(rec.body)}"]
        head += [
            f"{k}: {v}"
            for k, v in rec.headers.items()
            if k.lower() not in ("content-length", "transfer-encoding", "connection")
        ]
        if not any(k.lower() == "content-type" for k in rec.headers):
            head.append("Content-Type: application/json")
        answers[PROVIDERS[provider].path.encode()] = (
            "\r\n".join(head).encode() + b"\r\n\r\n" + rec.body
        )
    polls: list[tuple[int, float]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                match = _ACCOUNT_PATH.match(head.split(b" ", 2)[1])
                if latency:
                    await asyncio.sleep(latency)
                if match is None or match.group(2) not in answers:
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                else:
                    polls.append((int(match.group(1)), time.time()))
                    writer.write(answers[match.group(2)])
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        conn.send(server.sockets[0].getsockname()[1])
        loop = asyncio.get_running_loop()
        while True:
            ask = await loop.run_in_executor(None, conn.recv)
            if ask == "polls":
                conn.send(list(polls))
            else:
                server.close()
                return

    asyncio.run(main())


class StandInVendor:
    def __init__(self, latency: float = 0.0) -> None:
        parent, child = multiprocessing.Pipe()
        self._conn = parent
        self._proc = multiprocessing.Process(
            target=_vendor_main, args=(latency, child), daemon=True
        )
        self._proc.start()
        self.port: int = parent.recv()

    def polls(self) -> list[tuple[int, float]]:
        self._conn.send("polls")
        result: list[tuple[int, float]] = self._conn.recv()
        return result

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.terminate()


# Keys look like real ones (random, 32 characters), so the scrubber's index costs
# what it costs in production: keys sharing a long suffix would share its windows.
_KEY_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def config_text(vendor: StandInVendor, count: int, interval: str) -> str:
    rng = random.Random(count)
    lines = ["global:", f"  interval: {interval}", "  timeout: 5s", "accounts:"]
    for i in range(count):
        provider = CASES[i % len(CASES)][0]
        key = "".join(rng.choices(_KEY_ALPHABET, k=32))
        lines += [
            f"  - provider: {provider}",
            f"    account: customer-{i:05d}",
            f'    api_key: "{key}"',
            f"    base_url: http://127.0.0.1:{vendor.port}/a/{i}",
        ]
    return "\n".join(lines) + "\n"


# --- the static-bytes server ------------------------------------------------------------


def _static_main(body: bytes, content_type: str, conn: Connection) -> None:
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(head)
                writer.write(body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        conn.send(server.sockets[0].getsockname()[1])
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)

    asyncio.run(main())


@contextlib.contextmanager
def static_server(body: bytes, content_type: str) -> Iterator[int]:
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.Process(
        target=_static_main, args=(body, content_type, child), daemon=True
    )
    proc.start()
    try:
        yield parent.recv()
    finally:
        parent.send("stop")
        proc.join(5)
        if proc.is_alive():
            proc.terminate()


# --- scraping -----------------------------------------------------------------------


# What Prometheus 2.x sends; with gzip, as it always asks.
PROMETHEUS_ACCEPT: Final = (
    "application/openmetrics-text;version=1.0.0;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
SCRAPE_EVERY: Final = 15.0


def prometheus_scraper(port: int, seconds: float) -> list[float]:
    """Scrape like one Prometheus for `seconds`: a gzip OpenMetrics GET every 15 s."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    while True:
        started = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                conn.request(
                    "GET",
                    "/metrics",
                    headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"},
                )
                conn.getresponse().read()
            finally:
                conn.close()
            latencies.append(time.perf_counter() - started)
        except (OSError, http.client.HTTPException):
            latencies.append(float("inf"))
        left = deadline - time.monotonic()
        if left <= 0:
            return latencies
        time.sleep(min(left, max(0.0, SCRAPE_EVERY - (time.perf_counter() - started))))


def scrape_window(port: int, clients: int, seconds: float) -> list[float]:
    """Latencies (s) of back-to-back GET /metrics from `clients` keep-alive clients."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                conn.request("GET", "/metrics")
                response = conn.getresponse()
                response.read()
                took = time.perf_counter() - started
                with lock:
                    latencies.append(took)
        except (OSError, http.client.HTTPException):
            with lock:
                latencies.append(float("inf"))  # a failed scrape counts as the worst
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def interleaved(
    exporter_port: int, static_port: int, clients: int, rounds: int, window: float
) -> dict[str, list[float]]:
    """Alternate windows on the exporter and on the static server."""
    out: dict[str, list[float]] = {"exporter": [], "static": []}
    for _ in range(rounds):
        out["exporter"] += scrape_window(exporter_port, clients, window)
        out["static"] += scrape_window(static_port, clients, window)
    return out


def summary(latencies: list[float]) -> dict[str, float]:
    return {
        "n": float(len(latencies)),
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": max(latencies, default=float("nan")),
    }


def fetch(port: int) -> tuple[bytes, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        return response.read(), response.getheader("Content-Type") or "text/plain"
    finally:
        conn.close()


def wait_ready(exporter: ExporterProcess, cap: float) -> float | None:
    """Seconds from spawn until /-/ready says 200; None past `cap`."""
    started = time.monotonic()
    while time.monotonic() - started < cap:
        if not exporter.alive():
            raise RuntimeError(f"the exporter exited:\n{exporter.logs()[-3000:]}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", exporter.port, timeout=5)
            try:
                conn.request("GET", "/-/ready")
                if conn.getresponse().status == 200:
                    return time.monotonic() - started
            finally:
                conn.close()
        time.sleep(0.2)
    return None


def spawn(config: str) -> ExporterProcess:
    exporter = ExporterProcess(config)
    with exporter.log_path.open("ab") as out, exporter.stderr_path.open("ab") as err:
        exporter.proc = subprocess.Popen(exporter.args, stdout=out, stderr=err)
    return exporter


# --- render after a change, in process ---------------------------------------------------


def render_after_change(count: int, repeats: int = 3) -> dict[str, float]:
    now = time.time()
    readings = []
    for provider, case in CASES:
        rec = recorded(provider, case)
        readings.append((provider, PROVIDERS[provider].parse(rec.status, rec.headers, rec.body)))
    store = StateStore()
    store.set_accounts(
        AccountState(
            provider=readings[i % 5][0],
            account=f"customer-{i:05d}",
            interval=300.0,
            max_staleness=900.0,
            up=True,
            polled=True,
            readings=readings[i % 5][1],
            last_success=now - 30,
            last_poll_duration=0.2,
            polls_total=3,
        )
        for i in range(count)
    )
    store.set_reload(ReloadStatus(successful=True, last_success=now))
    renderer = MetricsRenderer(process_metrics=False)
    started = time.perf_counter()
    body = renderer.render(store.snapshot(), now).body
    first = time.perf_counter() - started
    times, gz_times = [], []
    for step in range(repeats):
        key = (readings[step % 5][0], f"customer-{step:05d}")
        store.update(key, lambda s: replace(s, polls_total=s.polls_total + 1))
        started = time.perf_counter()
        renderer.render(store.snapshot(), now)
        times.append(time.perf_counter() - started)
        store.update(key, lambda s: replace(s, polls_total=s.polls_total + 1))
        started = time.perf_counter()
        renderer.render(store.snapshot(), now, None, "gzip")
        gz_times.append(time.perf_counter() - started)
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return {
        "size": float(len(body)),
        "series": float(series),
        "first_render": first,
        "render_after_change": min(times),
        "render_after_change_max": max(times),
        "gzip_render_after_change": min(gz_times),
    }


# --- one account count --------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    interval: float | None  # seconds, while polls land (None: by account count)
    window: float  # seconds per scrape window
    rounds: int  # exporter/static alternations per measurement
    intervals: float  # whole intervals of steady state measured
    first_round_cap: float

    def interval_for(self, count: int) -> float:
        if self.interval is not None:
            return self.interval
        return 60.0 if count <= 3000 else 300.0


def on_time(polls: list[tuple[int, float]], interval: float, since: float) -> dict[str, float]:
    by_account: dict[int, list[float]] = defaultdict(list)
    for index, when in polls:
        by_account[index].append(when)
    gaps = late = 0
    worst = 0.0
    for times in by_account.values():
        times.sort()
        for a, b in itertools.pairwise(times):
            if b < since:
                continue
            gaps += 1
            worst = max(worst, b - a)
            if b - a > interval * 1.1 + 2:
                late += 1
    return {"gaps": float(gaps), "late": float(late), "worst_gap": worst}


def measure(count: int, plan: Plan) -> dict[str, Any]:
    result: dict[str, Any] = {"accounts": count}
    result.update(render_after_change(count))

    # Quiet: interval 1h, first round at 0 ms, then nothing lands.
    vendor = StandInVendor(0.0)
    exporter = spawn(config_text(vendor, count, "1h"))
    try:
        result["first_round_0ms"] = wait_ready(exporter, plan.first_round_cap)
        time.sleep(1.5)  # the renderer publishes the last polls
        body, content_type = fetch(exporter.port)
        result["exposition_bytes"] = len(body)
        with static_server(body, content_type) as static:
            for clients in (1, 10):
                got = interleaved(exporter.port, static, clients, plan.rounds, plan.window)
                result[f"quiet_{clients}"] = {k: summary(v) for k, v in got.items()}
    finally:
        exporter.close()
        vendor.close()

    # Polls landing at the interval, every account polled over and over: first the
    # steady state under one Prometheus-like scraper, then the latency windows.
    interval = plan.interval_for(count)
    result["interval"] = interval
    vendor = StandInVendor(0.0)
    exporter = spawn(config_text(vendor, count, f"{interval:g}s"))
    try:
        ready = wait_ready(exporter, plan.first_round_cap)
        result["first_round_0ms_load_run"] = ready
        steady_from = time.time()
        cpu0, wall0 = cpu_seconds(exporter.pid), time.monotonic()
        scrapes = prometheus_scraper(exporter.port, plan.intervals * interval)
        steady_seconds = time.monotonic() - wall0
        result["steady_seconds"] = steady_seconds
        result["cpu_percent"] = 100 * (cpu_seconds(exporter.pid) - cpu0) / steady_seconds
        stats = proc_stats(exporter.pid)
        result["rss_mib"] = stats.rss_bytes / 2**20
        result["rss_hwm_mib"] = stats.rss_high_water_bytes / 2**20
        result["prometheus_scrapes"] = summary(scrapes)
        windows_from = time.time()
        polls = vendor.polls()
        result["polls"] = on_time([p for p in polls if p[1] <= windows_from], interval, steady_from)
        result["polled_accounts"] = len({i for i, _ in polls})

        body, content_type = fetch(exporter.port)
        cpu0, wall0 = cpu_seconds(exporter.pid), time.monotonic()
        with static_server(body, content_type) as static:
            for clients in (1, 10):
                got = interleaved(exporter.port, static, clients, plan.rounds, plan.window)
                result[f"load_{clients}"] = {k: summary(v) for k, v in got.items()}
        result["windows_cpu_percent"] = (
            100 * (cpu_seconds(exporter.pid) - cpu0) / (time.monotonic() - wall0)
        )
        result["windows_rss_hwm_mib"] = proc_stats(exporter.pid).rss_high_water_bytes / 2**20
        # Gaps that end during the windows (the scrapers' load) and a little after.
        time.sleep(min(interval, 30.0))
        result["window_polls"] = on_time(vendor.polls(), interval, windows_from)
    finally:
        exporter.close()
        vendor.close()

    # First round at 200 ms vendor latency.
    vendor = StandInVendor(0.2)
    exporter = spawn(config_text(vendor, count, "1h"))
    try:
        result["first_round_200ms"] = wait_ready(exporter, plan.first_round_cap)
    finally:
        exporter.close()
        vendor.close()
    return result


# --- the report ---------------------------------------------------------------------------


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds == float("inf"):
        return "fail"
    return f"{seconds * 1000:.1f}" if seconds < 10 else f"{seconds * 1000:.0f}"


def secs(seconds: float | None, cap: float) -> str:
    return f">{cap:g} s" if seconds is None else f"{seconds:.1f} s"


def _on_time_text(polls: dict[str, float]) -> str:
    return (
        f"{polls['gaps'] - polls['late']:.0f}/{polls['gaps']:.0f}"
        f" (worst gap {polls['worst_gap']:.0f} s)"
    )


def report(results: list[dict[str, Any]], plan: Plan) -> str:
    out = [
        f"benchmarks.scale ({os.cpu_count()} cores; steady state over {plan.intervals:g}"
        f" intervals with a Prometheus-like scraper every {SCRAPE_EVERY:g} s;"
        f" {plan.rounds} alternations of {plan.window:g}s windows per latency figure)",
        "",
        "| accounts | series | exposition | render after a change (text / +gzip) |"
        " first round 0 ms / 200 ms | interval | steady: polls on time | CPU % | RSS MiB |"
        " windows (1 and 10 clients): polls on time | CPU % | RSS peak MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        out.append(
            f"| {r['accounts']:,} | {r['series'] / 1000:.1f}k | {r['size'] / 1e6:.1f} MB |"
            f" {ms(r['render_after_change'])} / {ms(r['gzip_render_after_change'])} ms"
            f" (first {ms(r['first_render'])} ms) |"
            f" {secs(r['first_round_0ms'], plan.first_round_cap)} /"
            f" {secs(r['first_round_200ms'], plan.first_round_cap)} |"
            f" {r['interval']:g} s |"
            f" {_on_time_text(r['polls'])}, {r['polled_accounts']:,} accounts |"
            f" {r['cpu_percent']:.1f} | {r['rss_mib']:.0f} (peak {r['rss_hwm_mib']:.0f}) |"
            f" {_on_time_text(r['window_polls'])} | {r['windows_cpu_percent']:.0f} |"
            f" {r['windows_rss_hwm_mib']:.0f} |"
        )
    out += [
        "",
        "/metrics latency in ms, exporter vs static-bytes server (same bytes, same run):"
        " p50 / p99 / max, and the exporter's p50 and p99 as a multiple of the static one.",
        "",
        "| accounts | when | clients | exporter p50/p99/max | static p50/p99/max |"
        " ratio p50, p99 |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        for when in ("quiet", "load"):
            for clients in (1, 10):
                e, s = r[f"{when}_{clients}"]["exporter"], r[f"{when}_{clients}"]["static"]
                label = "no poll lands" if when == "quiet" else "polls land"
                out.append(
                    f"| {r['accounts']:,} | {label} | {clients} |"
                    f" {ms(e['p50'])} / {ms(e['p99'])} / {ms(e['max'])} |"
                    f" {ms(s['p50'])} / {ms(s['p99'])} / {ms(s['max'])} |"
                    f" {e['p50'] / s['p50']:.1f}x, {e['p99'] / s['p99']:.1f}x |"
                )
    out += [
        "",
        "Prometheus-like scrapes (OpenMetrics, gzip) in the steady state, ms p50 / p99 / max: "
        + "; ".join(
            f"{r['accounts']:,}: {ms(r['prometheus_scrapes']['p50'])} /"
            f" {ms(r['prometheus_scrapes']['p99'])} / {ms(r['prometheus_scrapes']['max'])}"
            for r in results
        ),
        "",
        "Goals (issue 11): at 10,000 accounts p50 and p99 within 2x of static; first round"
        " under 60 s at 200 ms; over three 5 m intervals every poll on time, CPU under 25 %,"
        " RSS under 350 MiB. At 3,000 accounts and 60 s, every poll on time with 10"
        " scrapers.",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--accounts", default="100,1000,3000,10000", help="comma-separated")
    parser.add_argument("--quick", action="store_true", help="100 and 1,000, short windows")
    parser.add_argument(
        "--interval",
        type=float,
        default=None,
        help="seconds while polls land (default: 60 up to 3,000 accounts, 300 above)",
    )
    parser.add_argument(
        "--intervals", type=float, default=3.0, help="whole intervals of steady state"
    )
    args = parser.parse_args(argv)
    if args.quick:
        counts = [100, 1000]
        plan = Plan(interval=8.0, window=1.5, rounds=2, intervals=2.0, first_round_cap=20.0)
    else:
        counts = [int(c) for c in args.accounts.replace("_", "").split(",")]
        plan = Plan(
            interval=args.interval,
            window=4.0,
            rounds=3,
            intervals=args.intervals,
            first_round_cap=240.0,
        )
    results = []
    for count in counts:
        print(f"measuring {count} accounts ...", file=sys.stderr, flush=True)
        results.append(measure(count, plan))
        print(report(results[-1:], plan), file=sys.stderr, flush=True)
    print(report(results, plan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
