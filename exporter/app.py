"""Wiring the running exporter together: config, poller, HTTP server, signals.

The asyncio loop (poller, reloads, signals) runs on the main thread; the HTTP server
runs on its own threads and reaches the loop only for POST /-/reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from exporter.collector import MetricsRenderer, QuotaCollector
from exporter.config import Config, ConfigError
from exporter.log import get_logger
from exporter.poller import Poller, make_client
from exporter.state import ReloadStatus, StateStore
from exporter.web import ExporterHTTPServer, WebApp, WebSecurity, serve
from exporter.webconfig import WebConfigError

RELOAD_WAIT_SECONDS = 30.0
SHUTDOWN_GRACE_SECONDS = 3.0


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> ListenAddress:
        """HOST:PORT, :PORT (all interfaces) or [IPv6]:PORT, like the Go exporters."""
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"invalid listen address {text!r}: expected HOST:PORT")
        # "" (from ":PORT") means every interface, IPv6 and IPv4 alike.
        return cls(host.strip("[]"), int(port))

    def url(self, port: int | None = None) -> str:
        host = "localhost" if self.host in ("", "0.0.0.0", "::") else self.host  # noqa: S104
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port if port is not None else self.port}"


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
    ) -> None:
        self.load_config = load_config
        # Re-read on every reload, like the config: certificates and users rotate too.
        self.load_security = load_security
        self.listen = listen
        self.security = security
        self.clock = clock
        self.store = StateStore()
        self._config: Config | None = None
        self._log = get_logger()
        self.server: ExporterHTTPServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poller: Poller | None = None
        self._reload_lock: asyncio.Lock | None = None
        self._signal_reloads: set[asyncio.Future[str | None]] = set()
        self.started = asyncio.Event()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    async def run(self, config: Config, stop: asyncio.Event | None = None) -> None:
        """Serve until `stop` is set or SIGTERM/SIGINT arrives."""
        self._loop = asyncio.get_running_loop()
        self._reload_lock = asyncio.Lock()
        stop = stop or asyncio.Event()
        self._config = config
        collector = QuotaCollector(self.store, self.clock, lambda: self._current_interval())
        renderer = MetricsRenderer(collector)
        async with make_client() as client:
            poller = Poller(self.store, client, clock=self.clock)
            self._poller = poller
            self._log_warnings(config)
            poller.apply_config(config)
            self.store.set_reload(ReloadStatus(successful=True, last_success=self.clock()))
            app = WebApp(
                renderer=renderer,
                store=self.store,
                ready=poller.first_round_done.is_set,
                reload=self._reload_from_thread,
                security=self.security,
                clock=self.clock,
            )
            self.server = _bind(self.listen, app)
            serve(self.server)
            self._install_signals(stop)
            self._log.info(
                "listening",
                address=f"{self.listen.host or '*'}:{self.port}",
                accounts=len(config.accounts),
                tls=bool(self.security and self.security.ssl_context()),
            )
            self.started.set()
            poll_task = asyncio.create_task(poller.run(), name="poller")
            try:
                await stop.wait()
            finally:
                self._log.info("shutting down")
                poll_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(poll_task, SHUTDOWN_GRACE_SECONDS)
                self._remove_signals()
                self.server.shutdown()
                self.server.server_close()

    def _current_interval(self) -> float:
        return self._config.interval if self._config else 300.0

    def _log_warnings(self, config: Config) -> None:
        for warning in config.warnings:
            self._log.warning("config warning", detail=warning)

    # --- reload -------------------------------------------------------------------

    async def reload(self) -> str | None:
        """Load the config again; None on success, else the error (old config kept)."""
        assert self._reload_lock is not None
        assert self._poller is not None
        async with self._reload_lock:
            try:
                # File reads (config, key and certificate files) stay off the loop.
                config = await asyncio.to_thread(self.load_config)
                security = (
                    await asyncio.to_thread(self.load_security) if self.load_security else None
                )
            except (ConfigError, WebConfigError) as exc:
                previous = self.store.snapshot()[2]
                self.store.set_reload(
                    ReloadStatus(successful=False, last_success=previous.last_success)
                )
                problems = list(exc.problems) if isinstance(exc, ConfigError) else [str(exc)]
                self._log.error("config reload failed; keeping the running config", errors=problems)
                return str(exc)
            if self.load_security and self.server is not None:
                self.server.security = security
            self._log_warnings(config)
            self._config = config
            self._poller.apply_config(config)
            self.store.set_reload(ReloadStatus(successful=True, last_success=self.clock()))
            self._log.info("config reloaded", accounts=len(config.accounts))
            return None

    def _reload_from_thread(self) -> str | None:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self.reload(), self._loop)
        try:
            return future.result(RELOAD_WAIT_SECONDS)
        except TimeoutError:
            # It goes on and applies when done; its outcome is logged and shown by
            # saas_quota_config_last_reload_successful.
            return (
                f"reload still running after {RELOAD_WAIT_SECONDS:g}s; it applies when done"
                " (see the log and saas_quota_config_last_reload_successful)"
            )

    # --- signals ------------------------------------------------------------------

    def _install_signals(self, stop: asyncio.Event) -> None:
        assert self._loop is not None
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            self._loop.add_signal_handler(signal.SIGTERM, stop.set)
            self._loop.add_signal_handler(signal.SIGINT, stop.set)
            self._loop.add_signal_handler(signal.SIGHUP, self._reload_on_signal)

    def _reload_on_signal(self) -> None:
        # The loop keeps only a weak reference to a task: hold it until it is done.
        task = asyncio.ensure_future(self.reload())
        self._signal_reloads.add(task)
        task.add_done_callback(self._signal_reloads.discard)

    def _remove_signals(self) -> None:
        assert self._loop is not None
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self._loop.remove_signal_handler(sig)


def _bind(listen: ListenAddress, app: WebApp) -> ExporterHTTPServer:
    """Bind the HTTP server; ":PORT" takes IPv6 and IPv4 where the host has IPv6."""
    if listen.host:
        return ExporterHTTPServer((listen.host, listen.port), app)
    try:
        return ExporterHTTPServer(("::", listen.port), app)
    except OSError as exc:
        if exc.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
            raise
        return ExporterHTTPServer(("0.0.0.0", listen.port), app)  # noqa: S104
