"""Chaos soak: 50 accounts, vendors failing in every way issue 8 lists, 10 scrapers,
idle and slowloris connections held open, and SIGHUPs, for 3 minutes.

    python -m benchmarks.chaos [--duration 180] [--seed N] [--json]

Extends benchmarks/soak.py (same child processes, same scrape checks, same /proc
sampling). The vendor simulator plays ACCOUNTS keys polled every second; a chaos
thread keeps switching random accounts between healthy and one of FAULTS:

* transport: slower than the timeout, a body dripped a byte at a time, a reset;
* HTTP: 500 with an HTML body, 429 with Retry-After, truncated JSON;
* bodies: `Content-Encoding: gzip` over a body that is not gzip, a gzip bomb
  (small on the wire, GZIP_BOMB_BYTES decoded), a body of HUGE_BODY_BYTES;
* strings: a lone surrogate (`"\\ud800"` as a JSON escape) in a field the adapter
  exports as a label (plan name, client name, key alias) and in an error message;
* numbers: near the float limit (1e308, which unit scaling turns into +Inf) and
  negative used, limit or remaining;
* secrets: the account's own key echoed back in an error message upper-cased,
  percent-encoded, base64-encoded, JSON-escaped (`\\/`), split by a newline or cut
  to its first 16 characters, and put into a field exported as a label.

Meanwhile SCRAPERS threads GET /metrics (keep-alive and fresh connections,
OpenMetrics with gzip and plain text, each with its own Accept header; two ask
for a version nobody asked for before on every scrape), a holder thread keeps
IDLE_CONNECTIONS silent connections and SLOWLORIS_CONNECTIONS connections that
send one header line every SLOWLORIS_LINE_SECONDS open (reopening any the server
closes), and a reload thread sends SIGHUP every HUP_SECONDS, alternating the same
config and one where half the accounts have another timeout. The exporter runs
with RLIMIT_NOFILE 1024, as in a container.

Checks (exit 1 when any fails, 2 when the run could not be set up):

* no failed scrape: a connection error, a status other than 200, a body that is
  not a complete exposition (soak.check_exposition), a quota value that is not a
  finite non-negative number, or a key (in any encoding above) in the body;
* `/` answers 200 with no key on it (fetched every PAGE_SECONDS);
* every account polled in the last RECENT_SECONDS (the simulator's per-key request
  counts, which do not depend on the exporter's own /metrics answering);
* threads, fds and RSS flat from the 25 % mark to the end (medians of five
  samples at each), below ceilings that
  a bounded HTTP server keeps while connections are held, and VmHWM (the kernel's
  RSS high-water mark, which sees short spikes) under the shipped 128 MiB limit;
* no key in any encoding on the exporter's stderr (its log), and nothing on stderr
  that is not a JSON log line ("Task exception was never retrieved", a traceback);
* the exporter alive at the end, its last reload successful, exit 0 on SIGTERM.

Asyncio tasks cannot be counted from outside the process (the exporter exposes no
such figure), so a task leak shows here only through the thread, fd and RSS
figures; the report says so.

VidNavigator keys never get the 429 fault: its adapter bans a key for 60 s after a
429 (the vendor's rule), which would make a correct exporter fail the recency check.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import hashlib
import http.client
import json
import math
import random
import re
import selectors
import signal
import socket
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final

from benchmarks.harness import (
    ExporterProcess,
    ProcStats,
    SimulatorProcess,
    account_name,
    cpu_seconds,
    get,
    make_accounts,
    mib,
    percentile,
    proc_stats,
)
from benchmarks.soak import (
    HTML_500,
    RETRY_AFTER_SECONDS,
    SCRAPE_TIMEOUT_SECONDS,
    SLOW_SECONDS,
    TRUNCATED_JSON,
    Check,
    ScrapeLog,
    check_exposition,
    poll_figures,
)
from tests.support.config import simulator_config
from tests.support.simulator import Fault, SimAccount

ACCOUNTS: Final = 50
SCRAPERS: Final = 10
INTERVAL: Final = "1s"
TIMEOUT: Final = "800ms"
# The changed config of every other reload: half the accounts get this timeout.
CHANGED_TIMEOUT: Final = "900ms"
HUP_SECONDS: Final = 3.0
# One account changes state this often: each of the 50 flips every ~5 s on average.
CHAOS_STEP_SECONDS: Final = 0.1
IDLE_CONNECTIONS: Final = 100
SLOWLORIS_CONNECTIONS: Final = 100
SLOWLORIS_LINE_SECONDS: Final = 5.0
GZIP_BOMB_BYTES: Final = 256 * 2**20  # ~250 KiB on the wire
HUGE_BODY_BYTES: Final = 64 * 2**20
DRIP_SECONDS: Final = 0.3  # a byte every 0.3 s: a 100-byte body takes 30 s
RECENT_SECONDS: Final = 20.0
SAMPLE_SECONDS: Final = 1.0
PAGE_SECONDS: Final = 2.0
# Every Nth scrape of each scraper is searched for keys (50 keys x ~20 needles).
LEAK_SCAN_EVERY: Final = 5
MAX_OPEN_FILES: Final = 1024

# --- bounds ---------------------------------------------------------------------
# Flat: growth from the 25 % mark (chaos, scrapers and held connections all in
# full swing) to the end. A fresh-connection scraper holds a second thread and fd
# for a moment, so a sample can be off by a few.
THREAD_GROWTH: Final = SCRAPERS // 2 + 2
FD_GROWTH: Final = SCRAPERS + 8
RSS_GROWTH_MIB: Final = 8.0
# Ceilings over the baseline measured before any load. Threads: what the scrapers
# need (as in soak.py) plus HELD_ALLOWANCE; a server that spends a thread on every
# held connection breaks it. Fds: a held connection costs one fd up to the server's
# connection cap (a quarter of RLIMIT_NOFILE, exporter/web.py), never more, plus the
# vendor client's pool and the scrapers; so fds can never starve polling of sockets.
HELD_ALLOWANCE: Final = 64
THREAD_CEILING: Final = SCRAPERS + SCRAPERS // 2 + 4 + HELD_ALLOWANCE
SERVER_CONNECTION_CAP: Final = min(max(MAX_OPEN_FILES // 4, 16), 256)
VENDOR_POOL: Final = 32  # httpx.Limits(max_connections=...) in exporter/poller.py
FD_CEILING: Final = (
    min(IDLE_CONNECTIONS + SLOWLORIS_CONNECTIONS + SCRAPERS, SERVER_CONNECTION_CAP)
    + VENDOR_POOL
    + 8
)
# The shipped Kubernetes memory limit (deploy/kubernetes/base/deployment.yaml).
RSS_CEILING_MIB: Final = 128.0
THREADS_AFTER_SLACK: Final = 2

# --- keys -----------------------------------------------------------------------


def chaos_key(index: int) -> str:
    """A key with lower-case letters, '/', '+' and '=': upper-casing,
    percent-encoding, base64 and JSON's `\\/` each change it."""
    digest = hashlib.sha256(f"chaos-soak-{index}".encode()).hexdigest()
    return f"ck{index:02d}/{digest[:10]}+{digest[10:22]}="


