"""The console script as a user runs it: a real process, its exit code and its output."""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import sys
from pathlib import Path

from exporter import __version__
from tests.support.processes import exporter_command
from tests.unit.test_cli import BAD, ENV_KEY, GOOD, KEY, bad_report, write


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "UNSET_FAKE_VAR"}
    env["TORNADO_KEY"] = ENV_KEY
    return subprocess.run(
        [*exporter_command(), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_console_script_config_check(tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text(GOOD)
    result = run_script("--config.file", str(good), "--config.check")
    assert (result.returncode, result.stdout) == (0, f"{good}: OK (2 accounts)\n")
    assert result.stderr.startswith(f"warning: {good}:5:15: accounts[0].interval: 30s")

    bad = write(tmp_path, BAD)
    result = run_script("--config.file", str(bad), "--config.check")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == bad_report(bad)
    assert "Traceback" not in result.stderr
    for output in (result.stdout, result.stderr):
        assert KEY not in output
        assert ENV_KEY not in output

    result = run_script("--config.check")
    assert result.returncode == 2
    assert "error: --config.file is required" in result.stderr


def test_version_is_in_the_prometheus_style() -> None:
    result = run_script("--version")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert re.fullmatch(
        rf"saas-quota-exporter, version {re.escape(__version__)} \(revision: [^\s()]+\)", lines[0]
    ), lines[0]
    assert lines[1] == f"  python version:   {platform.python_version()} (CPython)"
    assert re.fullmatch(r"  platform:         [a-z0-9]+/[a-z0-9_]+", lines[2]), lines[2]
    assert len(lines) == 3


def test_python_m_exporter_is_the_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: saas-quota-exporter ")


def test_a_port_in_use_is_one_line_naming_it_and_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "exporter.yml"
    path.write_text("accounts: []\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_script("--config.file", str(path), "--web.listen-address", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert (
        f"cannot listen on 127.0.0.1:{port}: the address is already in use: another process"
        f" (another exporter?) listens there; stop it, or choose another port, e.g."
        f" --web.listen-address 127.0.0.1:{port + 1}"
    ) in result.stderr
