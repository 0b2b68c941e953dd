"""The command line: --config.check, config errors and usage errors.

Most tests call `exporter.cli.main` in-process; one runs the installed console script,
so the entry point and its exit codes are covered as a user would meet them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import exporter
from exporter.cli import COMMANDS, main, split_command
from exporter.providers import PROVIDERS

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


@pytest.mark.parametrize(
    ("address", "fix"),
    [
        ("9877", "; for port 9877 on every interface write ':9877'"
         " (or '127.0.0.1:9877' for this machine only)"),
        ("localhost", "; add the port, e.g. 'localhost:9877'"),
        ("host:http", "; the port must be a number from 0 to 65535"),
        (":99999", "; the port must be a number from 0 to 65535"),
        ("127.0.0.1:", "; add the port, e.g. '127.0.0.1:9877'"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("check", [False, True], ids=["run", "check"])
def test_invalid_listen_address_is_a_usage_error_that_suggests_the_fix(
    address: str, fix: str, check: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A valid config: the address alone must stop it, before anything is served.
    path = write(tmp_path, "accounts: []\n")
    argv = ["--config.file", str(path), "--web.listen-address", address]
    with pytest.raises(SystemExit) as info:
        main([*argv, "--config.check"] if check else argv)
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"saas-quota-exporter: invalid listen address {address!r}: expected HOST:PORT{fix}\n"
    )


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


# --- first run: help, flags, version ---------------------------------------------------


def test_help_lists_the_commands_and_shows_the_log_flags_with_their_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "commands (saas-quota-exporter COMMAND --help for their flags):" in out
    for name, text in COMMANDS.items():
        assert re.search(rf"^  {name} +{re.escape(text)}$", out, re.M), name
    flat = " ".join(out.split())
    assert "--log.level {debug,info,warn,warning,error} log only messages of this" in flat
    assert "(default: info)" in flat
    assert "--log.format {json,logfmt,console} json: one object a line" in flat
    assert "(default: console)" in flat
    assert "(default: None)" not in flat
    assert "(default: False)" not in flat


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["demo"], ("demo", [])),
        (["--log.level", "debug", "demo"], ("demo", ["--log.level", "debug"])),
        (["--log.level=debug", "demo", "--log.format", "json"],
         ("demo", ["--log.level=debug", "--log.format", "json"])),
        (["--config.check", "demo"], ("demo", ["--config.check"])),
        (["--config.file", "demo"], (None, ["--config.file", "demo"])),  # a file named demo
        (["--config.file", "x.yml"], (None, ["--config.file", "x.yml"])),
        (["--", "demo"], (None, ["--", "demo"])),
        (["nodemo", "demo"], (None, ["nodemo", "demo"])),
    ],
)  # fmt: skip
def test_the_command_is_the_first_argument_that_is_no_flag_or_flag_value(
    argv: list[str], expected: tuple[str | None, list[str]]
) -> None:
    assert split_command(argv) == expected


def test_log_flags_before_the_command_reach_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--log.level debug demo` was "unrecognized arguments: demo"."""
    import exporter.demo.run

    seen: dict[str, object] = {}

    def fake_run_demo(listen: object) -> int:
        seen["listen"] = listen
        return 0

    def fake_configure(level: str, fmt: str) -> None:
        seen["log"] = (level, fmt)

    monkeypatch.setattr(exporter.demo.run, "run_demo", fake_run_demo)
    monkeypatch.setattr("exporter.log.configure", fake_configure)
    assert main(["--log.level", "debug", "--log.format=logfmt", "demo"]) == 0
    assert seen["log"] == ("debug", "logfmt")
    assert main(["--log.level", "warn", "demo", "--web.listen-address", "127.0.0.1:0"]) == 0
    assert seen["log"] == ("warn", "console")
    assert str(seen["listen"]) == "ListenAddress(host='127.0.0.1', port=0)"


def test_the_go_exporters_log_values_are_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "accounts: []\n")
    argv = ["--config.file", str(path), "--config.check", "--log.level=warn", "--log.format=logfmt"]
    assert main(argv) == 0
    assert capsys.readouterr().out == f"{path}: OK (0 accounts)\n"


def test_the_revision_comes_from_the_recorded_file_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "exporter"
    package.mkdir()
    monkeypatch.setattr(exporter, "__file__", str(package / "__init__.py"))
    assert exporter.revision() == "unknown"  # no file, no checkout
    (package / "REVISION").write_text("v0.1.0-3-gabc1234\n")
    assert exporter.revision() == "v0.1.0-3-gabc1234"


# --- first run: checking the shipped configs from a shell ------------------------------

ROOT = Path(__file__).resolve().parents[2]


def shipped_configs(tmp_path: Path) -> list[Path]:
    """Every config the repository ships for a service, the Helm chart's default too."""
    import yaml

    helm = tmp_path / "helm-config.yml"
    values = yaml.safe_load((ROOT / "deploy/helm/saas-quota-exporter/values.yaml").read_text())
    helm.write_text(yaml.safe_dump(values["config"]))
    return [
        ROOT / "deploy/systemd/config.yml",
        ROOT / "deploy/kubernetes/base/config.yml",
        ROOT / "deploy/compose/config.yml",
        helm,
    ]


def test_every_shipped_config_checks_from_a_shell_without_its_key_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The compose config reads its keys from variables (compose's .env).
    for name in ("PICTORY", "TORNADO", "PILOTERR", "VIDNAVIGATOR", "VERTAAUX"):
        monkeypatch.setenv(f"{name}_API_KEY", f"{name.lower()}_FAKE_KEY_0123456789")
    for path in shipped_configs(tmp_path):
        argv = ["--config.file", str(path), "--config.check", "--config.skip-key-files"]
        assert main(argv) == 0, capsys.readouterr().err
        out, err = capsys.readouterr()
        files = path.read_text().count("api_key_file:")
        assert err == ""
        skipped = f"; {files} key files not read (--config.skip-key-files)" if files else ""
        assert out == f"{path}: OK (5 accounts{skipped})\n"


def test_without_skip_key_files_a_missing_key_file_is_still_an_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = ROOT / "deploy/systemd/config.yml"
    assert main(["--config.file", str(path), "--config.check"]) == 1
    assert "cannot read /run/credentials/" in capsys.readouterr().err


def test_skip_key_files_only_goes_with_check(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--config.file", "x.yml", "--config.skip-key-files"])
    assert info.value.code == 2
    assert "error: --config.skip-key-files only goes with --config.check" in capsys.readouterr().err


# --- first run: a port in use ------------------------------------------------------------
