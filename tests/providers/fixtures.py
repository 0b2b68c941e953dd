"""Loading recorded vendor responses from tests/fixtures/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def body(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / name).read_bytes()


def headers(provider: str, name: str) -> dict[str, str]:
    """A recorded header map, with lower-case names as `parse` receives them."""
    raw = json.loads((FIXTURES / provider / name).read_text())
    return {str(k).lower(): str(v) for k, v in raw.items()}


def edited(provider: str, name: str, changes: dict[tuple[str, ...], Any]) -> bytes:
    """A recorded JSON body with the values at some paths replaced (added if absent)."""
    data = json.loads(body(provider, name))
    for path, value in changes.items():
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return json.dumps(data).encode()
