"""The Exporter in-process: config, poller, web server, reload and signals wired up.

`Exporter.run` runs on the test's own event loop (the main thread, so its signal
handlers are real) and serves on 127.0.0.1:0; the vendor is the simulator, or a
gated stand-in where a test must hold the first poll. Blocking HTTP and waits run
in a worker thread, because POST /-/reload needs the loop free to do the reload.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest

from exporter import app as app_module
from exporter.app import Exporter, ListenAddress
from exporter.config import Config, load_config, parse_config
from exporter.poller import Poller
from exporter.state import StateStore
from exporter.web import WebSecurity
from exporter.webconfig import WebConfig, load_web_config
from tests.exposition import Samples, samples
from tests.fakes import FakeClock
from tests.support.processes import basic, http_get, wait_until
from tests.support.simulator import Fault, SimAccount, SimMeter, VendorSimulator

pytestmark = pytest.mark.anyio

PICTORY_KEY = "pictai_app_test_key_01"
TORNADO_KEY = "sk_app_test_tornado_02"
PILOTERR_KEY = "piloterr_app_test_key_03"
USER = "prometheus"
PASSWORD = "app-Scrape-Passw0rd"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
KEEP = {"provider": "pictory", "account": "keep"}


# --- vendors --------------------------------------------------------------------------


@pytest.fixture
def sim() -> Iterator[VendorSimulator]:
    accounts = [
        SimAccount("pictory", PICTORY_KEY, {"ai_credits": SimMeter(limit=50, start=5)}),
        SimAccount("tornado", TORNADO_KEY, {"jobs": SimMeter(limit=None, start=3)}),
        SimAccount("piloterr", PILOTERR_KEY, {"api_credits": SimMeter(limit=100, start=10)}),
    ]
    with VendorSimulator(accounts) as simulator:
        yield simulator


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # the exporter hanging up on a held poll is expected here


class GatedVendor:
    """A Tornado stand-in whose answers wait until the test opens the gate.

    The simulator can only delay by a fixed time; this holds a poll for exactly as
    long as the test needs, so "the first round is still running" is a fact, not
    a race.
    """

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.gate = threading.Event()
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                vendor.arrived.set()
                vendor.gate.wait(10)
                body = json.dumps(
                    {"client_name": "x", "usage_count": 3, "storage_usage_gb": 1.0}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/tornado"

    def __enter__(self) -> GatedVendor:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


# --- config and the running exporter ------------------------------------------------


def account(provider: str, name: str, key: str, base_url: str) -> str:
    return (
        f"  - provider: {provider}\n    account: {name}\n    api_key: {key}\n"
        f"    base_url: {base_url}\n"
    )


def write_config(path: Path, *accounts: str) -> Path:
    # A long interval: no account is polled twice within a test.
    head = "global:\n  interval: 10m\n  timeout: 5s\n"
    path.write_text(head + ("accounts:\n" + "".join(accounts) if accounts else "accounts: []\n"))
    return path


def keep(sim: VendorSimulator) -> str:
    return account("pictory", "keep", PICTORY_KEY, sim.base_url("pictory"))


def make_exporter(
    path: Path,
    clock: FakeClock,
    *,
    listen: ListenAddress | None = None,
    security: WebSecurity | None = None,
    load_security: Callable[[], WebSecurity | None] | None = None,
    load: Callable[[], Config] | None = None,
) -> Exporter:
    return Exporter(
        load or (lambda: load_config(path)),
        listen or ListenAddress("127.0.0.1", 0),
        security=security,
        load_security=load_security,
        clock=clock.time,
    )


@pytest.fixture
def clock() -> FakeClock:
    # Wall-clock time for timestamps and staleness only; scheduling stays real.
    return FakeClock()


@asynccontextmanager
async def running(exporter: Exporter, config: Config) -> AsyncIterator[str]:
    """Run the exporter on this loop; its base URL while it runs, stopped after."""
    stop = asyncio.Event()
    task = asyncio.create_task(exporter.run(config, stop))
    started = asyncio.create_task(exporter.started.wait())
    await asyncio.wait({task, started}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if not exporter.started.is_set():
        started.cancel()
        if task.done():
            task.result()  # raises the start-up error
        task.cancel()
        pytest.fail("the exporter did not start within 10 s")
    try:
        yield f"http://127.0.0.1:{exporter.port}"
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def scrape(url: str, headers: dict[str, str] | None = None) -> Samples:
    status, text = http_get(url + "/metrics", headers=headers)
    assert status == 200, text
    return samples(text)


def sample(url: str, name: str, **labels: str) -> float | None:
    return scrape(url).get((name, frozenset(labels.items())))


async def eventually(condition: Callable[[], object], within: float = 10.0) -> None:
    """tests.e2e.wait_until in a worker thread, leaving the loop free to poll."""
    await asyncio.to_thread(wait_until, condition, within)


def auth() -> dict[str, str]:
    return basic(USER, PASSWORD)


# --- ListenAddress ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1:9877", "127.0.0.1", 9877),
        (":9877", "", 9877),
        ("[::1]:9877", "::1", 9877),
        ("[::]:0", "::", 0),
        ("exporter.internal:65535", "exporter.internal", 65535),
    ],
)
def test_listen_address_parses_go_style_host_port(text: str, host: str, port: int) -> None:
    assert ListenAddress.parse(text) == ListenAddress(host, port)


@pytest.mark.parametrize("text", ["9877", "localhost", "localhost:", "h:65536", "h:-1", "h:http"])
def test_listen_address_rejects_what_is_not_host_port(text: str) -> None:
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        ListenAddress.parse(text)


@pytest.mark.parametrize(
    ("address", "port", "url"),
    [
        # Every-interface binds are shown as localhost: a URL one can click.
        (ListenAddress("", 9877), None, "http://localhost:9877"),
        (ListenAddress("0.0.0.0", 9877), None, "http://localhost:9877"),  # noqa: S104
        (ListenAddress("::", 9877), None, "http://localhost:9877"),
        (ListenAddress("::1", 9877), None, "http://[::1]:9877"),
        # Port 0 means "pick one": the URL shows the port actually bound.
        (ListenAddress("127.0.0.1", 0), 40123, "http://127.0.0.1:40123"),
    ],
)
def test_listen_address_url(address: ListenAddress, port: int | None, url: str) -> None:
    assert address.url(port) == url


# --- start-up and readiness ---------------------------------------------------------


async def test_ready_only_once_the_first_round_has_finished(
    tmp_path: Path, clock: FakeClock
) -> None:
    with GatedVendor() as vendor:
        path = write_config(
            tmp_path / "config.yml", account("tornado", "gated", TORNADO_KEY, vendor.base_url)
        )
        exporter = make_exporter(path, clock)
        async with running(exporter, load_config(path)) as url:
            # Port 0 in the config, the real port on the server.
            assert exporter.port != 0
            assert await asyncio.to_thread(vendor.arrived.wait, 10), "no poll arrived"
            assert await asyncio.to_thread(http_get, url + "/-/ready") == (
                503,
                "Not ready: first poll round running.\n",
            )
            assert (await asyncio.to_thread(http_get, url + "/-/healthy"))[0] == 200
            gated = {"provider": "tornado", "account": "gated"}
            values = await asyncio.to_thread(scrape, url)
            # Configured but not yet polled: up 0 and no quota series at all.
            assert values[("saas_quota_up", frozenset(gated.items()))] == 0
            assert values[("saas_quota_polls_total", frozenset(gated.items()))] == 0
            assert not any(name == "saas_quota_used" for name, _ in values)
            page = (await asyncio.to_thread(http_get, url + "/"))[1]
            assert "<strong>tornado / gated</strong>: pending" in page

            vendor.gate.set()
            await eventually(lambda: http_get(url + "/-/ready") == (200, "Ready.\n"))
            assert await asyncio.to_thread(sample, url, "saas_quota_up", **gated) == 1
            used = await asyncio.to_thread(sample, url, "saas_quota_used", **gated, meter="jobs")
            assert used == 3


async def test_without_accounts_it_is_ready_at_once(tmp_path: Path, clock: FakeClock) -> None:
    path = write_config(tmp_path / "config.yml")
    exporter = make_exporter(path, clock)
    async with running(exporter, load_config(path)) as url:
        assert await asyncio.to_thread(http_get, url + "/-/ready") == (200, "Ready.\n")
        page = (await asyncio.to_thread(http_get, url + "/"))[1]
        assert "No accounts configured." in page
        values = await asyncio.to_thread(scrape, url)
        assert values[("saas_quota_config_last_reload_successful", frozenset())] == 1
        stamp = values[("saas_quota_config_last_reload_success_timestamp_seconds", frozenset())]
        assert stamp == clock.now
        assert not any(name == "saas_quota_up" for name, _ in values)


async def test_a_busy_port_fails_run_before_any_vendor_is_called(
    tmp_path: Path, clock: FakeClock, sim: VendorSimulator
) -> None:
    path = write_config(tmp_path / "config.yml", keep(sim))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = ListenAddress("127.0.0.1", int(taken.getsockname()[1]))
        exporter = make_exporter(path, clock, listen=busy)
        # The CLI logs this ListenError (an OSError) as one line and exits 1.
        with pytest.raises(OSError, match="the address is already in use") as raised:
            await asyncio.wait_for(exporter.run(load_config(path)), 10)
    assert raised.value.errno == errno.EADDRINUSE
    assert not exporter.started.is_set()
    assert sim.request_count(PICTORY_KEY) == 0, "no poll before the server is up"


async def test_an_ipv6_listen_address_is_served_over_ipv6(tmp_path: Path, clock: FakeClock) -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this host")
    path = write_config(tmp_path / "config.yml")
    listen = ListenAddress.parse("[::1]:0")
    exporter = make_exporter(path, clock, listen=listen)
    async with running(exporter, load_config(path)):
        url = listen.url(exporter.port)
        assert url == f"http://[::1]:{exporter.port}"
        assert await asyncio.to_thread(http_get, url + "/-/healthy") == (200, "Healthy.\n")


# --- reload -------------------------------------------------------------------------


async def test_a_good_reload_adds_and_removes_accounts_and_stamps_the_time(
    tmp_path: Path, clock: FakeClock, sim: VendorSimulator
) -> None:
    tornado = account("tornado", "dropped", TORNADO_KEY, sim.base_url("tornado"))
    piloterr = account("piloterr", "added", PILOTERR_KEY, sim.base_url("piloterr"))
    path = write_config(tmp_path / "config.yml", keep(sim), tornado)
    exporter = make_exporter(path, clock)
    async with running(exporter, load_config(path)) as url:
        await eventually(lambda: http_get(url + "/-/ready")[0] == 200)
        started_at = clock.now
        clock.advance(60)
        write_config(path, keep(sim), piloterr)
        async with httpx.AsyncClient(base_url=url, timeout=15) as client:
            answer = await client.post("/-/reload")
        assert (answer.status_code, answer.text) == (200, "config reloaded\n")
        await eventually(
            lambda: sample(url, "saas_quota_up", provider="piloterr", account="added") == 1
        )
        values = await asyncio.to_thread(scrape, url)
        assert not any(dict(labels).get("account") == "dropped" for _, labels in values)
        assert values[("saas_quota_config_last_reload_successful", frozenset())] == 1
        stamp = values[("saas_quota_config_last_reload_success_timestamp_seconds", frozenset())]
        assert stamp == started_at + 60
        # The unchanged account kept its values and was not polled again.
        assert values[("saas_quota_polls_total", frozenset(KEEP.items()))] == 1
        page = (await asyncio.to_thread(http_get, url + "/"))[1]
        assert 'data-meter="piloterr/added/' in page
        assert "dropped" not in page
        assert "Last config load: ok" in page


async def test_a_broken_config_keeps_the_running_one_and_flags_the_reload(
    tmp_path: Path, clock: FakeClock, sim: VendorSimulator
) -> None:
    path = write_config(tmp_path / "config.yml", keep(sim))
    exporter = make_exporter(path, clock)
    async with running(exporter, load_config(path)) as url:
        await eventually(lambda: sample(url, "saas_quota_up", **KEEP) == 1)
        loaded_at = clock.now
        clock.advance(60)
        path.write_text("global:\n  interval: 10m\naccounts: [\n")
        async with httpx.AsyncClient(base_url=url, timeout=15) as client:
            answer = await client.post("/-/reload")
        assert answer.status_code == 500
        assert answer.text.startswith(f"failed to reload config: {path}:")
        values = await asyncio.to_thread(scrape, url)
        assert values[("saas_quota_config_last_reload_successful", frozenset())] == 0
        # The timestamp is of the last *successful* load: it does not move.
        stamp = values[("saas_quota_config_last_reload_success_timestamp_seconds", frozenset())]
        assert stamp == loaded_at
        assert values[("saas_quota_up", frozenset(KEEP.items()))] == 1
        assert values[("saas_quota_used", frozenset({**KEEP, "meter": "ai_credits"}.items()))] == 5
        page = (await asyncio.to_thread(http_get, url + "/"))[1]
        assert "Last config load: FAILED (running the previous config)" in page
        assert 'data-meter="pictory/keep/' in page
        assert "Needs attention" not in page  # still up

        # Fixed, and reloaded the way SIGHUP does it: straight on the loop.
        write_config(path, keep(sim))
        assert await exporter.reload() is None
        values = await asyncio.to_thread(scrape, url)
        assert values[("saas_quota_config_last_reload_successful", frozenset())] == 1
        stamp = values[("saas_quota_config_last_reload_success_timestamp_seconds", frozenset())]
        assert stamp == loaded_at + 60


async def test_the_help_text_names_the_interval_of_the_config_applied_last(
    tmp_path: Path, clock: FakeClock
) -> None:
    # The default interval travels in the store's snapshot, set with the config's
    # accounts; a reload that fails keeps the running config's.
    path = write_config(tmp_path / "config.yml")

    def help_of_used(url: str) -> str:
        text = http_get(url + "/metrics")[1]
        return next(line for line in text.splitlines() if line.startswith("# HELP saas_quota_used"))

    exporter = make_exporter(path, clock)
    async with running(exporter, load_config(path)) as url:
        assert "every 10m by default" in await asyncio.to_thread(help_of_used, url)
        path.write_text("global:\n  interval: 2m\naccounts: []\n")
        assert await exporter.reload() is None
        assert "every 2m by default" in await asyncio.to_thread(help_of_used, url)
        path.write_text("global:\n  interval: 3m\naccounts: [\n")
        assert await exporter.reload() is not None
        assert "every 2m by default" in await asyncio.to_thread(help_of_used, url)


async def test_a_broken_web_config_rejects_the_whole_reload(
    tmp_path: Path, clock: FakeClock, sim: VendorSimulator
) -> None:
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  {USER}: '{HASH}'\n")
    path = write_config(tmp_path / "config.yml", keep(sim))
    exporter = make_exporter(
        path, clock, security=load_web_config(web), load_security=lambda: load_web_config(web)
    )
    added = {"provider": "piloterr", "account": "added"}
    async with running(exporter, load_config(path)) as url:
        assert (await asyncio.to_thread(http_get, url + "/metrics"))[0] == 401
        # A good config, a broken web config: neither is applied.
        write_config(
            path, keep(sim), account("piloterr", "added", PILOTERR_KEY, sim.base_url("piloterr"))
        )
        web.write_text(f"basic_auth_users:\n  {USER}: not-a-hash\n")
        async with httpx.AsyncClient(base_url=url, timeout=15) as client:
            answer = await client.post("/-/reload", headers=auth())
        assert answer.status_code == 500
        assert "basic_auth_users.prometheus: not a bcrypt hash" in answer.text
        values = await asyncio.to_thread(scrape, url, auth())
        assert values[("saas_quota_config_last_reload_successful", frozenset())] == 0
        assert not any(dict(labels).get("account") == "added" for _, labels in values)
        assert (await asyncio.to_thread(http_get, url + "/metrics"))[0] == 401

        # Fixed: a web config without users turns auth off with the same reload
        # that adds the account.
        web.write_text("basic_auth_users: {}\n")
        async with httpx.AsyncClient(base_url=url, timeout=15) as client:
            assert (await client.post("/-/reload", headers=auth())).status_code == 200
        assert (await asyncio.to_thread(http_get, url + "/metrics"))[0] == 200
        await eventually(lambda: sample(url, "saas_quota_up", **added) == 1)


async def test_without_a_web_config_loader_a_reload_keeps_the_security(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = write_config(tmp_path / "config.yml")
    security = WebConfig(users={USER: HASH.encode()})
    exporter = make_exporter(path, clock, security=security)
    async with (
        running(exporter, load_config(path)) as url,
        httpx.AsyncClient(base_url=url, timeout=15) as client,
    ):
        assert (await client.post("/-/reload")).status_code == 401
        assert (await client.post("/-/reload", headers=auth())).status_code == 200
        # No --web.config.file to re-read: the security from start-up stays.
        assert exporter.server is not None
        assert exporter.server.security is security
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers=auth())).status_code == 200


async def test_a_reload_that_outlasts_the_wait_is_reported_and_scrapes_go_on(
    tmp_path: Path, clock: FakeClock, sim: VendorSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The handler waits RELOAD_WAIT_SECONDS (30 s) for the loop; shortened here,
    # with a config load that stalls until the test lets it go.
    monkeypatch.setattr(app_module, "RELOAD_WAIT_SECONDS", 0.5)
    entered = threading.Event()
    release = threading.Event()
    path = write_config(tmp_path / "config.yml", keep(sim))

    def stalling_load() -> Config:
        entered.set()
        release.wait(10)
        return load_config(path)

    exporter = make_exporter(path, clock, load=stalling_load)
    added = {"provider": "piloterr", "account": "added"}
    async with running(exporter, load_config(path)) as url:
        try:
            write_config(
                path,
                keep(sim),
                account("piloterr", "added", PILOTERR_KEY, sim.base_url("piloterr")),
            )
            async with httpx.AsyncClient(base_url=url, timeout=15) as client:
                answer = await client.post("/-/reload")
                assert entered.is_set()
                assert (answer.status_code, answer.text) == (
                    500,
                    "failed to reload config: reload still running after 0.5s; it applies"
                    " when done (see the log and saas_quota_config_last_reload_successful)\n",
                )
                # The stalled reload holds neither the loop nor the HTTP threads.
                assert (await client.get("/metrics")).status_code == 200
                assert (await client.get("/-/ready")).status_code == 200
        finally:
            release.set()
        # The 500 only ends the wait: the reload itself carries on and applies the
        # new config once the load returns (see the report on this behaviour).
        await eventually(lambda: sample(url, "saas_quota_up", **added) == 1)
        assert sample(url, "saas_quota_config_last_reload_successful") == 1


# --- signals and shutdown -----------------------------------------------------------


def installed(sig: signal.Signals) -> bool:
    handler = signal.getsignal(sig)
    return handler not in (signal.SIG_DFL, signal.SIG_IGN, None, signal.default_int_handler)


async def test_sighup_reloads_sigterm_stops_and_the_handlers_are_restored(
    tmp_path: Path, clock: FakeClock, sim: VendorSimulator
) -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)}
    path = write_config(tmp_path / "config.yml", keep(sim))
    exporter = make_exporter(path, clock)
    stop = asyncio.Event()
    task = asyncio.create_task(exporter.run(load_config(path), stop))
    try:
        await asyncio.wait_for(exporter.started.wait(), 10)
        url = f"http://127.0.0.1:{exporter.port}"
        # Never send a signal the exporter does not handle: it would end the test run.
        if not all(installed(sig) for sig in before):
            pytest.fail(f"signal handlers not installed: {[signal.getsignal(s) for s in before]}")
        write_config(
            path, keep(sim), account("tornado", "via_sighup", TORNADO_KEY, sim.base_url("tornado"))
        )
        os.kill(os.getpid(), signal.SIGHUP)
        await eventually(
            lambda: sample(url, "saas_quota_up", provider="tornado", account="via_sighup") == 1
        )
        os.kill(os.getpid(), signal.SIGTERM)
        # SIGTERM alone ends run(): its handler sets the stop event, not the test.
        await asyncio.wait_for(asyncio.shield(task), 10)
        assert stop.is_set()
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    after = {sig: signal.getsignal(sig) for sig in before}
    assert after == before
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", exporter.port), timeout=2).close()


async def test_shutdown_closes_the_port_and_hangs_up_on_a_poll_in_flight(
    tmp_path: Path, clock: FakeClock, sim: VendorSimulator
) -> None:
    # A vendor that would answer in 60 s, with a 30 s poll timeout: only a
    # cancelled poll hangs up within the few seconds waited for below.
    sim.set_fault(TORNADO_KEY, Fault(delay=60.0))
    path = tmp_path / "config.yml"
    path.write_text(
        "global:\n  interval: 10m\n  timeout: 30s\naccounts:\n"
        + account("tornado", "slow", TORNADO_KEY, sim.base_url("tornado"))
    )
    exporter = make_exporter(path, clock)
    async with running(exporter, load_config(path)) as url:
        await eventually(lambda: sim.request_count(TORNADO_KEY) == 1)
        assert (await asyncio.to_thread(http_get, url + "/-/ready"))[0] == 503
        port = exporter.port
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert await asyncio.to_thread(sim.wait_for_hang_up, TORNADO_KEY, 10)


async def test_an_echoed_api_key_never_reaches_the_page_or_the_metrics(
    tmp_path: Path, clock: FakeClock, sim: VendorSimulator
) -> None:
    # The vendor quotes the key back in its error; the poller keeps the message.
    body = json.dumps({"error": f"Invalid API Key {TORNADO_KEY}"}).encode()
    sim.set_fault(TORNADO_KEY, Fault(status=401, body=body))
    path = write_config(
        tmp_path / "config.yml", account("tornado", "echo", TORNADO_KEY, sim.base_url("tornado"))
    )
    exporter = make_exporter(path, clock)
    async with running(exporter, load_config(path)) as url:
        await eventually(lambda: http_get(url + "/-/ready")[0] == 200)
        page = (await asyncio.to_thread(http_get, url + "/"))[1]
        assert "<strong>tornado / echo</strong>: failing (auth)" in page
        assert "HTTP 401: Invalid API Key &lt;redacted&gt;" in page
        assert TORNADO_KEY not in page
        metrics = (await asyncio.to_thread(http_get, url + "/metrics"))[1]
        assert TORNADO_KEY not in metrics
        assert (
            'saas_quota_poll_errors_total{account="echo",provider="tornado",reason="auth"} 1.0'
            in (metrics)
        )


# --- reload: user-defined providers -----------------------------------------------

# A definition of the user's own that reads the simulated Tornado's answer.
OWN_TORNADO = """\
providers:
  own_tornado:
    base_url: {base_url}
    path: /usage
    auth: {{header: x-api-key}}
    meters:
      - {{id: jobs, unit: jobs, used: usage_count}}
{extra}"""
OWN_KEYS = ("sk_app_own_tornado_key_1", "sk_app_own_tornado_key_2")


def own_tornado_config(path: Path, sim: VendorSimulator, extra: str = "") -> Path:
    definition = OWN_TORNADO.format(base_url=sim.base_url("tornado"), extra=extra)
    accounts = [account("own_tornado", f"t{i}", key, "") for i, key in enumerate(OWN_KEYS)]
    # The definition's own base_url: no per-account override.
    text = write_config(path, keep(sim), *accounts).read_text().replace("    base_url: \n", "")
    path.write_text(definition + text)
    return path


def polls(values: Samples, account_name: str) -> float | None:
    labels = {"provider": "own_tornado", "account": account_name}
    return values.get(("saas_quota_polls_total", frozenset(labels.items())))


@pytest.fixture
def own_sim() -> Iterator[VendorSimulator]:
    """Pictory's `keep` account, and the two keys the user's own Tornado definition polls."""
    accounts = [
        SimAccount("pictory", PICTORY_KEY, {"ai_credits": SimMeter(limit=50, start=5)}),
        *(SimAccount("tornado", key, {"jobs": SimMeter(limit=None, start=3)}) for key in OWN_KEYS),
    ]
    with VendorSimulator(accounts) as simulator:
        yield simulator


async def test_a_definition_change_on_reload_is_a_change_of_every_account_using_it(
    tmp_path: Path, clock: FakeClock, own_sim: VendorSimulator
) -> None:
    sim = own_sim
    path = own_tornado_config(tmp_path / "config.yml", sim)
    exporter = make_exporter(path, clock)
    async with running(exporter, load_config(path)) as url:
        await eventually(lambda: all(polls(scrape(url), f"t{i}") == 1 for i in (0, 1)))
        # The same definition, moved down by a comment: nothing changed, no poll.
        path.write_text("# reformatted\n" + path.read_text())
        assert await exporter.reload() is None
        await asyncio.sleep(0.5)
        values = await asyncio.to_thread(scrape, url)
        assert (polls(values, "t0"), polls(values, "t1")) == (1, 1)
        assert values[("saas_quota_polls_total", frozenset(KEEP.items()))] == 1

        # A changed definition: both of its accounts are polled again at once, the
        # account of another provider is left alone.
        own_tornado_config(
            path, sim, "      - {id: storage_gb, unit: gigabytes, used: storage_usage_gb}\n"
        )
        assert await exporter.reload() is None
        await eventually(lambda: all(polls(scrape(url), f"t{i}") == 2 for i in (0, 1)))
        values = await asyncio.to_thread(scrape, url)
        assert values[("saas_quota_polls_total", frozenset(KEEP.items()))] == 1
        storage = {"provider": "own_tornado", "account": "t1", "meter": "storage_gb"}
        assert ("saas_quota_used", frozenset(storage.items())) in values


async def test_a_broken_definition_fails_the_reload_as_a_whole_and_lists_every_problem(
    tmp_path: Path, clock: FakeClock, own_sim: VendorSimulator
) -> None:
    path = own_tornado_config(tmp_path / "config.yml", own_sim)
    exporter = make_exporter(path, clock)
    async with running(exporter, load_config(path)) as url:
        await eventually(lambda: all(polls(scrape(url), f"t{i}") == 1 for i in (0, 1)))
        jobs = {"provider": "own_tornado", "account": "t0", "meter": "jobs"}
        before = await asyncio.to_thread(scrape, url)
        # Two problems in the definition, one in an account of another provider.
        text = path.read_text().replace("used: usage_count", "used: 'usage_count[?'")
        text = text.replace("    path: /usage\n", "    path: usage\n")
        path.write_text(text.replace("interval: 10m", "interval: 10"))
        async with httpx.AsyncClient(base_url=url, timeout=15) as client:
            answer = await client.post("/-/reload")
        assert answer.status_code == 500
        problems = answer.text.removeprefix("failed to reload config: ").splitlines()
        assert [p.split(": ", 2)[1] for p in problems] == [
            "providers.own_tornado.path",
            "providers.own_tornado.meters[0].used",
            "global.interval",
        ]
        assert all(p.startswith(f"{path}:") for p in problems)
        values = await asyncio.to_thread(scrape, url)
        assert values[("saas_quota_config_last_reload_successful", frozenset())] == 0
        # The running config stays: every account, its values, and no poll was spent.
        for name in ("t0", "t1"):
            labels = frozenset({"provider": "own_tornado", "account": name}.items())
            assert values[("saas_quota_up", labels)] == 1
            assert values[("saas_quota_polls_total", labels)] == 1
        assert (
            values[("saas_quota_used", frozenset(jobs.items()))]
            == before[("saas_quota_used", frozenset(jobs.items()))]
        )
        assert values[("saas_quota_up", frozenset(KEEP.items()))] == 1


async def test_apply_config_keeps_the_state_of_an_unchanged_definition_only(
    clock: FakeClock,
) -> None:
    calls: list[str] = []

    def vendor(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers["x-api-key"])
        answer = httpx.Response(200, json={"usage_count": 7, "storage_usage_gb": 1.5})
        # The poller reads the raw stream, as a real transport gives it.
        return httpx.Response(200, headers=answer.headers, stream=answer.stream)

    def load(extra: str = "", comment: str = "") -> Config:
        text = OWN_TORNADO.format(base_url="https://tornado.test", extra=extra) + (
            f"{comment}accounts:\n"
            + "".join(
                f"  - {{provider: own_tornado, account: t{i}, api_key: {key}}}\n"
                for i, key in enumerate(OWN_KEYS)
            )
        )
        return parse_config(text, source="config.yml", environ={})

    async with httpx.AsyncClient(transport=httpx.MockTransport(vendor)) as client:
        poller = Poller(StateStore(), client, clock=clock.time, monotonic=clock.monotonic)

        async def run_for(seconds: int) -> None:
            # The second key of a vendor starts a few seconds after the first.
            for _ in range(seconds):
                poller.tick()
                await poller.drain()
                clock.advance(1)

        poller.apply_config(load())
        await run_for(60)
        assert sorted(calls) == sorted(OWN_KEYS)
        states = [poller.store.get(("own_tornado", f"t{i}")) for i in (0, 1)]
        assert all(state is not None and state.up for state in states)

        # Loaded again from a text that differs only in a comment: the very same states,
        # and nothing is due.
        poller.apply_config(load(comment="# unchanged\n"))
        assert [poller.store.get(("own_tornado", f"t{i}")) for i in (0, 1)] == states
        assert all(
            poller.store.get(("own_tornado", f"t{i}")) is state for i, state in enumerate(states)
        )
        await run_for(60)
        assert len(calls) == 2

        # A changed definition changes every account using it: both polled at once,
        # their cached values kept until then.
        poller.apply_config(
            load("      - {id: storage_gb, unit: gigabytes, used: storage_usage_gb}\n")
        )
        for i in (0, 1):
            state = poller.store.get(("own_tornado", f"t{i}"))
            assert state is not None
            assert state is not states[i]
            assert state.polls_total == 1
        await run_for(60)
        assert sorted(calls[2:]) == sorted(OWN_KEYS)


# --- reload: one path for every failure, a budget, coalescing -----------------------


async def test_any_exception_from_a_load_fails_the_reload_as_a_whole(
    tmp_path: Path, clock: FakeClock, sim: VendorSimulator
) -> None:
    path = write_config(tmp_path / "config.yml", keep(sim))
    failures: list[Exception] = [RecursionError("maximum recursion depth exceeded"), OSError(5)]

    def failing_load() -> Config:
        raise failures.pop(0)

    exporter = make_exporter(path, clock, load=failing_load)
    async with running(exporter, load_config(path)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=15) as client:
            answer = await client.post("/-/reload")
            assert (answer.status_code, answer.text) == (
                500,
                "failed to reload config: the config is nested too deeply to read\n",
            )
            answer = await client.post("/-/reload")
            assert answer.status_code == 500
            assert answer.text.startswith("failed to reload config: unexpected OSError")
        assert sample(url, "saas_quota_config_last_reload_successful") == 0
        assert sample(url, "saas_quota_up", **KEEP) is not None


async def test_a_reload_over_its_budget_fails_and_no_second_load_piles_up(
    tmp_path: Path, clock: FakeClock, sim: VendorSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "RELOAD_TIMEOUT_SECONDS", 0.5)
    release = threading.Event()
    calls: list[int] = []
    path = write_config(tmp_path / "config.yml", keep(sim))

    def stalling_load() -> Config:
        calls.append(1)
        release.wait(20)
        return load_config(path)

    exporter = make_exporter(path, clock, load=stalling_load)
    async with running(exporter, load_config(path)) as url:
        try:
            async with httpx.AsyncClient(base_url=url, timeout=15) as client:
                answer = await client.post("/-/reload")
                assert (answer.status_code, answer.text) == (
                    500,
                    "failed to reload config: reading the config took longer than 0.5s;"
                    " a file may be on a hung filesystem\n",
                )
                assert sample(url, "saas_quota_config_last_reload_successful") == 0
                # The stuck load still runs: another is refused rather than started.
                answer = await client.post("/-/reload")
                assert answer.status_code == 500
                assert "the previous reload is still reading files" in answer.text
                assert len(calls) == 1
                assert (await client.get("/metrics")).status_code == 200
        finally:
            release.set()
        # Once it has ended, reloads work again.
        await eventually(lambda: not any(t.name == "config-reload" for t in threading.enumerate()))
        monkeypatch.setattr(app_module, "RELOAD_TIMEOUT_SECONDS", 10.0)
        assert await exporter.reload() is None
        assert sample(url, "saas_quota_config_last_reload_successful") == 1


async def test_a_sighup_storm_runs_one_reload_and_queues_one(
    tmp_path: Path, clock: FakeClock, sim: VendorSimulator
) -> None:
    entered = threading.Event()
    release = threading.Event()
    calls: list[int] = []
    path = write_config(tmp_path / "config.yml", keep(sim))

    def stalling_load() -> Config:
        calls.append(1)
        entered.set()
        release.wait(20)
        return load_config(path)

    exporter = make_exporter(path, clock, load=stalling_load)
    async with running(exporter, load_config(path)) as url:
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            await asyncio.to_thread(entered.wait, 10)
            for _ in range(300):
                os.kill(os.getpid(), signal.SIGHUP)
                await asyncio.sleep(0)
            await asyncio.sleep(0.2)
            assert len(calls) == 1, "one running"
        finally:
            release.set()
        await eventually(lambda: len(calls) == 2 and not exporter._reload_tasks)
        await asyncio.sleep(0.3)
        assert len(calls) == 2, "and one queued behind it, not 300"
        assert sample(url, "saas_quota_config_last_reload_successful") == 1


async def test_sigterm_ends_run_while_a_load_hangs(
    tmp_path: Path, clock: FakeClock, sim: VendorSimulator
) -> None:
    entered = threading.Event()
    never = threading.Event()
    path = write_config(tmp_path / "config.yml", keep(sim))

    def hanging_load() -> Config:
        entered.set()
        never.wait(30)
        return load_config(path)

    exporter = make_exporter(path, clock, load=hanging_load)
    stop = asyncio.Event()
    task = asyncio.create_task(exporter.run(load_config(path), stop))
    try:
        await asyncio.wait_for(exporter.started.wait(), 10)
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.to_thread(entered.wait, 10)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(asyncio.shield(task), 10)
        hung = [t for t in threading.enumerate() if t.name == "config-reload"]
        assert hung, "the load is still hanging"
        assert all(t.daemon for t in hung), "and cannot keep the process from exiting"
    finally:
        never.set()
        stop.set()
        await asyncio.wait_for(task, 10)


# --- first run: the log says it works, or which account does not and why ----------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_the_end_of_the_first_round_is_one_info_line_naming_what_fails(
    tmp_path: Path, clock: FakeClock, sim: VendorSimulator
) -> None:
    import io

    import structlog

    from exporter.log import configure

    port = _closed_port()
    path = write_config(
        tmp_path / "config.yml",
        keep(sim),
        account("tornado", "pipeline", TORNADO_KEY, sim.base_url("tornado")),
        account("piloterr", "down", PILOTERR_KEY, f"http://127.0.0.1:{port}/piloterr"),
    )
    saved = structlog.get_config()
    stream = io.StringIO()
    configure("info", "json", stream)
    try:
        exporter = make_exporter(path, clock)
        async with running(exporter, load_config(path)):
            await eventually(lambda: "first poll round done" in stream.getvalue())
    finally:
        structlog.configure(**saved)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    (line,) = [x for x in lines if x["event"].startswith("first poll round done")]
    assert line["event"] == "first poll round done: 3 accounts, 2 up, 1 failing"
    assert line["level"] == "info"
    assert (line["accounts"], line["up"], line["failing"]) == (3, 2, 1)
    assert line["failing_accounts"] == ["piloterr/down network"]
    events = [x["event"] for x in lines]
    assert events.index("listening") < events.index(line["event"])

    # The network error names the host it could not reach, never path or query.
    (failed,) = [x for x in lines if x["event"] == "poll failed"]
    assert failed["error"].startswith(f"ConnectError talking to 127.0.0.1:{port}: "), failed
    assert "/piloterr" not in failed["error"]


async def test_a_port_in_use_is_a_listen_error_naming_the_address_and_another_port(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = write_config(tmp_path / "config.yml")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        exporter = make_exporter(path, clock, listen=ListenAddress("127.0.0.1", port))
        with pytest.raises(app_module.ListenError) as raised:
            await asyncio.wait_for(exporter.run(load_config(path)), 10)
    assert raised.value.address == f"127.0.0.1:{port}"
    assert str(raised.value) == (
        f"cannot listen on 127.0.0.1:{port}: the address is already in use: another process"
        " (another exporter?) listens there; stop it, or choose another port, e.g."
        f" --web.listen-address 127.0.0.1:{port + 1}"
    )


def test_ready_waits_for_the_published_bytes_to_show_the_first_round() -> None:
    from exporter.app import Readiness

    done = False
    generation, published = 7, 5
    ready = Readiness(lambda: done, lambda: generation, lambda: published)
    assert not ready()  # the round is running
    done = True
    assert not ready()  # the round is done, the bytes are from before its end
    generation = 9  # polls after the round do not move the target
    published = 7
    assert ready()
    published = -1
    assert ready()  # once ready, always ready
