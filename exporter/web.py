"""The HTTP surface: /metrics, /, /-/healthy, /-/ready and POST /-/reload.

A threading server of the standard library, apart from the asyncio poller: a busy
or stuck poll loop can never delay a scrape, and /metrics only reads the snapshot.
TLS and basic auth from `--web.config.file` plug in through `WebSecurity`.
"""

from __future__ import annotations

import contextlib
import html
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from exporter import __version__
from exporter.collector import MetricsRenderer
from exporter.log import get_logger
from exporter.redaction import REDACTOR
from exporter.state import AccountState, StateStore

OPEN_PATHS = frozenset({"/-/healthy", "/-/ready"})


class WebSecurity(Protocol):
    """TLS and authentication for the HTTP server (exporter.webconfig)."""

    def ssl_context(self) -> ssl.SSLContext | None: ...

    def authorized(self, authorization: str | None) -> bool: ...


@dataclass(frozen=True)
class WebApp:
    """What the handlers need; all of it safe to call from any thread."""

    renderer: MetricsRenderer
    store: StateStore
    ready: Callable[[], bool]
    # Runs a reload on the poller's loop; returns None on success, else the error.
    reload: Callable[[], str | None]
    security: WebSecurity | None = None
    clock: Callable[[], float] = time.time


class ExporterHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # Many scrapers behind one load balancer reconnect at once.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: WebApp) -> None:
        self.app = app
        host = address[0]
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__(address, _Handler)
        self.security = app.security

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and self.server_address[0] in ("::", ""):
            # Dual stack: "::" also accepts IPv4, as Go's ":PORT" does.
            with contextlib.suppress(OSError, AttributeError):
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver's default prints a traceback to stderr, outside the JSON log.
        # Socket errors (a client resetting, timing out, breaking TLS mid-request)
        # are routine: debug. Anything else is a bug of ours: error, once.
        exc = sys.exc_info()[1]
        log = get_logger().debug if isinstance(exc, OSError) else get_logger().error
        log("HTTP handler failed", client=str(client_address[0]), error=repr(exc)[:300])

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the request's own thread, so a client
        # that stalls mid-handshake cannot block accept() for everyone else.
        # Read per connection, so a reload that swaps the web config (new
        # certificates, new users) takes effect for the next connection.
        security = self.security
        context = security.ssl_context() if security else None
        if context is not None:
            request.settimeout(10)
            try:
                request = context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                get_logger().debug("TLS handshake failed", client=client_address[0], error=str(exc))
                return
        super().finish_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: ExporterHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = f"saas-quota-exporter/{__version__}"
    # Used by http.server for a request line it cannot parse: answer with an
    # HTTP/1.x status line, not the bare HTTP/0.9 body no client reads.
    default_request_version = "HTTP/1.0"
    # A scraper that stops reading must not hold a thread forever.
    timeout = 30
    # Headers and body go out in separate writes; with Nagle's algorithm a kept-alive
    # scraper (Prometheus) waits for the delayed ACK, ~40 ms per small scrape.
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        # The product and its version, without the "Python/3.x.y" http.server adds.
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        # The access log is noise at info; errors are logged where they happen.
        return

    def do_GET(self) -> None:
        if self._take_body():
            self._dispatch(head=False)

    def do_HEAD(self) -> None:
        if self._take_body():
            self._dispatch(head=True)

    def do_POST(self) -> None:
        if not self._take_body():
            return
        path = self.path.split("?", 1)[0]
        if not self._authorized(path):
            return
        if path == "/-/reload":
            error = self.server.app.reload()
            if error is None:
                self._send_text(HTTPStatus.OK, "config reloaded\n")
            else:
                self._send_text(
                    HTTPStatus.INTERNAL_SERVER_ERROR, f"failed to reload config: {error}\n"
                )
        elif path in ("/", "/metrics") or path in OPEN_PATHS:
            self._send_text(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "Only GET and HEAD here.\n",
                extra={"Allow": "GET, HEAD"},
            )
        else:
            self._send_text(HTTPStatus.NOT_FOUND, "Not found.\n")

    def _dispatch(self, *, head: bool) -> None:
        path = self.path.split("?", 1)[0]
        if not self._authorized(path, head=head):
            return
        app = self.server.app
        if path == "/metrics":
            rendered = app.renderer.render(
                self.headers.get("Accept"), self.headers.get("Accept-Encoding")
            )
            # Caches and proxies must not hand one scraper's format to another.
            extra = {"Vary": "Accept, Accept-Encoding"}
            if rendered.content_encoding:
                extra["Content-Encoding"] = rendered.content_encoding
            self._send(HTTPStatus.OK, rendered.body, rendered.content_type, extra, head=head)
        elif path == "/":
            page = landing_page(app.store, app.clock()).encode()
            self._send(HTTPStatus.OK, page, "text/html; charset=utf-8", head=head)
        elif path == "/-/healthy":
            self._send_text(HTTPStatus.OK, "Healthy.\n", head=head)
        elif path == "/-/ready":
            if app.ready():
                self._send_text(HTTPStatus.OK, "Ready.\n", head=head)
            else:
                self._send_text(
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    "Not ready: first poll round running.\n",
                    head=head,
                )
        elif path == "/-/reload":
            self._send_text(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "Use POST to reload.\n",
                head=head,
                extra={"Allow": "POST"},
            )
        else:
            self._send_text(HTTPStatus.NOT_FOUND, "Not found.\n", head=head)

    def _authorized(self, path: str, *, head: bool = False) -> bool:
        security = self.server.security
        if security is None or path in OPEN_PATHS:
            return True
        if security.authorized(self.headers.get("Authorization")):
            return True
        extra = {"WWW-Authenticate": 'Basic realm="saas-quota-exporter"'}
        self._send_text(HTTPStatus.UNAUTHORIZED, "Unauthorized.\n", head=head, extra=extra)
        return False

    def _take_body(self, limit: int = 65536) -> bool:
        """Read and drop a request body before answering; False if a 400 went out.

        No route here reads a body, but one left unread would be parsed as the next
        request on a kept-alive connection. A body too big to drain, or chunked,
        is not read: the answer closes the connection instead. A Content-Length
        that is not one non-negative number frames nothing: 400, nothing runs.
        """
        if "Transfer-Encoding" in self.headers:
            self.close_connection = True
            return True
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            return True
        text = lengths[0].strip()
        if len(lengths) > 1 or not text.isascii() or not text.isdigit():
            self.close_connection = True
            self._send_text(HTTPStatus.BAD_REQUEST, "Invalid Content-Length.\n")
            return False
        length = int(text)
        if length > limit:
            self.close_connection = True
        elif length:
            self.rfile.read(length)
        return True

    def _send_text(
        self,
        status: HTTPStatus,
        text: str,
        *,
        head: bool = False,
        extra: dict[str, str] | None = None,
    ) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8", extra, head=head)

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        extra: dict[str, str] | None = None,
        *,
        head: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        headers = dict(extra or {})
        if self.close_connection:
            headers.setdefault("Connection", "close")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)


def serve(server: ExporterHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    return thread


# --- landing page -------------------------------------------------------------------


def account_status(state: AccountState, now: float) -> str:
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


def landing_page(store: StateStore, now: float) -> str:
    _, states, reload = store.snapshot()
    rows = []
    for s in states:
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
    reload_state = "ok" if reload.successful else "FAILED (running the previous config)"
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
