"""The real exporter process under 5,000 idle and slowloris connections.

The exporter runs with RLIMIT_NOFILE 1024, as the shipped Kubernetes manifest
gives it, and a 128 MiB memory bound: a cgroup v2 `memory.max` when this machine
lets a root test create one (a child of a writable /sys/fs/cgroup, the exporter
moved in before it execs); otherwise its peak RSS (VmHWM in /proc/PID/status) is
asserted to stay under 128 MiB instead. The figures printed say which one ran.

The attack holds 5,000 connections from this process, half sending nothing, half
a header byte every two seconds, and reopens every one the exporter closes, so
the exporter is full the whole time. A fresh client scrapes /metrics meanwhile:
every scrape must answer 200 within 1 s ("did not block", not a speed target),
polling must go on, and threads and descriptors must come back down afterwards.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import os
import resource
import selectors
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.exposition import samples
from tests.support.config import account_at, write_config
from tests.support.processes import ExporterProcess, wait_until
from tests.support.simulator import SimAccount, SimMeter, VendorSimulator

pytestmark = pytest.mark.e2e

ATTACKERS = 5000
NOFILE = 1024
MEMORY_LIMIT = 128 * 1024 * 1024
SCRAPES = 10
DRIP_SECONDS = 2.0
REOPEN_PER_SECOND = 1000
# What the slowloris half sends, one byte per drip: a head that never ends.
SLOW_HEAD = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 60000
# Runs in the child before it becomes the exporter: the fd limit, and the cgroup
# (argv[1], or "-" for none) it moves itself into, so all its memory is charged.
LAUNCHER = """
import os, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, ({nofile}, {nofile}))
if sys.argv[1] != "-":
    with open(os.path.join(sys.argv[1], "cgroup.procs"), "w") as procs:
        procs.write(str(os.getpid()))
