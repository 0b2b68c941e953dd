"""Loading recorded vendor responses from tests/fixtures/."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def body(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / name).read_bytes()


def headers(provider: str, name: str) -> dict[str, str]:
    """A recorded header map, with lower-case names as `parse` receives them."""
    raw = json.loads((FIXTURES / provider / name).read_text())
    return {str(k).lower(): str(v) for k, v in raw.items()}
