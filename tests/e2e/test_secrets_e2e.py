"""API keys never appear in logs, /metrics, / or --config.check output.

Drives every failure path we have, including vendors that echo the key back in
their error bodies, and searches everything a user or a log shipper could see.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, quote_plus

from tests.support.config import Account, account_at, write_config
from tests.support.processes import ExporterProcess, exporter_command, free_port, wait_until
from tests.support.simulator import Fault, SimAccount, SimMeter, VendorSimulator
from tests.unit.test_redaction import assert_no_fragment

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


# --- keys echoed back transformed -----------------------------------------------------------
#
# Each account's vendor echoes its key in one other form. The keys hold '/', '+' and
# '=' so that escaping and percent-encoding actually change them.

METERS = {
    "pictory": "ai_credits",
    "tornado": "jobs",
    "piloterr": "api_credits",
    "vidnavigator": "credits",
    "vertaaux": "credits",
}


def _b64(raw: bytes, urlsafe: bool = False) -> str:
    return (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()


# name -> (provider, status, how the vendor's body echoes the key)
ECHOES: dict[str, tuple[str, int, Callable[[str], str]]] = {
    "upper": ("pictory", 401, lambda k: f'{{"message": "invalid key {k.upper()}"}}'),
    "quote": ("tornado", 500, lambda k: f"no route for /v1/jobs?key={quote(k, safe='')}"),
    "quote_plus": ("piloterr", 500, lambda k: f"form: api_key={quote_plus(k)}&x=1"),
    "basic": (
        "vidnavigator",
        403,
        lambda k: f"rejected Authorization: Basic {_b64(b'admin:' + k.encode())}",
    ),
    "base64url": ("vertaaux", 500, lambda k: f"token {_b64(k.encode(), urlsafe=True).rstrip('=')}"),
    # Not JSON as a whole (an HTML error page quoting it), so the escapes stay escaped.
    "json-slash": (
        "pictory",
        500,
        lambda k: "<pre>" + json.dumps({"key": k}).replace("/", "\\/") + "</pre>",
    ),
    "json-u": ("tornado", 502, lambda k: "<pre>" + "".join(f"\\u{ord(c):04x}" for c in k)),
    "newline": ("piloterr", 401, lambda k: f"bad key {k[:9]}\n{k[9:]}\n"),
    # 183 characters, a space, then the key: the 200-character cut keeps 16 of it.
    "cut": ("vidnavigator", 500, lambda k: "x" * 183 + " " + k),
    "hex": ("vertaaux", 401, lambda k: f"key id {k.encode().hex()}"),
}
# Nothing of the account's name in its key: 8 characters of a key are scrubbed anywhere.
ECHO_KEYS = {
    name: f"sk_live/ECHO+{i:02d}={'Zq8tHk2Pw9LmRx4Vb6Nc'[i:] + 'Zq8tHk2Pw9'[:i]}"
    for i, name in enumerate(ECHOES)
}
# A vendor that puts the key into its plan name: exported as a label on /metrics.
LABEL_KEYS = {
    "vertaaux": "vx_live/PLAN+label=Rt5Yu7Io9Pa",
    "vidnavigator": "vn_live/PLAN+label=Gh3Jk5Lz7Xc",
}


def test_no_transformed_key_in_logs_page_or_metrics(tmp_path: Path) -> None:
    accounts = [
        SimAccount(provider, ECHO_KEYS[name], {METERS[provider]: SimMeter(limit=10)})
        for name, (provider, _, _) in ECHOES.items()
    ]
    accounts += [
        # vertaaux exports `plan` as it is, vidnavigator `plan_name` title-cased.
        SimAccount(p, key, {METERS[p]: SimMeter(limit=10)}, plan=key.upper())
        for p, key in LABEL_KEYS.items()
    ]
    with VendorSimulator(accounts) as sim:
        for name, (_, status, echo) in ECHOES.items():
            sim.set_fault(ECHO_KEYS[name], Fault(status, echo(ECHO_KEYS[name]).encode()))
        lines = [
            f"  - {{provider: {provider}, account: {name}, api_key: '{ECHO_KEYS[name]}',"
            f" base_url: '{sim.base_url(provider)}'}}"
            for name, (provider, _, _) in ECHOES.items()
        ] + [
            f"  - {{provider: {p}, account: label, api_key: '{key}',"
            f" base_url: '{sim.base_url(p)}'}}"
            for p, key in LABEL_KEYS.items()
        ]
        config = tmp_path / "config.yml"
        config.write_text("global: {interval: 2s, timeout: 1s}\naccounts:\n" + "\n".join(lines))
        with ExporterProcess(
            ["--config.file", str(config), "--log.level", "debug"], tmp_path / "log"
        ) as proc:
            # Every echo went through the log and onto `/` at least once.
            wait_until(lambda: proc.logs().count("poll failed") >= 2 * len(ECHOES), timeout=30)
            # /metrics is pre-rendered and may trail the latest poll by a render: wait for
            # both label accounts to be served rather than reading it once.
            wait_until(
                lambda: (
                    proc.get("/metrics")[1].count('saas_quota_account_info{account="label"')
                    >= len(LABEL_KEYS)
                ),
                timeout=10,
            )
            pages = {path: proc.get(path)[1] for path in ("/metrics", "/")}
        logs = proc.logs()
    assert 'saas_quota_account_info{account="label",plan="<redacted>"' in pages["/metrics"]
    for name in ECHOES:
        assert f'"account": "{name}"' in logs, f"the {name} echo was not driven"
    assert logs.count("<redacted>") >= len(ECHOES)
    keys = [*ECHO_KEYS.values(), *LABEL_KEYS.values()]
    for where, text in [("logs", logs), *pages.items()]:
        for key in keys:
            assert_no_fragment(key, text, where)


# --- a key pasted inside ${...} --------------------------------------------------------------

PASTED = {
    # Not a variable name ('-'): today quoted back as the invalid reference.
    "invalid": "pk-QXWZ-9f3e7a1c5b",
    # A valid but unset name: today named as the unset variable.
    "unset": "sk_live_QXWZ_4d1e7a2b9c",
}


def _pasted_config(path: Path, base_url: str) -> None:
    path.write_text(
        "accounts:\n"
        + "".join(
            f"  - {{provider: pictory, account: {name}, api_key: '${{{key}}}',"
            f" base_url: '{base_url}'}}\n"
            for name, key in PASTED.items()
        )
    )


def test_no_key_pasted_inside_env_reference_in_check_or_reload_answer(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    _pasted_config(bad, "http://127.0.0.1:9")
    result = subprocess.run(
        [*exporter_command(), "--config.file", str(bad), "--config.check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 1
    check = result.stdout + result.stderr
    assert "did you paste the key itself inside ${...}?" in check
    # Where the problem is, not what it holds.
    assert "bad.yml:2:" in check
    assert "bad.yml:3:" in check

    good_key = "pictai_GOOD_reload_7c1d"
    with VendorSimulator(
        [SimAccount("pictory", good_key, {"ai_credits": SimMeter(limit=10)})]
    ) as sim:
        config = tmp_path / "config.yml"
        config.write_text(
            "accounts:\n  - {provider: pictory, account: good, api_key: "
            f"{good_key}, base_url: '{sim.base_url('pictory')}'}}\n"
        )
        with ExporterProcess(["--config.file", str(config)], tmp_path / "log") as proc:
            _pasted_config(config, sim.base_url("pictory"))
            request = urllib.request.Request(proc.url + "/-/reload", method="POST", data=b"")
            try:
                with urllib.request.urlopen(request, timeout=35) as response:
                    status, answer = int(response.status), response.read().decode()
            except urllib.error.HTTPError as exc:
                status, answer = int(exc.code), exc.read().decode()
            page = proc.get("/")[1]
            metrics = proc.get("/metrics")[1]
        logs = proc.logs()
    assert status == 500
    assert "did you paste the key itself inside ${...}?" in answer
    assert "config reload failed" in logs
    for where, text in [
        ("--config.check", check),
        ("reload answer", answer),
        ("logs", logs),
        ("/", page),
        ("/metrics", metrics),
    ]:
        for key in PASTED.values():
            assert_no_fragment(key, text, where)
