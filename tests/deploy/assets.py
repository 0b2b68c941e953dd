"""Where the bundled monitoring files live, and small readers shared by their tests."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from exporter.durations import parse_duration
from tests.support.processes import REPO

PROMETHEUS_DIR: Final = REPO / "deploy" / "prometheus"
RULES_FILE: Final = PROMETHEUS_DIR / "saas-quota.rules.yml"
ALERTS_FILE: Final = PROMETHEUS_DIR / "saas-quota.alerts.yml"
PROMETHEUS_CONFIG: Final = PROMETHEUS_DIR / "prometheus.yml"
PROMTOOL_TESTS_DIR: Final = PROMETHEUS_DIR / "tests"
ALERTMANAGER_CONFIG: Final = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
GRAFANA_DIR: Final = REPO / "grafana"
DASHBOARDS_DIR: Final = GRAFANA_DIR / "dashboards"
PROVISIONING_DIR: Final = GRAFANA_DIR / "provisioning"
ALERTING_DOC: Final = REPO / "docs/alerting.md"
RUNBOOKS_DOC: Final = REPO / "docs/runbooks.md"

REPO_URL: Final = "https://github.com/saas-quota-exporter/saas-quota-exporter"
RUNBOOK_BASE: Final = f"{REPO_URL}/blob/main/docs/runbooks.md#"


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule of the alerts file (an alert name may have several)."""

    name: str
    expr: str
    for_seconds: float
    labels: dict[str, str]
    annotations: dict[str, str]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rule_groups(path: Path) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = load_yaml(path)["groups"]
    return groups


def alert_rules() -> list[AlertRule]:
    return [
        AlertRule(
            name=rule["alert"],
            expr=rule["expr"],
            for_seconds=parse_duration(rule.get("for", "0")),
            labels=dict(rule.get("labels", {})),
            annotations=dict(rule.get("annotations", {})),
        )
        for group in rule_groups(ALERTS_FILE)
        for rule in group["rules"]
        if "alert" in rule
    ]


def alert_names() -> list[str]:
    """Every alert name once, in file order."""
    return list(dict.fromkeys(rule.name for rule in alert_rules()))


def recording_rule_names() -> list[str]:
    return [
        rule["record"]
        for group in rule_groups(RULES_FILE)
        for rule in group["rules"]
        if "record" in rule
    ]


_PARAMETER = re.compile(r"^#\s{3}(\w+) = (\S+)", re.MULTILINE)


def documented_parameters() -> dict[str, str]:
    """The thresholds block at the top of the alerts file: name -> value."""
    return dict(_PARAMETER.findall(ALERTS_FILE.read_text()))


def dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard JSON by file name."""
    return {
        path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS_DIR.glob("*.json"))
    }


def alerting_doc() -> str:
    """docs/alerting.md: the thresholds table, the rules and where the dashboards go."""
    return ALERTING_DOC.read_text()


def runbooks_doc() -> str:
    """docs/runbooks.md: one `## <alert>` section per alert."""
    return RUNBOOKS_DOC.read_text()


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")
