"""The HTTP surface in-process: the real server on 127.0.0.1:0, real sockets.

Each test starts `ExporterHTTPServer` in a thread with a state store it fills
itself, a readiness event and a reload double, then talks to it with http.client
or a raw socket. That reaches what the subprocess tests cannot: the exact status,
type and body of every route, framing on kept-alive connections, malformed
requests, and security swapped while the server runs.
"""

from __future__ import annotations

import dataclasses
import gzip
import http.client
import json
import re
import resource
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)

from exporter import __version__
from exporter.model import MeterReading, Readings
from exporter.render import MetricsRenderer
from exporter.state import AccountState, ReloadStatus, Snapshot, StateStore
from exporter.statuspage import status_document
from exporter.web import (
    ExporterHTTPServer,
    Limits,
    WebApp,
    WebSecurity,
    default_max_connections,
    serve,
)
from exporter.webconfig import TLSSettings, WebConfig
from tests.certs import make_pki
from tests.exposition import samples
from tests.fakes import up_state
from tests.support.processes import basic, wait_until

NOW = 1_800_000_000.0
TEXT = "text/plain; charset=utf-8"
METRICS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
USER = "prometheus"
PASSWORD = "in-process-Scrape-Passw0rd"
# Cost 4: the first check stays fast (WebConfig caches verified credentials anyway).
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4))
REALM = 'Basic realm="saas-quota-exporter"'
# Prometheus 3's scrape Accept header, verbatim.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,"
    "text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
)


# --- the server under test ----------------------------------------------------------


class ReloadDouble:
    """Stands in for Exporter._reload_from_thread: counts calls, can fail or stall."""

    def __init__(self) -> None:
        self.error: str | None = None
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self._lock = threading.Lock()

    def __call__(self) -> str | None:
        with self._lock:
            self.calls += 1
        self.entered.set()
        self.release.wait(10)
        return self.error


@dataclass
class Harness:
    server: ExporterHTTPServer
    thread: threading.Thread
    store: StateStore
    renderer: MetricsRenderer
    ready: threading.Event
    reload: ReloadDouble

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


@dataclass
class Servers:
    """Starts servers for a test and stops every one of them at teardown."""

    started: list[Harness] = field(default_factory=list)

    def start(
        self,
        *,
        host: str = "127.0.0.1",
        process_metrics: bool = False,
        security: WebSecurity | None = None,
    ) -> Harness:
        store = StateStore()
        store.set_reload(ReloadStatus(successful=True, last_success=NOW - 600))
        # Without process metrics every render of one snapshot is byte-identical,
        # which lets tests compare two responses exactly.
        renderer = MetricsRenderer(process_metrics=process_metrics)
        ready = threading.Event()
        ready.set()
        reload = ReloadDouble()
        app = WebApp(
            renderer=renderer,
            snapshot=store.snapshot,
            ready=ready.is_set,
            reload=reload,
            clock=lambda: NOW,
        )
        server = ExporterHTTPServer((host, 0), app, security=security)
        thread = serve(server)
        harness = Harness(server, thread, store, renderer, ready, reload)
        self.started.append(harness)
        return harness

    def stop_all(self) -> None:
        for harness in self.started:
            harness.reload.release.set()
            harness.server.shutdown()
            harness.server.server_close()
            harness.thread.join(5)


@pytest.fixture
def servers() -> Iterator[Servers]:
    started = Servers()
    yield started
    started.stop_all()


@pytest.fixture
def web(servers: Servers) -> Harness:
    return servers.start()


# --- talking to it ------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


