"""The container image, built from the Dockerfile and run for real with podman.

One image is built per test session (tests/packaging/podman.py says how, without a
registry); the tests then run it the way users do: read-only root filesystem, all
capabilities dropped, a mounted config and API key file, against a stand-in vendor
served from this test process on the host's loopback.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from prometheus_client.parser import text_string_to_metric_families

import exporter
from exporter.demo.vendors import SIMULATED
from tests.packaging.podman import BuiltImage, Podman, build_image, ensure_base_image
from tests.support.config import account_at, write_config
from tests.support.processes import free_port, http_get, require_binary, wait_until
from tests.support.simulator import DAY, SimAccount, SimMeter, VendorSimulator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

UID: Final = 10001
CONFIG_PATH: Final = "/etc/saas-quota-exporter/config.yml"
KEY_PATH: Final = "/run/secrets/saas-quota-exporter/piloterr-api-key"
API_KEY: Final = "sk-container-test-4f1b2c"  # the stand-in vendor's only valid key

# How users are told to run it (docs/deployment.md): no writable root
# filesystem (and no tmpfs podman would otherwise add), no capabilities.
HARDENED: Final = (
    "--read-only",
    "--read-only-tmpfs=false",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
    "--network=host",
)


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    binary = require_binary("podman")
    require_binary("runc")
    if os.geteuid() != 0:
        message = "the container test runs rootful podman and debootstrap: run it as root"
        if os.environ.get("REQUIRE_E2E"):
            pytest.fail(f"REQUIRE_E2E is set but {message}")
        pytest.skip(message)
    return Podman.configure(binary, tmp_path_factory.mktemp("podman"))


@pytest.fixture(scope="module")
def image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    logs = tmp_path_factory.mktemp("image-logs")
    started = time.monotonic()
    base = ensure_base_image(podman, require_binary("debootstrap"), logs / "debootstrap.log")
    base_seconds = time.monotonic() - started
    built = build_image(podman, base, exporter.__version__, logs / "build.log")
    # Shown with -rA / in CI's log: the numbers the packaging issue asks to report.
    print(
        f"\ncontainer image {built.ref}: {built.size_bytes / 1e6:.1f} MB "
        f"({(built.size_bytes - built.base_size_bytes) / 1e6:.1f} MB over base {base}, "
        f"{built.base_size_bytes / 1e6:.1f} MB); base ready in {base_seconds:.1f}s, "
        f"image built in {built.build_seconds:.1f}s"
    )
    return built


@pytest.fixture
def vendor() -> Iterator[VendorSimulator]:
    """The stand-in Piloterr on the host's loopback: one key, credits that move."""
    account = SimAccount(
        "piloterr",
        API_KEY,
        {"api_credits": SimMeter(limit=5000, start=1234, rate=1.0, period=DAY)},
        reset_in=3 * DAY,
    )
    with VendorSimulator([account]) as sim:
        yield sim


class Container:
    def __init__(self, podman: Podman, name: str) -> None:
        self.podman = podman
        self.name = name

    def logs(self) -> str:
        result = self.podman.run("logs", self.name, check=False)
        return result.stdout + result.stderr

    def running(self) -> bool:
        state = self.podman.inspect("container", self.name)["State"]
        return bool(state["Running"])


@pytest.fixture
def containers(podman: Podman) -> Iterator[list[Container]]:
    started: list[Container] = []
    yield started
    for container in started:
        podman.run("rm", "--force", "--time", "2", container.name, check=False)


def start(podman: Podman, containers: list[Container], *args: str) -> Container:
    name = f"sqe-test-{os.getpid()}-{len(containers)}-{time.monotonic_ns() % 10**6}"
    podman.run("run", "--detach", "--name", name, *args)
    container = Container(podman, name)
    containers.append(container)
    return container


