"""What the benchmarks share: simulated accounts, the exporter as a child process,
/proc sampling and percentiles.

Everything talks over real sockets on 127.0.0.1. Run the scripts from the
repository root as modules (`python -m benchmarks.soak`), so this module imports.
"""

from __future__ import annotations

import contextlib
import http.client
import math
import multiprocessing
import os
import resource
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from tests.support.simulator import DAY, Fault, SimAccount, SimMeter, VendorSimulator

PROVIDER_ORDER: Final = ("pictory", "tornado", "piloterr", "vidnavigator", "vertaaux")


def make_accounts(count: int, prefix: str = "bench") -> list[SimAccount]:
    """`count` simulated keys, spread round-robin over the five vendors."""
    accounts = []
    for i in range(count):
        provider = PROVIDER_ORDER[i % len(PROVIDER_ORDER)]
        key = f"{prefix}-{provider}-{i:04d}"
        meters: dict[str, SimMeter]
        if provider == "pictory":
            meters = {
                "video_minutes": SimMeter(limit=600, start=100 + i, rate=0.3),
                "transcription_minutes": SimMeter(limit=600, start=12, rate=0.01),
                "voiceover_minutes": SimMeter(limit=0),
                "ai_credits": SimMeter(limit=3000, start=140.4, rate=0.5),
            }
        elif provider == "tornado":
            meters = {
                "storage_gb": SimMeter(limit=1024, start=100 + i, rate=0.2),
                "jobs": SimMeter(limit=None, start=1200, rate=0.5),
            }
        elif provider == "piloterr":
            meters = {"api_credits": SimMeter(limit=20000, start=1700 + i, rate=0.5)}
        elif provider == "vidnavigator":
            meters = {
                "credits": SimMeter(limit=800, start=30 + i, rate=0.01),
                "storage_gb": SimMeter(limit=500, start=120, rate=0.05),
            }
        else:
            meters = {"credits": SimMeter(limit=5000, start=1200 + i, rate=1.0, period=DAY)}
        accounts.append(SimAccount(provider, key, meters, reset_in=(3 + i % 20) * DAY))
    return accounts


def account_name(account: SimAccount) -> str:
    """The `account` label for a simulated key: `bench-pictory-0003` -> `pictory-0003`."""
    return account.api_key.split("-", 1)[1]


def _quiet_resets(server: socketserver.BaseServer) -> None:
    """Drop the traceback socketserver prints when a client resets a kept-alive
    connection between requests (the exporter's pool closing an idle one); any other
    error is still printed."""
    original = server.handle_error

    def handle_error(request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionResetError):
            return
        original(request, client_address)

    server.handle_error = handle_error  # type: ignore[method-assign]


def _serve_vendors(accounts: list[SimAccount], conn: Connection) -> None:
    """The child process of `SimulatorProcess`: serve, and answer commands."""
    with VendorSimulator(accounts) as sim:
        _quiet_resets(sim.server)
        conn.send(sim.port)
        while True:
            try:
                command, *args = conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone
            if command == "stop":
                conn.send(None)
                return
            if command == "fault":
                sim.set_fault(args[0], args[1])
                conn.send(None)
            elif command == "count":
                conn.send(sim.request_count(args[0]))
            elif command == "total":
                conn.send(len(sim.requests))
            elif command == "counts":
                with sim._lock:
                    conn.send(Counter(key for _, key in sim.requests if key))


