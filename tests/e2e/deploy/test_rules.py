"""The bundled Prometheus rules and Alertmanager config, checked with the real tools.

promtool and amtool validate the files and run the promtool unit tests in
deploy/prometheus/tests. The Python checks hold the conventions those tools do not
know: names, annotations, thresholds written in one documented place, a docs/runbooks.md
section per alert, and unit tests that pin every alert just before and just after its `for:`.
"""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from exporter.durations import parse_duration
from tests.deploy.assets import (
    ALERTMANAGER_CONFIG,
    ALERTS_FILE,
    DASHBOARDS_DIR,
    PROMETHEUS_CONFIG,
    PROMTOOL_TESTS_DIR,
    RULES_FILE,
    RUNBOOK_BASE,
    AlertRule,
    alert_names,
    alert_rules,
    alerting_doc,
    dashboards,
    documented_parameters,
    github_anchor,
    load_yaml,
    recording_rule_names,
    rule_groups,
    runbooks_doc,
)
from tests.support.processes import require_binary

PROMTOOL_TESTS = sorted(PROMTOOL_TESTS_DIR.glob("*.yml"))
# Alerts about one meter of one account; the rest are about an account or the exporter.
METER_ALERTS = {
    "SaasQuotaAlmostExhausted",
    "SaasQuotaExhausted",
    "SaasQuotaPredictedExhaustion",
    "SaasQuotaBurningTooFast",
}
ACCOUNT_ALERTS = {
    "SaasQuotaPollFailing",
    "SaasQuotaCredentialsRejected",
    "SaasQuotaDataStale",
    "SaasQuotaApiKeyExpiring",
}
RECEIVERS = {"critical": "saas-quota-pager", "warning": "saas-quota-tickets"}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=120, check=False, cwd=PROMETHEUS_CONFIG.parent
    )


# --- the real tools -------------------------------------------------------------------


