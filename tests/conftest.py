"""Shared fixtures: the anyio backend for async tests (asyncio only), a clean
process-wide key scrubber for every test, Hypothesis profiles, and the test tiers.

Tiers follow the folder: tests/e2e/ (real processes over real sockets, deploy files
against real Prometheus and Alertmanager, packaging, soak) is marked `e2e` here, so no
test has to remember the mark; a test marked `e2e` anywhere else is a collection error,
because `make check` (tests/unit/ and tests/support/) must stay in-process and fast.

Hypothesis profiles: on CI (CI=true) every run draws the same examples
(`derandomize`), so a submission lands or fails on its own merits, not on which
random examples one run happened to draw; a developer's run (`make check`, plain
pytest) draws fresh ones every time, which is where new counterexamples are found.
A counterexample found either way becomes an explicit test (`@example` or a unit
test), as tests/unit/providers/test_tornado.py's lone-surrogate billing error did.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
import structlog
from hypothesis import settings

from exporter.redaction import REDACTOR, Redactor

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True)
# `make check`: a fifth of the examples (tests/support/examples.py), fresh each run.
settings.register_profile("check", print_blob=True)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


_E2E: Final = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    misplaced = []
    for item in items:
        in_e2e = _E2E in Path(str(item.path)).resolve().parents
        if in_e2e:
            item.add_marker(pytest.mark.e2e)
        elif item.get_closest_marker("e2e") is not None:
            misplaced.append(item.nodeid)
    if misplaced:
        raise pytest.UsageError(
            "tests marked e2e outside tests/e2e/ (move them there; the tier follows the"
            " folder): " + ", ".join(misplaced)
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