class SimulatorProcess:
    """The vendor simulator in a child process, so that its request handling does
    not compete with the measuring threads of this process for the GIL.

    Controlled over a pipe; one command at a time from any thread.
    """

    def __init__(self, accounts: list[SimAccount]) -> None:
        self._accounts = {a.api_key: a for a in accounts}
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._lock = threading.Lock()
        self._process = context.Process(
            target=_serve_vendors, args=(accounts, child), name="vendor-simulator", daemon=True
        )
        self._process.start()
        child.close()
        try:
            if not self._conn.poll(30):
                raise RuntimeError("the vendor simulator did not start within 30 s")
            self.port = int(self._conn.recv())
        except BaseException:
            self.close()
            raise

    @property
    def accounts(self) -> dict[str, SimAccount]:
        return self._accounts

    def base_url(self, provider: str) -> str:
        return f"http://127.0.0.1:{self.port}/{provider}"

    def _call(self, *command: object) -> Any:
        with self._lock:
            self._conn.send(command)
            if not self._conn.poll(10):
                raise RuntimeError(f"the vendor simulator did not answer {command[0]!r}")
            return self._conn.recv()

    def set_fault(self, api_key: str, fault: Fault | None) -> None:
        self._call("fault", api_key, fault)

    def request_count(self, api_key: str) -> int:
        return int(self._call("count", api_key))

    def requests_total(self) -> int:
        return int(self._call("total"))

    def request_counts(self) -> Counter[str]:
        """Requests so far per API key, all keys in one round trip."""
        counts: Counter[str] = self._call("counts")
        return counts

    def close(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(OSError, RuntimeError):
                self._call("stop")
            self._process.join(5)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(5)
        self._conn.close()

    def __enter__(self) -> SimulatorProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """One GET on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def exporter_command() -> list[str]:
    script = Path(sys.executable).parent / "saas-quota-exporter"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "exporter.cli"]


@dataclass(frozen=True)
class ProcStats:
    threads: int
    fds: int
    rss_bytes: int
    # The kernel's high-water mark of RSS since the process started (VmHWM): catches
    # a spike that lives shorter than the sampling period (a decompressed bomb).
    rss_high_water_bytes: int = 0


def proc_stats(pid: int) -> ProcStats:
    """Threads, open file descriptors and resident memory of a live process (Linux)."""
    threads = rss_kib = hwm_kib = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == "Threads":
            threads = int(value)
        elif name == "VmRSS":
            rss_kib = int(value.split()[0])
        elif name == "VmHWM":
            hwm_kib = int(value.split()[0])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return ProcStats(
        threads=threads, fds=fds, rss_bytes=rss_kib * 1024, rss_high_water_bytes=hwm_kib * 1024
    )


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a live process has used (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ExporterProcess:
    """The installed console script as a child process on a free loopback port.

    Output goes to files in a private temporary directory (a pipe nobody reads
    would eventually block the exporter): stdout and stderr apart, so that what the
    process wrote on stderr (its log, and anything that bypassed it) can be read on
    its own. Always stopped on exit from the `with` block.
    """

    def __init__(
        self, config: str, *, log_level: str = "warning", max_open_files: int | None = None
    ) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="saas-quota-bench-")
        self.config_path = Path(self._dir.name) / "config.yml"
        self.config_path.write_text(config)
        self.log_path = Path(self._dir.name) / "exporter.log"  # stdout
        self.stderr_path = Path(self._dir.name) / "exporter.stderr"
        self.port = free_port()
        self.args = [
            *exporter_command(),
            "--config.file",
            str(self.config_path),
            "--web.listen-address",
            f"127.0.0.1:{self.port}",
            "--log.format",
            "json",
            "--log.level",
            log_level,
        ]
        # RLIMIT_NOFILE for the child (a container's usual 1024), None to inherit ours.
        self.max_open_files = max_open_files
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, ready_timeout: float = 30.0) -> ExporterProcess:
        with self.log_path.open("ab") as out, self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=err)
        if self.max_open_files is not None:
            # Set from outside right after the spawn (no preexec_fn in a threaded
            # parent); the interpreter is still starting, long before it opens sockets.
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.prlimit(self.proc.pid, resource.RLIMIT_NOFILE, (self.max_open_files, hard))
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exporter exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if get(self.port, "/-/ready", timeout=1.0)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"exporter not ready within {ready_timeout:g}s:\n{self.logs()[-4000:]}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def logs(self) -> str:
        """Everything the process wrote, stdout then stderr."""
        return self.stdout() + self.stderr()

    def stdout(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stderr(self) -> str:
        if not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(errors="replace")

    def write_config(self, text: str) -> None:
        """Replace the config file at once (rename), as a config management tool does."""
        staged = self.config_path.with_suffix(".new")
        staged.write_text(text)
        staged.replace(self.config_path)

    def send_signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            return self.proc.returncode
        return None

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> ExporterProcess:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method; nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(math.ceil(q / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def mib(n_bytes: float) -> float:
    return n_bytes / 2**20
