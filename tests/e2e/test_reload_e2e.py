"""Config reload over SIGHUP and POST /-/reload, against the real process.

Unchanged accounts keep their cached values and schedule, added ones are polled at
once, removed ones vanish, a bad config changes nothing but the reload gauges, and
api_key_file is read again so keys rotate without a restart.
"""

from __future__ import annotations

import os
import signal
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.exposition import samples
from tests.support.config import account_at
from tests.support.processes import ExporterProcess, wait_until
from tests.support.simulator import Fault, SimAccount, SimMeter, VendorSimulator

OLD_KEY = "sk_rotated_out_key_000"
NEW_KEY = "sk_rotated_in_key_1111"


def metrics(proc: ExporterProcess) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, text = proc.get("/metrics")
    assert status == 200
    return samples(text)


def sample(proc: ExporterProcess, name: str, **labels: str) -> float | None:
    return metrics(proc).get((name, frozenset(labels.items())))


def post(proc: ExporterProcess, path: str, timeout: float = 35) -> tuple[int, str]:
    request = urllib.request.Request(proc.url + path, method="POST", data=b"")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


@pytest.fixture
def sim() -> Iterator[VendorSimulator]:
    accounts = [
        SimAccount("pictory", "pictai_reload_key_01", {"ai_credits": SimMeter(limit=50, start=5)}),
        SimAccount(
            "tornado",
            NEW_KEY,
            {"storage_gb": SimMeter(limit=10, start=1), "jobs": SimMeter(limit=None, start=3)},
        ),
        SimAccount(
            "piloterr", "piloterr_reload_key_02", {"api_credits": SimMeter(limit=100, start=10)}
        ),
    ]
    with VendorSimulator(accounts) as simulator:
        yield simulator


def account(
    sim: VendorSimulator,
    provider: str,
    name: str,
    api_key: str | None = None,
    api_key_file: Path | None = None,
) -> str:
    return account_at(sim, provider, name, api_key, api_key_file=api_key_file).yaml()


def test_reload_keeps_adds_removes_and_rotates(sim: VendorSimulator, tmp_path: Path) -> None:
    key_file = tmp_path / "tornado.key"
    key_file.write_text(OLD_KEY + "\n")
    config = tmp_path / "config.yml"
    head = "global:\n  interval: 60s\n  timeout: 2s\naccounts:\n"
    pictory = account(sim, "pictory", "keep", api_key="pictai_reload_key_01")
    tornado = account(sim, "tornado", "rotate", api_key_file=key_file)
    piloterr = account(sim, "piloterr", "added", api_key="piloterr_reload_key_02")
    config.write_text(head + pictory + tornado)

    with ExporterProcess(["--config.file", str(config)], tmp_path / "log") as proc:
        keep = {"provider": "pictory", "account": "keep"}
        rotate = {"provider": "tornado", "account": "rotate"}
        assert sample(proc, "saas_quota_up", **keep) == 1
        # The key in the file is the old one: rejected.
        assert sample(proc, "saas_quota_up", **rotate) == 0
        assert sample(proc, "saas_quota_poll_errors_total", **rotate, reason="auth") == 1
        first_reload = sample(proc, "saas_quota_config_last_reload_success_timestamp_seconds")
        assert sample(proc, "saas_quota_config_last_reload_successful") == 1
        keep_polls = sim.request_count("pictai_reload_key_01")

        # Rotate the key and add an account; SIGHUP.
        key_file.write_text(NEW_KEY + "\n")
        config.write_text(head + pictory + tornado + piloterr)
        proc.signal(signal.SIGHUP)
        wait_until(lambda: sample(proc, "saas_quota_up", **rotate) == 1, timeout=15)
        wait_until(
            lambda: sample(proc, "saas_quota_up", provider="piloterr", account="added") == 1,
            timeout=15,
        )
        assert sim.request_count("pictai_reload_key_01") == keep_polls, (
            "the unchanged account kept its schedule"
        )
        assert sample(proc, "saas_quota_used", **keep, meter="ai_credits") == 5
        # Counters of an account that stayed are not reset by a reload.
        assert sample(proc, "saas_quota_poll_errors_total", **rotate, reason="auth") == 1
        second_reload = sample(proc, "saas_quota_config_last_reload_success_timestamp_seconds")
        assert first_reload is not None
        assert second_reload is not None
        assert second_reload >= first_reload

        # A broken config: nothing changes except the reload gauge.
        config.write_text(head + pictory + "  - provider: nosuchvendor\n    account: x\n")
        status, body = post(proc, "/-/reload")
        assert status == 500
        assert "unknown provider 'nosuchvendor'" in body
        assert sample(proc, "saas_quota_config_last_reload_successful") == 0
        assert (
            sample(proc, "saas_quota_config_last_reload_success_timestamp_seconds") == second_reload
        )
        assert sample(proc, "saas_quota_up", provider="piloterr", account="added") == 1
        assert "config reload failed" in proc.logs()

        # Remove two accounts over POST: their series vanish.
        config.write_text(head + pictory)
        assert post(proc, "/-/reload") == (200, "config reloaded\n")
        assert sample(proc, "saas_quota_config_last_reload_successful") == 1
        remaining = {dict(labels).get("account") for (_, labels) in metrics(proc)}
        assert "added" not in remaining
        assert "rotate" not in remaining
        assert sample(proc, "saas_quota_used", **keep, meter="ai_credits") == 5
        assert sim.request_count("pictai_reload_key_01") == keep_polls
        for key in (OLD_KEY, NEW_KEY, "pictai_reload_key_01", "piloterr_reload_key_02"):
            assert key not in proc.logs()