def key_forms(key: str) -> dict[str, str]:
    """The encodings a vendor may echo a key back in (issue 8)."""
    return {
        "exact": key,
        "upper-case": key.upper(),
        "percent-encoded": urllib.parse.quote(key, safe=""),
        "base64": base64.b64encode(key.encode()).decode(),
        "base64url": base64.urlsafe_b64encode(key.encode()).decode(),
        "json-escaped": key.replace("/", "\\/"),
        "split by a newline": key[:12] + "\n" + key[12:],
        "first 16 characters": key[:16],
    }


# The smallest fragment that counts as a leak: shorter windows of a key could be
# chance; every form above contains one of at least this length unchanged or
# case-folded (a 16-character cut, each half of a split key).
FRAGMENT: Final = 12


class LeakFinder:
    """Finds keys in text in any form of `key_forms`, fragments included.

    Case-insensitive forms (the key and its percent-encoding, JSON-escaped once and
    twice as a JSON log renders it) are searched in the lower-cased text, by every
    FRAGMENT-character window; base64 is case-sensitive and searched whole.
    """

    def __init__(self, names_by_key: dict[str, str]) -> None:
        self._folded: list[tuple[str, str, str]] = []  # (needle, account, form)
        self._exact: list[tuple[str, str, str]] = []
        for key, name in names_by_key.items():
            lower = key.lower()
            for i in range(len(lower) - FRAGMENT + 1):
                self._folded.append((lower[i : i + FRAGMENT], name, "key or a fragment of it"))
            for form in ("percent-encoded", "json-escaped"):
                encoded = key_forms(key)[form].lower()
                self._folded.append((encoded, name, form))
                self._folded.append((encoded.replace("\\", "\\\\"), name, form))
            for form in ("base64", "base64url"):
                self._exact.append((key_forms(key)[form], name, form))

    def find(self, text: str) -> list[tuple[str, str]]:
        """(account, form) of every key found in `text`, each pair once."""
        return sorted(self.find_in_context(text))

    def find_in_context(self, text: str) -> dict[tuple[str, str], str]:
        """(account, form) -> the text around its first occurrence."""
        folded = text.lower()
        # lower() keeps the length of ASCII text; otherwise show the folded text.
        shown = text if len(folded) == len(text) else folded
        found: dict[tuple[str, str], str] = {}
        for haystack, needles in ((folded, self._folded), (text, self._exact)):
            for needle, name, form in needles:
                if (name, form) in found:
                    continue
                at = haystack.find(needle)
                if at >= 0:
                    found[name, form] = shown[max(at - 160, 0) : at + len(needle) + 40]
        return found


# --- faults ---------------------------------------------------------------------

FaultBuilder = Callable[[SimAccount, random.Random], Fault | None]

# Fields each adapter exports as an account_info label (Pictory has none).
_LABEL_BODIES: Final[dict[str, Callable[[str], dict[str, Any]]]] = {
    "vidnavigator": lambda text: {
        "status": "success",
        "data": {
            "subscription": {"plan_id": "pro", "plan_name": text},
            "credits": {"monthly_total": 100, "monthly_remaining": 50},
        },
    },
    "vertaaux": lambda text: {"plan": text, "credits_total": 100, "credits_used": 5},
    "piloterr": lambda text: {
        "remaining": 10,
        "total_used": 5,
        "api_key": {"alias": text, "category": "production"},
    },
    "tornado": lambda text: {"client_name": text, "usage_count": 3, "storage_usage_gb": 1},
}

