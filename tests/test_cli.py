"""The command line: --config.check, config errors and usage errors.

Most tests call `exporter.cli.main` in-process; one runs the installed console script,
so the entry point and its exit codes are covered as a user would meet them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from exporter.cli import main
from exporter.providers import PROVIDERS
from tests.e2e import exporter_command

KEY = "sk_live_FAKECLIKEY_9e8d7c6b"
ENV_KEY = "ek_FAKECLIENVKEY_1a2b3c4d"

GOOD = f"""\
accounts:
  - provider: pictory
    account: marketing
    api_key: {KEY}
    interval: 30s
  - provider: tornado
    account: prod
    api_key: ${{TORNADO_KEY}}
"""

BAD = f"""\
global:
  interval: 300
accounts:
  - provider: pictori
    account: marketing
    api_key: {KEY}
  - provider: tornado
    account: prod
    api_key: ${{UNSET_FAKE_VAR}}
    base_url: ftp://example.com
"""

BAD_PROBLEMS = [
    "{path}:2:13: global.interval: not a duration: '300' (add a unit, e.g. 300s or 5m)",
    "{path}:4:15: accounts[0].provider: unknown provider 'pictori';"
    f" valid providers: {', '.join(sorted(PROVIDERS))}",
    "{path}:9:14: accounts[1].api_key: environment variable UNSET_FAKE_VAR is not set",
    "{path}:10:15: accounts[1].base_url: invalid URL 'ftp://example.com':"
    " need http:// or https:// and a host",
]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """main() configures structlog onto the captured stderr; put it back afterwards."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORNADO_KEY", ENV_KEY)
    monkeypatch.delenv("UNSET_FAKE_VAR", raising=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exporter.yml"
    path.write_text(text)
    return path


def bad_report(path: Path) -> str:
    lines = [f"{path}: {len(BAD_PROBLEMS)} config errors:"]
    lines += ["  " + p.format(path=path) for p in BAD_PROBLEMS]
    return "\n".join(lines) + "\n"


@pytest.mark.usefixtures("env")
def test_config_check_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD)
    assert main(["--config.file", str(path), "--config.check"]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: OK (2 accounts)\n"
    assert err == (
        f"warning: {path}:5:15: accounts[0].interval: 30s is below pictory's recommended"
        " minimum of 1m; accepted, but it spends the vendor's rate limit for no fresher data\n"
    )
    assert KEY not in out + err
    assert ENV_KEY not in out + err


def test_config_check_empty_account_list_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "accounts: []\n")
    assert main(["--config.check", "--config.file", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: OK (0 accounts)\n"
    assert err == f"warning: {path}:1:11: accounts: no accounts configured; nothing to poll\n"


@pytest.mark.usefixtures("env")
def test_config_check_reports_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, BAD)
    assert main(["--config.file", str(path), "--config.check"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == bad_report(path)
    assert "Traceback" not in err
    assert KEY not in err


def test_config_check_yaml_error_does_not_quote_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, f"accounts:\n  - provider: pictory\n    api_key: {KEY}: x\n")
    assert main(["--config.file", str(path), "--config.check"]) == 1
    out, err = capsys.readouterr()
    assert err == (
        f"{path}: 1 config error:\n"
        f"  {path}:3:41: YAML syntax error: mapping values are not allowed here\n"
    )
    assert KEY not in out + err


def test_config_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nope.yml"
    assert main(["--config.file", str(path), "--config.check"]) == 1
    _, err = capsys.readouterr()
    assert err == (
        f"{path}: 1 config error:\n  {path}: cannot read config file: No such file or directory\n"
    )


def test_a_bad_config_stops_the_exporter_before_it_serves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UNSET_FAKE_VAR", raising=False)
    path = write(tmp_path, BAD)
    assert main(["--config.file", str(path), "--web.listen-address", "127.0.0.1:0"]) == 1
    _, err = capsys.readouterr()
    assert err == bad_report(path)


@pytest.mark.parametrize("argv", [[], ["--config.check"], ["--log.level", "debug"]])
def test_missing_config_file_is_a_usage_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("usage: saas-quota-exporter ")
    assert err.endswith(
        "saas-quota-exporter: error: --config.file is required"
        " (or run 'saas-quota-exporter demo')\n"
    )


@pytest.mark.parametrize("address", ["9877", "localhost", "host:http", ":99999", "127.0.0.1:"])
@pytest.mark.parametrize("check", [False, True], ids=["run", "check"])
def test_invalid_listen_address_is_a_usage_error(
    address: str, check: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A valid config: the address alone must stop it, before anything is served.
    path = write(tmp_path, "accounts: []\n")
    argv = ["--config.file", str(path), "--web.listen-address", address]
    with pytest.raises(SystemExit) as info:
        main([*argv, "--config.check"] if check else argv)
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"saas-quota-exporter: invalid listen address {address!r}: expected HOST:PORT\n")


def test_unknown_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--config.path", "x.yml"])
    assert info.value.code == 2
    assert "error: unrecognized arguments: --config.path x.yml" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--shard.count", "3"], {}, "--shard.count 3 needs --shard.index or"),
        (["--shard.count", "3", "--shard.index", "3"], {}, "--shard.index must be from 0 to 2"),
        (["--shard.count", "0"], {}, "--shard.count must be from 1"),
        (
            ["--shard.count", "3", "--shard.index-from-hostname"],
            {"HOSTNAME": "saas-quota-exporter"},
            "does not end in -<number>",
        ),
        (
            ["--shard.count", "3", "--shard.index-from-hostname"],
            {"HOSTNAME": "saas-quota-exporter-5"},
            "--shard.index must be from 0 to 2",
        ),
        (
            ["--shard.count", "3", "--shard.index", "1", "--shard.index-from-hostname"],
            {},
            "not allowed with argument",
        ),
    ],
)
def test_shard_flags_that_do_not_fit_are_a_usage_error(
    argv: list[str],
    env: dict[str, str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    path = write(tmp_path, "accounts: []\n")
    with pytest.raises(SystemExit) as info:
        main(["--config.file", str(path), *argv])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_the_shard_index_comes_from_the_pod_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from exporter.cli import _shard, build_parser
    from exporter.sharding import Shard

    monkeypatch.setenv("HOSTNAME", "saas-quota-exporter-2")
    parser = build_parser()
    args = parser.parse_args(["--shard.count", "3", "--shard.index-from-hostname"])
    assert _shard(args, parser) == Shard(2, 3)
    plain = parser.parse_args([])
    assert not _shard(plain, parser).sharded


# --- the installed console script ---------------------------------------------------


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


@pytest.mark.usefixtures("env")
def test_config_check_lists_every_web_config_problem_a_line_with_its_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD)
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config:\n  min_version: TLS99\nbasic_auth_users:\n  ops: pw\n")
    args = ["--config.file", str(path), "--config.check", "--web.config.file", str(web)]
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"invalid web config {web}:",
        f"  {web}:2:3: tls_server_config.cert_file: is required",
        f"  {web}:2:3: tls_server_config.key_file: is required",
        f"  {web}:2:16: tls_server_config.min_version: invalid 'TLS99';"
        " valid: TLS10, TLS11, TLS12, TLS13",
        f"  {web}:4:8: basic_auth_users.ops: not a bcrypt hash;"
        " generate one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'",
    ]
