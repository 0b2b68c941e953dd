"""Shared fixtures: the anyio backend for async tests (asyncio only), a clean
process-wide key scrubber for every test, and Hypothesis profiles.

Hypothesis profiles: on CI (CI=true) every run draws the same examples
(`derandomize`), so a submission lands or fails on its own merits, not on which
random examples one run happened to draw; a developer's run (`make check`, plain
pytest) draws fresh ones every time, which is where new counterexamples are found.
A counterexample found either way becomes an explicit test (`@example` or a unit
test), as tests/providers/test_tornado.py's lone-surrogate billing error did.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import structlog
from hypothesis import settings

from exporter.redaction import REDACTOR, Redactor

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """A test that runs main() configures structlog onto its captured stderr, which is
    closed when the test ends: every later log call would raise. Put it back."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture(autouse=True)
def _fresh_redactor(monkeypatch: pytest.MonkeyPatch) -> None:
    # REDACTOR scrubs any 8 characters of any key registered in this process, so a
    # key one test registers ("demo-tornado-pipeline") would scrub another test's
    # text ("Demo Pipeline"). Each test starts with no keys; monkeypatch puts the
    # process-wide set back afterwards.
    monkeypatch.setattr(REDACTOR, "_index", Redactor()._index)
