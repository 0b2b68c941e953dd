"""Every inhibit rule of deploy/alertmanager/alertmanager.yml, in a real Alertmanager.

Alerts are posted straight to Alertmanager's API (as Prometheus would send them) and
Alertmanager's own view of each one is read back: suppressed by an inhibition, or
active. The matrix covers each rule firing and, next to it, the alerts it must leave
alone (another meter, another account, another exporter).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from tests.deploy.assets import ALERTMANAGER_CONFIG, load_yaml
from tests.deploy.daemons import Daemon
from tests.support.processes import require_binary, wait_until

pytestmark = pytest.mark.e2e

A: Final = {"job": "saas-quota", "instance": "exporter-a:9877"}
B: Final = {"job": "saas-quota", "instance": "exporter-b:9877"}
EU: Final = {"job": "saas-quota-eu", "instance": "exporter-eu:9877"}


def alert(alertname: str, severity: str, target: dict[str, str], **labels: str) -> dict[str, str]:
    return {"alertname": alertname, "severity": severity, **target, **labels}


PILOTERR_METER: Final = {"provider": "piloterr", "account": "scraping", "meter": "api_credits"}
PICTORY_METER: Final = {"provider": "pictory", "account": "marketing", "meter": "video_seconds"}

# (labels, expected state, why)
MATRIX: Final = [
    # Exhausted inhibits the other quota alerts of the same meter, only that meter.
    (alert("SaasQuotaExhausted", "critical", A, **PILOTERR_METER), "active", "source"),
    (alert("SaasQuotaAlmostExhausted", "critical", A, **PILOTERR_METER), "suppressed", "exhausted"),
    (alert("SaasQuotaAlmostExhausted", "warning", A, **PILOTERR_METER), "suppressed", "exhausted"),
    (alert("SaasQuotaPredictedExhaustion", "warning", A, **PILOTERR_METER), "suppressed", "same"),
    (alert("SaasQuotaBurningTooFast", "warning", A, **PILOTERR_METER), "suppressed", "same"),
    (
        alert(
            "SaasQuotaPredictedExhaustion",
            "warning",
            A,
            provider="piloterr",
            account="scraping",
            meter="extra_credits",
        ),
        "active",
        "another meter of the same account",
    ),
    # The critical almost-exhausted replaces the warning one of the same meter.
    (alert("SaasQuotaAlmostExhausted", "critical", A, **PICTORY_METER), "active", "source"),
    (alert("SaasQuotaAlmostExhausted", "warning", A, **PICTORY_METER), "suppressed", "critical"),
    # A rejected key explains failing polls and stale data of that account only.
    (
        alert(
            "SaasQuotaCredentialsRejected",
            "critical",
            A,
            provider="vidnavigator",
            account="research",
            reason="auth",
        ),
        "active",
        "source",
    ),
    (
        alert("SaasQuotaPollFailing", "warning", A, provider="vidnavigator", account="research"),
        "suppressed",
        "rejected key",
    ),
    (
        alert("SaasQuotaDataStale", "warning", A, provider="vidnavigator", account="research"),
        "suppressed",
        "rejected key",
    ),
    # Failing polls explain stale data.
    (
        alert("SaasQuotaPollFailing", "warning", A, provider="tornado", account="pipeline"),
        "active",
        "source",
    ),
    (
        alert("SaasQuotaDataStale", "warning", A, provider="tornado", account="pipeline"),
        "suppressed",
        "failing polls",
    ),
    # Stale data on its own (a stuck poller) is reported.
    (
        alert("SaasQuotaDataStale", "warning", A, provider="pictory", account="marketing"),
        "active",
        "nothing explains it",
    ),
    # A down exporter explains everything it would report, on that target only.
    (alert("SaasQuotaExporterDown", "warning", B), "active", "source"),
    (
        alert("SaasQuotaPollFailing", "warning", B, provider="vertaaux", account="agency"),
        "suppressed",
        "exporter down",
    ),
    (
        alert(
            "SaasQuotaExhausted",
            "critical",
            B,
            provider="vertaaux",
            account="agency",
            meter="credits",
        ),
        "suppressed",
        "exporter down",
    ),
    # A job without targets explains everything of that job.
    (
        {"alertname": "SaasQuotaExporterAbsent", "severity": "warning", "job": "saas-quota-eu"},
        "active",
        "source",
    ),
    (
        alert("SaasQuotaApiKeyExpiring", "warning", EU, provider="piloterr", account="eu"),
        "suppressed",
        "job absent",
    ),
]


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Daemon]:
    binary = require_binary("prometheus-alertmanager")
    config = load_yaml(ALERTMANAGER_CONFIG)
    # Nothing should be delivered anywhere: point the receivers at a closed port.
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = "http://127.0.0.1:9/unused"
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    daemon = Daemon(
        binary,
        [
            f"--config.file={path}",
            f"--storage.path={tmp_path / 'data'}",
            "--cluster.listen-address=",
        ],
        tmp_path / "alertmanager.log",
    )
    try:
        wait_until(daemon.ready, timeout=30)
        yield daemon
    finally:
        daemon.stop()


def test_inhibit_rules_suppress_exactly_what_they_explain(alertmanager: Daemon) -> None:
    now = datetime.now(UTC)
    posted = [
        {
            "labels": labels,
            "annotations": {"summary": why},
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(hours=1)).isoformat(),
        }
        for labels, _, why in MATRIX
    ]
    assert alertmanager.post("/api/v2/alerts", posted) == 200

    def states() -> dict[tuple[tuple[str, str], ...], dict[str, Any]]:
        return {
            tuple(sorted(a["labels"].items())): a["status"]
            for a in alertmanager.api("/api/v2/alerts")
        }

    def settled() -> bool:
        """Alertmanager has every posted alert with its expected inhibition state"""
        current = states()
        return all(
            current.get(tuple(sorted(labels.items())), {}).get("state") == expected
            for labels, expected, _ in MATRIX
        )

    try:
        wait_until(settled, timeout=20, interval=0.2)
    finally:
        current = states()
        for labels, expected, why in MATRIX:
            status = current.get(tuple(sorted(labels.items())), {})
            assert status.get("state") == expected, (labels, why, status)
            assert bool(status.get("inhibitedBy")) is (expected == "suppressed"), (labels, status)
