"""Helpers for tests that drive real processes over real sockets.

`require_binary` skips a test when an external binary is missing, except under
REQUIRE_E2E=1 (set by .ci/run), where a missing binary fails the test instead.
`ExporterProcess` runs the installed console script as a subprocess.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

import pytest

REPO = Path(__file__).resolve().parents[2]


def require_binary(name: str) -> str:
    """The path of an external binary, or skip (fail under REQUIRE_E2E=1)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install it, or run .ci/run)"
        if os.environ.get("REQUIRE_E2E"):
            pytest.fail(f"REQUIRE_E2E is set but {message}")
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(
    url: str,
    timeout: float = 5.0,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def basic(user: str, password: str) -> dict[str, str]:
    """An Authorization header for HTTP basic auth."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def wait_until(condition: object, timeout: float = 15.0, interval: float = 0.05) -> None:
    """Poll `condition()` until it is truthy; fail with its description otherwise."""
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s: {getattr(condition, '__doc__', '')}")


def exporter_command() -> list[str]:
    script = Path(sys.executable).parent / "saas-quota-exporter"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "exporter.cli"]


class ExporterProcess:
    """The exporter's console script as a child process, logging JSON to a file.

    With `ssl_context` (a client context trusting the server's CA) it is reached
    over https, for a `--web.config.file` with tls_server_config.
    """

    def __init__(
        self,
        args: list[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.port = free_port()
        self.ssl_context = ssl_context
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.args = [
            *exporter_command(),
            *args,
            "--web.listen-address",
            f"127.0.0.1:{self.port}",
            "--log.format",
            "json",
        ]
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_ready: bool = True) -> ExporterProcess:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.args, stdout=self._log, stderr=subprocess.STDOUT, env=self.env
        )
        wait_until(self._healthy, timeout=20)
        if wait_ready:
            wait_until(self.ready, timeout=30)
        return self

    def _healthy(self) -> bool:
        """the exporter answers /-/healthy"""
        assert self.proc is not None
        if self.proc.poll() is not None:
            pytest.fail(f"exporter exited with {self.proc.returncode}:\n{self.logs()}")
        try:
            return http_get(self.url + "/-/healthy", 1, context=self.ssl_context)[0] == 200
        except OSError:
            return False

    def ready(self) -> bool:
        """the exporter is ready (first poll round done)"""
        try:
            return http_get(self.url + "/-/ready", 1, context=self.ssl_context)[0] == 200
        except OSError:
            return False

    def get(
        self, path: str, timeout: float = 5.0, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        return http_get(self.url + path, timeout, headers, context=self.ssl_context)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)

    def __enter__(self) -> ExporterProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
