"""Shared fixtures: a clean redaction registry per test, and the anyio backend."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