def ask(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Answer:
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return Answer(response.status, response.headers, response.read())


def request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        return ask(conn, method, path, headers, body)
    finally:
        conn.close()


def exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes and read until the server closes the connection.

    Callers send only bytes the server will read, so that its close is a FIN: a
    close with unread data would be a reset that can swallow the answer.
    A server that never closes fails here by the socket timeout, not by hanging.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def statuses(raw: bytes) -> list[int]:
    return [int(code) for code in re.findall(rb"^HTTP/1\.1 (\d{3}) ", raw, re.MULTILINE)]


def up_account(provider: str = "tornado", account: str = "pipeline") -> AccountState:
    readings = Readings(
        meters=(
            MeterReading("storage_bytes", "bytes", used=10.0, limit=100.0),
            MeterReading("jobs", "jobs", used=3.0, unlimited=True),
        )
    )
    return up_state(provider, account, readings, NOW, polls_total=4, next_poll=NOW + 270)


# --- routes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "content_type", "body"),
    [
        ("/-/healthy", 200, TEXT, "Healthy.\n"),
        ("/-/ready", 200, TEXT, "Ready.\n"),
        ("/-/reload", 405, TEXT, "Use POST to reload.\n"),
        ("/nope", 404, TEXT, "Not found.\n"),
        # The page and the exposition by how they begin; the rest is tested below.
        ("/", 200, "text/html; charset=utf-8", '<!DOCTYPE html>\n<html lang="en">...'),
        ("/metrics", 200, METRICS_TEXT, "# HELP saas_quota_used Quota consumed ..."),
    ],
)
def test_every_route_answers_with_its_status_type_and_body(
    web: Harness, path: str, status: int, content_type: str, body: str
) -> None:
    answer = request(web.port, "GET", path)
    assert answer.status == status
    assert answer.headers["Content-Type"] == content_type
    assert answer.headers["Content-Length"] == str(len(answer.body))
    # The product and its version, not the Python build behind it.
    assert answer.headers["Server"] == f"saas-quota-exporter/{__version__}"
    if body.endswith("..."):
        assert answer.text.startswith(body.removesuffix("..."))
    else:
        assert answer.text == body
    assert "Connection" not in answer.headers, "kept alive, not closed"


def test_the_query_string_does_not_change_the_route(web: Harness) -> None:
    # Scrape configs add params (`params:` in Prometheus); routing ignores them.
    assert request(web.port, "GET", "/-/healthy?probe=1").text == "Healthy.\n"
    assert request(web.port, "GET", "/metrics?module=all").status == 200
    assert request(web.port, "POST", "/-/reload?now=1").status == 200
    assert web.reload.calls == 1


@pytest.mark.parametrize("path", ["/-/healthy", "/-/ready", "/", "/metrics", "/nope", "/-/reload"])
def test_head_sends_the_get_headers_without_a_body(web: Harness, path: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=5)
    try:
        got = ask(conn, "GET", path)
        head = ask(conn, "HEAD", path)
        assert head.body == b""
        assert head.status == got.status
        assert head.headers["Content-Type"] == got.headers["Content-Type"]
        # The length of the body a GET would carry, as RFC 9110 asks of HEAD.
        assert head.headers["Content-Length"] == got.headers["Content-Length"]
        # A body sent after all would be read as the next answer: prove there is none.
        assert ask(conn, "GET", "/-/healthy").text == "Healthy.\n"
    finally:
        conn.close()


@pytest.mark.parametrize(
    "path", ["/nope", "/metrics/", "/metrics/x", "/-/", "/metricsx", "/-/Ready"]
)
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
def test_unknown_paths_are_404_for_every_method(web: Harness, path: str, method: str) -> None:
    answer = request(web.port, method, path)
    assert answer.status == 404
    assert answer.body == (b"" if method == "HEAD" else b"Not found.\n")
    assert web.reload.calls == 0


@pytest.mark.parametrize("path", ["/", "/metrics", "/-/healthy", "/-/ready"])
def test_post_to_a_read_only_route_is_405(web: Harness, path: str) -> None:
    answer = request(web.port, "POST", path, body=b"")
    assert (answer.status, answer.text) == (405, "Only GET and HEAD here.\n")
    assert web.reload.calls == 0


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("POST", "/metrics", "GET, HEAD"), ("GET", "/-/reload", "POST")],
)
def test_405_names_the_allowed_methods(web: Harness, method: str, path: str, allow: str) -> None:
    answer = request(web.port, method, path)
    assert answer.status == 405
    assert answer.headers["Allow"] == allow


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_refused_and_the_connection_closed(web: Harness, method: str) -> None:
    # No route takes them: 501, and the body they may carry is not read.
    answer = request(web.port, method, "/metrics")
    assert answer.status == 501
    assert answer.headers["Connection"] == "close"
    assert web.reload.calls == 0
    assert request(web.port, "GET", "/-/healthy").status == 200


