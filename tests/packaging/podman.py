"""Building and running the container image with podman, without an image registry.

No registry is reachable from CI, so the Dockerfile's default base (python:3.12-slim)
cannot be pulled. Instead a Debian base with python3 is made locally with
`debootstrap --variant=minbase`, imported with `podman import`, and handed to the
Dockerfile through its BASE_IMAGE build argument. The imported base is tagged with a
hash of the recipe that made it, so a machine that already built it reuses it and a
changed recipe builds a new one; a fresh machine builds it from scratch (about a
minute).

podman runs rootful with `runc`, a containers.conf with `default_ulimits = []` (the
sandbox refuses the default ulimits), host networking, and the host's CA bundle
mounted into the build so pip in the build stage reaches PyPI.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

REPO: Final = Path(__file__).resolve().parents[2]
IMAGE: Final = "localhost/saas-quota-exporter:test"
CA_BUNDLE: Final = Path("/etc/ssl/certs/ca-certificates.crt")

# The locally made base: Debian's own python3 (3.11 on bookworm), the venv module the
# Dockerfile's build stage uses, and `python` on PATH as in the python:*-slim images.
BASE_SUITE: Final = "bookworm"
BASE_PACKAGES: Final = ("python3", "python3-venv", "python-is-python3")
# What a slim image leaves out too: package caches, docs, man pages, translations.
BASE_PRUNE: Final = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/locale",
)
BASE_REPOSITORY: Final = "localhost/saas-quota-exporter-base"

CONTAINERS_CONF: Final = """\
[containers]
default_ulimits = []

[engine]
runtime = "runc"
"""


def base_image_tag() -> str:
    """The base's tag: a hash of everything that decides its content."""
    recipe = {
        "variant": "minbase",
        "suite": BASE_SUITE,
        "include": sorted(BASE_PACKAGES),
        "prune": sorted(BASE_PRUNE),
        "recipe": 1,
    }
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
    return f"{BASE_REPOSITORY}:{BASE_SUITE}-{digest[:12]}"


class PodmanError(AssertionError):
    """A podman step failed; the message carries its output."""


@dataclass
class Podman:
    binary: str
    conf: Path

    @classmethod
    def configure(cls, binary: str, workdir: Path) -> Podman:
        conf = workdir / "containers.conf"
        conf.write_text(CONTAINERS_CONF)
        return cls(binary, conf)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": str(self.conf)}

    def run(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, "--runtime", "runc", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise PodmanError(
                f"podman {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
        return result

    def image_exists(self, ref: str) -> bool:
        return self.run("image", "exists", ref, check=False).returncode == 0

    def inspect(self, what: str, ref: str) -> dict[str, Any]:
        data = json.loads(self.run(what, "inspect", ref).stdout)
        assert isinstance(data, list)
        assert len(data) == 1
        item = data[0]
        assert isinstance(item, dict)
        return item


def ensure_base_image(podman: Podman, debootstrap: str, log: Path) -> str:
    """The local Debian+python3 base image, built unless this recipe's is present."""
    tag = base_image_tag()
    if podman.image_exists(tag):
        return tag
    # /var/tmp: the rootfs is ~275 MB before pruning, too much for a small /tmp.
    with tempfile.TemporaryDirectory(prefix="sqe-base-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        with log.open("ab") as out:
            result = subprocess.run(
                [
                    debootstrap,
                    "--variant=minbase",
                    f"--include={','.join(BASE_PACKAGES)}",
                    BASE_SUITE,
                    str(rootfs),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=900,
                check=False,
            )
        if result.returncode != 0:
            tail = log.read_text(errors="replace")[-4000:]
            raise PodmanError(f"debootstrap exited {result.returncode}:\n{tail}")
        for part in BASE_PRUNE:
            target = rootfs / part
            if target.is_dir():
                shutil.rmtree(target)
                target.mkdir()
        archive = Path(tmp) / "rootfs.tar"
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(archive), "."],
            check=True,
            timeout=300,
        )
        podman.run(
            "import",
            "--change",
            'CMD ["/bin/bash"]',
            "--message",
            f"debootstrap --variant=minbase --include={','.join(BASE_PACKAGES)} {BASE_SUITE}",
            str(archive),
            tag,
            timeout=300,
        )
    return tag


@dataclass(frozen=True)
class BuiltImage:
    ref: str
    base: str
    build_seconds: float
    size_bytes: int
    base_size_bytes: int


def build_image(podman: Podman, base: str, version: str, log: Path) -> BuiltImage:
    """`podman build` of the repository's Dockerfile on `base`, as CI does it."""
    previous = podman.inspect("image", IMAGE)["Id"] if podman.image_exists(IMAGE) else None
    started = time.monotonic()
    result = podman.run(
        "build",
        "--format",
        "docker",  # HEALTHCHECK only exists in the Docker image format
        "--network",
        "host",
        "--volume",
        f"{CA_BUNDLE}:{CA_BUNDLE}:ro",
        "--build-arg",
        f"BASE_IMAGE={base}",
        "--build-arg",
        f"VERSION={version}",
        "--tag",
        IMAGE,
        "--file",
        str(REPO / "Dockerfile"),
        str(REPO),
        check=False,
        timeout=600,
    )
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise PodmanError(f"podman build exited {result.returncode}:\n{log.read_text()[-6000:]}")
    elapsed = time.monotonic() - started
    image = podman.inspect("image", IMAGE)
    _prune(podman, previous if previous != image["Id"] else None)
    base_size = int(podman.inspect("image", base)["Size"])
    return BuiltImage(IMAGE, base, elapsed, int(image["Size"]), base_size)


def _prune(podman: Podman, replaced: str | None) -> None:
    """Drop the image this build replaced and all but the newest build-stage image
    (the newest is the layer cache of the next build), so repeated runs on one
    machine do not pile up images."""
    stale = [replaced] if replaced else []
    listing = podman.run(
        "images",
        "--filter",
        "dangling=true",
        "--filter",
        "label=io.saas-quota-exporter.stage=build",
        "--format",
        "json",
    )
    stages = sorted(json.loads(listing.stdout or "[]"), key=lambda i: int(i["Created"]))
    stale += [str(stage["Id"]) for stage in stages[:-1]]
    for image_id in stale:
        podman.run("rmi", "--force", image_id, check=False)