os.execv(sys.argv[2], sys.argv[2:])
"""


def memory_cgroup(tmp_name: str) -> Path | None:
    """A cgroup v2 child with memory.max 128M, or None where that is not possible."""
    root = Path("/sys/fs/cgroup")
    if not (root / "cgroup.controllers").exists() or os.geteuid() != 0:
        return None  # cgroup v1 or not root
    if "memory" not in (root / "cgroup.subtree_control").read_text().split():
        return None
    child = root / tmp_name
    try:
        child.mkdir(exist_ok=True)
        (child / "memory.max").write_text(f"{MEMORY_LIMIT}\n")
        (child / "memory.swap.max").write_text("0\n")
    except OSError:
        with contextlib.suppress(OSError):
            child.rmdir()
        return None
    return child


@dataclass
class Figures:
    rss: list[int] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def kib(value: str) -> int:
    return int(value.split()[0]) * 1024


def sample(pid: int, figures: Figures) -> None:
    status = proc_status(pid)
    figures.rss.append(kib(status["VmRSS"]))
    figures.threads.append(int(status["Threads"]))
    figures.fds.append(len(os.listdir(f"/proc/{pid}/fd")))


class Attack:
    """ATTACKERS connections held open; half drip a header byte every 2 s.

    One thread, one selector: a connection the exporter closes is reopened soon
    after, so the exporter stays full for as long as the attack runs.
    """

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        self.selector = selectors.DefaultSelector()
        self.slots: dict[int, socket.socket | None] = dict.fromkeys(range(count))
        self.sent: dict[int, int] = dict.fromkeys(range(count), 0)
        self.stop = threading.Event()
        self.opened = 0
        self.closed_by_server = 0
        self.thread = threading.Thread(target=self._run, name="attack", daemon=True)

    def _open(self, slot: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex(("127.0.0.1", self.port))
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            return
        self.slots[slot] = sock
        self.sent[slot] = 0
        self.selector.register(sock, selectors.EVENT_READ, slot)
        self.opened += 1

    def _drop(self, slot: int) -> None:
        sock = self.slots[slot]
        if sock is not None:
            self.selector.unregister(sock)
            sock.close()
            self.slots[slot] = None

    def _run(self) -> None:
        next_drip = last = time.monotonic()
        budget = 0.0  # ramp up at REOPEN_PER_SECOND too
        while not self.stop.is_set():
            # Top the attack up to ATTACKERS again, REOPEN_PER_SECOND at most: a
            # burst of thousands at once overflows the kernel's accept queue
            # (somaxconn), which drops SYNs for every client alike, a flood for the
            # network layer (SYN cookies, rate limits) that no server can answer.
            now = time.monotonic()
            budget += (now - last) * REOPEN_PER_SECOND
            last = now
            closed = [slot for slot, sock in self.slots.items() if sock is None]
            for slot in closed[: int(budget)]:
                self._open(slot)
                budget -= 1
            budget = min(budget, REOPEN_PER_SECOND / 4)
            if now >= next_drip:
                next_drip = now + DRIP_SECONDS
                for slot in range(0, self.count, 2):  # the slowloris half
                    sock = self.slots[slot]
                    if sock is None:
                        continue
                    offset = self.sent[slot]
                    try:
                        self.sent[slot] += sock.send(SLOW_HEAD[offset : offset + 1])
                    except BlockingIOError:
                        pass  # still connecting
                    except OSError:
                        self.closed_by_server += 1
                        self._drop(slot)
            for key, _ in self.selector.select(timeout=0.25):
                slot = key.data
                try:
                    if key.fileobj.recv(4096):  # type: ignore[union-attr]
                        continue
                except OSError:
                    pass
                self.closed_by_server += 1
                self._drop(slot)

    def __enter__(self) -> Attack:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        for slot in self.slots:
            self._drop(slot)
        self.selector.close()


@contextlib.contextmanager
def raised_nofile(needed: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"this test holds {needed} sockets; RLIMIT_NOFILE hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def scrape(port: int) -> tuple[int, float, str]:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        body = response.read().decode()
        return response.status, time.perf_counter() - started, body
    finally:
        conn.close()


def polls(body: str) -> float:
    return sum(v for (name, _), v in samples(body).items() if name == "saas_quota_polls_total")


def test_metrics_answers_while_5000_idle_and_slowloris_connections_are_held(
    tmp_path: Path,
) -> None:
    accounts = [
        SimAccount(
            "tornado", f"limits-tornado-key-{i:04d}", {"jobs": SimMeter(limit=None, start=1)}
        )
        for i in range(4)
    ]
    with VendorSimulator(accounts) as sim, raised_nofile(ATTACKERS + 500):
        config = write_config(
            tmp_path / "config.yml",
            [
                account_at(sim, "tornado", f"a{i}", account.api_key)
                for i, account in enumerate(accounts)
            ],
            interval="1s",
            timeout="500ms",
        )
        cgroup = memory_cgroup(f"sqe-limits-{os.getpid()}")
        memory_bound = "cgroup v2 memory.max 128M" if cgroup else "VmHWM < 128 MiB"
        proc = ExporterProcess(["--config.file", str(config)], tmp_path / "exporter.log")
        launcher = LAUNCHER.format(nofile=NOFILE)
        command = proc.args
        if not Path(command[0]).is_absolute() or command[0] == sys.executable:
            pytest.skip("needs the installed console script to exec")
        proc.args = [sys.executable, "-c", launcher, str(cgroup or "-"), *command]
        proc.start()
        try:
            assert proc.proc is not None
            pid = proc.proc.pid
            limits = Path(f"/proc/{pid}/limits").read_text()
            assert any(
                line.startswith("Max open files") and f"{NOFILE}" in line
                for line in limits.splitlines()
            )
            baseline = Figures()
            sample(pid, baseline)
            peak = Figures()
            latencies: list[float] = []
            with Attack(proc.port, ATTACKERS) as attack:
                wait_until(lambda: attack.opened >= ATTACKERS, timeout=30)
                time.sleep(3)  # let the exporter fill up and the drip start
                status, _, body = scrape(proc.port)
                assert status == 200
                polls_before = polls(body)
                for _ in range(SCRAPES):
                    sample(pid, peak)
                    status, took, body = scrape(proc.port)
                    assert status == 200
                    latencies.append(took)
                    time.sleep(0.5)
                wait_until(lambda: polls(scrape(proc.port)[2]) > polls_before, timeout=10)
                held_by_attack = attack.opened - attack.closed_by_server
            vm_hwm = kib(proc_status(pid)["VmHWM"])
            figures = (
                f"latency p50 {statistics.median(latencies):.3f}s max {max(latencies):.3f}s;"
                f" peak RSS {max(peak.rss) / 2**20:.1f} MiB (VmHWM {vm_hwm / 2**20:.1f} MiB);"
                f" threads {max(peak.threads)} (baseline {baseline.threads[0]});"
                f" fds {max(peak.fds)} (baseline {baseline.fds[0]});"
                f" attack opened {attack.opened}, closed by the exporter"
                f" {attack.closed_by_server}, still held {held_by_attack};"
                f" memory bound: {memory_bound}"
            )
            print(figures)
            assert max(latencies) < 1.0, figures
            assert proc.proc.poll() is None, "the exporter died: " + proc.logs()[-2000:]
            assert vm_hwm < MEMORY_LIMIT, figures
            # No thread per connection, and polling kept descriptors to spare.
            assert max(peak.threads) <= baseline.threads[0] + 8, figures
            assert max(peak.fds) < NOFILE - 100, figures

            def settled() -> bool:
                """threads and descriptors are back near their baseline"""
                now = Figures()
                sample(pid, now)
                return (
                    now.fds[0] <= baseline.fds[0] + 10 and now.threads[0] <= baseline.threads[0] + 8
                )

            wait_until(settled, timeout=15)
            assert "Traceback" not in proc.logs()
        finally:
            proc.stop()
            if cgroup is not None:
                with contextlib.suppress(OSError):
                    cgroup.rmdir()
