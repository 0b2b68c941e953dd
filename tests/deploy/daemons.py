"""Prometheus and Alertmanager as child processes of a test, on free loopback ports."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import free_port, http_get


class Daemon:
    """A Prometheus or Alertmanager binary on a free loopback port."""

    def __init__(self, binary: str, args: list[str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.binary = binary
        self.proc = subprocess.Popen(
            [binary, *args, f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def ready(self) -> bool:
        """the daemon answers /-/ready"""
        if self.proc.poll() is not None:
            pytest.fail(f"{self.binary} exited {self.proc.returncode}:\n{self.logs()}")
        try:
            return http_get(self.url + "/-/ready", timeout=1)[0] == 200
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        status, body = http_get(f"{self.url}{path}?{query}", timeout=10)
        document = json.loads(body)
        assert status == 200, (path, params, document)
        return document

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def post(self, path: str, document: Any) -> int:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(document).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
