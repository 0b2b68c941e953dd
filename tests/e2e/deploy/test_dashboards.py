"""Structure of the bundled Grafana dashboards and provisioning files.

Grafana itself cannot run here, so these tests hold the dashboard JSON to what Grafana
needs and what the project promises: a stable uid and the saas-quota tag, the classic
JSON model at one schema version, one `${datasource}` variable and no hard-coded data
source, unique panel ids on a grid without overlaps, a unit on every panel, chained
provider -> account -> meter variables, links between the three dashboards, queries
that only use the metric contract and the recording rules, and the alert thresholds.
Whether every query runs and returns data is proven against a real Prometheus in
test_alerting_e2e.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from itertools import combinations
from typing import Any, Final

import pytest

from tests.deploy.assets import (
    DASHBOARDS_DIR,
    PROVISIONING_DIR,
    alerting_doc,
    dashboards,
    documented_parameters,
    load_yaml,
    recording_rule_names,
)
from tests.deploy.grafana import panel_targets, panels, query_variables

SCHEMA_VERSION: Final = 39
DATASOURCE: Final = {"type": "prometheus", "uid": "${datasource}"}
UIDS: Final = {
    "saas-quota-overview.json": "saas-quota-overview",
    "saas-quota-account-detail.json": "saas-quota-account",
    "saas-quota-exporter-health.json": "saas-quota-exporter",
}
UNITS: Final = {"percentunit", "s", "bytes", "short", "none"}
# docs/metrics.md's metric contract, plus what Prometheus itself provides.
CONTRACT: Final = {
    "saas_quota_used",
    "saas_quota_limit",
    "saas_quota_remaining",
    "saas_quota_unlimited",
    "saas_quota_reset_timestamp_seconds",
    "saas_quota_period_start_timestamp_seconds",
    "saas_quota_meter_info",
    "saas_quota_account_info",
    "saas_quota_api_key_expiry_timestamp_seconds",
    "saas_quota_api_key_active",
    "saas_quota_rate_limit_requests",
    "saas_quota_up",
    "saas_quota_last_success_timestamp_seconds",
    "saas_quota_poll_duration_seconds",
    "saas_quota_polls_total",
    "saas_quota_poll_errors_total",
    "saas_quota_key_cap",
    "saas_quota_config_last_reload_successful",
    "saas_quota_config_last_reload_success_timestamp_seconds",
    "saas_quota_build_info",
}
PROMETHEUS_OWN: Final = {"up", "scrape_duration_seconds", "ALERTS"}
# Series without provider/account labels (exporter-wide).
EXPORTER_WIDE: Final = {
    "saas_quota_config_last_reload_successful",
    "saas_quota_config_last_reload_success_timestamp_seconds",
    "saas_quota_build_info",
}
PER_METER: Final = {
    "saas_quota_used",
    "saas_quota_limit",
    "saas_quota_remaining",
    "saas_quota_unlimited",
    "saas_quota_reset_timestamp_seconds",
    "saas_quota_period_start_timestamp_seconds",
    "saas_quota_meter_info",
}
_KEYWORDS: Final = {
    "by",
    "on",
    "and",
    "or",
    "unless",
    "group_left",
    "group_right",
    "ignoring",
    "without",
    "bool",
    "time",
    "vector",
    "max",
    "min",
    "sum",
    "count",
    "increase",
    "rate",
    "changes",
    "provider",
    "account",
    "meter",
    "job",
    "instance",
    "reason",
    "version",
}


def boards() -> list[tuple[str, dict[str, Any]]]:
    return list(dashboards().items())


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, value) of a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", value
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")


def selectors(expr: str) -> list[tuple[str, str]]:
    """(metric name, matcher block) of every series selector in a PromQL expression."""
    # Drop what could look like identifiers but is not a series: range and subquery
    # durations, and the label lists of by/on/ignoring/without/group_*.
    text = re.sub(r"\[[^\]]*\]", " ", expr)
    text = re.sub(r"\b(by|on|ignoring|without|group_left|group_right)\s*\([^)]*\)", " ", text)
    found = []
    for match in re.finditer(r"([a-zA-Z_][\w:]*)\s*(\{[^}]*\})?", text):
        name, block = match.group(1), match.group(2) or ""
        if name in _KEYWORDS:
            continue
        if not block and text[match.end() :].lstrip().startswith("("):
            continue  # a function call
        found.append((name, block))
    return found


def test_the_three_dashboards_exist_with_stable_uids() -> None:
    assert {name: board["uid"] for name, board in boards()} == UIDS
    for name, board in boards():
        assert re.fullmatch(r"[a-z0-9-]{1,40}", board["uid"]), name
        assert board["title"].startswith("SaaS quotas / "), name
        assert "saas-quota" in board["tags"], name
        assert board["schemaVersion"] == SCHEMA_VERSION, name
        assert board["id"] is None, "an id pins the dashboard to one Grafana database"
        assert board["description"], name
        assert board["time"] == {"from": "now-24h", "to": "now"}, name


@pytest.mark.parametrize(("name", "board"), boards())
def test_files_are_canonical_json(name: str, board: dict[str, Any]) -> None:
    text = (DASHBOARDS_DIR / name).read_text()
    assert text == json.dumps(board, indent=2) + "\n", "keep 2-space JSON for reviewable diffs"


@pytest.mark.parametrize(("name", "board"), boards())
def test_one_datasource_variable_and_no_hard_coded_datasource(
    name: str, board: dict[str, Any]
) -> None:
    first = board["templating"]["list"][0]
    assert first["name"] == "datasource"
    assert first["type"] == "datasource"
    assert first["query"] == "prometheus"
    assert "__inputs" not in board, "import-time inputs are not needed with ${datasource}"
    references = [(p, v) for p, v in walk(board) if p.endswith(".datasource")]
    assert references
    for path, value in references:
        assert value == DATASOURCE, f"{name}{path}: {value}"
    for panel in panels(board):
        if panel["type"] != "row":
            assert panel["datasource"] == DATASOURCE, (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"] == DATASOURCE, (name, panel["title"])


@pytest.mark.parametrize(("name", "board"), boards())
def test_panel_ids_are_unique_and_the_grid_has_no_overlaps(
    name: str, board: dict[str, Any]
) -> None:
    all_panels = list(panels(board))
    ids = [panel["id"] for panel in all_panels]
    assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
    boxes = []
    for panel in all_panels:
        grid = panel["gridPos"]
        x, y, w, h = grid["x"], grid["y"], grid["w"], grid["h"]
        where = (name, panel["title"])
        assert x >= 0, where
        assert y >= 0, where
        assert w > 0, where
        assert h > 0, where
        assert x + w <= 24, where
        if panel["type"] == "row":
            assert (x, w, h) == (0, 24, 1), (name, panel["title"])
        boxes.append((panel["title"], x, y, w, h))
    for (a, ax, ay, aw, ah), (b, bx, by, bw, bh) in combinations(boxes, 2):
        overlap = ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah
        assert not overlap, f"{name}: '{a}' overlaps '{b}'"
    # Listed top to bottom, left to right, as Grafana saves them.
    order = [(p["gridPos"]["y"], p["gridPos"]["x"]) for p in board["panels"]]
    assert order == sorted(order), name


@pytest.mark.parametrize(("name", "board"), boards())
def test_every_panel_has_a_unit(name: str, board: dict[str, Any]) -> None:
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        unit = panel["fieldConfig"]["defaults"].get("unit")
        assert unit in UNITS, f"{name}: '{panel['title']}' unit {unit!r}"
        for override in panel["fieldConfig"]["overrides"]:
            for prop in override["properties"]:
                if prop["id"] == "unit":
                    assert prop["value"] in UNITS, (name, panel["title"], prop)
        if unit == "none":
            # A unitless panel shows states or labels: it needs mappings or text only.
            has_mappings = panel["fieldConfig"]["defaults"].get("mappings") or any(
                p["id"] == "mappings"
                for o in panel["fieldConfig"]["overrides"]
                for p in o["properties"]
            )
            assert has_mappings or panel["type"] in {"table", "stat"}, (name, panel["title"])


@pytest.mark.parametrize(("name", "board"), boards())
def test_panels_carry_a_description_and_queries_fit_their_panel(
    name: str, board: dict[str, Any]
) -> None:
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        assert panel["description"], (name, panel["title"])
        targets = panel["targets"]
        ref_ids = [t["refId"] for t in targets]
        assert ref_ids == [chr(ord("A") + i) for i in range(len(targets))], panel["title"]
        for target in targets:
            instant = panel["type"] in {"table", "stat"}
            assert target["instant"] is instant, (name, panel["title"])
            assert target["range"] is not instant, (name, panel["title"])
        if panel["type"] == "table" and len(targets) > 1:
            assert all(t["format"] == "table" for t in targets), panel["title"]
            assert panel["transformations"][0]["id"] == "merge", panel["title"]
        for override in panel["fieldConfig"]["overrides"]:
            option = override["matcher"]["options"]
            column = re.fullmatch(r"Value #([A-Z])", option)
            if column:
                assert column.group(1) in ref_ids, f"{panel['title']}: override of {option}"


def test_variables_are_chained_provider_account_meter() -> None:
    chains = {
        "saas-quota-overview": ["provider", "account", "meter"],
        "saas-quota-account": ["provider", "account", "meter"],
        "saas-quota-exporter": ["job", "provider", "account"],
    }
    for _, board in boards():
        variables = query_variables(board)
        names = [v["name"] for v in variables]
        assert names == chains[board["uid"]], board["uid"]
        for position, variable in enumerate(variables):
            assert variable["query"].startswith("label_values("), variable["name"]
            assert variable["definition"] == variable["query"]
            assert variable["datasource"] == DATASOURCE
            for earlier in names[:position]:
                assert f"${earlier}" in variable["query"], (board["uid"], variable["name"])
        used = " ".join(t.expr for t in panel_targets(board))
        for variable in names:
            assert f"${variable}" in used, f"{board['uid']}: ${variable} is never used"


def test_account_detail_selects_one_account() -> None:
    board = dashboards()["saas-quota-account-detail.json"]
    by_name = {v["name"]: v for v in query_variables(board)}
    for single in ("provider", "account"):
        assert not by_name[single]["multi"]
        assert not by_name[single]["includeAll"]
    assert by_name["meter"]["multi"]
    assert by_name["meter"]["includeAll"]


def test_dashboards_link_to_each_other() -> None:
    uids = set(UIDS.values())
    for _, board in boards():
        linked = set()
        for link in board["links"]:
            match = re.fullmatch(r"/d/([\w-]+)", link["url"])
            assert match, link
            assert link["includeVars"], link
            assert link["keepTime"], link
            linked.add(match.group(1))
        assert linked == uids - {board["uid"]}, board["uid"]


@pytest.mark.parametrize(("name", "board"), boards())
def test_queries_use_only_the_metric_contract_and_filter_by_the_variables(
    name: str, board: dict[str, Any]
) -> None:
    recorded = set(recording_rule_names())
    variables = {v["name"] for v in query_variables(board)}
    for target in panel_targets(board):
        found = selectors(target.expr)
        assert found, target
        for metric, block in found:
            assert metric in CONTRACT | recorded | PROMETHEUS_OWN, f"{target}: unknown {metric}"
            if metric in PROMETHEUS_OWN:
                continue
            if "job" in variables:
                assert '$job"' in block, f"{target.panel_title}: {metric} ignores $job"
            if metric in EXPORTER_WIDE:
                continue
            for label in ("provider", "account"):
                where = f"{name} '{target.panel_title}' {target.ref_id}: {metric}{block}"
                assert f'{label}=~"${label}"' in block or f'{label}="${label}"' in block, (
                    f"{where} ignores ${label}"
                )
            per_meter = metric in PER_METER or metric in recorded
            if (
                per_meter
                and "meter" in variables
                and "meter_info{" not in target.expr.split("group_left")[-1]
            ):
                assert 'meter=~"$meter"' in block, (
                    f"{name} '{target.panel_title}' {target.ref_id}: {metric}{block} ignores $meter"
                )


def test_dashboard_thresholds_are_the_alert_thresholds() -> None:
    p = documented_parameters()
    warning, critical = float(p["almost_exhausted_warning"]), float(p["almost_exhausted_critical"])
    stale = float(p["stale_after"])
    seen_ratio = seen_stale = 0
    for _, board in boards():
        for panel in panels(board):
            if panel["type"] == "row":
                continue
            field_config = panel["fieldConfig"]
            thresholds = [field_config["defaults"]["thresholds"]] + [
                prop["value"]
                for override in field_config["overrides"]
                for prop in override["properties"]
                if prop["id"] == "thresholds"
            ]
            for value in thresholds:
                steps = [step["value"] for step in value["steps"]]
                colors = [step["color"] for step in value["steps"]]
                if colors == ["green", "orange", "red"] and steps[1] < 1:
                    assert steps == [None, warning, critical], panel["title"]
                    seen_ratio += 1
                if colors == ["green", "orange"] and steps[1] > 1:
                    assert steps == [None, stale], panel["title"]
                    seen_stale += 1
        for target in panel_targets(board):
            for number in re.findall(r"(?:>=|>) (\d+(?:\.\d+)?)\)", target.expr):
                assert float(number) in {0.0, warning, 1.0, stale}, (target, number)
            if "last_success_timestamp_seconds" in target.expr and ">" in target.expr:
                assert f"> {int(stale)}" in target.expr, target
    assert seen_ratio >= 4
    assert seen_stale >= 3


def test_provisioning_files() -> None:
    (datasources,) = sorted((PROVISIONING_DIR / "datasources").glob("*.yml"))
    document = load_yaml(datasources)
    assert document["apiVersion"] == 1
    (source,) = document["datasources"]
    assert source["type"] == "prometheus"
    assert source["access"] == "proxy"
    (providers_file,) = sorted((PROVISIONING_DIR / "dashboards").glob("*.yml"))
    document = load_yaml(providers_file)
    assert document["apiVersion"] == 1
    (provider,) = document["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    assert path.startswith("/"), path
    assert path in alerting_doc(), "docs/alerting.md must say where to put the dashboards"