# Numbers each adapter reads; scaled by minutes x 60 or GB x 2**30 they pass 1.8e308.
_HUGE_BODIES: Final[dict[str, dict[str, Any]]] = {
    "pictory": {"videoMinutes": {"used": 1e308, "limit": 1.5e308}},
    "tornado": {"usage_count": 1, "storage_usage_gb": 1e308, "storage_limit_gb": 1.5e308},
    "piloterr": {"remaining": 1.7e308, "total_used": 1.7e308},
    "vidnavigator": {
        "status": "success",
        "data": {"credits": {"monthly_total": 1.7e308, "monthly_remaining": 1.7e308}},
    },
    "vertaaux": {"plan": "pro", "credits_total": 1.7e308, "credits_used": 1e308},
}
_NEGATIVE_BODIES: Final[dict[str, dict[str, Any]]] = {
    "pictory": {"videoMinutes": {"used": -5, "limit": 600}, "aiCredits": {"used": 5, "limit": -1}},
    "tornado": {
        "usage_count": -3,
        "storage_usage_gb": -1,
        "storage_limit_gb": 10,
        "storage_remaining_gb": -7,
    },
    "piloterr": {"remaining": -100, "total_used": 5, "subscription": {"total": -1}},
    "vidnavigator": {
        "status": "success",
        "data": {"credits": {"monthly_total": -10, "monthly_remaining": -5}},
    },
    "vertaaux": {"plan": "pro", "credits_total": -1, "credits_used": 5, "credits_remaining": -1},
}
SURROGATE: Final = "\\ud800"  # as it appears in the JSON text: a lone high surrogate


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def _surrogate_label(account: SimAccount, _rng: random.Random) -> Fault | None:
    body = _LABEL_BODIES.get(account.provider)
    if body is None:
        return None
    # json.dumps would escape the backslash; splice the escape into the JSON text.
    text = _json(body("Pro PLACEHOLDER")).replace(b"PLACEHOLDER", SURROGATE.encode())
    return Fault(200, body=text)


def _surrogate_error(_account: SimAccount, rng: random.Random) -> Fault:
    status = rng.choice([400, 500, 503])
    body = b'{"message": "quota service ' + SURROGATE.encode() + b' unavailable", "error": "e"}'
    return Fault(status, body=body)


def _key_echo(account: SimAccount, rng: random.Random) -> Fault:
    form, echoed = rng.choice(list(key_forms(account.api_key).items()))
    status = rng.choice([400, 401, 403, 500])
    if form == "json-escaped":
        # The `\/` escape lives in the JSON text; json.dumps does not write it.
        inner = json.dumps(f"invalid api key {account.api_key}").replace("/", "\\/")
        body = b'{"message": ' + inner.encode() + b"}"
    else:
        body = _json({"message": f"invalid api key {echoed}", "error": "unauthorized"})
    return Fault(status, body=body)


def _key_in_label(account: SimAccount, _rng: random.Random) -> Fault | None:
    body = _LABEL_BODIES.get(account.provider)
    return None if body is None else Fault(200, body=_json(body(account.api_key)))


