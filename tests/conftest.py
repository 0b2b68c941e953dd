"""Shared fixtures: the anyio backend for async tests (asyncio only), and a clean
process-wide key scrubber for every test."""

from __future__ import annotations

import pytest

from exporter.redaction import REDACTOR, Redactor


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _fresh_redactor(monkeypatch: pytest.MonkeyPatch) -> None:
    # REDACTOR scrubs any 8 characters of any key registered in this process, so a
    # key one test registers ("demo-tornado-pipeline") would scrub another test's
    # text ("Demo Pipeline"). Each test starts with no keys; monkeypatch puts the
    # process-wide set back afterwards.
    monkeypatch.setattr(REDACTOR, "_index", Redactor()._index)