def test_promtool_check_rules_is_clean() -> None:
    promtool = require_binary("promtool")
    result = run(
        promtool, "check", "rules", "--lint=all", "--lint-fatal", str(RULES_FILE), str(ALERTS_FILE)
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert output.count("SUCCESS") == 2, output


def test_promtool_check_config_of_the_example_prometheus_yml() -> None:
    promtool = require_binary("promtool")
    result = run(promtool, "check", "config", "--lint=all", "--lint-fatal", str(PROMETHEUS_CONFIG))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "2 rule files found" in output, output
    config = load_yaml(PROMETHEUS_CONFIG)
    assert [job["job_name"] for job in config["scrape_configs"]] == ["saas-quota"]
    assert config["rule_files"] == [RULES_FILE.name, ALERTS_FILE.name]


@pytest.mark.parametrize("test_file", PROMTOOL_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(test_file: Path) -> None:
    promtool = require_binary("promtool")
    result = run(promtool, "test", "rules", str(test_file))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS" in output, output


def test_amtool_check_config() -> None:
    amtool = require_binary("amtool")
    result = run(amtool, "check-config", str(ALERTMANAGER_CONFIG))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS" in output, output


@pytest.mark.parametrize(
    ("alertname", "severity"),
    sorted({(rule.name, rule.labels["severity"]) for rule in alert_rules()}),
)
def test_alertmanager_routes_each_alert_by_severity(alertname: str, severity: str) -> None:
    amtool = require_binary("amtool")
    expected = RECEIVERS[severity]
    result = run(
        amtool,
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        f"--verify.receivers={expected}",
        f"alertname={alertname}",
        f"severity={severity}",
        "provider=piloterr",
        "account=scraping",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == expected


def test_alertmanager_leaves_other_alerts_to_the_default_route() -> None:
    amtool = require_binary("amtool")
    result = run(
        amtool,
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        "--verify.receivers=default",
        "alertname=NodeDown",
        "severity=critical",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_groups_by_provider_and_account() -> None:
    config = load_yaml(ALERTMANAGER_CONFIG)
    (saas_route,) = config["route"]["routes"]
    assert saas_route["matchers"] == ['alertname=~"SaasQuota.+"']
    assert saas_route["group_by"] == ["provider", "account"]


def test_inhibit_rules_name_real_alerts() -> None:
    names = set(alert_names())
    config = load_yaml(ALERTMANAGER_CONFIG)
    mentioned: set[str] = set()
    for rule in config["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            match = re.fullmatch(r'alertname(=~|=|!=)"(.+)"', matcher)
            if match and match.group(2) != "SaasQuota.+":
                mentioned.update(match.group(2).split("|"))
    assert mentioned <= names, mentioned - names
    pairs = {
        (src, tgt)
        for rule in config["inhibit_rules"]
        for src in _alertnames(rule["source_matchers"], names)
        for tgt in _alertnames(rule["target_matchers"], names)
        if src != tgt
    }
    assert ("SaasQuotaExhausted", "SaasQuotaAlmostExhausted") in pairs
    for other in names - {"SaasQuotaExporterDown"}:
        assert ("SaasQuotaExporterDown", other) in pairs


def _alertnames(matchers: list[str], names: set[str]) -> set[str]:
    """The alert names a list of matchers selects (all of them must match)."""
    selected = set(names)
    for matcher in matchers:
        match = re.fullmatch(r'alertname(=~|=|!=)"(.+)"', matcher)
        if match is None:
            continue
        op, value = match.groups()
        if op == "=":
            selected &= {value}
        elif op == "!=":
            selected -= {value}
        else:
            selected = {n for n in selected if re.fullmatch(value, n)}
    return selected


# --- naming and annotations -----------------------------------------------------------


def test_recording_rules_are_named_level_metric_operations() -> None:
    names = recording_rule_names()
    assert len(names) == len(set(names))
    for name in names:
        level, metric, operations = name.split(":")
        assert level == "provider_account_meter", name
        assert re.fullmatch(r"saas_quota_[a-z_]+", metric), name
        assert re.fullmatch(r"[a-z0-9_]+", operations), name


def test_recording_rules_guard_every_output_with_a_positive_limit() -> None:
    for group in load_yaml(RULES_FILE)["groups"]:
        for rule in group["rules"]:
            expr = " ".join(rule["expr"].split())
            guarded = "(saas_quota_limit > 0)" in expr or re.search(
                r"provider_account_meter:saas_quota_used:\w+ > 0", expr
            )
            assert guarded, f"{rule['record']} can produce series for uncapped meters"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: f"{r.name}-{r.labels['severity']}")
def test_alert_has_the_mixin_labels_and_annotations(rule: AlertRule) -> None:
    assert re.fullmatch(r"SaasQuota[A-Z][A-Za-z]+", rule.name)
    assert rule.for_seconds > 0, "every alert needs a for: to skip blips"
    assert rule.labels["severity"] in RECEIVERS
    assert set(rule.annotations) == {"summary", "description", "runbook_url", "dashboard_url"}
    assert "{{" not in rule.annotations["summary"], "summary must be static"
    description = rule.annotations["description"]
    if rule.name in METER_ALERTS:
        needed = ["$labels.provider", "$labels.account", "$labels.meter"]
    elif rule.name in ACCOUNT_ALERTS:
        needed = ["$labels.provider", "$labels.account"]
    else:
        needed = ["$labels."]
    for label in needed:
        assert label in description, f"{rule.name}: description does not name {label}"
    if "$value" in description:
        assert re.search(r"\$value \| humanize", description), "humanise $value"
    assert rule.annotations["runbook_url"] == RUNBOOK_BASE + rule.name.lower()


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: f"{r.name}-{r.labels['severity']}")
def test_alert_dashboard_url_opens_a_bundled_dashboard(rule: AlertRule) -> None:
    grafana = documented_parameters()["grafana_url"]
    url = rule.annotations["dashboard_url"]
    match = re.fullmatch(re.escape(grafana) + r"/d/([\w-]+)(\?.*)?", url)
    assert match, url
    uids = {board["uid"] for board in dashboards().values()}
    assert match.group(1) in uids, (
        f"{url}: no dashboard with uid {match.group(1)} in {DASHBOARDS_DIR}"
    )
    board = next(b for b in dashboards().values() if b["uid"] == match.group(1))
    variables = {v["name"] for v in board["templating"]["list"]}
    for name in re.findall(r"var-(\w+)=", match.group(2) or ""):
        assert name in variables, f"{url}: {board['title']} has no variable {name}"


# --- thresholds in one place ----------------------------------------------------------


def _expr(name: str, severity: str | None = None) -> str:
    rules = [r for r in alert_rules() if r.name == name]
    if severity is not None:
        rules = [r for r in rules if r.labels["severity"] == severity]
    (rule,) = rules
    return " ".join(rule.expr.split())


def test_expressions_use_the_documented_thresholds() -> None:
    p = documented_parameters()
    assert set(p) == {
        "almost_exhausted_warning",
        "almost_exhausted_critical",
        "almost_exhausted_margin",
        "exhausted",
        "pace_margin",
        "forecast_horizon",
        "fast_forecast",
        "stale_after",
        "key_expiry_warning",
        "job",
        "grafana_url",
    }
    ratio = "provider_account_meter:saas_quota_used_per_limit:ratio"
    assert f"{ratio} >= {p['almost_exhausted_warning']} " in _expr(
        "SaasQuotaAlmostExhausted", "warning"
    )
    assert f"{ratio} >= {p['almost_exhausted_critical']} " in _expr(
        "SaasQuotaAlmostExhausted", "critical"
    )
    for severity in ("warning", "critical"):
        # The rest must run out within the reset (or horizon) times the margin, at the
        # 7-day rate, or at the 1h and 6h rates (young meters, or within fast_forecast).
        almost = _expr("SaasQuotaAlmostExhausted", severity)
        assert almost.count(f":effective * {p['almost_exhausted_margin']})") == 3, almost
        assert almost.count(f"< {p['fast_forecast']}") == 2, almost
    assert f"{ratio} >= {p['exhausted']} " in _expr("SaasQuotaExhausted")
    assert f"+ {p['pace_margin']})" in _expr("SaasQuotaBurningTooFast")
    assert _expr("SaasQuotaPredictedExhaustion").count(f"< {p['fast_forecast']}") == 2
    horizon = [
        r["expr"]
        for r in rule_groups(RULES_FILE)[0]["rules"]
        if r["record"].endswith(":saas_quota_forecast_horizon_seconds:effective")
    ]
    assert f"saas_quota_limit * 0 + {p['forecast_horizon']})" in " ".join(horizon[0].split())
    assert _expr("SaasQuotaDataStale").endswith(f"> {p['stale_after']}")
    assert _expr("SaasQuotaApiKeyExpiring").endswith(f"< {p['key_expiry_warning']}")
    assert f'up{{job="{p["job"]}"}}' in _expr("SaasQuotaExporterDown")
    assert f'up{{job="{p["job"]}"}}' in _expr("SaasQuotaExporterAbsent")
    assert float(p["forecast_horizon"]) == parse_duration("7d")
    assert float(p["fast_forecast"]) == parse_duration("2d")
    assert float(p["key_expiry_warning"]) == parse_duration("14d")
    assert float(p["stale_after"]) == parse_duration("30m")
    # No stray numbers: every number in a threshold position is a documented one.
    documented = {v for v in p.values()} | {"0", "1"}
    for rule in alert_rules():
        for number in re.findall(r"(?:>=|<=|>|<|\+) (\d+(?:\.\d+)?)", " ".join(rule.expr.split())):
            assert number in documented, f"{rule.name}: undocumented threshold {number}"


def test_alerting_doc_lists_the_same_thresholds() -> None:
    section = alerting_doc()
    rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]+)` \|", section, re.MULTILINE))
    assert rows == documented_parameters()


# --- runbooks -------------------------------------------------------------------------


def test_every_alert_has_a_runbook_in_the_runbooks_doc() -> None:
    runbooks = runbooks_doc()
    headings = re.findall(r"^## (.+)$", runbooks, re.MULTILINE)
    assert headings == alert_names(), "one ## section per alert, in the rules file's order"
    entries = re.split(r"^## .+$", runbooks, flags=re.MULTILINE)[1:]
    for heading, entry in zip(headings, entries, strict=True):
        anchor = github_anchor(heading)
        rules = [r for r in alert_rules() if r.name == heading]
        assert all(r.annotations["runbook_url"].endswith("#" + anchor) for r in rules)
        for part in ("What it means", "What to check", "What to do"):
            assert f"**{part}.**" in entry, f"{heading}: no '{part}' in its runbook"


# --- unit tests that pin each alert around its for: -------------------------------------


def _promtool_tests() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in PROMTOOL_TESTS:
        document = load_yaml(path)
        assert document["evaluation_interval"] == "1m", path
        for group in document["tests"]:
            groups.append(group)
    return groups


def test_every_alert_fires_in_a_unit_test_exactly_at_the_end_of_its_for() -> None:
    """Each alert: pending since T - for, silent at T - 1m, firing at T, in one test.

    ALERTS_FOR_STATE holds the time an alert became pending, so the expression test
    proves that silence one evaluation earlier is the `for:` at work, not a condition
    that was still false.
    """
    fors = defaultdict(set)
    for rule in alert_rules():
        fors[rule.name].add(rule.for_seconds)
    proven: set[str] = set()
    for group in _promtool_tests():
        name = group["name"]
        alert = name.split(":", 1)[0]
        if alert not in fors:
            continue
        fired = {
            parse_duration(t["eval_time"]): t
            for t in group.get("alert_rule_test", [])
            if t["alertname"] == alert and t["exp_alerts"]
        }
        silent = {
            parse_duration(t["eval_time"])
            for t in group.get("alert_rule_test", [])
            if t["alertname"] == alert and not t["exp_alerts"]
        }
        active_since = {
            parse_duration(t["eval_time"]): float(t["exp_samples"][0]["value"])
            for t in group.get("promql_expr_test", [])
            if t["expr"] == f'min(ALERTS_FOR_STATE{{alertname="{alert}"}})'
        }
        for at, test in fired.items():
            (for_seconds,) = fors[alert]
            if at - 60 in silent and active_since.get(at - 60) == at - for_seconds:
                proven.add(alert)
                for expected in test["exp_alerts"]:
                    assert set(expected["exp_annotations"]) == {
                        "summary",
                        "description",
                        "runbook_url",
                        "dashboard_url",
                    }, name
                    assert "severity" in expected["exp_labels"], name
    assert proven == set(fors), f"not pinned around their for: {set(fors) - proven}"


@pytest.mark.parametrize(
    ("phrase", "alerts"),
    [
        ("silent for unlimited meters", METER_ALERTS),
        ("silent for limit-0 meters", METER_ALERTS),
        ("silent for meters whose thresholds say they run out by design", METER_ALERTS),
        ("silent when the exporter is up but has no quota data", set(alert_names())),
    ],
)
def test_silence_cases_cover_every_relevant_alert(phrase: str, alerts: set[str]) -> None:
    (group,) = [g for g in _promtool_tests() if phrase in g["name"]]
    checked = {t["alertname"] for t in group["alert_rule_test"]}
    assert alerts <= checked, alerts - checked
    for test in group["alert_rule_test"]:
        for expected in test["exp_alerts"]:
            # Only the paid twin of the free-tier account may fire.
            assert expected["exp_labels"].get("account") == "audits-paid", (phrase, test)
