"""The HTTP surface: /metrics, /, /api/v1/status, /-/healthy, /-/ready and POST /-/reload.

An asyncio server on a thread and event loop of its own, apart from the poller's
loop: a busy or stuck poll loop can never delay a scrape, and /metrics only reads
the snapshot. h11 parses HTTP/1.1; handlers (render, landing page, bcrypt, reload)
run on a few worker threads, so the loop only moves bytes and keeps the deadlines.
TLS and basic auth from `--web.config.file` plug in through `WebSecurity`.

Why not http.server: it spends a thread per connection with no cap, and its
timeout is per socket operation, so a client sending a byte every few seconds
holds its thread for ever. Thousands of such clients need no credentials and
cost a thread stack each (an OOM kill under a 128 MiB limit) and a descriptor each
(accept() and polling fail once RLIMIT_NOFILE is used up). Here a connection is a
coroutine of a few KiB and every one is bounded:

- at most `Limits.max_connections` at once (a quarter of RLIMIT_NOFILE, at most
  256: polling keeps the other descriptors). When full, a new connection evicts
  the one that has waited longest for a request of its own (idle keep-alive, a
  TLS handshake or a request head still arriving); connections whose request is
  being answered are never evicted, and only when every one is does a newcomer get
  closed. A normal client sends its request at once, so it is always the newest
  waiter: thousands of idle or slowloris connections cannot keep it out.
- `request_timeout` for the head and body of a request, counted from accept (or
  from the first byte on a kept-alive connection), whatever arrives meanwhile;
- `idle_timeout` between requests on a kept-alive connection;
- `write_timeout` for an answer to leave, and `handshake_timeout` for TLS.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import email.utils
import errno
import queue
import re
import resource
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol, cast

import h11

from exporter import __version__
from exporter.log import get_logger
from exporter.render import MetricsRenderer
from exporter.state import Snapshot
from exporter.statuspage import landing_page, status_json

# Bytes of a body written to the transport at a time (see `_respond`).
WRITE_SLICE = 256 * 1024

OPEN_PATHS = frozenset({"/-/healthy", "/-/ready"})
# The paths that render a snapshot (behind the same auth as each other).
VIEWS = frozenset({"/metrics", "/", "/api/v1/status"})
SERVER_HEADER = f"saas-quota-exporter/{__version__}"
# The request line and the head as a whole, as http.server allowed (64 KiB), and
# at most 100 header lines; bodies up to 64 KiB are read and dropped (no route
# reads one), bigger or chunked ones are left unread and the connection closed.
MAX_HEAD = 65536
MAX_HEADERS = 100
MAX_DRAIN_BODY = 65536
READ_CHUNK = 65536
# Connections taken per wake-up of the listening socket, so eviction keeps pace
# and a burst cannot overshoot the cap by more than this.
ACCEPT_BATCH = 16
WORKERS = 4
# POST /-/reload waits up to 30 s for the poller's loop: its own threads, so
# reloads can never take the workers that render scrapes.
RELOAD_WORKERS = 2
CAP_WARNING_INTERVAL = 60.0


def default_max_connections() -> int:
    """A quarter of RLIMIT_NOFILE, between 16 and 256 (256 with the usual 1024).

    The rest stays for polling (httpx holds up to 32 sockets), the log, certificate
    and config files, and the connections being closed after an eviction.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 256
    return max(16, min(256, soft // 4))


@dataclass(frozen=True)
class Limits:
    max_connections: int = field(default_factory=default_max_connections)
    request_timeout: float = 10.0
    idle_timeout: float = 60.0
    write_timeout: float = 10.0
    handshake_timeout: float = 10.0


class WebSecurity(Protocol):
    """TLS and authentication for the HTTP server (exporter.webconfig)."""

    def ssl_context(self) -> ssl.SSLContext | None: ...

    def authorized(self, authorization: str | None) -> bool: ...


@dataclass(frozen=True)
class WebApp:
    """What the handlers need; all of it safe to call from any thread.

    The security (TLS, users) is not here: it changes on reload, and its one
    holder is `ExporterHTTPServer.security`.
    """

    renderer: MetricsRenderer
    # The store's current snapshot: taken once per request that renders one.
    snapshot: Callable[[], Snapshot]
    ready: Callable[[], bool]
    # Runs a reload on the poller's loop; returns None on success, else the error.
    reload: Callable[[], str | None]
    clock: Callable[[], float] = time.time


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query string
    headers: Mapping[str, str]  # lower-case name -> its first value


@dataclass(frozen=True)
class Response:
    status: HTTPStatus
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False
    # The body as pieces sent in order, never joined; () means `body`. A /metrics
    # answer is the published exposition (tens of MB at 10,000 accounts) shared by
    # every scrape in flight: joining or copying it per scrape cost ~90 MB each.
    chunks: tuple[bytes, ...] = ()

    @property
    def pieces(self) -> tuple[bytes, ...]:
        return self.chunks or (self.body,)


# --- routes (run on a worker thread) ------------------------------------------------


def text(
    status: HTTPStatus,
    body: str,
    headers: tuple[tuple[str, str], ...] = (),
    *,
    close: bool = False,
) -> Response:
    return Response(status, body.encode(), "text/plain; charset=utf-8", headers, close)


def handle(app: WebApp, security: WebSecurity | None, request: Request) -> Response:
    """The answer to one complete request; HEAD gets GET's (the caller drops the body)."""
    path = request.path
    if request.method not in ("GET", "HEAD", "POST"):
        return text(HTTPStatus.NOT_IMPLEMENTED, "Only GET, HEAD and POST.\n", close=True)
    if (
        path not in OPEN_PATHS
        and security is not None
        and not security.authorized(request.headers.get("authorization"))
    ):
        challenge = (("WWW-Authenticate", 'Basic realm="saas-quota-exporter"'),)
        return text(HTTPStatus.UNAUTHORIZED, "Unauthorized.\n", challenge)
    if request.method == "POST":
        if path == "/-/reload":
            error = app.reload()
            if error is None:
                return text(HTTPStatus.OK, "config reloaded\n")
            return text(HTTPStatus.INTERNAL_SERVER_ERROR, f"failed to reload config: {error}\n")
        if path in VIEWS or path in OPEN_PATHS:
            allow = (("Allow", "GET, HEAD"),)
            return text(HTTPStatus.METHOD_NOT_ALLOWED, "Only GET and HEAD here.\n", allow)
        return text(HTTPStatus.NOT_FOUND, "Not found.\n")
    if path in VIEWS:
        return _view(app, request)
    if path == "/-/healthy":
        return text(HTTPStatus.OK, "Healthy.\n")
    if path == "/-/ready":
        if app.ready():
            return text(HTTPStatus.OK, "Ready.\n")
        return text(HTTPStatus.SERVICE_UNAVAILABLE, "Not ready: first poll round running.\n")
    if path == "/-/reload":
        return text(HTTPStatus.METHOD_NOT_ALLOWED, "Use POST to reload.\n", (("Allow", "POST"),))
    return text(HTTPStatus.NOT_FOUND, "Not found.\n")


def _view(app: WebApp, request: Request) -> Response:
    """/metrics, / or /api/v1/status: one snapshot, taken here, is all the view renders."""
    snapshot, now = app.snapshot(), app.clock()
    if request.path == "/":
        page = landing_page(snapshot, now).encode()
        return Response(HTTPStatus.OK, page, "text/html; charset=utf-8")
    if request.path == "/api/v1/status":
        document = status_json(snapshot, now).encode()
        return Response(HTTPStatus.OK, document, "application/json")
    accept, accept_encoding = request.headers.get("accept"), request.headers.get("accept-encoding")
    # The bytes the renderer's thread keeps current: this request renders nothing.
    rendered = app.renderer.published(accept, accept_encoding, snapshot.generation)
    if rendered is None:  # a renderer that was never started (an app built in a test)
        rendered = app.renderer.render(snapshot, now, accept, accept_encoding)
    # Caches and proxies must not hand one scraper's format to another.
    extra = [("Vary", "Accept, Accept-Encoding")]
    if rendered.content_encoding:
        extra.append(("Content-Encoding", rendered.content_encoding))
    return Response(HTTPStatus.OK, b"", rendered.content_type, tuple(extra), chunks=rendered.chunks)


def _guarded(app: WebApp, security: WebSecurity | None, request: Request) -> Response:
    try:
        return handle(app, security, request)
    except Exception as exc:
        # A bug of ours: one error line in the JSON log, a 500 to the client.
        get_logger().error("HTTP handler failed", path=request.path, error=repr(exc)[:300])
        return text(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal error.\n", close=True)


class _Workers:
    """A few daemon threads: a handler stuck in a reload never keeps the process up.

    (concurrent.futures' threads are joined at interpreter exit.)
    """

    def __init__(self, name: str, count: int) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[[], Response]) -> concurrent.futures.Future[Response]:
        future: concurrent.futures.Future[Response] = concurrent.futures.Future()

        def job() -> None:
            if future.set_running_or_notify_cancel():
                future.set_result(fn())

        self._jobs.put(job)
        return future

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    def stop(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)


# --- the connection -----------------------------------------------------------------


class _Refused(Exception):
    """A request refused before h11 has all of it: answer `status` and close."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


_VERSION = re.compile(rb"HTTP/(\d)\.(\d)")


class _HeadWatch:
    """Checks a request head while its bytes arrive.

    h11 looks at a head only once it is complete, so a client that sends one bad
    request line, or header lines without end, would wait out the deadline for its
    answer. This refuses those at once (400, 505, 431), and tells a request line
    over 64 KiB (414) from a head over 64 KiB (431) when h11's size cap trips.
    """

    def __init__(self) -> None:
        self.request_line = bytearray()
        self.request_line_done = False
        self.done = False
        self._headers = 0
        self._line_length = 0
        self._line_first = 0

    def feed(self, data: bytes) -> None:
        start = 0
        while not self.done:
            end = data.find(b"\n", start)
            piece = data[start : end if end >= 0 else len(data)]
            if not self.request_line_done:
                if len(self.request_line) + len(piece) <= MAX_HEAD:
                    self.request_line += piece
            else:
                if piece and self._line_length == 0:
                    self._line_first = piece[0]
                self._line_length += len(piece)
            if end < 0:
                return
            start = end + 1
            if not self.request_line_done:
                self.request_line_done = True
                _check_request_line(bytes(self.request_line).removesuffix(b"\r"))
            elif self._line_length == 0 or (self._line_length == 1 and self._line_first == 13):
                self.done = True  # the empty line: the head is complete
            else:
                self._headers += 1
                if self._headers > MAX_HEADERS:
                    raise _Refused(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers")
            self._line_length = 0


def _check_request_line(line: bytes) -> None:
    words = line.split(b" ")
    if len(words) != 3:
        raise _Refused(HTTPStatus.BAD_REQUEST, f"Bad request syntax {line[:100]!r}")
    version = _VERSION.fullmatch(words[2])
    if version is None:
        raise _Refused(HTTPStatus.BAD_REQUEST, f"Bad request version {words[2][:40]!r}")
    if int(version.group(1)) >= 2:
        raise _Refused(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "Invalid HTTP version")


def _date() -> str:
    return email.utils.formatdate(usegmt=True)


def _raw_error(status: HTTPStatus, message: str) -> bytes:
    """An error answer written without h11 (whose state may be broken by now)."""
    body = f"Error code: {status.value}\nMessage: {message}.\n".encode(errors="replace")
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\nServer: {SERVER_HEADER}\r\n"
        f"Date: {_date()}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class _Connection:
    """One client connection, served by its own task on the server's loop."""

    def __init__(self, server: ExporterHTTPServer, sock: socket.socket, peer: str) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer
        self.task: asyncio.Task[None] | None = None
        self.started = False
        self.writer: asyncio.StreamWriter | None = None

    def evict(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if not self.started:
            # The task never ran, so it cannot clean up: nothing else owns the socket.
            self.server._forget(self)
            self.sock.close()

    async def run(self) -> None:
        self.started = True
        try:
            await self._serve()
        except (OSError, h11.ProtocolError, EOFError) as exc:
            # Resets, timeouts, broken TLS: routine, and not worth more than debug.
            get_logger().debug("HTTP connection ended", client=self.peer, error=repr(exc)[:300])
        except asyncio.CancelledError:
            pass  # evicted, or the server is shutting down
        except Exception as exc:
            get_logger().error("HTTP connection failed", client=self.peer, error=repr(exc)[:300])
        finally:
            self.server._forget(self)
            if self.writer is not None:
                self.writer.transport.abort()
            self.sock.close()

    async def _serve(self) -> None:
        server = self.server
        limits = server.limits
        loop = asyncio.get_running_loop()
        # Read per connection, so a reload that swaps the web config (new
        # certificates, new users) takes effect for the next connection.
        security = server.security
        context = security.ssl_context() if security else None
        reader = asyncio.StreamReader(limit=READ_CHUNK, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        tls: dict[str, Any] = {}
        if context is not None:
            tls = {
                "ssl": context,
                "ssl_handshake_timeout": limits.handshake_timeout,
                "ssl_shutdown_timeout": limits.write_timeout,
            }
        transport, _ = await loop.connect_accepted_socket(lambda: protocol, self.sock, **tls)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        self.writer = writer
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        fresh = True
        while True:
            server._waiting_for_request(self)
            watch = _HeadWatch()
            pending = conn.trailing_data[0]
            # A new connection gets request_timeout from now; a kept-alive one
            # idle_timeout until its next request starts, then request_timeout.
            started = fresh or bool(pending)
            deadline = loop.time() + (limits.request_timeout if started else limits.idle_timeout)
            fresh = False
            try:
                if pending:
                    watch.feed(pending)
                event = await self._next_event(conn, reader, watch, deadline, started)
            except _Refused as refused:
                await self._refuse(writer, refused.status, str(refused))
                return
            except h11.RemoteProtocolError as exc:
                status = HTTPStatus(exc.error_status_hint)
                if status == HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE and not (
                    watch.request_line_done
                ):
                    status = HTTPStatus.REQUEST_URI_TOO_LONG
                await self._refuse(writer, status, str(exc) or status.phrase)
                return
            if not isinstance(event, h11.Request):
                return  # the client closed between requests
            request, close = self._request(event)
            if not close:
                # Read and drop the body: left unread it would be parsed as the
                # next request on a kept-alive connection.
                while not isinstance(
                    await self._next_event(conn, reader, None, deadline, True), h11.EndOfMessage
                ):
                    pass
            server._answering(self)
            response = await server._dispatch(request)
            await self._respond(conn, writer, request, response, close or response.close)
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                await self._close(writer)
                return
            conn.start_next_cycle()

    async def _next_event(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        watch: _HeadWatch | None,
        deadline: float,
        started: bool,
    ) -> Any:
        loop = asyncio.get_running_loop()
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            async with asyncio.timeout_at(deadline):
                data = await reader.read(READ_CHUNK)
            if not started and data:
                started = True
                deadline = loop.time() + self.server.limits.request_timeout
            if watch is not None and not watch.done:
                watch.feed(data)
            conn.receive_data(data)

    def _request(self, event: h11.Request) -> tuple[Request, bool]:
        """The request, and whether its body is left unread (then the answer closes)."""
        headers: dict[str, str] = {}
        for name, value in event.headers:
            headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        target = event.target.decode("latin-1")
        method = event.method.decode("latin-1")
        length = headers.get("content-length")
        close = (
            "transfer-encoding" in headers
            or (length is not None and int(length.split(",")[0]) > MAX_DRAIN_BODY)
            or method not in ("GET", "HEAD", "POST")
        )
        return Request(method, target.split("?", 1)[0], headers), close

    async def _respond(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        request: Request,
        response: Response,
        close: bool,
    ) -> None:
        pieces = response.pieces
        headers = [
            ("Server", SERVER_HEADER),
            ("Date", _date()),
            ("Content-Type", response.content_type),
            ("Content-Length", str(sum(map(len, pieces)))),
            *response.headers,
        ]
        if close:
            headers.append(("Connection", "close"))
        status = response.status
        writer.write(
            conn.send(h11.Response(status_code=status.value, headers=headers, reason=status.phrase))
            or b""
        )
        # One deadline for the whole answer. The body goes out in slices of the
        # shared bytes, each written once the last has left: what a slow reader
        # costs is one slice in the transport's buffer, not a copy of the body.
        async with asyncio.timeout(self.server.limits.write_timeout):
            if request.method != "HEAD":
                for piece in pieces:
                    view = memoryview(piece)
                    for start in range(0, len(view), WRITE_SLICE):
                        # h11 only counts a passed-through slice and hands it
                        # back: a view of the shared bytes, never a copy.
                        data = cast(bytes, view[start : start + WRITE_SLICE])
                        for out in conn.send_with_data_passthrough(h11.Data(data=data)) or ():
                            writer.write(out)
                        await writer.drain()
            writer.write(conn.send(h11.EndOfMessage()) or b"")
            await writer.drain()

    async def _refuse(self, writer: asyncio.StreamWriter, status: HTTPStatus, message: str) -> None:
        self.server._answering(self)
        writer.write(_raw_error(status, message))
        await self._close(writer)

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        """Flush and close, so the answer arrives before the FIN."""
        self.server._answering(self)
        writer.close()
        with contextlib.suppress(OSError):
            async with asyncio.timeout(self.server.limits.write_timeout):
                await writer.wait_closed()


# --- the server ---------------------------------------------------------------------


class ExporterHTTPServer:
    """Binds at construction (so a busy port fails at once); `serve()` runs it.

    `security` is the one live holder of the web config's TLS and users: a reload
    swaps it here, from any thread (one attribute assignment), and TLS is read
    from it per connection, basic auth per request.
    """

    def __init__(
        self,
        address: tuple[str, int],
        app: WebApp,
        *,
        security: WebSecurity | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.app = app
        self.security = security
        self.limits = limits or Limits()
        host, port = address
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(self.address_family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.address_family == socket.AF_INET6 and host in ("::", ""):
                # Dual stack: "::" also accepts IPv4, as Go's ":PORT" does.
                with contextlib.suppress(OSError, AttributeError):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((host, port))
            # Deep, so a burst of connections is queued, not dropped (a dropped SYN
            # costs the client a 1 s retransmit).
            sock.listen(socket.SOMAXCONN)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self.socket = sock
        self.server_address: tuple[str, int] = sock.getsockname()[:2]
        self._connections: dict[_Connection, None] = {}
        # Connections waiting for a request, the longest-waiting first: eviction order.
        self._waiting: collections.OrderedDict[_Connection, None] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown_requested = False
        self._stopped = threading.Event()
        self._workers: _Workers | None = None
        self._reload_workers: _Workers | None = None
        self._last_cap_warning = -CAP_WARNING_INTERVAL
        self.evicted = 0  # connections closed to make room (tests, benchmarks)
        self.refused = 0  # connections closed at once: every slot was answering

    @property
    def connections(self) -> int:
        """Connections open now (a plain read; exact only on the server's thread)."""
        return len(self._connections)

    # --- running ----------------------------------------------------------------

    def serve_forever(self) -> None:
        """Serve on this thread until shutdown()."""
        loop = asyncio.new_event_loop()
        with self._lock:
            if self._shutdown_requested:
                loop.close()
                self._stopped.set()
                return
            self._loop = loop
        self._workers = _Workers("http-worker", WORKERS)
        self._reload_workers = _Workers("http-reload", RELOAD_WORKERS)
        loop.set_exception_handler(_loop_exception)
        loop.add_reader(self.socket.fileno(), self._accept)
        try:
            loop.run_forever()
        finally:
            with contextlib.suppress(OSError, ValueError):
                loop.remove_reader(self.socket.fileno())
            tasks = [c.task for c in list(self._connections) if c.task is not None]
            for connection in list(self._connections):
                connection.evict()
            if tasks:
                loop.run_until_complete(asyncio.wait(tasks, timeout=5))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._workers.stop()
            self._reload_workers.stop()
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop serve_forever() and wait until it has returned."""
        with self._lock:
            self._shutdown_requested = True
            loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # already closed
            loop.call_soon_threadsafe(loop.stop)
        self._stopped.wait(10)

    def server_close(self) -> None:
        self.socket.close()

    # --- connections (all on the server's loop) ---------------------------------

    def _accept(self) -> None:
        loop = self._loop
        assert loop is not None
        for _ in range(ACCEPT_BATCH):
            try:
                sock, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of descriptors after all (other parts of the process hold
                    # them): make room, and pause accepting briefly instead of
                    # spinning on a listening socket that stays readable.
                    self._evict_one()
                    loop.remove_reader(self.socket.fileno())
                    loop.call_later(0.1, loop.add_reader, self.socket.fileno(), self._accept)
                    self._warn_full(str(exc))
                return  # ECONNABORTED and the like: that client is gone
            sock.setblocking(False)
            if len(self._connections) >= self.limits.max_connections and not self._evict_one():
                sock.close()
                self.refused += 1
                continue
            connection = _Connection(self, sock, str(address[0]))
            self._connections[connection] = None
            self._waiting[connection] = None
            connection.task = loop.create_task(connection.run())

    def _evict_one(self) -> bool:
        if not self._waiting:
            self._warn_full("every connection is being answered")
            return False
        victim, _ = self._waiting.popitem(last=False)
        self._forget(victim)
        victim.evict()
        self.evicted += 1
        self._warn_full("closed the connection waiting longest for a request")
        return True

    def _warn_full(self, detail: str) -> None:
        now = time.monotonic()
        if now - self._last_cap_warning >= CAP_WARNING_INTERVAL:
            self._last_cap_warning = now
            get_logger().warning(
                "HTTP connection limit reached",
                limit=self.limits.max_connections,
                detail=detail,
                evicted_total=self.evicted,
                refused_total=self.refused,
            )

    def _forget(self, connection: _Connection) -> None:
        self._connections.pop(connection, None)
        self._waiting.pop(connection, None)

    def _waiting_for_request(self, connection: _Connection) -> None:
        if connection in self._connections:
            self._waiting.pop(connection, None)
            self._waiting[connection] = None  # the newest waiter: evicted last

    def _answering(self, connection: _Connection) -> None:
        self._waiting.pop(connection, None)

    async def _dispatch(self, request: Request) -> Response:
        workers = self._reload_workers if request.method == "POST" else self._workers
        assert workers is not None
        security = self.security
        future = workers.submit(lambda: _guarded(self.app, security, request))
        return await asyncio.wrap_future(future)


def _loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # asyncio's default prints to stderr, outside the JSON log.
    exc = context.get("exception")
    log = get_logger().debug if isinstance(exc, OSError) else get_logger().error
    log("HTTP event loop", message=str(context.get("message")), error=repr(exc)[:300])


def serve(server: ExporterHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    return thread