def samples(text: str, metric: str) -> dict[tuple[tuple[str, str], ...], float]:
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == metric:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_image_metadata(podman: Podman, image: BuiltImage) -> None:
    data = podman.inspect("image", image.ref)
    config = data["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["ExposedPorts"] == {"9877/tcp": {}}
    assert config["Entrypoint"] == ["saas-quota-exporter"]
    assert config["Cmd"] == [f"--config.file={CONFIG_PATH}"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == "saas-quota-exporter"
    assert labels["org.opencontainers.image.version"] == exporter.__version__
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.base.name"] == image.base
    health = podman.run("image", "inspect", "--format", "{{json .HealthCheck}}", image.ref)
    assert "HEALTHCHECK_URL" in health.stdout
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["HEALTHCHECK_URL"] == "http://127.0.0.1:9877/-/healthy"
    # The exporter's own layers over the base: the venv with its dependencies.
    assert image.size_bytes - image.base_size_bytes < 60e6


def test_runs_read_only_as_non_root_against_a_stand_in_vendor(
    podman: Podman,
    image: BuiltImage,
    vendor: VendorSimulator,
    containers: list[Container],
    tmp_path: Path,
) -> None:
    port = free_port()
    config = write_config(
        tmp_path / "config.yml",
        [account_at(vendor, "piloterr", "container-test", api_key_file=KEY_PATH)],
        interval="1m",
        timeout="5s",
    )
    config.chmod(0o644)
    key = tmp_path / "piloterr-api-key"
    key.write_text(API_KEY + "\n")
    key.chmod(0o400)
    os.chown(key, UID, UID)  # readable by the container's user only, as a Secret would be

    container = start(
        podman,
        containers,
        *HARDENED,
        "--volume",
        f"{config}:{CONFIG_PATH}:ro",
        "--volume",
        f"{key}:{KEY_PATH}:ro",
        # The HEALTHCHECK follows the port moved by --web.listen-address.
        "--env",
        f"HEALTHCHECK_URL=http://127.0.0.1:{port}/-/healthy",
        image.ref,
        f"--config.file={CONFIG_PATH}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.format=json",
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        """the container's exporter answers /-/ready"""
        if not container.running():
            pytest.fail(f"the container exited:\n{container.logs()}")
        try:
            return http_get(url + "/-/ready", timeout=1)[0] == 200
        except OSError:
            return False

    wait_until(ready, timeout=60, interval=0.2)

    status, text = http_get(url + "/metrics")
    assert status == 200
    key_labels = (("account", "container-test"), ("provider", "piloterr"))
    assert samples(text, "saas_quota_up") == {key_labels: 1.0}
    meter_labels = (*key_labels[:1], ("meter", "api_credits"), key_labels[1])
    assert samples(text, "saas_quota_limit")[meter_labels] == 5000.0
    assert samples(text, "saas_quota_used")[meter_labels] >= 1234.0
    # The key read from the mounted file is what reached the vendor.
    assert vendor.request_count(API_KEY) >= 1

    # The process serving /metrics runs as the non-root user, seen from the host.
    pid = int(podman.inspect("container", container.name)["State"]["Pid"])
    status_text = Path(f"/proc/{pid}/status").read_text()
    uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", status_text, re.M)
    assert uids is not None
    assert {int(u) for u in uids.groups()} == {UID}
    assert "saas-quota-exporter" in Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    assert podman.run("exec", container.name, "id", "-u").stdout.strip() == str(UID)

    # The root filesystem really is read-only to it.
    write = podman.run("exec", container.name, "touch", "/opt/saas-quota-exporter/x", check=False)
    assert write.returncode != 0
    assert "Read-only file system" in write.stderr

    # The image's HEALTHCHECK passes against the running exporter.
    assert podman.run("healthcheck", "run", container.name, check=False).returncode == 0

    # SIGTERM to PID 1 is a clean, prompt shutdown; the key never reached the logs.
    stop_started = time.monotonic()
    podman.run("stop", "--time", "10", container.name)
    assert time.monotonic() - stop_started < 8
    assert podman.inspect("container", container.name)["State"]["ExitCode"] == 0
    logs = container.logs()
    assert API_KEY not in logs
    events = [json.loads(line)["event"] for line in logs.splitlines() if line.startswith("{")]
    assert events[0] == "listening"
    assert events[-1] == "shutting down"


def test_demo_mode_serves_every_simulated_vendor(
    podman: Podman, image: BuiltImage, containers: list[Container]
) -> None:
    """compose.yaml runs the image's `demo`: it must work read-only as well."""
    port = free_port()
    start(
        podman,
        containers,
        *HARDENED,
        image.ref,
        "demo",
        f"--web.listen-address=127.0.0.1:{port}",
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        """the demo in the container is ready"""
        try:
            return http_get(url + "/-/ready", timeout=1)[0] == 200
        except OSError:
            return False

    wait_until(ready, timeout=60, interval=0.2)
    up = samples(http_get(url + "/metrics")[1], "saas_quota_up")
    providers = {dict(labels)["provider"] for labels, value in up.items() if value == 1.0}
    assert providers == set(SIMULATED)


def test_missing_config_fails_with_a_clear_message(podman: Podman, image: BuiltImage) -> None:
    result = podman.run("run", "--rm", *HARDENED, image.ref, check=False, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert CONFIG_PATH in result.stderr


def test_config_check_inside_the_image(podman: Podman, image: BuiltImage, tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "accounts:\n  - provider: vertaaux\n    account: prod\n    api_key: ${VERTAAUX_API_KEY}\n"
    )
    config.chmod(0o644)
    mount = f"{config}:{CONFIG_PATH}:ro"
    ok = podman.run(
        "run", "--rm", *HARDENED, "-e", "VERTAAUX_API_KEY=vx-1", "-v", mount,
        image.ref, f"--config.file={CONFIG_PATH}", "--config.check",
        check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "OK (1 accounts)" in ok.stdout
    missing = podman.run(
        "run", "--rm", *HARDENED, "-v", mount,
        image.ref, f"--config.file={CONFIG_PATH}", "--config.check",
        check=False,
    )  # fmt: skip
    assert missing.returncode == 1
    assert "VERTAAUX_API_KEY" in missing.stderr