def test_serve_runs_the_server_in_a_daemon_thread_until_shutdown() -> None:
    store = StateStore()
    app = WebApp(
        renderer=MetricsRenderer(process_metrics=False),
        snapshot=store.snapshot,
        ready=lambda: True,
        reload=lambda: None,
    )
    server = ExporterHTTPServer(("127.0.0.1", 0), app)
    try:
        thread = serve(server)
        # Daemon: a stuck handler can never keep the process from exiting.
        assert thread.daemon
        assert thread.name == "http"
        assert request(int(server.server_address[1]), "GET", "/-/healthy").status == 200
    finally:
        server.shutdown()
        server.server_close()
    thread.join(5)
    assert not thread.is_alive()


class CountingSnapshots:
    """The store's `snapshot`, counting the calls and keeping what each returned."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.taken: list[Snapshot] = []

    def __call__(self) -> Snapshot:
        taken = self.store.snapshot()
        self.taken.append(taken)
        return taken


def test_each_view_request_takes_exactly_one_snapshot_and_others_none() -> None:
    store = StateStore()
    store.set_accounts([up_account()])
    snapshots = CountingSnapshots(store)
    app = WebApp(
        renderer=MetricsRenderer(process_metrics=False),
        snapshot=snapshots,
        ready=lambda: True,
        reload=lambda: None,
        clock=lambda: NOW,
    )
    server = ExporterHTTPServer(("127.0.0.1", 0), app)
    serve(server)
    port = int(server.server_address[1])
    try:
        for path in ("/-/healthy", "/-/ready", "/nope", "/-/reload"):
            request(port, "GET", path)
        assert snapshots.taken == []
        for path, expected in (("/metrics", 1), ("/", 2), ("/api/v1/status", 3)):
            answer = request(port, "GET", path)
            assert answer.status == 200
            assert len(snapshots.taken) == expected
        # What was served is that one snapshot, rendered.
        page = request(port, "GET", "/").text
        assert 'data-meter="tornado/pipeline/' in page
        assert len(snapshots.taken) == 4
    finally:
        server.shutdown()
        server.server_close()


def test_the_security_given_at_start_is_the_one_the_server_holds(servers: Servers) -> None:
    # One live holder: ExporterHTTPServer.security (a reload swaps it there).
    security = WebConfig(users={USER: HASH})
    web = servers.start(security=security)
    assert web.server.security is security
    assert request(web.port, "GET", "/metrics").status == 401
    assert request(web.port, "GET", "/metrics", basic(USER, PASSWORD)).status == 200
    assert "security" not in {f.name for f in dataclasses.fields(WebApp)}


def test_ipv6_loopback_is_served(servers: Servers) -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this host")
    web = servers.start(host="::1")
    # The address family follows the host: "::1" needs AF_INET6.
    assert web.server.address_family == socket.AF_INET6
    conn = http.client.HTTPConnection("::1", web.port, timeout=5)
    try:
        assert ask(conn, "GET", "/-/healthy").text == "Healthy.\n"
    finally:
        conn.close()


# --- /-/ready -----------------------------------------------------------------------


def test_readiness_follows_the_first_round(web: Harness) -> None:
    web.ready.clear()
    answer = request(web.port, "GET", "/-/ready")
    assert (answer.status, answer.text) == (503, "Not ready: first poll round running.\n")
    assert request(web.port, "HEAD", "/-/ready").status == 503
    # Not ready is not unhealthy: a liveness probe must not restart a starting exporter.
    assert request(web.port, "GET", "/-/healthy").status == 200
    web.ready.set()
    assert request(web.port, "GET", "/-/ready").text == "Ready.\n"


# --- /-/reload ----------------------------------------------------------------------


def test_reload_only_via_post_once_per_request(web: Harness) -> None:
    assert request(web.port, "GET", "/-/reload").status == 405
    assert request(web.port, "HEAD", "/-/reload").status == 405
    assert web.reload.calls == 0
    answer = request(web.port, "POST", "/-/reload", body=b"")
    assert (answer.status, answer.text) == (200, "config reloaded\n")
    assert answer.headers["Content-Type"] == TEXT
    assert web.reload.calls == 1


def test_a_failed_reload_is_500_with_the_error(web: Harness) -> None:
    web.reload.error = "config.yml:4:15: accounts[0].provider: unknown provider 'nosuch'"
    answer = request(web.port, "POST", "/-/reload")
    assert answer.status == 500
    assert answer.headers["Content-Type"] == TEXT
    assert answer.text == (
        "failed to reload config: config.yml:4:15: accounts[0].provider:"
        " unknown provider 'nosuch'\n"
    )
    # The next one may succeed: nothing of the failure sticks in the server.
    web.reload.error = None
    assert request(web.port, "POST", "/-/reload").status == 200


def test_a_slow_reload_does_not_hold_up_scrapes(web: Harness) -> None:
    web.reload.release.clear()
    answers: list[Answer] = []
    poster = threading.Thread(
        target=lambda: answers.append(request(web.port, "POST", "/-/reload")), daemon=True
    )
    poster.start()
    try:
        assert web.reload.entered.wait(5), "the reload never started"
        # Reloads run on threads of their own: a stalled one never holds a scrape.
        assert request(web.port, "GET", "/metrics").status == 200
        assert request(web.port, "GET", "/-/healthy").status == 200
        assert request(web.port, "GET", "/").status == 200
    finally:
        web.reload.release.set()
    poster.join(5)
    assert [(a.status, a.text) for a in answers] == [(200, "config reloaded\n")]


# --- /metrics -----------------------------------------------------------------------


def test_metrics_default_to_the_text_format(web: Harness) -> None:
    web.store.set_accounts([up_account()])
    for accept in (None, "text/plain", "*/*"):
        answer = request(web.port, "GET", "/metrics", {"Accept": accept} if accept else None)
        assert answer.headers["Content-Type"] == METRICS_TEXT
        assert "Content-Encoding" not in answer.headers
        values = samples(answer.text)
        labels = frozenset({("provider", "tornado"), ("account", "pipeline")})
        assert values[("saas_quota_up", labels)] == 1
        assert values[("saas_quota_config_last_reload_successful", frozenset())] == 1
        assert "# EOF" not in answer.text


@pytest.mark.parametrize(
    "accept",
    [
        "application/openmetrics-text; version=1.0.0",
        "application/openmetrics-text",
        PROMETHEUS_ACCEPT,
    ],
)
def test_openmetrics_when_asked_with_a_single_eof(servers: Servers, accept: str) -> None:
    # With the process collectors on, as the exporter runs: the body joins two
    # renderings, and only the last may carry the terminating "# EOF".
    web = servers.start(process_metrics=True)
    web.store.set_accounts([up_account()])
    answer = request(web.port, "GET", "/metrics", {"Accept": accept})
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith(
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    )
    assert answer.text.endswith("# EOF\n")
    assert answer.text.count("# EOF") == 1
    # The strict OpenMetrics parser accepts the whole body.
    parsed = openmetrics_families(answer.text)  # type: ignore[no-untyped-call]
    families = {family.name: family for family in parsed}
    assert "saas_quota_up" in families
    assert "process_cpu_seconds" in families
    assert families["saas_quota_polls"].type == "counter"


@pytest.mark.parametrize("accept_encoding", ["gzip", "GZIP", "deflate, gzip;q=0.8", "br, gzip"])
def test_gzip_when_accepted(web: Harness, accept_encoding: str) -> None:
    web.store.set_accounts([up_account()])
    plain = request(web.port, "GET", "/metrics")
    zipped = request(web.port, "GET", "/metrics", {"Accept-Encoding": accept_encoding})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.headers["Content-Type"] == METRICS_TEXT
    # The body depends on both headers: a cache in between must key on them.
    assert zipped.headers["Vary"] == "Accept, Accept-Encoding"
    assert plain.headers["Vary"] == "Accept, Accept-Encoding"
    # Content-Length counts the bytes on the wire, the compressed ones.
    assert zipped.headers["Content-Length"] == str(len(zipped.body))
    assert gzip.decompress(zipped.body) == plain.body
    head = request(web.port, "HEAD", "/metrics", {"Accept-Encoding": accept_encoding})
    assert head.headers["Content-Encoding"] == "gzip"
    assert head.body == b""


def test_gzip_and_openmetrics_together(web: Harness) -> None:
    headers = {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}
    answer = request(web.port, "GET", "/metrics", headers)
    assert answer.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(answer.body).endswith(b"# EOF\n")


@pytest.mark.parametrize("accept_encoding", ["identity", "deflate", "br", "*;q=0"])
def test_no_gzip_unless_asked(web: Harness, accept_encoding: str) -> None:
    answer = request(web.port, "GET", "/metrics", {"Accept-Encoding": accept_encoding})
    assert "Content-Encoding" not in answer.headers
    assert answer.text.startswith("# HELP")


def test_gzip_refused_with_q_0_is_not_sent(web: Harness) -> None:
    answer = request(web.port, "GET", "/metrics", {"Accept-Encoding": "gzip;q=0, identity"})
    assert "Content-Encoding" not in answer.headers


def test_metrics_follow_the_store_between_scrapes(web: Harness) -> None:
    # /metrics renders the current snapshot: an account added, then removed, shows
    # up and vanishes on the next scrape with no other signal to the server.
    labels = frozenset({("provider", "tornado"), ("account", "pipeline")})
    assert ("saas_quota_up", labels) not in samples(request(web.port, "GET", "/metrics").text)
    web.store.set_accounts([up_account()])
    assert samples(request(web.port, "GET", "/metrics").text)[("saas_quota_up", labels)] == 1
    web.store.set_accounts([])
    assert ("saas_quota_up", labels) not in samples(request(web.port, "GET", "/metrics").text)


# --- connections --------------------------------------------------------------------


def test_many_requests_share_one_kept_alive_connection(web: Harness) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=5)
    try:
        assert ask(conn, "GET", "/metrics").status == 200
        sock = conn.sock
        assert sock is not None
        sequence = [
            ("HEAD", "/", None, 200),
            ("GET", "/nope", None, 404),
            ("POST", "/metrics", b"ignored body", 405),
            ("GET", "/-/reload", None, 405),
            # A body within the limit is read and dropped, never parsed as a request.
            ("POST", "/-/reload", b"x" * 1000, 200),
            ("POST", "/nope", b"{}", 404),
            ("GET", "/-/healthy", None, 200),
            ("GET", "/metrics", None, 200),
        ]
        for method, path, body, status in sequence:
            answer = ask(conn, method, path, body=body)
            assert answer.status == status, (method, path)
            assert "Connection" not in answer.headers, (method, path)
            # http.client reconnects silently when the server closes; the same
            # socket object proves it never had to.
            assert conn.sock is sock, f"reconnected after {method} {path}"
        assert web.reload.calls == 1
    finally:
        conn.close()


def test_pipelined_requests_are_answered_in_order(web: Harness) -> None:
    raw = exchange(
        web.port,
        b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n"
        b"HEAD /-/ready HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert statuses(raw) == [200, 200, 404]
    assert raw.index(b"Healthy.\n") < raw.index(b"HTTP/1.1 404")
    # The client's "Connection: close" is echoed on the last answer, then the close.
    assert raw.endswith(b"Connection: close\r\n\r\nNot found.\n")


@pytest.mark.parametrize(
    "framing",
    [
        pytest.param("Content-Length: 100000", id="body over the 64 KiB drain limit"),
        pytest.param("Transfer-Encoding: chunked", id="chunked body"),
    ],
)
def test_a_post_body_it_will_not_read_closes_the_connection(web: Harness, framing: str) -> None:
    # Headers only: the announced body is never sent, so nothing is left unread
    # and the server's close is clean. It must close: the body it skipped would
    # otherwise be parsed as the next request.
    raw = exchange(web.port, f"POST /-/reload HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n".encode())
    assert statuses(raw) == [200]
    assert b"\r\nConnection: close\r\n" in raw
    assert raw.endswith(b"config reloaded\n")


@pytest.mark.parametrize("length", ["abc", "-1", "1, 2"])
def test_an_invalid_content_length_is_400_and_nothing_runs(web: Harness, length: str) -> None:
    raw = exchange(
        web.port, f"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()
    )
    assert statuses(raw) == [400]
    assert web.reload.calls == 0


def test_a_get_body_is_not_read_as_the_next_request(web: Harness) -> None:
    raw = exchange(
        web.port,
        b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nxxxxx"
        b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    # Today the second answer is "501 Unsupported method ('xxxxxGET')".
    assert statuses(raw) == [200, 200]


@pytest.mark.parametrize(
    ("data", "status"),
    [
        # Exactly as many bytes as the server reads before giving up (readline's
        # 65536 + 1), so its close is clean.
        pytest.param(b"GET /" + b"a" * 65532, 414, id="request line over 64 KiB"),
        pytest.param(
            b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 65530, 431, id="header line over 64 KiB"
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\n" + b"X-Many: a\r\n" * 101, 431, id="more than 100 headers"
        ),
    ],
)
def test_oversized_requests_get_a_4xx_and_a_close(web: Harness, data: bytes, status: int) -> None:
    raw = exchange(web.port, data)
    assert statuses(raw) == [status]
    assert b"\r\nConnection: close\r\n" in raw
    assert request(web.port, "GET", "/-/healthy").status == 200


@pytest.mark.parametrize(
    ("data", "code"),
    [
        pytest.param(b"GARBAGE\r\n", b"400", id="one word"),
        pytest.param(b"GET / HTTP/x\r\n", b"400", id="bad version"),
        pytest.param(b"GET / HTTP/2.0\r\n", b"505", id="HTTP/2 over HTTP/1"),
        pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n", b"400", id="TLS hello"),
        pytest.param(b"POST /-/reload\r\n", b"400", id="HTTP/0.9 POST"),
    ],
)
def test_a_malformed_request_line_is_refused_not_a_hang(
    web: Harness, data: bytes, code: bytes
) -> None:
    # exchange() reads until the server closes: a server waiting for more would
    # fail it with a timeout instead.
    raw = exchange(web.port, data)
    assert b"Error code: " + code in raw
    assert web.reload.calls == 0
    assert request(web.port, "GET", "/-/healthy").status == 200


@pytest.mark.parametrize("data", [b"GARBAGE\r\n", b"GET / HTTP/x\r\n"])
def test_a_malformed_request_line_gets_an_http_status_line(web: Harness, data: bytes) -> None:
    assert exchange(web.port, data).startswith(b"HTTP/1.1 400 ")


def test_idle_and_half_sent_connections_do_not_block_a_scrape(web: Harness) -> None:
    # Clients that connect and send nothing, or stop mid-request, hold only their
    # own connection.
    idle = [socket.create_connection(("127.0.0.1", web.port), timeout=5) for _ in range(5)]
    idle[0].sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Enc")
    idle[1].sendall(b"GE")
    try:
        for _ in range(3):
            assert request(web.port, "GET", "/metrics").status == 200
    finally:
        for sock in idle:
            sock.close()


def test_a_client_that_resets_is_not_a_traceback_on_stderr(
    web: Harness, capfd: pytest.CaptureFixture[str]
) -> None:
    for payload in (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", b""):
        sock = socket.create_connection(("127.0.0.1", web.port), timeout=5)
        if payload:
            sock.sendall(payload)
        # SO_LINGER 0: close() sends RST, as a scraper that gives up mid-scrape can.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    # The server is done with both once it holds no connection any more.
    wait_until(lambda: web.server.connections == 0, timeout=10)
    assert request(web.port, "GET", "/-/healthy").status == 200
    assert "Traceback" not in capfd.readouterr().err


# --- the landing page ---------------------------------------------------------------


def test_landing_page_without_accounts_and_after_a_failed_reload(web: Harness) -> None:
    page = request(web.port, "GET", "/").text
    assert "<p>No accounts configured.</p>" in page
    web.store.set_reload(ReloadStatus(successful=False, last_success=NOW - 600))
    page = request(web.port, "GET", "/").text
    assert "Last config load: FAILED (running the previous config)" in page


def test_the_status_json_is_the_snapshot_as_the_page_shows_it(web: Harness) -> None:
    web.store.set_accounts([up_account()])
    answer = request(web.port, "GET", "/api/v1/status")
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json"
    document = json.loads(answer.body)
    assert document == status_document(web.store.snapshot(), NOW)
    assert [(a["provider"], a["account"], a["state"]) for a in document["accounts"]] == [
        ("tornado", "pipeline", "up")
    ]
    head = request(web.port, "HEAD", "/api/v1/status")
    assert (head.status, head.body) == (200, b"")
    post = request(web.port, "POST", "/api/v1/status")
    assert (post.status, post.headers["Allow"]) == (405, "GET, HEAD")


def test_the_status_json_is_behind_the_same_auth_as_the_page(servers: Servers) -> None:
    web = servers.start(security=WebConfig(users={USER: HASH}))
    for path in ("/", "/api/v1/status"):
        refused = request(web.port, "GET", path)
        assert (refused.status, refused.headers["WWW-Authenticate"]) == (401, REALM)
        assert request(web.port, "GET", path, basic(USER, PASSWORD)).status == 200


# --- security swapped on a running server -------------------------------------------


def test_basic_auth_swapped_in_applies_to_the_next_request(web: Harness) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=5)
    try:
        assert ask(conn, "GET", "/metrics").status == 200
        # What Exporter.reload does with a new web config: one attribute swap.
        web.server.security = WebConfig(users={USER: HASH})
        # The same kept-alive connection: checked per request, not per connection.
        refused = ask(conn, "GET", "/metrics")
        assert refused.status == 401
        assert refused.headers["WWW-Authenticate"] == REALM
        assert ask(conn, "GET", "/", basic(USER, PASSWORD)).status == 200
        assert ask(conn, "POST", "/-/reload").status == 401
        assert web.reload.calls == 0
        # Probes stay open, so orchestrators need no credentials.
        assert ask(conn, "GET", "/-/healthy").status == 200
        assert ask(conn, "GET", "/-/ready").status == 200
        web.server.security = None
        assert ask(conn, "GET", "/metrics").status == 200
    finally:
        conn.close()


def test_tls_swapped_in_applies_to_the_next_connection(web: Harness, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    before = http.client.HTTPConnection("127.0.0.1", web.port, timeout=5)
    try:
        assert ask(before, "GET", "/-/healthy").status == 200
        web.server.security = WebConfig(tls=TLSSettings(pki.server.cert, pki.server.key))
        tls = http.client.HTTPSConnection(
            "127.0.0.1", web.port, context=pki.client_context(), timeout=5
        )
        try:
            assert ask(tls, "GET", "/metrics").status == 200
        finally:
            tls.close()
        with pytest.raises((OSError, http.client.HTTPException)):
            request(web.port, "GET", "/-/healthy")
        # The handshake happens once per connection: one made before the swap
        # carries on in plain text until it closes (documented in web.py).
        assert ask(before, "GET", "/-/healthy").status == 200
        web.server.security = None
        assert request(web.port, "GET", "/-/healthy").status == 200
    finally:
        before.close()


def test_a_failed_tls_handshake_leaves_the_server_serving(web: Harness, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    web.server.security = WebConfig(tls=TLSSettings(pki.server.cert, pki.server.key))
    for _ in range(3):
        with pytest.raises((OSError, http.client.HTTPException)):
            request(web.port, "GET", "/metrics")
    conn = http.client.HTTPSConnection(
        "127.0.0.1", web.port, context=pki.client_context(), timeout=5
    )
    try:
        assert ask(conn, "GET", "/-/healthy").status == 200
    finally:
        conn.close()


# --- bounds -------------------------------------------------------------------------


def limited(servers: Servers, limits: Limits) -> Harness:
    web = servers.start()
    web.server.limits = limits
    return web


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


def test_connections_do_not_cost_a_thread_each(web: Harness) -> None:
    # http.server started a thread per connection: 60 idle clients, 60 threads.
    assert request(web.port, "GET", "/-/healthy").status == 200  # the workers are up
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", web.port), timeout=5) for _ in range(60)]
    try:
        wait_until(lambda: web.server.connections == 60, timeout=10)
        assert threading.active_count() <= before + 2
        assert request(web.port, "GET", "/metrics").status == 200
    finally:
        for sock in idle:
            sock.close()


def test_a_full_server_evicts_the_longest_waiting_connection(servers: Servers) -> None:
    web = limited(servers, Limits(max_connections=8))
    oldest = [socket.create_connection(("127.0.0.1", web.port), timeout=5) for _ in range(8)]
    wait_until(lambda: web.server.connections == 8, timeout=10)
    try:
        newer = [socket.create_connection(("127.0.0.1", web.port), timeout=5) for _ in range(8)]
        # A normal client still gets through, and the cap holds.
        for _ in range(3):
            assert request(web.port, "GET", "/metrics").status == 200
        assert web.server.connections <= 8
        assert all(closed_by_server(sock, 5) for sock in oldest), "the oldest go first"
        for sock in newer:
            sock.close()
    finally:
        for sock in oldest:
            sock.close()


def test_slowloris_is_closed_by_the_request_deadline(servers: Servers) -> None:
    web = limited(servers, Limits(request_timeout=1.0))
    sock = socket.create_connection(("127.0.0.1", web.port), timeout=5)
    try:
        started = time.monotonic()
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        closed = False
        while time.monotonic() - started < 5:
            try:
                sock.sendall(b"a")  # a byte every 0.2 s: never idle, never done
            except OSError:
                closed = True
                break
            if closed_by_server(sock, 0.2):
                closed = True
                break
        assert closed, "a head still arriving after its deadline must be closed"
        assert time.monotonic() - started < 4
    finally:
        sock.close()


def test_an_idle_kept_alive_connection_is_closed(servers: Servers) -> None:
    web = limited(servers, Limits(idle_timeout=0.5))
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=5)
    try:
        assert ask(conn, "GET", "/-/healthy").status == 200
        assert conn.sock is not None
        assert closed_by_server(conn.sock, 4)
    finally:
        conn.close()


def test_an_accept_version_that_is_no_number_is_answered(web: Harness) -> None:
    # prometheus_client raised TypeError on "version=abc": the client got no answer.
    answer = request(
        web.port, "GET", "/metrics", {"Accept": "application/openmetrics-text; version=abc"}
    )
    assert answer.status == 200
    assert answer.headers["Content-Type"] == METRICS_TEXT


@pytest.mark.parametrize(("soft", "cap"), [(1024, 256), (200, 50), (40, 16), (65536, 256)])
def test_the_connection_cap_follows_the_fd_limit(
    monkeypatch: pytest.MonkeyPatch, soft: int, cap: int
) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _: (soft, 1 << 20))
    assert default_max_connections() == cap
