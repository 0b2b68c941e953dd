"""Loading recorded vendor responses from tests/fixtures/."""

from __future__ import annotations

import json
from dataclasses import dataclass
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


# --- the recorded-case layout: tests/fixtures/<vendor>/<case>/ --------------------------
# body.<ext> holds the raw bytes (body.json, body.txt, body.html), `status` the HTTP
# status as text (default 200), headers.json a JSON object of response headers.


@dataclass(frozen=True)
class Recorded:
    """One recorded vendor answer, as `parse` receives it."""

    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


def cases(vendor: str) -> list[str]:
    """The sorted case names of a vendor: its folders that hold a body."""
    folder = FIXTURES / vendor
    return sorted(
        entry.name for entry in folder.iterdir() if entry.is_dir() and any(entry.glob("body.*"))
    )


def recorded(vendor: str, case: str) -> Recorded:
    """The answer recorded in tests/fixtures/<vendor>/<case>/."""
    folder = FIXTURES / vendor / case
    bodies = sorted(folder.glob("body.*"))
    if len(bodies) != 1:
        raise FileNotFoundError(f"{folder}: expected exactly one body.<ext>, found {len(bodies)}")
    status_file = folder / "status"
    status = int(status_file.read_text().strip()) if status_file.is_file() else 200
    headers_file = folder / "headers.json"
    raw = json.loads(headers_file.read_text()) if headers_file.is_file() else {}
    return Recorded(
        status=status,
        headers={str(k).lower(): str(v) for k, v in raw.items()},
        body=bodies[0].read_bytes(),
    )
