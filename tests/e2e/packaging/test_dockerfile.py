"""The Dockerfile, statically: hadolint, and agreement with the exporter's defaults.

The container test (test_container_image.py) builds and runs it; these checks also
run where podman is not installed.
"""

from __future__ import annotations

import re
import subprocess

import exporter.cli
from tests.packaging.podman import REPO
from tests.packaging.tools import venv_tool

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [venv_tool("hadolint"), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_a_build_argument_defaulting_to_python_slim() -> None:
    steps = instructions()
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.12-slim")
    froms = [args for word, args in steps if word == "FROM"]
    assert froms == ["${BASE_IMAGE} AS build", "${BASE_IMAGE}"]


def test_runtime_stage_matches_the_exporters_defaults() -> None:
    steps = instructions()
    runtime = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    port = exporter.cli.DEFAULT_LISTEN.rpartition(":")[2]
    assert ("EXPOSE", port) in runtime
    assert ("USER", "10001:10001") in runtime  # numeric: runAsNonRoot can verify it
    env = " ".join(args for word, args in runtime if word == "ENV")
    assert f"HEALTHCHECK_URL=http://127.0.0.1:{port}/-/healthy" in env
    assert any(word == "HEALTHCHECK" and "HEALTHCHECK_URL" in args for word, args in runtime)
    assert ("ENTRYPOINT", '["saas-quota-exporter"]') in runtime
    assert ("CMD", '["--config.file=/etc/saas-quota-exporter/config.yml"]') in runtime


def test_build_context_is_only_what_the_build_copies() -> None:
    """.dockerignore admits pyproject.toml, README.md and exporter/ and nothing else."""
    rules = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"
    admitted = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = set()
    for word, args in instructions():
        if word == "COPY" and not args.startswith("--from"):
            copied.update(args.split()[:-1])
    assert admitted == copied == {"pyproject.toml", "README.md", "exporter"}
