"""Recorded vendor responses from tests/fixtures/, one folder per case.

    tests/fixtures/<vendor>/<case>/body.<ext>     the raw body (body.json, body.txt, body.html)
    tests/fixtures/<vendor>/<case>/status         optional: the HTTP status as text (200)
    tests/fixtures/<vendor>/<case>/headers.json   optional: a JSON object of response headers

A case carries everything its response had, so no test keeps a side table of
which fixture was a 429 or which headers came with which body.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@dataclass(frozen=True)
class Recorded:
    """One recorded HTTP response, as `Provider.parse` receives it."""

    status: int
    # Lower-case names, as the poller hands them to `parse`.
    headers: dict[str, str]
    body: bytes


def recorded(vendor: str, case: str) -> Recorded:
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


def cases(vendor: str) -> list[str]:
    """The sorted case names of one vendor."""
    folder = FIXTURES / vendor
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def edited(vendor: str, case: str, changes: dict[tuple[str, ...], Any]) -> bytes:
    """A recorded JSON body with the values at some paths replaced (added if absent)."""
    data = json.loads(recorded(vendor, case).body)
    for path, value in changes.items():
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return json.dumps(data).encode()
