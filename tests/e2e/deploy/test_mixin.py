"""The jsonnet mixin in deploy/mixin/ is the one source of the rules and dashboards.

Every generated file (deploy/prometheus/*.yml, grafana/dashboards/*.json, the Kubernetes
manifests and the Helm chart's copies) must equal what the mixin produces now, and the
mixin's _config must really parameterise what it claims to.
"""

from __future__ import annotations

import json
from typing import Any

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


def _share_scales(board: dict[str, Any]) -> list[list[float | None]]:
    """The steps of every green/orange/red threshold scale on a used share."""
    found: list[list[float | None]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            steps = value.get("steps")
            if isinstance(steps, list) and [s.get("color") for s in steps] == [
                "green",
                "orange",
                "red",
            ]:
                found.append([s.get("value") for s in steps])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(board)
    return found


def test_config_thresholds_reach_the_dashboards() -> None:
    """Overriding almostExhaustedWarning/Critical recolours every share bar and line and
    moves the overview's count and the texts that name the shares."""
    default = generate_mixin.evaluate()["dashboards"]
    tuned = generate_mixin.evaluate(
        {"almostExhaustedWarning": 0.7, "almostExhaustedCritical": 0.875}
    )["dashboards"]
    assert default.keys() == tuned.keys()
    scales = {name: _share_scales(board) for name, board in tuned.items()}
    assert sum(len(s) for s in scales.values()) >= 4, scales
    for name, board in default.items():
        assert len(_share_scales(board)) == len(scales[name]), name
        assert all(steps == [None, 0.8, 0.95] for steps in _share_scales(board)), name
        assert all(steps == [None, 0.7, 0.875] for steps in scales[name]), name
    text = json.dumps(tuned)
    for stale in ("80 %", "95 %", ">= 0.8)", '"value": 0.8,', '"value": 0.95'):
        assert stale not in text, stale
    (stat,) = [
        panel
        for panel in tuned["saas-quota-overview.json"]["panels"]
        if panel.get("title") == "Meters at 70 % or more"
    ]
    assert "at least 70 % of their limit" in stat["description"]
    assert ">= 0.7) or vector(0)" in stat["targets"][0]["expr"]
    assert "Lines at 70 % and 87.5 %" in json.dumps(tuned["saas-quota-account-detail.json"])
    # Nothing else moves: put the defaults back and the boards are the default ones.
    moved = {"0.875": "0.95", "87.5 %": "95 %", "0.7": "0.8", "70 %": "80 %"}
    restored = text
    for new, old in moved.items():
        assert new not in json.dumps(default), new
        restored = restored.replace(new, old)
    assert json.loads(restored) == default
