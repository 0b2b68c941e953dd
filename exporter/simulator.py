"""Stand-in vendors: one local HTTP server that plays all five quota endpoints.

`saas-quota-exporter demo` polls it so a newcomer sees real metrics without keys,
and the end-to-end tests poll it to prove behaviour over real sockets. Each vendor
lives under its own prefix (`/pictory/pictoryapis/v1/quota`, ...), which is exactly
what a config's `base_url` override is for. Bodies follow the shapes documented in
docs/providers/, with usage that grows with time.

Tests take control per API key with `set_fault` (status, body, headers, delay).
"""

from __future__ import annotations

import functools
import json
import select
import socket
import struct
import sys
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from exporter.providers import PROVIDERS

GB: Final = 2**30
DAY: Final = 86400.0


@dataclass(frozen=True)
class SimMeter:
    """A meter whose usage grows linearly and wraps at `period` seconds.

    used(t) = min(start + rate * ((t - t0) mod period), limit); no cap without a
    limit. Usage never passes the limit: no vendor documents overage.
    """

    limit: float | None
    start: float = 0.0
    rate: float = 0.0  # units per second
    period: float = 30 * DAY

    def used(self, elapsed: float) -> float:
        value = self.start + self.rate * (elapsed % self.period)
        return value if self.limit is None else min(value, self.limit)


@dataclass
class SimAccount:
    """One simulated API key at one vendor."""

    provider: str
    api_key: str
    meters: dict[str, SimMeter]
    plan: str = "pro"
    # Seconds from the simulator's start until the window resets.
    reset_in: float = 7 * DAY
    period_length: float = 30 * DAY


@dataclass
class Fault:
    """What to answer instead of the simulated body, for one key."""

    status: int = 200
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    # Close the connection without answering (a reset as the client sees it).
    reset: bool = False
    # Stream this many bytes of filler as the body instead of `body`.
    stream_bytes: int = 0
    # A gzip bomb instead of `body`: `Content-Encoding: gzip` and a compressed body
    # that decodes to this many bytes of filler (about a thousandth of it on the wire).
    gzip_bomb: int = 0
    # Send the status line and headers at once, then the body one byte every `drip`
    # seconds: a vendor that answers but never finishes (each read makes progress,
    # so only a timeout over the whole request ends it).
    drip: float = 0.0