def test_an_inflight_poll_of_a_removed_account_is_cancelled(
    sim: VendorSimulator, tmp_path: Path
) -> None:
    # Slower than the 10 s poll timeout, so readiness within 5 s below can only come
    # from the reload dropping the account, not from its poll ending on its own.
    sim.set_fault("piloterr_reload_key_02", Fault(delay=30.0))
    config = tmp_path / "config.yml"
    head = "global:\n  interval: 60s\n  timeout: 10s\naccounts:\n"
    pictory = account(sim, "pictory", "keep", api_key="pictai_reload_key_01")
    piloterr = account(sim, "piloterr", "slow", api_key="piloterr_reload_key_02")
    config.write_text(head + pictory + piloterr)
    proc = ExporterProcess(["--config.file", str(config)], tmp_path / "log").start(wait_ready=False)
    try:
        wait_until(lambda: sim.request_count("piloterr_reload_key_02") == 1, timeout=15)
        config.write_text(head + pictory)
        assert post(proc, "/-/reload")[0] == 200
        # Removing the only unfinished account completes the first round.
        wait_until(proc.ready, timeout=5)
        labels = {dict(lbl).get("account") for (_, lbl) in metrics(proc)}
        assert "slow" not in labels
        # The poll itself was cancelled: the vendor saw its client hang up long
        # before the 10 s timeout would have ended the request.
        assert sim.wait_for_hang_up("piloterr_reload_key_02", timeout=5)
    finally:
        assert proc.stop() == 0


# --- reload failure modes: each fails the reload as a whole, promptly -----------------


def _alias_bomb(key: str) -> str:
    lines = ['a0: &a0 ["lol"]']
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 10)]
    return "\n".join(lines) + f"\n{key}: *a9\n"


def _sparse(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        f.truncate(size)
    return path


def _fifo(path: Path) -> Path:
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


FAILURES: dict[str, tuple[Callable[[Path], object], str]] = {
    # name: (what to do to the files, text the answer must contain)
    "nested thousands deep": (
        lambda d: (d / "config.yml").write_text("accounts: " + "[" * 5000 + "\n"),
        "YAML nested deeper than 64 levels",
    ),
    "alias bomb in the config": (
        lambda d: (d / "config.yml").write_text(_alias_bomb("accounts")),
        "YAML aliases expand it to more than 2000000 nodes",
    ),
    "alias bomb in the web config": (
        lambda d: (d / "web.yml").write_text(
            _alias_bomb("x") + "tls_server_config:\n  client_auth_type: *a9\n"
        ),
        "invalid YAML: aliases expand it to more than 2000000 nodes",
    ),
    "api_key_file is a FIFO": (
        lambda d: _fifo(d / "key.fifo"),
        "is a FIFO (named pipe), not a regular file",
    ),
    "api_key_file is /dev/zero": (
        lambda d: (d / "key.dev").symlink_to("/dev/zero"),
        "is a character device, not a regular file",
    ),
    "api_key_file is huge": (
        lambda d: _sparse(d / "key.huge", 1 << 30),
        "is 1073741824 bytes; the limit is 64 KiB",
    ),
    "config file is huge": (
        lambda d: _sparse(d / "config.yml", 32 << 20),
        "is 33554432 bytes; the limit is 16 MiB",
    ),
    "web config is a FIFO": (
        lambda d: _fifo(d / "web.yml"),
        "is a FIFO (named pipe), not a regular file",
    ),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_a_reload_that_cannot_succeed_fails_cleanly(
    sim: VendorSimulator, tmp_path: Path, case: str
) -> None:
    config = tmp_path / "config.yml"
    web = tmp_path / "web.yml"
    web.write_text("{}\n")
    head = "global:\n  interval: 60s\n  timeout: 2s\naccounts:\n"
    pictory = account(sim, "pictory", "keep", api_key="pictai_reload_key_01")
    config.write_text(head + pictory)
    args = ["--config.file", str(config), "--web.config.file", str(web)]
    with ExporterProcess(args, tmp_path / "log") as proc:
        keep = {"provider": "pictory", "account": "keep"}
        assert sample(proc, "saas_quota_up", **keep) == 1
        change, expected = FAILURES[case]
        change(tmp_path)
        if case.startswith("api_key_file"):
            name = {"FIFO": "key.fifo", "/dev/zero": "key.dev", "huge": "key.huge"}[
                case.rsplit(" ", 1)[-1]
            ]
            piloterr = account(sim, "piloterr", "added", api_key_file=tmp_path / name)
            config.write_text(head + pictory + piloterr)
        status, body = post(proc, "/-/reload", timeout=15)
        assert status == 500, body
        assert body.startswith("failed to reload config: ")
        assert expected in body
        assert sample(proc, "saas_quota_config_last_reload_successful") == 0
        assert sample(proc, "saas_quota_up", **keep) == 1, "the running config is kept"
        assert "config reload failed" in proc.logs()
        assert proc.proc is not None
        assert proc.proc.poll() is None
        # And SIGTERM still stops it, at once and cleanly.
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(15) == 0
