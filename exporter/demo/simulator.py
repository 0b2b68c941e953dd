"""Stand-in vendors: one local HTTP server that plays every simulated vendor.

`saas-quota-exporter demo` polls it so a newcomer sees real metrics without keys.
Each vendor lives under its own prefix (`/pictory/pictoryapis/v1/quota`, ...), which
is exactly what a config's `base_url` override is for. What each vendor answers is
its record in exporter/demo/vendors/, with usage that grows with time.

This is only what the demo needs; the end-to-end tests' fault injection (resets,
streams, late answers, request logs) extends it in tests/support/simulator.py.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from exporter.demo.vendors import SIMULATED
from exporter.demo.vendors.base import DAY, GB, Moment, SimAccount, SimMeter, SimulatedVendor

__all__ = [
    "DAY",
    "GB",
    "Answer",
    "SimAccount",
    "SimMeter",
    "VendorSimulator",
    "send",
    "send_head",
]


@dataclass(frozen=True)
class Answer:
    """One HTTP response: status, body and headers (a JSON Content-Type unless given)."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


NOT_FOUND: Final = Answer(404, b'{"error": "Not found"}')


class VendorSimulator:
    """A threading HTTP server on loopback that answers as the simulated vendors."""

    def __init__(
        self,
        accounts: Iterable[SimAccount],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        vendors: Mapping[str, SimulatedVendor] = SIMULATED,
    ) -> None:
        self.accounts = {a.api_key: a for a in accounts}
        unknown = sorted({a.provider for a in self.accounts.values()} - set(vendors))
        if unknown:
            raise ValueError(
                f"SimAccount for {', '.join(map(repr, unknown))}: no simulated vendor of "
                f"that name (simulated: {', '.join(vendors)}); add one under "
                "exporter/demo/vendors/ or leave the account out"
            )
        self.vendors = vendors
        self.clock = clock
        self.t0 = clock()
        self.server = _QuietServer((host, port), _make_handler(self))
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def base_url(self, provider: str) -> str:
        return f"http://127.0.0.1:{self.port}/{provider}"

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

    # --- answering ----------------------------------------------------------------

    def vendor_at(self, path: str) -> SimulatedVendor | None:
        """The simulated vendor whose endpoint `path` is, if any."""
        name, _, rest = path.lstrip("/").partition("/")
        vendor = self.vendors.get(name)
        return vendor if vendor is not None and "/" + rest == vendor.path else None

    def api_key(self, path: str, headers: Mapping[str, str]) -> str:
        """The key a request carries, as its vendor sends it ("" when none)."""
        vendor = self.vendor_at(path)
        return "" if vendor is None else vendor.api_key(headers)

    def answer(self, path: str, headers: Mapping[str, str]) -> Answer:
        """The simulated response to a GET of `path` (`headers` with lower-case names)."""
        vendor = self.vendor_at(path)
        if vendor is None:
            return NOT_FOUND
        account = self.accounts.get(vendor.api_key(headers))
        if account is None or account.provider != vendor.name:
            return Answer(401, vendor.unauthorized)
        at = self.moment(account)
        body = json.dumps(vendor.body(account, at)).encode()
        return Answer(200, body, vendor.headers(account, at))

    def respond(
        self, handler: BaseHTTPRequestHandler, path: str, headers: Mapping[str, str]
    ) -> None:
        """Answer one request on `handler`'s connection (tests/support extends this)."""
        send(handler, self.answer(path, headers))

    def moment(self, account: SimAccount) -> Moment:
        now = self.clock()
        return Moment(now, now - self.t0, self.reset_time(account), self.period_start(account))

    def reset_time(self, account: SimAccount) -> datetime:
        return datetime.fromtimestamp(self.t0 + account.reset_in, UTC)

    def period_start(self, account: SimAccount) -> datetime:
        return self.reset_time(account) - timedelta(seconds=account.period_length)


def send_head(
    handler: BaseHTTPRequestHandler, status: int, headers: Mapping[str, str], length: int
) -> None:
    """The status line and headers; JSON unless `headers` names another Content-Type."""
    handler.send_response(HTTPStatus(status))
    if not any(name.lower() == "content-type" for name in headers):
        handler.send_header("Content-Type", "application/json")
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(length))
    handler.end_headers()


def send(handler: BaseHTTPRequestHandler, answer: Answer) -> None:
    try:
        send_head(handler, answer.status, answer.headers, len(answer.body))
        handler.wfile.write(answer.body)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up; nothing to tell


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
            sim.respond(self, self.path.split("?", 1)[0], headers)

    return Handler