class VendorSimulator:
    """A threading HTTP server on loopback that answers as the five vendors."""

    def __init__(
        self,
        accounts: list[SimAccount],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.accounts = {a.api_key: a for a in accounts}
        self.clock = clock
        self.t0 = clock()
        self._faults: dict[str, Fault] = {}
        self._lock = threading.Lock()
        # Notified when a handler thread records how an answer ended (below).
        self._ended = threading.Condition(self._lock)
        self.requests: list[tuple[str, str | None]] = []  # (path, api key) per request
        self.streamed: list[int] = []  # bytes sent per streamed (stream_bytes) answer
        self.hung_up: list[str] = []  # keys whose client left while an answer was delayed
        self.server = _QuietServer((host, port), _make_handler(self))
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def base_url(self, provider: str) -> str:
        return f"http://127.0.0.1:{self.port}/{provider}"

    def wait_for_streams(self, count: int, timeout: float) -> list[int]:
        """Bytes sent per streamed answer, once `count` of them have ended.

        A handler learns that the client hung up only when its next write fails,
        which can be a moment after the client has moved on; tests wait here.
        """
        with self._ended:
            self._ended.wait_for(lambda: len(self.streamed) >= count, timeout)
            return list(self.streamed)

    def wait_for_hang_up(self, api_key: str, timeout: float) -> bool:
        """Whether a client of a delayed answer for `api_key` has closed its connection
        before the answer was due (since the simulator started; waits up to `timeout`
        for it): how a cancelled or timed-out poll looks from the vendor's side."""
        with self._ended:
            return self._ended.wait_for(lambda: api_key in self.hung_up, timeout)

    def start(self) -> VendorSimulator:
        # A short poll interval: stop() waits for it, and tests start many simulators.
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="vendor-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> VendorSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_fault(self, api_key: str, fault: Fault | None) -> None:
        with self._lock:
            if fault is None:
                self._faults.pop(api_key, None)
            else:
                self._faults[api_key] = fault

    def request_count(self, api_key: str) -> int:
        with self._lock:
            return sum(1 for _, key in self.requests if key == api_key)

    # --- answering ----------------------------------------------------------------

    def api_key(self, path: str, headers: Mapping[str, str]) -> str:
        """The key a request carries, as its vendor sends it ("" when none)."""
        adapter = PROVIDERS.get(path.lstrip("/").partition("/")[0])
        if adapter is None:
            return ""
        raw = headers.get(adapter.auth_header.lower(), "")
        return raw.removeprefix(adapter.auth_prefix)

    def answer(self, path: str, headers: Mapping[str, str]) -> tuple[Fault, float]:
        """The response for a request, and how long to wait before sending it."""
        provider, _, rest = path.lstrip("/").partition("/")
        adapter = PROVIDERS.get(provider)
        if adapter is None or "/" + rest != adapter.path:
            return Fault(404, b'{"error": "Not found"}'), 0.0
        key = self.api_key(path, headers)
        with self._lock:
            self.requests.append((path, key or None))
            fault = self._faults.get(key)
        normal = self._normal(provider, self.accounts.get(key))
        if fault is None:
            return normal, 0.0
        if fault.body is None:
            # A fault that sets only a status, headers or timing keeps the normal
            # answer's body and headers; a delay-only fault (status left at 200)
            # keeps its status too, so an unknown key still gets its 401.
            status = normal.status if fault.status == 200 else fault.status
            headers = {**normal.headers, **fault.headers}
            body = normal.body
        else:
            status, headers, body = fault.status, fault.headers, fault.body
        return replace(fault, status=status, body=body, headers=headers, delay=0.0), fault.delay

    def _normal(self, provider: str, account: SimAccount | None) -> Fault:
        if account is None or account.provider != provider:
            return Fault(401, _unauthorized(provider))
        elapsed = self.clock() - self.t0
        body = json.dumps(_BODIES[provider](account, elapsed, self)).encode()
        return Fault(200, body, _headers(account, elapsed, self))

    def reset_time(self, account: SimAccount) -> datetime:
        return datetime.fromtimestamp(self.t0 + account.reset_in, UTC)

    def period_start(self, account: SimAccount) -> datetime:
        return self.reset_time(account) - timedelta(seconds=account.period_length)


class _QuietServer(ThreadingHTTPServer):
    """A client closing a kept-alive connection is normal here, not a traceback."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _make_handler(sim: VendorSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            path = self.path.split("?", 1)[0]
            answer, delay = sim.answer(path, headers)
            if delay and self._client_left_within(delay):
                with sim._ended:
                    sim.hung_up.append(sim.api_key(path, headers) or "")
                    sim._ended.notify_all()
                self.close_connection = True
                return
            if answer.reset:
                # SO_LINGER 0: close sends RST instead of FIN.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
                self.close_connection = True
                return
            if answer.stream_bytes:
                self._stream(answer)
                return
            body = answer.body or b""
            if answer.gzip_bomb:
                body = gzip_filler(answer.gzip_bomb)
                answer = replace(answer, headers={**answer.headers, "Content-Encoding": "gzip"})
            try:
                self.send_response(HTTPStatus(answer.status))
                has_type = any(k.lower() == "content-type" for k in answer.headers)
                if not has_type:
                    self.send_header("Content-Type", "application/json")
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if answer.drip:
                    self._drip(body, answer.drip)
                else:
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test); nothing to tell

        def _drip(self, body: bytes, seconds: float) -> None:
            """One byte every `seconds`, until the body is out or the client leaves."""
            self.wfile.flush()
            for i in range(len(body)):
                if i and self._client_left_within(seconds):
                    self.close_connection = True
                    return
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()

        def _client_left_within(self, delay: float) -> bool:
            """Wait `delay` seconds, or until the client closes the connection."""
            deadline = time.monotonic() + delay
            # The request is read and a GET has no body, so the socket turns readable
            # only at EOF or reset (or a pipelined request, which no client of ours
            # sends: then just wait out the delay). poll(), not select(): select()
            # fails on descriptors past 1023.
            poller = select.poll()
            poller.register(self.connection, select.POLLIN)
            if not poller.poll(delay * 1000):
                return False
            try:
                if self.connection.recv(1, socket.MSG_PEEK):
                    time.sleep(max(0.0, deadline - time.monotonic()))
                    return False
            except OSError:
                pass  # reset by the client: gone all the same
            return True

        def _stream(self, answer: Fault) -> None:
            chunk = b" " * 65536
            sent = 0
            try:
                self.send_response(HTTPStatus(answer.status))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(answer.stream_bytes))
                self.end_headers()
                while sent < answer.stream_bytes:
                    piece = chunk[: answer.stream_bytes - sent]
                    self.wfile.write(piece)
                    sent += len(piece)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading at its cap, as it should
            with sim._ended:
                sim.streamed.append(sent)
                sim._ended.notify_all()

    return Handler


@functools.cache
def gzip_filler(decoded_bytes: int) -> bytes:
    """A gzip member that decodes to `decoded_bytes` spaces (cached: a bomb of
    hundreds of MiB takes a moment to compress and is sent many times)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip header
    chunk = b" " * min(decoded_bytes, 2**20)
    parts = []
    left = decoded_bytes
    while left > 0:
        parts.append(compressor.compress(chunk[:left]))
        left -= min(left, len(chunk))
    parts.append(compressor.flush())
    return b"".join(parts)


def _iso(moment: datetime, millis: bool = False) -> str:
    text = moment.isoformat(timespec="milliseconds" if millis else "seconds")
    return text.replace("+00:00", "Z")


def _used(account: SimAccount, meter: str, elapsed: float) -> float:
    """Usage of a simulated meter; a meter the scenario leaves out reads as 0."""
    sim_meter = account.meters.get(meter)
    return 0.0 if sim_meter is None else round(sim_meter.used(elapsed), 3)


def _limit(account: SimAccount, meter: str) -> float | None:
    sim_meter = account.meters.get(meter)
    return None if sim_meter is None else sim_meter.limit


def _pictory(account: SimAccount, elapsed: float, _sim: VendorSimulator) -> dict[str, Any]:
    fields = {
        "video_minutes": "videoMinutes",
        "transcription_minutes": "transcriptionMinutes",
        "voiceover_minutes": "elevenLabsVoiceOverMinutes",
        "ai_credits": "aiCredits",
    }
    return {
        vendor: {"used": _used(account, meter, elapsed), "limit": _limit(account, meter)}
        for meter, vendor in fields.items()
        if meter in account.meters
    }


def _tornado(account: SimAccount, elapsed: float, sim: VendorSimulator) -> dict[str, Any]:
    used_gb = _used(account, "storage_gb", elapsed)
    limit_gb = _limit(account, "storage_gb")
    body: dict[str, Any] = {
        "client_name": "Demo Pipeline",
        "usage_count": int(_used(account, "jobs", elapsed)),
        "storage_usage_gb": used_gb,
        "storage_reserved_gb": 0.0,
        "storage_effective_usage_gb": used_gb,
        "billing_period_start": _iso(sim.period_start(account)),
        "billing_period_end": _iso(sim.reset_time(account)),
        "current_period_usage_gb": round(used_gb / 2, 3),
    }
    if limit_gb is not None:
        body["storage_limit_gb"] = limit_gb
        body["storage_limit_bytes"] = int(limit_gb * GB)
        body["storage_remaining_gb"] = round(max(limit_gb - used_gb, 0.0), 3)
    return body


def _piloterr(account: SimAccount, elapsed: float, sim: VendorSimulator) -> dict[str, Any]:
    used = int(_used(account, "api_credits", elapsed))
    total = int(_limit(account, "api_credits") or 0)
    reset = sim.reset_time(account)
    return {
        "remaining": total - used,
        "total_used": used,
        "renewal_date": reset.date().isoformat(),
        "period": {
            "start": sim.period_start(account).date().isoformat(),
            "end": reset.date().isoformat(),
        },
        "subscription": {
            "used": used,
            "total": total,
            "remaining": total - used,
            "percent_used": round(100 * used / total, 2) if total else 0,
        },
        "credits": {"given": 0, "consumed": 0, "remaining": 0, "percent_used": 0},
        "rate_limit": {"per_minute": 600, "per_second": None},
        "account": {"name": "Demo", "slug": "demo"},
        "api_key": {
            "alias": "demo",
            "active": True,
            "category": "production",
            "expires": (sim.reset_time(account) + timedelta(days=10)).date().isoformat(),
            "quotas": {"total": None, "daily": 500, "weekly": None, "monthly": None},
        },
    }


def _vidnavigator(account: SimAccount, elapsed: float, sim: VendorSimulator) -> dict[str, Any]:
    total = _limit(account, "credits") or 0.0
    used = _used(account, "credits", elapsed)
    storage_limit = _limit(account, "storage_gb") or 0.0
    storage_used = _used(account, "storage_gb", elapsed)
    start, end = _iso(sim.period_start(account)), _iso(sim.reset_time(account))
    return {
        "status": "success",
        "data": {
            "usage_period": {"start": start, "end": end},
            "billing_period": {"start": start, "end": end, "interval": "month"},
            "subscription": {
                "plan_id": account.plan,
                "plan_name": account.plan.title(),
                "status": "active",
                "interval": "month",
                "cancel_at_period_end": False,
            },
            "credits": {
                "monthly_total": total,
                "monthly_remaining": round(max(total - used, 0.0), 3),
                "purchased": 5,
            },
            "channels_indexed": {"used": 2, "limit": 15, "remaining": 13, "percentage": 13},
            "storage": {
                "used_bytes": int(storage_used * GB),
                "limit_bytes": int(storage_limit * GB),
                "remaining_bytes": int(max(storage_limit - storage_used, 0) * GB),
                "percentage": round(100 * storage_used / storage_limit) if storage_limit else 0,
            },
            "usage": {
                "standard_request": {"used": int(used * 1000), "unit": "requests"},
                "transcription_hour": {"used": round(used / 4, 2), "unit": "hours"},
            },
            "generated_at": _iso(datetime.fromtimestamp(sim.clock(), UTC)),
        },
    }


def _vertaaux(account: SimAccount, elapsed: float, sim: VendorSimulator) -> dict[str, Any]:
    total = _limit(account, "credits") or 0.0
    used = _used(account, "credits", elapsed)
    return {
        "plan": account.plan,
        "credits_total": total,
        "credits_used": used,
        "credits_remaining": max(total - used, 0),
        "reset_date": _iso(sim.reset_time(account), millis=True),
    }


def _headers(account: SimAccount, elapsed: float, sim: VendorSimulator) -> dict[str, str]:
    if account.provider != "vertaaux":
        return {}
    total = _limit(account, "credits") or 0.0
    used = _used(account, "credits", elapsed)
    return {
        "X-RateLimit-Limit": str(int(total)),
        "X-RateLimit-Remaining": str(int(max(total - used, 0))),
        "X-RateLimit-Reset": str(int(sim.reset_time(account).timestamp())),
    }


_BODIES: Final[dict[str, Callable[[SimAccount, float, VendorSimulator], dict[str, Any]]]] = {
    "pictory": _pictory,
    "tornado": _tornado,
    "piloterr": _piloterr,
    "vidnavigator": _vidnavigator,
    "vertaaux": _vertaaux,
}

_UNAUTHORIZED: Final = {
    "pictory": b'{"message": "Unauthorized"}',
    "tornado": b'{"error": "Invalid API Key"}',
    "piloterr": b'{"error": "Invalid API Key"}',
    "vidnavigator": b'{"status": "error", "error": "unauthorized", "message": "Invalid API key"}',
    "vertaaux": b'{"error": "unauthorized", "message": "Invalid or missing API key"}',
}


def _unauthorized(provider: str) -> bytes:
    return _UNAUTHORIZED.get(provider, b'{"error": "unauthorized"}')


def demo_accounts() -> list[SimAccount]:
    """The demo's vendors: usage that moves within minutes, some meters near their caps.

    Rates are chosen so a demo left running for ten minutes has something for each
    dashboard and quota alert: Piloterr runs out, Pictory's video minutes approach
    their cap, the rest burn slowly. The VertaaUX free account is exhausted from the
    start on purpose: its 3 audits a day run out daily by design, and the bundled
    alerts leave the free tier alone (see deploy/prometheus/saas-quota.alerts.yml).
    """
    return [
        SimAccount(
            "pictory",
            "demo-pictory-marketing",
            {
                "video_minutes": SimMeter(limit=600, start=420, rate=0.3, period=DAY),
                "transcription_minutes": SimMeter(limit=600, start=12, rate=0.01),
                "voiceover_minutes": SimMeter(limit=0),
                "ai_credits": SimMeter(limit=3000, start=140.4, rate=0.5),
            },
            reset_in=9 * DAY,
        ),
        SimAccount(
            "tornado",
            "demo-tornado-pipeline",
            {
                "storage_gb": SimMeter(limit=1024, start=700, rate=0.2),
                "jobs": SimMeter(limit=None, start=1200, rate=0.5),
            },
            reset_in=12 * DAY,
        ),
        SimAccount(
            "piloterr",
            "demo-piloterr-scraping",
            {"api_credits": SimMeter(limit=2000, start=1700, rate=0.5, period=DAY)},
            reset_in=4 * DAY,
        ),
        SimAccount(
            "vidnavigator",
            "demo-vidnavigator-research",
            {
                "credits": SimMeter(limit=80, start=30, rate=0.01),
                "storage_gb": SimMeter(limit=500, start=120, rate=0.05),
            },
            plan="voyager",
            reset_in=20 * DAY,
        ),
        SimAccount(
            "vertaaux",
            "demo-vertaaux-audits",
            {"credits": SimMeter(limit=3, start=3)},
            plan="free",
            reset_in=DAY / 3,
            period_length=DAY,
        ),
        SimAccount(
            "vertaaux",
            "demo-vertaaux-agency",
            {"credits": SimMeter(limit=5000, start=1200, rate=1.0, period=DAY)},
            plan="agency",
            reset_in=DAY / 3,
            period_length=DAY,
        ),
    ]
