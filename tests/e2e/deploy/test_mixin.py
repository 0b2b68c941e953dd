"""The jsonnet mixin in deploy/mixin/ is the one source of the rules and dashboards.

Every generated file (deploy/prometheus/*.yml, grafana/dashboards/*.json, the Kubernetes
manifests and the Helm chart's copies) must equal what the mixin produces now, and the
mixin's _config must really parameterise what it claims to.
"""

from __future__ import annotations

import json

import yaml

from tests.deploy import generate_mixin
from tests.deploy.assets import documented_parameters


def test_generated_files_are_in_sync_with_the_mixin() -> None:
    stale = [
        str(path.relative_to(generate_mixin.REPO))
        for path, text in generate_mixin.outputs().items()
        if not path.exists() or path.read_text() != text
    ]
    assert not stale, f"stale, run `make mixin`: {stale}"
    assert generate_mixin.main(["--check"]) == 0, "run `make mixin`"


def test_the_alerts_header_lists_the_mixin_defaults() -> None:
    config = generate_mixin.evaluate()["config"]
    assert documented_parameters() == generate_mixin.parameters(config)


def test_config_overrides_reach_every_expression_and_url() -> None:
    mixin = generate_mixin.evaluate(
        {
            "job": "saas",
            "almostExhaustedWarning": 0.7,
            "forecastHorizonSeconds": 86400,
            "dashboardBaseURL": "https://grafana.internal.example",
            "runbookBaseURL": "https://wiki.example/runbooks#",
            "datasourceRegex": "prom-.*",
        }
    )
    text = json.dumps([r["expr"] for g in mixin["alerts"]["groups"] for r in g["rules"]])
    assert 'up{job=\\"saas\\"}' in text
    assert 'job=\\"saas-quota\\"' not in text
    assert ">= 0.7\\n" in text
    assert ">= 0.8\\n" not in text
    rules = json.dumps([r["expr"] for g in mixin["rules"]["groups"] for r in g["rules"]])
    assert "+ 86400" in rules
    assert "604800" not in rules + text
    for group in mixin["alerts"]["groups"]:
        for rule in group["rules"]:
            annotations = rule["annotations"]
            assert annotations["dashboard_url"].startswith("https://grafana.internal.example/d/")
            assert (
                annotations["runbook_url"]
                == "https://wiki.example/runbooks#" + rule["alert"].lower()
            )
    for board in mixin["dashboards"].values():
        (source,) = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
        assert source["regex"] == "prom-.*"


def test_no_alert_expression_names_a_vendor() -> None:
    rules = generate_mixin.evaluate()["alerts"]["groups"][0]["rules"]
    for rule in rules:
        expr = yaml.safe_dump(rule["expr"])
        assert "provider=" not in expr, rule["alert"]
        assert "plan=" not in expr, rule["alert"]