def _rate_limited(account: SimAccount, _rng: random.Random) -> Fault | None:
    if account.provider == "vidnavigator":
        return None  # its adapter's own 60 s ban (module docstring)
    return Fault(
        429,
        body=b'{"error": "rate limit exceeded"}',
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _fixed(fault: Fault) -> FaultBuilder:
    return lambda _account, _rng: fault


FAULTS: Final[dict[str, FaultBuilder]] = {
    "slow": _fixed(Fault(200, delay=SLOW_SECONDS)),
    "drip": _fixed(
        Fault(200, body=b'{"credits_total": 100, "credits_used": 1}', drip=DRIP_SECONDS)
    ),
    "reset": _fixed(Fault(reset=True)),
    "http_500_html": _fixed(Fault(500, body=HTML_500, headers={"Content-Type": "text/html"})),
    "rate_limited": _rate_limited,
    "truncated_json": _fixed(Fault(200, body=TRUNCATED_JSON)),
    "gzip_not_gzip": _fixed(
        Fault(200, body=b'{"credits_total": 100}', headers={"Content-Encoding": "gzip"})
    ),
    "gzip_bomb": _fixed(Fault(200, gzip_bomb=GZIP_BOMB_BYTES)),
    "huge_body": _fixed(Fault(200, stream_bytes=HUGE_BODY_BYTES)),
    "surrogate_label": _surrogate_label,
    "surrogate_error": _surrogate_error,
    "huge_numbers": lambda a, _rng: Fault(200, body=_json(_HUGE_BODIES[a.provider])),
    "negative_numbers": lambda a, _rng: Fault(200, body=_json(_NEGATIVE_BODIES[a.provider])),
    "key_echo": _key_echo,
    "key_in_label": _key_in_label,
}
# Healthy about as often as all faults together: accounts keep coming back.
HEALTHY_WEIGHT: Final = len(FAULTS)


def chaos(
    sim: SimulatorProcess,
    rng: random.Random,
    stop: threading.Event,
    applied: Counter[str],
    history: dict[str, list[tuple[float, str]]],
) -> None:
    accounts = list(sim.accounts.values())
    names = ["healthy", *FAULTS]
    weights = [HEALTHY_WEIGHT, *[1] * len(FAULTS)]
    while not stop.wait(CHAOS_STEP_SECONDS):
        account = rng.choice(accounts)
        name = rng.choices(names, weights)[0]
        fault = None if name == "healthy" else FAULTS[name](account, rng)
        if fault is None:
            name = "healthy"
        sim.set_fault(account.api_key, fault)
        applied[name] += 1
        history[account.api_key].append((time.monotonic(), name))


# --- scrapers -------------------------------------------------------------------

OPENMETRICS_ACCEPT: Final = "application/openmetrics-text; version=1.0.0"


@dataclass(frozen=True)
class ScraperKind:
    keepalive: bool  # one HTTP/1.1 connection (Prometheus) or one per scrape (curl)
    openmetrics: bool  # the format the Accept header negotiates
    gzip: bool
    accept: Callable[[int], str | None]  # the header for the n-th scrape (None: none)


SCRAPER_KINDS: Final = (
    ScraperKind(True, True, True, lambda _n: OPENMETRICS_ACCEPT),  # Prometheus 2
    ScraperKind(
        False,
        True,
        True,
        lambda _n: (
            "application/openmetrics-text;version=1.0.0;q=0.9,"
            "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ),
    ),
    ScraperKind(True, False, False, lambda _n: "text/plain; version=0.0.4"),
    ScraperKind(False, False, False, lambda _n: "*/*"),  # curl
    # A version per scrape: a render cache keyed by the negotiated content type
    # (which carries the version) grows by one entry each time (issue 8).
    ScraperKind(True, True, True, lambda n: f"application/openmetrics-text; version=1.0.{n}"),
    ScraperKind(False, True, True, lambda n: f"application/openmetrics-text; version=1.{n}.0"),
    ScraperKind(True, False, False, lambda _n: "text/plain;version=0.0.4;charset=utf-8"),
    ScraperKind(False, False, False, lambda _n: None),
    ScraperKind(
        True,
        True,
        True,
        lambda _n: "application/openmetrics-text; version=1.0.0; escaping=allow-utf-8",
    ),
    # Text with gzip, and a parameter per scrape that negotiation drops.
    ScraperKind(False, False, True, lambda n: f"text/plain; version=0.0.4; n={n}"),
)


def scraper_name(index: int) -> str:
    kind = SCRAPER_KINDS[index % len(SCRAPER_KINDS)]
    connection = "keep-alive" if kind.keepalive else "fresh"
    body = ("OM" if kind.openmetrics else "text") + ("+gzip" if kind.gzip else "")
    return f"{index}: {connection}, {body}, Accept {kind.accept(7)!r}"


_QUOTA_VALUE: Final = re.compile(
    rb"^(saas_quota_(?:used|limit|remaining))\{([^\n]*)\} (\S+)", re.MULTILINE
)


def bad_values(body: bytes) -> list[str]:
    """Quota gauges that are not finite, non-negative numbers."""
    bad = []
    for name, labels, raw in _QUOTA_VALUE.findall(body):
        value = float(raw)
        if not math.isfinite(value) or value < 0:
            bad.append(f"{name.decode()}{{{labels.decode()}}} {raw.decode()}")
    return bad


def scraper(
    index: int,
    port: int,
    deadline: float,
    stop: threading.Event,
    leaks: LeakFinder,
    log: ScrapeLog,
    leaked: Counter[tuple[str, str]],
) -> None:
    kind = SCRAPER_KINDS[index % len(SCRAPER_KINDS)]
    keepalive, openmetrics = kind.keepalive, kind.openmetrics
    conn: http.client.HTTPConnection | None = None
    n = 0
    while time.monotonic() < deadline and not stop.is_set():
        n += 1
        headers = {"Accept-Encoding": "gzip" if kind.gzip else "identity"}
        if (value := kind.accept(n)) is not None:
            headers["Accept"] = value
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
            time.sleep(0.05)  # a dead server must not spin this thread
            continue
        elapsed = time.perf_counter() - started
        if not keepalive or response.will_close:
            conn.close()
            conn = None
        if response.status != 200:
            log.fail("status", f"{response.status}: {body[:200]!r}")
            time.sleep(0.05)
            continue
        try:
            problem = check_exposition(body, response.headers, openmetrics, ACCOUNTS, False)
        except Exception as exc:  # a decoding error is what we look for
            problem = f"{type(exc).__name__}: {exc}"
        if problem is not None:
            log.fail("exposition", problem)
            continue
        if response.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        elif kind.gzip:
            log.fail("exposition", "asked for gzip, got no Content-Encoding")
            continue
        if bad := bad_values(body):
            log.fail("value", f"{len(bad)} bad quota values, e.g. {bad[0]}")
            continue
        if n % LEAK_SCAN_EVERY == 0 and (
            found := leaks.find_in_context(body.decode(errors="replace"))
        ):
            leaked.update(found.keys())
            (name, form), context = next(iter(found.items()))
            log.fail("key on /metrics", f"{name} ({form}): ...{context}...")
            continue
        log.latencies.append(elapsed)
    if conn is not None:
        conn.close()


# --- held connections -------------------------------------------------------------


@dataclass
class HeldFigures:
    opened: int = 0
    closed_by_server: int = 0
    refused: int = 0
    answered: Counter[str] = field(default_factory=Counter)  # status lines the server sent


def hold_connections(
    port: int, stop: threading.Event, figures: HeldFigures, ready: threading.Event
) -> None:
    """Keep IDLE_CONNECTIONS silent and SLOWLORIS_CONNECTIONS slow ones open."""
    selector = selectors.DefaultSelector()
    next_line: dict[socket.socket, float] = {}  # slowloris sockets -> next header line

    def open_one(slow: bool) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            figures.refused += 1
            return
        sock.setblocking(False)
        figures.opened += 1
        selector.register(sock, selectors.EVENT_READ, slow)
        if slow:
            with contextlib.suppress(OSError):
                sock.send(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            next_line[sock] = time.monotonic() + SLOWLORIS_LINE_SECONDS

    for i in range(IDLE_CONNECTIONS + SLOWLORIS_CONNECTIONS):
        open_one(i >= IDLE_CONNECTIONS)
    ready.set()
    while not stop.is_set():
        for key, _ in selector.select(timeout=0.5):
            sock, slow = key.fileobj, key.data
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data.startswith(b"HTTP/"):
                figures.answered[data.split(b"\r\n", 1)[0].decode(errors="replace")] += 1
            if not data or data.startswith(b"HTTP/"):
                # Closed or answered (a 408): an attacker just comes back.
                figures.closed_by_server += not data
                selector.unregister(sock)
                next_line.pop(sock, None)
                sock.close()
                open_one(slow)
        now = time.monotonic()
        for sock, due in list(next_line.items()):
            if now >= due:
                with contextlib.suppress(OSError):
                    sock.send(b"X-Slow: 1\r\n")
                next_line[sock] = now + SLOWLORIS_LINE_SECONDS
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    selector.close()


# --- reloads ----------------------------------------------------------------------


def reloader(
    exporter: ExporterProcess,
    configs: tuple[str, str],
    stop: threading.Event,
    sent: Counter[str],
    times: list[tuple[float, str]],
) -> None:
    """SIGHUP every HUP_SECONDS: the same config, then a changed one, and so on."""
    current = 0
    step = 0
    while not stop.wait(HUP_SECONDS):
        if step % 2:
            current = 1 - current
            exporter.write_config(configs[current])
            kind = "changed"
        else:
            kind = "unchanged"
        step += 1
        try:
            exporter.send_signal(signal.SIGHUP)
        except ProcessLookupError:
            return
        sent[kind] += 1
        times.append((time.monotonic(), kind))


# --- sampling ---------------------------------------------------------------------


@dataclass
class Samples:
    process: list[tuple[float, ProcStats]] = field(default_factory=list)
    # (time, requests per key so far), from the simulator.
    polls: list[tuple[float, Counter[str]]] = field(default_factory=list)
    page_failures: Counter[str] = field(default_factory=Counter)
    page_examples: list[str] = field(default_factory=list)
    page_leaks: Counter[tuple[str, str]] = field(default_factory=Counter)


def sampler(
    pid: int,
    port: int,
    sim: SimulatorProcess,
    leaks: LeakFinder,
    stop: threading.Event,
    samples: Samples,
) -> None:
    last_page = 0.0
    while not stop.wait(SAMPLE_SECONDS):
        now = time.monotonic()
        try:
            samples.process.append((now, proc_stats(pid)))
        except OSError:
            return  # the exporter died; the main thread reports it
        samples.polls.append((now, sim.request_counts()))
        if now - last_page < PAGE_SECONDS:
            continue
        last_page = now
        try:
            status, body = get(port, "/", timeout=SCRAPE_TIMEOUT_SECONDS)
        except (OSError, http.client.HTTPException) as exc:
            samples.page_failures["connection"] += 1
            _example(samples.page_examples, f"/: {type(exc).__name__}: {exc}")
            continue
        if status != 200:
            samples.page_failures["status"] += 1
            _example(samples.page_examples, f"/: {status}: {body[:200]!r}")
        if found := leaks.find_in_context(body.decode(errors="replace")):
            samples.page_failures["key on /"] += 1
            samples.page_leaks.update(found.keys())
            (name, form), context = next(iter(found.items()))
            _example(samples.page_examples, f"key on /: {name} ({form}): ...{context}...")


def _example(examples: list[str], text: str) -> None:
    if len(examples) < 5:
        examples.append(text[:300])


# --- stderr -----------------------------------------------------------------------


def read_stderr(text: str, leaks: LeakFinder) -> dict[str, Any]:
    """What the exporter wrote on stderr: JSON log lines and anything else."""
    json_lines = 0
    raw: list[str] = []
    events: Counter[str] = Counter()
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            raw.append(line)
            continue
        json_lines += 1
        if isinstance(record, dict):
            events[f"{record.get('level')}: {record.get('event')}"] += 1
    found = leaks.find_in_context(text)
    never_retrieved = sum("Task exception was never retrieved" in line for line in raw)
    tracebacks = sum(line.startswith("Traceback (most recent call last)") for line in raw)
    exception_lines = Counter(
        line.strip() for line in raw if re.match(r"^[A-Za-z_.]+(Error|Exception)\b", line.strip())
    )
    return {
        "json_lines": json_lines,
        "raw_lines": len(raw),
        "task_exception_never_retrieved": never_retrieved,
        "raw_tracebacks": tracebacks,
        "raw_exceptions": dict(exception_lines.most_common(8)),
        "raw_examples": raw[:12],
        "keys_found": [f"{name} ({form})" for name, form in sorted(found)],
        # Where: the log event around the first few (fake keys; safe to print).
        "key_examples": [
            f"{name} ({form}): ...{context}..." for (name, form), context in sorted(found.items())
        ][:6],
        "top_events": dict(events.most_common(12)),
    }


# --- the run ----------------------------------------------------------------------


def chaos_accounts() -> tuple[list[SimAccount], dict[str, str]]:
    """ACCOUNTS simulated accounts with chaos keys, and key -> account name."""
    accounts = []
    names = {}
    for i, account in enumerate(make_accounts(ACCOUNTS, prefix="chaos")):
        name = account_name(account)  # pictory-0000: no part of the chaos key
        key = chaos_key(i)
        accounts.append(replace(account, api_key=key))
        names[key] = name
    return accounts, names


def run(duration: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    accounts, names = chaos_accounts()
    with SimulatorProcess(accounts) as sim:

        def name(account: SimAccount) -> str:
            return names[account.api_key]

        config = simulator_config(sim, name=name, interval=INTERVAL, timeout=TIMEOUT)
        half = {a.api_key: {"timeout": CHANGED_TIMEOUT} for a in accounts[::2]}
        changed = simulator_config(
            sim, name=name, overrides=half, interval=INTERVAL, timeout=TIMEOUT
        )
        with ExporterProcess(config, max_open_files=MAX_OPEN_FILES) as exporter:
            try:
                return _measure(
                    sim, exporter, (config, changed), names, duration, rng, stop, threads
                )
            finally:
                stop.set()
                for thread in threads:
                    thread.join(SCRAPE_TIMEOUT_SECONDS + 5)


def _median(stats: list[ProcStats]) -> ProcStats:
    def mid(values: list[int]) -> int:
        return sorted(values)[len(values) // 2]

    return ProcStats(
        threads=mid([s.threads for s in stats]),
        fds=mid([s.fds for s in stats]),
        rss_bytes=mid([s.rss_bytes for s in stats]),
        rss_high_water_bytes=max(s.rss_high_water_bytes for s in stats),
    )


def _counts_at(polls: list[tuple[float, Counter[str]]], moment: float) -> Counter[str]:
    """Per-key request counts of the last sample at or before `moment`."""
    before = [c for t, c in polls if t <= moment]
    return before[-1] if before else (polls[0][1] if polls else Counter())


def _last_polled(polls: list[tuple[float, Counter[str]]], key: str) -> float | None:
    """When the count of `key` last moved (to within a sample)."""
    last = None
    previous = -1
    for t, counts in polls:
        if counts[key] != previous:
            previous, last = counts[key], t
    return last


def _around(
    last: float,
    began: float,
    faults: list[tuple[float, str]],
    hups: list[tuple[float, str]],
) -> list[str]:
    """What happened to an account around its last poll: the fault in effect then,
    faults and SIGHUPs from just before until a second after (the poll in flight)."""
    before = [f for t, f in faults if t <= last - 2]
    events = [(last - 2, f"in effect: {before[-1] if before else 'healthy'}")]
    events += [(t, f) for t, f in faults if last - 2 < t <= last + 1]
    events += [(t, f"SIGHUP {kind}") for t, kind in hups if last - 2 < t <= last + 1]
    return [f"{round(t - began, 1)}s {what}" for t, what in sorted(events)]


def _measure(
    sim: SimulatorProcess,
    exporter: ExporterProcess,
    configs: tuple[str, str],
    names: dict[str, str],
    duration: float,
    rng: random.Random,
    stop: threading.Event,
    threads: list[threading.Thread],
) -> dict[str, Any]:
    time.sleep(1.0)  # the first poll round, before the baseline
    leaks = LeakFinder(names)
    baseline = proc_stats(exporter.pid)
    applied: Counter[str] = Counter()
    history: dict[str, list[tuple[float, str]]] = {key: [] for key in sim.accounts}
    hups: Counter[str] = Counter()
    hup_times: list[tuple[float, str]] = []
    held = HeldFigures()
    held_ready = threading.Event()
    logs = [ScrapeLog() for _ in range(SCRAPERS)]
    scrape_leaks: Counter[tuple[str, str]] = Counter()
    samples = Samples()
    cpu_before = cpu_seconds(exporter.pid)
    began = time.monotonic()
    deadline = began + duration
    samples.process.append((began, baseline))
    samples.polls.append((began, sim.request_counts()))
    background = [
        threading.Thread(
            target=hold_connections, args=(exporter.port, stop, held, held_ready), name="held"
        ),
        threading.Thread(target=chaos, args=(sim, rng, stop, applied, history), name="chaos"),
        threading.Thread(
            target=reloader, args=(exporter, configs, stop, hups, hup_times), name="reloader"
        ),
        threading.Thread(
            target=sampler,
            args=(exporter.pid, exporter.port, sim, leaks, stop, samples),
            name="sampler",
        ),
    ]
    scrapers = [
        threading.Thread(
            target=scraper,
            args=(i, exporter.port, deadline, stop, leaks, logs[i], scrape_leaks),
            name=f"scraper-{i}",
        )
        for i in range(SCRAPERS)
    ]
    threads += background + scrapers
    for thread in threads:
        thread.start()
    held_ready.wait(30)
    for thread in scrapers:
        thread.join(max(deadline - time.monotonic(), 0) + SCRAPE_TIMEOUT_SECONDS + 5)
    wall = time.monotonic() - began
    cpu = cpu_seconds(exporter.pid) - cpu_before
    stop.set()
    for thread in background:
        thread.join(SCRAPE_TIMEOUT_SECONDS + 5)
    under_load = [(t, s) for t, s in samples.process if t <= deadline - SAMPLE_SECONDS / 2]
    # Medians of five samples: one sample can land on a bomb being decoded, which
    # is the high-water check's business, not the leak detector's.
    end = _median([s for _, s in under_load[-5:]])
    quarter = _median([s for t, s in under_load if t >= began + duration / 4][:5] or [baseline])
    # Polls: the last RECENT_SECONDS of the run against the first ones (the baseline).
    at_start = _counts_at(samples.polls, began)
    early = _counts_at(samples.polls, began + RECENT_SECONDS)
    late_from = _counts_at(samples.polls, deadline - RECENT_SECONDS)
    late_to = _counts_at(samples.polls, deadline)
    stuck = []
    for key, name in names.items():
        if late_to[key] - late_from[key] > 0:
            continue
        last = _last_polled(samples.polls, key)
        since = None if last is None else round(last - began, 1)
        stuck.append(
            {
                "account": name,
                "last_polled_at_s": since,
                "then": [] if last is None else _around(last, began, history[key], hup_times),
            }
        )
    early_polls = sum(early[k] - at_start[k] for k in names)
    late_polls = sum(late_to[k] - late_from[k] for k in names)

    # Vendors healthy again and the attackers gone: what is left is the exporter's.
    for key in sim.accounts:
        sim.set_fault(key, None)
    settle_by = time.monotonic() + 10.0
    after = proc_stats(exporter.pid) if exporter.alive() else end
    while (
        exporter.alive()
        and after.threads > baseline.threads + THREADS_AFTER_SLACK
        and time.monotonic() < settle_by
    ):
        time.sleep(0.2)
        after = proc_stats(exporter.pid)
    try:
        polls: dict[str, Any] = poll_figures(exporter.port)
    except Exception as exc:  # /metrics itself may be what broke
        polls = {"polls": None, "poll_errors": {}, "unreadable": f"{type(exc).__name__}: {exc}"}
    reload_ok = _reload_successful(exporter.port)
    alive = exporter.alive()
    exit_code = exporter.stop()
    stderr = read_stderr(exporter.stderr(), leaks)

    failures: Counter[str] = Counter()
    for log in logs:
        failures.update(log.failures)
    failed = sum(failures.values())
    latencies = [x for log in logs for x in log.latencies]
    stats = [s for _, s in samples.process]
    peak = ProcStats(
        threads=max(s.threads for s in stats),
        fds=max(s.fds for s in stats),
        rss_bytes=max(s.rss_bytes for s in stats),
        rss_high_water_bytes=max(s.rss_high_water_bytes for s in stats),
    )
    checks = [
        Check("failed scrapes", failed, 0, "every scrape a complete, clean exposition"),
        Check("failed / pages", sum(samples.page_failures.values()), 0, "200, no key"),
        Check(
            f"accounts not polled in the last {RECENT_SECONDS:g} s",
            len(stuck),
            0,
            "simulator's per-key request counts",
        ),
        Check("keys in stderr (any encoding)", len(stderr["keys_found"]), 0, "none"),
        Check(
            "keys on /metrics and / (any encoding)",
            len(set(scrape_leaks) | set(samples.page_leaks)),
            0,
            "none",
        ),
        Check(
            "non-JSON lines on stderr",
            stderr["raw_lines"],
            0,
            f"{stderr['task_exception_never_retrieved']} 'Task exception was never retrieved',"
            f" {stderr['raw_tracebacks']} raw tracebacks",
        ),
        Check(
            "thread growth 25%->end",
            end.threads - quarter.threads,
            THREAD_GROWTH,
            "flat",
        ),
        Check("fd growth 25%->end", end.fds - quarter.fds, FD_GROWTH, "flat"),
        Check(
            "RSS growth 25%->end (MiB)",
            round(mib(end.rss_bytes - quarter.rss_bytes), 1),
            RSS_GROWTH_MIB,
            "flat",
        ),
        Check(
            "peak threads",
            peak.threads,
            baseline.threads + THREAD_CEILING,
            f"baseline + {THREAD_CEILING} ({IDLE_CONNECTIONS + SLOWLORIS_CONNECTIONS} held)",
        ),
        Check(
            "peak fds",
            peak.fds,
            baseline.fds + FD_CEILING,
            f"baseline + {FD_CEILING} (held and scrapers up to the server's cap of"
            f" {SERVER_CONNECTION_CAP}, the vendor pool, slack)",
        ),
        Check(
            "RSS high-water mark (MiB)",
            round(mib(peak.rss_high_water_bytes), 1),
            RSS_CEILING_MIB,
            "the shipped Kubernetes memory limit",
        ),
        Check(
            "threads after load",
            after.threads,
            baseline.threads + THREADS_AFTER_SLACK,
            f"baseline + {THREADS_AFTER_SLACK}",
        ),
        Check(
            "last reload successful",
            0 if reload_ok else 1,
            0,
            "gauge is 1 at the end" if reload_ok is not None else "unknown: /metrics failed",
        ),
        Check("exporter exit code", 0 if alive and exit_code == 0 else 1, 0, "alive, exits 0"),
    ]
    return {
        "duration_seconds": round(wall, 2),
        "accounts": ACCOUNTS,
        "scrapers": SCRAPERS,
        "interval": INTERVAL,
        "timeout": TIMEOUT,
        "scrapes": len(latencies) + failed,
        "failed_scrapes": failed,
        "failures_by_kind": dict(failures),
        "failure_examples": {
            kind: [e for log in logs for e in log.examples_by_kind.get(kind, [])][:3]
            for kind in failures
        },
        "failures_by_scraper": {
            scraper_name(i): sum(log.failures.values()) for i, log in enumerate(logs)
        },
        "latency_ms": {
            name: round(percentile(latencies, q) * 1000, 2)
            for name, q in (("p50", 50), ("p99", 99), ("max", 100))
        },
        "exporter_cpu_percent": round(100 * cpu / wall),
        "pages": {
            "failures": dict(samples.page_failures),
            "examples": samples.page_examples,
        },
        "polls_first_window": early_polls,
        "polls_last_window": late_polls,
        "recent_seconds": RECENT_SECONDS,
        "stuck_accounts": stuck,
        **polls,
        "faults_applied": dict(applied),
        "sighups": dict(hups),
        "held_connections": {
            "held": IDLE_CONNECTIONS + SLOWLORIS_CONNECTIONS,
            "opened": held.opened,
            "closed_by_server": held.closed_by_server,
            "refused": held.refused,
            "answered": dict(held.answered),
        },
        "keys_on_pages": sorted(
            f"{name} ({form})" for name, form in set(scrape_leaks) | set(samples.page_leaks)
        ),
        "stderr": stderr,
        "asyncio_tasks": "not measurable from outside the process; see threads, fds, RSS",
        "process": {
            name: {
                "threads": s.threads,
                "fds": s.fds,
                "rss_mib": round(mib(s.rss_bytes), 1),
                "rss_high_water_mib": round(mib(s.rss_high_water_bytes), 1),
            }
            for name, s in (
                ("baseline", baseline),
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


def _reload_successful(port: int) -> bool | None:
    """The reload gauge at the end; None when /metrics does not answer."""
    try:
        status, body = get(port, "/metrics", timeout=SCRAPE_TIMEOUT_SECONDS)
    except (OSError, http.client.HTTPException):
        return None
    if status != 200:
        return None
    return b"\nsaas_quota_config_last_reload_successful 1.0\n" in body


def _lines(items: Iterable[str], indent: str = "    ") -> list[str]:
    return [indent + item for item in items]


def report(result: dict[str, Any]) -> str:
    lat = result["latency_ms"]
    stderr = result["stderr"]
    held = result["held_connections"]
    lines = [
        f"chaos soak: {result['accounts']} accounts every {result['interval']}"
        f" (timeout {result['timeout']}), {result['scrapers']} scrapers,"
        f" {held['held']} held connections, {result['duration_seconds']:.1f} s",
        f"  scrapes            {result['scrapes']}, failed {result['failed_scrapes']}"
        f" {result['failures_by_kind'] or ''}",
        f"  latency ms (ok)    p50 {lat['p50']}  p99 {lat['p99']}  max {lat['max']}",
        *_lines(f"{name}: {n} failed" for name, n in result["failures_by_scraper"].items()),
        f"  / pages            failures {result['pages']['failures'] or 0}",
        f"  exporter CPU       {result['exporter_cpu_percent']}% of one core",
        f"  vendor requests    first {result['recent_seconds']:g} s {result['polls_first_window']}"
        f"  |  last {result['recent_seconds']:g} s {result['polls_last_window']}",
        f"  stuck accounts     {len(result['stuck_accounts'])}",
        *_lines(
            f"{s['account']}: last request at {s['last_polled_at_s']} s; {', '.join(s['then'])}"
            for s in result["stuck_accounts"][:12]
        ),
        f"  polls (exporter)   {result.get('polls')}  errors {result.get('poll_errors')}"
        + (f"  /metrics unreadable: {result['unreadable']}" if "unreadable" in result else ""),
        f"  faults applied     {result['faults_applied']}",
        f"  SIGHUPs            {result['sighups']}",
        f"  held connections   opened {held['opened']}, closed by the server"
        f" {held['closed_by_server']}, refused {held['refused']}, answered {held['answered']}",
        f"  stderr             {stderr['json_lines']} JSON lines, {stderr['raw_lines']} other"
        f" ({stderr['task_exception_never_retrieved']} 'Task exception was never retrieved',"
        f" {stderr['raw_tracebacks']} tracebacks)",
        *_lines(f"{n} x {text}" for text, n in stderr["raw_exceptions"].items()),
        f"  keys in stderr     {stderr['keys_found'] or 'none'}",
        f"  keys on pages      {result['keys_on_pages'] or 'none'}",
        f"  asyncio tasks      {result['asyncio_tasks']}",
        "  exporter process   threads   fds  RSS MiB  high-water MiB",
    ]
    for name, s in result["process"].items():
        lines.append(
            f"    {name:<16} {s['threads']:>7} {s['fds']:>5} {s['rss_mib']:>8}"
            f" {s['rss_high_water_mib']:>15}"
        )
    for kind, examples in result["failure_examples"].items():
        lines += [f"  failed scrape, {kind}: {example}" for example in examples]
    lines += [f"  failed page: {example}" for example in result["pages"]["examples"]]
    lines += [f"  key in stderr: {example!r}" for example in stderr["key_examples"]]
    for c in result["checks"]:
        verdict = "ok  " if c["ok"] else "FAIL"
        lines.append(f"  {verdict} {c['name']}: {c['value']} <= {c['bound']} ({c['why']})")
    lines.append("PASSED" if result["passed"] else "FAILED")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of chaos")
    parser.add_argument("--seed", type=int, default=None, help="seed of the chaos (random)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.duration < 2 * RECENT_SECONDS:
        parser.error(f"--duration must be at least {2 * RECENT_SECONDS:g} s")
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    try:
        result = run(args.duration, seed)
    except (OSError, RuntimeError) as exc:
        print(f"chaos: could not run: {exc}", file=sys.stderr)
        return 2
    result["seed"] = seed
    print(json.dumps(result, indent=2) if args.json else report(result), flush=True)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
