"""promtool check metrics on what the exporter renders (the golden snapshot, 10,000 accounts)."""

from __future__ import annotations

import subprocess

from exporter.render import (
    TEXT_0_0_4,
    MetricsRenderer,
)
from tests.support.processes import require_binary
from tests.unit.test_families import NOW, golden_store, render
from tests.unit.test_render_encoding import many_accounts, reference


def test_promtool_accepts_the_exposition_of_10000_accounts() -> None:
    # promtool reads the Prometheus text format (it lints OpenMetrics counters as
    # having no HELP), so the text format is what it checks.
    promtool = require_binary("promtool")
    snapshot = many_accounts(10_000).snapshot()
    body = MetricsRenderer(process_metrics=False).render(snapshot, NOW).body
    assert body.count(b"\n") > 300_000
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, check=False
    )
    # promtool lints too; any complaint fails.
    assert result.returncode == 0, (result.stderr + result.stdout).decode()[:2000]
    assert body == reference(snapshot, NOW, TEXT_0_0_4)


def test_promtool_check_metrics_passes_on_the_exposition() -> None:
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=render(golden_store()).encode(),
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()
