"""Signals against the real process: at any moment after spawn, in storms, mid-reload.

A signal can only be caught once the interpreter runs the exporter's first line;
before that (exec, interpreter start-up) its default action applies to any program.
So each process is sampled through /proc just before the signal is sent: a death is
excused only while the handler is not installed AND none of the exporter's heavy
extension modules is loaded yet, i.e. the handler was installed before anything
slow. The check is one-sided (the state only moves forward between the sample and
the signal), so it never excuses a late handler.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.exposition import samples
from tests.support import config as support_config
from tests.support.config import account_at
from tests.support.processes import REPO, ExporterProcess, free_port, wait_until
from tests.support.simulator import SimAccount, SimMeter, VendorSimulator

pytestmark = pytest.mark.e2e

KEY = "pictai_signal_test_key_01"
# Shared objects the exporter's imports map (ssl via httpx, PyYAML's C loader,
# bcrypt): loaded only after cli.main has installed its handlers.
HEAVY = ("/_ssl.", "/_yaml.", "/_bcrypt.")


@pytest.fixture(scope="module")
def sim() -> Iterator[VendorSimulator]:
    accounts = [SimAccount("pictory", KEY, {"ai_credits": SimMeter(limit=50, start=5)})]
    with VendorSimulator(accounts) as simulator:
        yield simulator


def write_config(
    path: Path, sim: VendorSimulator, interval: str = "10m", timeout: str = "2s"
) -> Path:
    accounts = [account_at(sim, "pictory", "a", KEY)]
    return support_config.write_config(path, accounts, interval=interval, timeout=timeout)


@dataclass
class Sample:
    caught: bool
    heavy_loaded: bool


def proc_sample(pid: int, sig: signal.Signals) -> Sample:
    """Whether `sig` is caught and whether the heavy modules are mapped, right now."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return Sample(caught=False, heavy_loaded=False)
    mask = next(int(line.split()[1], 16) for line in status.splitlines() if line[:7] == "SigCgt:")
    return Sample(caught=bool(mask >> (sig - 1) & 1), heavy_loaded=any(h in maps for h in HEAVY))


@dataclass
class Trial:
    sig: signal.Signals
    delay: float
    before: Sample | None = None
    returncode: int | None = None
    alive_and_polled: bool = False
    error: str = ""


def run_trial(trial: Trial, config: Path, log: Path, sim: VendorSimulator) -> None:
    proc = ExporterProcess(["--config.file", str(config)], log)
    with log.open("ab") as out:
        child = subprocess.Popen(proc.args, stdout=out, stderr=subprocess.STDOUT, env=proc.env)
        try:
            time.sleep(trial.delay)
            trial.before = proc_sample(child.pid, trial.sig)
            child.send_signal(trial.sig)
            if trial.sig == signal.SIGTERM:
                trial.returncode = child.wait(30)
                return
            proc.proc = child
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline and child.poll() is None:
                if proc.ready():
                    status, text = proc.get("/metrics")
                    up = samples(text).get(
                        (
                            "saas_quota_up",
                            frozenset({"provider": "pictory", "account": "a"}.items()),
                        )
                    )
                    trial.alive_and_polled = status == 200 and up == 1
                    break
                time.sleep(0.05)
            child.send_signal(signal.SIGTERM)
            trial.returncode = child.wait(30)
        except Exception as exc:
            trial.error = repr(exc)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()


def excused(trial: Trial) -> bool:
    """Killed before the interpreter could run a line of the exporter (see the top)."""
    return (
        trial.before is not None
        and not trial.before.caught
        and not trial.before.heavy_loaded
        and trial.returncode == -trial.sig
    )


def test_sighup_and_sigterm_at_random_moments_from_spawn_on(
    sim: VendorSimulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "config.yml", sim)
    rng = random.Random(8)
    trials = [
        Trial(sig, delay)
        for sig in (signal.SIGHUP, signal.SIGTERM)
        # From 0 ms to past the point where the old code installed its handlers.
        for delay in [0.0, 0.005, 0.02] + [rng.uniform(0, 1.2) for _ in range(9)]
    ]
    # Four at a time: the machine is small and shared.
    for start in range(0, len(trials), 4):
        threads = [
            threading.Thread(target=run_trial, args=(t, config, tmp_path / f"log{start + i}", sim))
            for i, t in enumerate(trials[start : start + 4])
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    report = "\n".join(
        f"{t.sig.name} at {t.delay * 1000:.0f} ms: before={t.before} rc={t.returncode}"
        f" polled={t.alive_and_polled} {t.error}"
        for t in trials
    )
    for t in trials:
        assert not t.error, report
        if excused(t):
            continue
        if t.sig == signal.SIGHUP:
            # Survived, then served and polled, then stopped cleanly.
            assert t.alive_and_polled, report
        assert t.returncode == 0, report
    # Enough moments fell after the interpreter's own start-up to test something.
    assert sum(not excused(t) for t in trials) >= len(trials) // 4, report


def test_a_sighup_storm_coalesces_and_polling_goes_on(sim: VendorSimulator, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", sim, interval="1s", timeout="500ms")
    with ExporterProcess(["--config.file", str(config)], tmp_path / "log") as proc:
        assert proc.proc is not None
        before = sim.request_count(KEY)
        for _ in range(500):
            proc.proc.send_signal(signal.SIGHUP)
        assert proc.proc.poll() is None
        # Polling goes on (interval 1 s) and the process answers throughout.
        wait_until(lambda: sim.request_count(KEY) >= before + 3, timeout=20)
        wait_until(lambda: proc.get("/metrics")[0] == 200, timeout=10)
        reloads = proc.logs().count("config reloaded")
        assert 1 <= reloads < 500
        assert proc.stop() == 0


def test_sigterm_during_a_stuck_reload_exits_promptly(tmp_path: Path) -> None:
    """A load that never returns (a hung filesystem) must not keep the process alive."""
    port = free_port()
    config = tmp_path / "config.yml"
    config.write_text("accounts: []\n")
    marker = tmp_path / "entered"
    script = textwrap.dedent(
        f"""
        import asyncio, pathlib, threading
        from exporter.app import Exporter, ListenAddress
        from exporter.config import load_config

        def stuck():
            pathlib.Path({str(marker)!r}).write_text("in")
            threading.Event().wait()  # forever, like a read on a dead NFS mount

        exporter = Exporter(stuck, ListenAddress("127.0.0.1", {port}))
        asyncio.run(exporter.run(load_config({str(config)!r})))
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    try:
        wait_until(lambda: _answers(port), timeout=20)
        child.send_signal(signal.SIGHUP)
        wait_until(marker.exists, timeout=10)
        child.send_signal(signal.SIGTERM)
        assert child.wait(15) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def _answers(port: int) -> bool:
    """the exporter answers /-/healthy"""
    from tests.support.processes import http_get

    try:
        return http_get(f"http://127.0.0.1:{port}/-/healthy", 1)[0] == 200
    except OSError:
        return False
