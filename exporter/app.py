"""Wiring the running exporter together: config, poller, HTTP server, signals.

The asyncio loop (poller, reloads, signals) runs on the main thread; the HTTP server
runs on its own threads and reaches the loop only for POST /-/reload. A reload reads
files in a daemon thread of its own, within a time budget, so a read that hangs can
neither hold the loop nor keep the process from exiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError as FutureCancelledError
from dataclasses import dataclass
from typing import Any

from exporter.config import Config, ConfigError
from exporter.log import get_logger
from exporter.poller import Poller
from exporter.redaction import REDACTOR
from exporter.render import MetricsRenderer
from exporter.sharding import Shard
from exporter.signals import EARLY, HANDLED
from exporter.state import ReloadStatus, StateStore
from exporter.transport import Clients
from exporter.web import ExporterHTTPServer, WebApp, WebSecurity, serve
from exporter.webconfig import WebConfigError

# How long a reload's answer waits for /metrics to show its outcome (see _reload_after).
RELOAD_PUBLISH_WAIT = 5.0
# One reload's budget for reading and validating every file; past it the reload fails.
RELOAD_TIMEOUT_SECONDS = 30.0
# POST /-/reload may queue behind a running reload, so it waits for two budgets.
RELOAD_WAIT_SECONDS = 2 * RELOAD_TIMEOUT_SECONDS + 5.0
SHUTDOWN_GRACE_SECONDS = 3.0


class ReloadError(Exception):
    """A reload that failed for a reason of its own (time budget, a stuck earlier load)."""


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> ListenAddress:
        """HOST:PORT, :PORT (all interfaces) or [IPv6]:PORT, like the Go exporters.

        The error says how to write what was most likely meant.
        """
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"invalid listen address {text!r}: expected HOST:PORT{_fix(text)}")
        # "" (from ":PORT") means every interface, IPv6 and IPv4 alike.
        return cls(host.strip("[]"), int(port))

    def url(self, port: int | None = None) -> str:
        host = "localhost" if self.host in ("", "0.0.0.0", "::") else self.host  # noqa: S104
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port if port is not None else self.port}"


def _fix(text: str) -> str:
    """The likely intent of a listen address that did not parse, as a suggestion."""
    host, sep, port = text.rpartition(":")
    if text.isdigit():
        return (
            f"; for port {text} on every interface write ':{text}'"
            f" (or '127.0.0.1:{text}' for this machine only)"
        )
    if not sep or (not port and host):
        # `localhost`, `127.0.0.1:`: the port is missing (9877 is the default one).
        return f"; add the port, e.g. '{(host if sep else text) or 'localhost'}:9877'"
    return "; the port must be a number from 0 to 65535"


class ListenError(OSError):
    """The HTTP server cannot bind its address; the message says what to do about it.

    An OSError still (callers catch those), whose text is the message alone.
    """

    def __init__(self, code: int | None, message: str, address: str) -> None:
        super().__init__(code, message)
        self.message = message
        self.address = address

    def __str__(self) -> str:
        return self.message


def _listen_error(listen: ListenAddress, exc: OSError) -> ListenError:
    shown = f"[{listen.host}]" if ":" in listen.host else listen.host
    address = f"{shown or '*'}:{listen.port}"
    other = f"{shown}:{listen.port + 1 if listen.port < 65535 else 9877}"
    hints = {
        errno.EADDRINUSE: (
            "the address is already in use: another process (another exporter?) listens"
            f" there; stop it, or choose another port, e.g. --web.listen-address {other}"
        ),
        errno.EACCES: (
            "permission denied: ports below 1024 need privileges; choose a port above"
            f" 1024, e.g. --web.listen-address {shown}:9877"
        ),
        errno.EADDRNOTAVAIL: (
            "this machine has no interface with that address; use one of its own"
            " addresses, 127.0.0.1, or ':PORT' for every interface"
        ),
    }
    hint = hints.get(exc.errno or 0)
    if hint is None and isinstance(exc, socket.gaierror):
        hint = "the host name does not resolve; use an IP address or a resolvable name"
    return ListenError(
        exc.errno, f"cannot listen on {address}: {hint or exc.strerror or exc}", address
    )


class Readiness:
    """/-/ready: the first round is done and the published /metrics bytes show it.

    The round ending is not enough: the renderer publishes what changed within about
    a second, so a scrape right after the round could miss its last accounts (three
    shards' /metrics read right after /-/ready once came up 364 accounts short of
    3,000). Once ready, always ready: a reload does not take readiness away.
    """

    def __init__(
        self,
        round_done: Callable[[], bool],
        generation: Callable[[], int],
        published: Callable[[], int],
    ) -> None:
        self._round_done = round_done
        self._generation = generation
        self._published = published
        self._target: int | None = None
        self._ready = False

    def __call__(self) -> bool:
        # Called from the web server's threads: the races here only ever compute the
        # same answer twice, or a later target generation.
        if self._ready:
            return True
        if not self._round_done():
            return False
        if self._target is None:
            self._target = self._generation()
        self._ready = self._published() >= self._target
        return self._ready


class Exporter:
    """One running exporter. `load_config` is called again on every reload."""

    def __init__(
        self,
        load_config: Callable[[], Config],
        listen: ListenAddress,
        *,
        security: WebSecurity | None = None,
        load_security: Callable[[], WebSecurity | None] | None = None,
        clock: Callable[[], float] = time.time,
        shard: Shard | None = None,
    ) -> None:
        # Every config loaded (at start and on each reload) is cut down to this shard.
        self.shard = shard or Shard()
        self.load_config = load_config
        # Re-read on every reload, like the config: certificates and users rotate too.
        self.load_security = load_security
        self.listen = listen
        # Handed to the server, which holds it from then on (swapped there on reload).
        self._startup_security = security
        self.clock = clock
        self.store = StateStore()
        self._log = get_logger()
        self.server: ExporterHTTPServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poller: Poller | None = None
        self._renderer: MetricsRenderer | None = None
        # At most one reload runs and one waits behind it; later requests join the
        # waiting one, which reads the files only after they all arrived.
        self._reload_latest: asyncio.Task[str | None] | None = None
        self._reload_queued: asyncio.Task[str | None] | None = None
        # The loop keeps only weak references to tasks: hold them until done.
        self._reload_tasks: set[asyncio.Task[str | None]] = set()
        # A load thread that outlived its budget; no other starts while it lives.
        self._stuck_load: tuple[threading.Thread, float] | None = None
        self._previous_handlers: dict[signal.Signals, Any] = {}
        self.started = asyncio.Event()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    async def run(self, config: Config, stop: asyncio.Event | None = None) -> None:
        """Serve until `stop` is set or SIGTERM/SIGINT arrives."""
        self._loop = asyncio.get_running_loop()
        stop = stop or asyncio.Event()
        renderer = self._renderer = MetricsRenderer()
        configured = len(config.accounts)
        config = self.shard.select(config)
        self.store.set_shard(self.shard.index, self.shard.count)
        # The pools are made once: their size is the start-up config's concurrency.
        async with Clients(config.concurrency) as client:
            poller = Poller(
                self.store, client, clock=self.clock, max_connections=config.concurrency
            )
            self._poller = poller
            self._log_warnings(config)
            poller.apply_config(config)
            self.store.set_reload(ReloadStatus(successful=True, last_success=self.clock()))
            app = WebApp(
                renderer=renderer,
                snapshot=self.store.snapshot,
                ready=Readiness(
                    poller.first_round_done.is_set,
                    lambda: self.store.generation,
                    lambda: renderer.published_generation,
                ),
                reload=self._reload_from_thread,
                clock=self.clock,
            )
            self.server = _bind(self.listen, app, self._startup_security)
            # Before serving: the first scrape finds bytes already built.
            renderer.start(self.store.snapshot, self.clock)
            serve(self.server)
            reload_pending = self._install_signals(stop)
            self._log.info(
                "listening",
                address=f"{self.listen.host or '*'}:{self.port}",
                accounts=len(config.accounts),
                tls=bool(self.server.security and self.server.security.ssl_context()),
                **self._shard_fields(configured),
            )
            self.started.set()
            if reload_pending and not stop.is_set():
                # A SIGHUP after the config was read but before the loop ran: the
                # files are read again before the first poll, not under it.
                await self.reload()
            poll_task = asyncio.create_task(poller.run(), name="poller")
            announce = asyncio.create_task(self._first_round_line(poller), name="first-round")
            try:
                await stop.wait()
            finally:
                self._log.info("shutting down")
                announce.cancel()
                poll_task.cancel()
                # A reload waiting on a hung read ends here; its daemon thread is left.
                for task in list(self._reload_tasks):
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(poll_task, SHUTDOWN_GRACE_SECONDS)
                self._remove_signals()
                self.server.shutdown()
                self.server.server_close()
                renderer.stop()

    def _shard_fields(self, configured: int) -> dict[str, int]:
        """What a log line says of the shard: nothing unless the accounts are sharded."""
        if not self.shard.sharded:
            return {}
        return {
            "shard_index": self.shard.index,
            "shard_count": self.shard.count,
            "configured_accounts": configured,
        }

    async def _first_round_line(self, poller: Poller) -> None:
        """One info line once every account was polled: the log says it works, or why not.

        The names are in `failing_accounts` (exporter/log.py leaves those identifiers
        as they are), not in the message: the message is scrubbed like any text, and a
        key that holds an account's name (the demo's) would take the name out.
        """
        await poller.first_round_done.wait()
        accounts = self.store.snapshot().accounts
        if not accounts:
            return
        up = sum(1 for a in accounts if a.up)
        failing = [a for a in accounts if a.polled and not a.up]
        pending = len(accounts) - up - len(failing)
        message = (
            f"first poll round done: {len(accounts)} account{'s' if len(accounts) != 1 else ''},"
            f" {up} up, {len(failing)} failing" + (f", {pending} not polled yet" if pending else "")
        )
        self._log.info(
            message,
            accounts=len(accounts),
            up=up,
            failing=len(failing),
            failing_accounts=[
                f"{a.provider}/{a.account}"
                f" {a.last_error_reason.value if a.last_error_reason else 'error'}"
                for a in failing
            ],
        )

    def _log_warnings(self, config: Config) -> None:
        for warning in config.warnings:
            self._log.warning("config warning", detail=warning)

    # --- reload -------------------------------------------------------------------

    async def reload(self) -> str | None:
        """Load the config again; None on success, else the error (old config kept).

        Joins a reload that is waiting to start rather than queueing another one.
        """
        return await asyncio.shield(self._request_reload())

    def _request_reload(self) -> asyncio.Task[str | None]:
        if self._reload_queued is not None:
            return self._reload_queued
        task = asyncio.ensure_future(self._reload_after(self._reload_latest))
        self._reload_queued = self._reload_latest = task
        self._reload_tasks.add(task)
        task.add_done_callback(self._reload_tasks.discard)
        return task

    async def _reload_after(self, previous: asyncio.Task[str | None] | None) -> str | None:
        if previous is not None and not previous.done():
            await asyncio.wait({previous})  # its outcome is its own callers'
        if self._reload_queued is asyncio.current_task():
            self._reload_queued = None
        outcome = await self._reload_once()
        # Answer once /metrics shows the outcome (saas_quota_config_last_reload_*,
        # the accounts added or gone): a scrape right after `POST /-/reload` sees
        # what it did. Bounded: a stuck renderer delays the answer, never blocks it.
        renderer = self._renderer
        if renderer is not None:
            generation = self.store.generation
            await asyncio.to_thread(renderer.wait_published, generation, RELOAD_PUBLISH_WAIT)
        return outcome

    async def _reload_once(self) -> str | None:
        """The one place a reload succeeds or fails as a whole, whatever is raised."""
        assert self._poller is not None
        try:
            config, security = await self._load()
            configured = len(config.accounts)
            config = self.shard.select(config)
            self._poller.apply_config(config)
        except Exception as exc:  # every failure keeps the running config
            problems = _problems(exc)
            self.store.reload_failed()
            self._log.error(
                "config reload failed; keeping the running config",
                errors=problems,
                error_type=type(exc).__name__,
            )
            return "\n".join(problems)
        if self.load_security and self.server is not None:
            # The one place the live security changes (see ExporterHTTPServer).
            self.server.security = security
        self._log_warnings(config)
        self.store.set_reload(ReloadStatus(successful=True, last_success=self.clock()))
        self._log.info(
            "config reloaded", accounts=len(config.accounts), **self._shard_fields(configured)
        )
        return None

    async def _load(self) -> tuple[Config, WebSecurity | None]:
        """Config and web config, read in a daemon thread within RELOAD_TIMEOUT_SECONDS.

        Not asyncio.to_thread: its executor threads are joined at exit, so one read
        that hangs (a dead network filesystem) would keep SIGTERM from ending the
        process.
        """
        budget = RELOAD_TIMEOUT_SECONDS
        if self._stuck_load is not None:
            thread, since = self._stuck_load
            if thread.is_alive():
                raise ReloadError(
                    f"the previous reload is still reading files after"
                    f" {time.monotonic() - since:.0f}s (a hung filesystem?); not starting another"
                )
            self._stuck_load = None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Config, WebSecurity | None]] = loop.create_future()

        def settle(outcome: Any, failed: bool) -> None:
            if not future.done():
                if failed:
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

        def work() -> None:
            try:
                outcome: Any = (
                    self.load_config(),
                    self.load_security() if self.load_security else None,
                )
                failed = False
            except Exception as exc:  # handed to the loop, raised there
                outcome, failed = exc, True
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                loop.call_soon_threadsafe(settle, outcome, failed)

        thread = threading.Thread(target=work, name="config-reload", daemon=True)
        started = time.monotonic()
        thread.start()
        try:
            return await asyncio.wait_for(future, budget)
        except TimeoutError:
            self._stuck_load = (thread, started)
            raise ReloadError(
                f"reading the config took longer than {budget:g}s; a file may be on a"
                " hung filesystem"
            ) from None

    def _reload_from_thread(self) -> str | None:
        assert self._loop is not None
        try:
            future = asyncio.run_coroutine_threadsafe(self.reload(), self._loop)
        except RuntimeError:
            return "the exporter is shutting down"
        try:
            return future.result(RELOAD_WAIT_SECONDS)
        except FutureCancelledError:
            return "the exporter is shutting down"
        except TimeoutError:
            # It goes on and applies when done; its outcome is logged and shown by
            # saas_quota_config_last_reload_successful.
            return (
                f"reload still running after {RELOAD_WAIT_SECONDS:g}s; it applies when done"
                " (see the log and saas_quota_config_last_reload_successful)"
            )

    # --- signals ------------------------------------------------------------------

    def _install_signals(self, stop: asyncio.Event) -> bool:
        """Hand SIGTERM, SIGINT and SIGHUP to the loop; whether a reload is pending."""
        assert self._loop is not None
        handlers: dict[signal.Signals, Callable[[], object]] = {
            signal.SIGTERM: stop.set,
            signal.SIGINT: stop.set,
            signal.SIGHUP: self._reload_on_signal,
        }
        for sig in HANDLED:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                previous = signal.getsignal(sig)
                self._loop.add_signal_handler(sig, handlers[sig])
                self._previous_handlers[sig] = previous
        # What arrived before the loop took over (exporter.signals) is acted on now.
        reload_pending, stop_pending = EARLY.take()
        if stop_pending:
            stop.set()
        return reload_pending

    def _reload_on_signal(self) -> None:
        # A storm of SIGHUPs coalesces: this joins the queued reload if there is one.
        self._request_reload()

    def _remove_signals(self) -> None:
        assert self._loop is not None
        for sig, previous in self._previous_handlers.items():
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self._loop.remove_signal_handler(sig)
                # Not SIG_DFL: a SIGHUP while shutting down must not kill the process.
                signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous_handlers.clear()


def _problems(exc: Exception) -> list[str]:
    """What a failed reload reports, one line per problem, never a key."""
    if isinstance(exc, ConfigError | WebConfigError):
        return list(exc.problems)
    if isinstance(exc, ReloadError):
        return [str(exc)]
    if isinstance(exc, RecursionError):
        return ["the config is nested too deeply to read"]
    # Unexpected: name it, scrubbed and short, so the operator can report it.
    detail = REDACTOR.scrub(str(exc))[:200]
    return [f"unexpected {type(exc).__name__} while loading the config: {detail}"]


def _bind(listen: ListenAddress, app: WebApp, security: WebSecurity | None) -> ExporterHTTPServer:
    """The bound HTTP server, or ListenError saying what to do (a port in use...)."""
    try:
        return _bind_any(listen, app, security)
    except OSError as exc:
        raise _listen_error(listen, exc) from None


def _bind_any(
    listen: ListenAddress, app: WebApp, security: WebSecurity | None
) -> ExporterHTTPServer:
    """Bind the HTTP server; ":PORT" takes IPv6 and IPv4 where the host has IPv6."""
    if listen.host:
        return ExporterHTTPServer((listen.host, listen.port), app, security=security)
    try:
        return ExporterHTTPServer(("::", listen.port), app, security=security)
    except OSError as exc:
        if exc.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
            raise
        return ExporterHTTPServer(("0.0.0.0", listen.port), app, security=security)  # noqa: S104
