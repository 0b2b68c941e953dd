"""deploy/systemd/: the unit passes systemd's own checks and fits its example config.

`systemd-analyze verify` loads the unit the way systemd would (unknown or malformed
directives are reported, the ExecStart binary must exist), and
`systemd-analyze security --offline` scores its sandboxing. Running it needs a
booted systemd, which CI's machine is not: the unit is verified, not started.
"""

from __future__ import annotations

import configparser
import re
import shlex
import subprocess
from pathlib import Path
from typing import Final

import yaml

from tests.packaging.podman import REPO
from tests.support.processes import exporter_command, require_binary

UNIT: Final = REPO / "deploy" / "systemd" / "saas-quota-exporter.service"
CONFIG: Final = REPO / "deploy" / "systemd" / "config.yml"
INSTALLED_BINARY: Final = "/opt/saas-quota-exporter/bin/saas-quota-exporter"
CREDENTIALS: Final = "/run/credentials/saas-quota-exporter.service"


def unit_with_binary(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's console script."""
    script = exporter_command()[0]
    assert Path(script).name == "saas-quota-exporter", "the package's console script is needed"
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(INSTALLED_BINARY, script))
    return unit


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("systemd-analyze"), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def service_section() -> dict[str, list[str]]:
    """[Service] directives, each with all its values (keys may repeat)."""
    directives: dict[str, list[str]] = {}
    section = None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            directives.setdefault(key, []).append(value)
    return directives


def test_systemd_analyze_verify_is_silent(tmp_path: Path) -> None:
    result = analyze("verify", str(unit_with_binary(tmp_path)))
    assert result.returncode == 0, result.stderr
    # verify exits 0 on unknown keys and bad values, but says so: any output is a defect.
    assert result.stdout + result.stderr == ""


def test_verify_catches_mistakes(tmp_path: Path) -> None:
    """Control: the same check reports a misspelt directive and a missing binary."""
    unit = unit_with_binary(tmp_path)
    unit.write_text(unit.read_text().replace("ProtectHome=yes", "ProtectHomes=yes"))
    assert "ProtectHomes" in analyze("verify", str(unit)).stderr
    missing = tmp_path / "missing.service"
    missing.write_text(UNIT.read_text())  # /opt/... does not exist here
    result = analyze("verify", str(missing))
    assert result.returncode != 0
    assert f"Command {INSTALLED_BINARY} is not executable" in result.stderr


def test_sandboxing_exposure_is_low(tmp_path: Path) -> None:
    result = analyze("security", "--offline=yes", "--no-pager", str(unit_with_binary(tmp_path)))
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout + result.stderr)
    assert found is not None, result.stdout + result.stderr
    assert float(found.group(1)) <= 2.0, result.stdout


def test_service_runs_the_exporter_unprivileged() -> None:
    service = service_section()
    assert service["DynamicUser"] == ["yes"]
    assert service["NoNewPrivileges"] == ["yes"]
    assert service["CapabilityBoundingSet"] == [""]
    exec_start = shlex.split(service["ExecStart"][0])
    assert exec_start[0] == INSTALLED_BINARY
    assert "--config.file=/etc/saas-quota-exporter/config.yml" in exec_start
    assert "--web.listen-address=:9877" in exec_start
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]


def test_example_config_reads_keys_from_the_units_credentials(tmp_path: Path) -> None:
    [credential] = service_section()["LoadCredential"]
    name, _, source = credential.partition(":")
    assert source == "/etc/saas-quota-exporter/keys"
    accounts = yaml.safe_load(CONFIG.read_text())["accounts"]
    prefix = f"{CREDENTIALS}/{name}_"
    assert all(a["api_key_file"].startswith(prefix) for a in accounts)

    # The config is valid once the credentials exist (here: files in a temporary dir).
    for account in accounts:
        (tmp_path / Path(account["api_key_file"]).name).write_text("example-key\n")
    config = tmp_path / "config.yml"
    config.write_text(CONFIG.read_text().replace(CREDENTIALS, str(tmp_path)))
    result = subprocess.run(
        [*exporter_command(), f"--config.file={config}", "--config.check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"OK ({len(accounts)} accounts)" in result.stdout


def test_unit_is_a_well_formed_ini_file() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    assert parser.sections() == ["Unit", "Service", "Install"]
    assert parser["Install"]["WantedBy"] == "multi-user.target"
