"""API keys never appear in logs, /metrics, / or --config.check output.

Drives every failure path we have, including vendors that echo the key back in
their error bodies, and searches everything a user or a log shipper could see.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from tests.e2e import ExporterProcess, exporter_command, free_port, wait_until
from tests.support.config import Account, account_at, write_config
from tests.support.simulator import Fault, SimAccount, SimMeter, VendorSimulator

KEYS = {
    "auth": "pictai_SECRET_auth_5f1c",
    "echo500": "sk_SECRET_echo500_77aa",
    "parse": "piloterr_SECRET_parse_9b",
    "timeout": "vidnav_SECRET_timeout_3e",
    "network": "vx_live_SECRET_network_c4",
    "ratelimit": "vx_live_SECRET_ratelimit_d2",
    "file": "sk_SECRET_from_file_0ab1",
}


def assert_no_key(where: str, text: str) -> None:
    for name, key in KEYS.items():
        assert key not in text, f"{name} key leaked into {where}"
        # Nor a recognisable chunk of it.
        assert key[-10:] not in text, f"part of the {name} key leaked into {where}"


def test_no_key_in_any_output(tmp_path: Path) -> None:
    accounts = [
        SimAccount("pictory", KEYS["auth"], {"ai_credits": SimMeter(limit=10)}),
        SimAccount("tornado", KEYS["echo500"], {"jobs": SimMeter(limit=None)}),
        SimAccount("piloterr", KEYS["parse"], {"api_credits": SimMeter(limit=10)}),
        SimAccount("vidnavigator", KEYS["timeout"], {"credits": SimMeter(limit=10)}),
        SimAccount("vertaaux", KEYS["ratelimit"], {"credits": SimMeter(limit=10)}),
        SimAccount("tornado", KEYS["file"], {"jobs": SimMeter(limit=None)}),
    ]
    key_file = tmp_path / "key"
    key_file.write_text(KEYS["file"])
    closed_port = free_port()
    with VendorSimulator(accounts) as sim:
        # Vendors that echo the key back, in JSON and in HTML and in a bad 200.
        sim.set_fault(KEYS["auth"], Fault(401, f'{{"message": "bad key {KEYS["auth"]}"}}'.encode()))
        sim.set_fault(
            KEYS["echo500"], Fault(500, f"<html>key={KEYS['echo500']} failed</html>".encode())
        )
        sim.set_fault(KEYS["parse"], Fault(200, f'{{"remaining": "{KEYS["parse"]}"'.encode()))
        sim.set_fault(KEYS["timeout"], Fault(delay=3.0))
        sim.set_fault(
            KEYS["ratelimit"],
            Fault(
                429,
                f'{{"error": "rate_limit_exceeded", "message": "{KEYS["ratelimit"]}"}}'.encode(),
                {"Retry-After": "1"},
            ),
        )
        sim.set_fault(KEYS["file"], Fault(403, f"forbidden for {KEYS['file']}".encode()))
        config = write_config(
            tmp_path / "config.yml",
            [
                account_at(sim, "pictory", "auth", KEYS["auth"]),
                account_at(sim, "tornado", "echo", KEYS["echo500"]),
                account_at(sim, "piloterr", "parse", KEYS["parse"]),
                account_at(sim, "vidnavigator", "slow", KEYS["timeout"]),
                Account("vertaaux", "down", f"http://127.0.0.1:{closed_port}", KEYS["network"]),
                account_at(sim, "vertaaux", "limited", KEYS["ratelimit"]),
                account_at(sim, "tornado", "file", api_key_file=key_file),
            ],
            interval="2s",
            timeout="1s",
        )
        proc = ExporterProcess(
            ["--config.file", str(config), "--log.level", "debug"], tmp_path / "log"
        ).start()
        try:
            # Several rounds of failures, then a failing reload, then a good one.
            wait_until(lambda: proc.logs().count("poll failed") >= 10, timeout=20)
            good = config.read_text()
            config.write_text(good + f"  - {{provider: pictory, api_key: {KEYS['auth']}}}\n")
            proc.signal(signal.SIGHUP)
            wait_until(lambda: "config reload failed" in proc.logs(), timeout=10)
            config.write_text(good)
            proc.signal(signal.SIGHUP)
            wait_until(lambda: proc.logs().count("config reloaded") >= 1, timeout=10)
            pages = {path: proc.get(path)[1] for path in ("/metrics", "/", "/-/ready")}
        finally:
            proc.stop()
        logs = proc.logs()
    for reason in ("auth", "server", "parse", "timeout", "network", "rate_limited", "forbidden"):
        assert f'"reason": "{reason}"' in logs, f"the {reason} path was not driven"
    assert "<redacted>" in logs, "the echoed keys were scrubbed, not absent"
    assert_no_key("logs", logs)
    for path, text in pages.items():
        assert_no_key(path, text)


def test_no_key_in_config_check_output(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "accounts:\n"
        f"  - {{provider: pictory, account: a, api_key: {KEYS['auth']}, bogus: {KEYS['parse']}}}\n"
        f"  - provider: tornado\n    account: b\n    api_key: [{KEYS['echo500']}]\n"
        f"  - {KEYS['timeout']}\n"
        f"  - {{provider: nosuch, account: c, api_key: {KEYS['network']}}}\n"
        f"  - {{provider: pictory, account: a, api_key: {KEYS['ratelimit']}}}\n"
    )
    syntax = tmp_path / "syntax.yml"
    syntax.write_text(f"accounts:\n  - api_key: {KEYS['file']}: oops: [\n")
    for path in (bad, syntax):
        result = subprocess.run(
            [*exporter_command(), "--config.file", str(path), "--config.check"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        assert result.returncode == 1
        output = result.stdout + result.stderr
        assert "Traceback" not in output
        assert "config error" in output
        assert_no_key(f"--config.check of {path.name}", output)
