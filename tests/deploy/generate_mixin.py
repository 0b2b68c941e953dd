"""Generate the Prometheus rule files and Grafana dashboards from the jsonnet mixin.

    .venv/bin/python -m tests.deploy.generate_mixin          # rewrite them (make mixin)
    .venv/bin/python -m tests.deploy.generate_mixin --check  # exit 1 if one is stale

deploy/mixin/ (jsonnet, evaluated with the `jsonnet` wheel) is the one source:

- deploy/prometheus/saas-quota.rules.yml: its prometheusRules;
- deploy/prometheus/saas-quota.alerts.yml: its prometheusAlerts, under a header whose
  parameter block lists the _config defaults (tests/e2e/deploy/test_rules.py reads it);
- grafana/dashboards/*.json: its grafanaDashboards.

Then tests.packaging.generate_kubernetes turns those into the PrometheusRule, the
dashboard ConfigMaps and the Helm chart's copies. tests/e2e/deploy/test_mixin.py fails when
any of them is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Final

import _jsonnet
import yaml

from tests.packaging import generate_kubernetes

REPO: Final = Path(__file__).resolve().parents[2]
MIXIN_DIR: Final = REPO / "deploy" / "mixin"
MIXIN: Final = MIXIN_DIR / "mixin.libsonnet"
RULES_FILE: Final = REPO / "deploy" / "prometheus" / "saas-quota.rules.yml"
ALERTS_FILE: Final = REPO / "deploy" / "prometheus" / "saas-quota.alerts.yml"
DASHBOARDS_DIR: Final = REPO / "grafana" / "dashboards"

# Rule keys in the order Prometheus' docs write them, not jsonnet's alphabetical one.
_RULE_KEYS: Final = ("record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations")


def evaluate(config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The mixin's _config, prometheusRules, prometheusAlerts and grafanaDashboards.

    `config` overrides _config fields, as a user's `_config+::` would.
    """
    overrides = json.dumps(config or {})
    snippet = (
        f"local m = (import {json.dumps(MIXIN.name)}) + {{ _config+:: {overrides} }};\n"
        "{ config: m._config, rules: m.prometheusRules, alerts: m.prometheusAlerts,"
        " dashboards: m.grafanaDashboards }"
    )
    result: dict[str, Any] = json.loads(
        _jsonnet.evaluate_snippet(str(MIXIN_DIR / "generate"), snippet, jpathdir=[str(MIXIN_DIR)])
    )
    return result


def _ordered(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for group in groups:
        rules = []
        for rule in group["rules"]:
            unknown = set(rule) - set(_RULE_KEYS)
            if unknown:
                raise ValueError(f"rule {rule.get('alert') or rule.get('record')}: keys {unknown}")
            rules.append({key: rule[key] for key in _RULE_KEYS if key in rule})
        out.append({"name": group["name"], **{k: v for k, v in group.items() if k != "name"}})
        out[-1]["rules"] = rules
    return out


def _yaml(groups: list[dict[str, Any]]) -> str:
    return yaml.dump(
        {"groups": _ordered(groups)},
        Dumper=generate_kubernetes._Dumper,
        sort_keys=False,
        default_flow_style=False,
        width=2**16,
    )


def _num(value: Any) -> str:
    return format(value, ".15g") if isinstance(value, int | float) else str(value)


def parameters(config: dict[str, Any]) -> dict[str, str]:
    """The parameter block of the alerts file's header: name -> value as in the rules."""
    return {
        "almost_exhausted_warning": _num(config["almostExhaustedWarning"]),
        "almost_exhausted_critical": _num(config["almostExhaustedCritical"]),
        "almost_exhausted_margin": _num(config["almostExhaustedBurnMargin"]),
        "exhausted": _num(config["exhausted"]),
        "pace_margin": _num(config["paceMargin"]),
        "forecast_horizon": _num(config["forecastHorizonSeconds"]),
        "fast_forecast": _num(config["fastForecastSeconds"]),
        "stale_after": _num(config["staleAfterSeconds"]),
        "key_expiry_warning": _num(config["keyExpiryWarningSeconds"]),
        "job": str(config["job"]),
        "grafana_url": str(config["dashboardBaseURL"]),
    }


_MEANINGS: Final = {
    "almost_exhausted_warning": "used/limit ratio: SaasQuotaAlmostExhausted, severity warning",
    "almost_exhausted_critical": "used/limit ratio: SaasQuotaAlmostExhausted, severity critical",
    "almost_exhausted_margin": (
        "burn rate factor: SaasQuotaAlmostExhausted only if the rest ends before reset/horizon"
    ),
    "exhausted": "used/limit ratio (or remaining 0): SaasQuotaExhausted",
    "pace_margin": "used share ahead of the elapsed share of the period: SaasQuotaBurningTooFast",
    "forecast_horizon": "seconds: forecast horizon of meters without a reset (recording rules)",
    "fast_forecast": "seconds: SaasQuotaPredictedExhaustion at once if 1h/6h rates run out sooner",
    "stale_after": "seconds since the last successful poll: SaasQuotaDataStale",
    "key_expiry_warning": "seconds before the API key expires: SaasQuotaApiKeyExpiring",
    "job": "the scrape job of the exporter: SaasQuotaExporterDown, SaasQuotaExporterAbsent",
    "grafana_url": "base of every dashboard_url annotation",
}

_GENERATED: Final = (
    "# GENERATED from deploy/mixin/ by `make mixin` (python -m tests.deploy.generate_mixin):\n"
    "# edit the mixin, not this file.\n"
)

RULES_HEADER: Final = (
    "# Recording rules for saas-quota-exporter.\n" + _GENERATED + "#\n"
    "# Names follow `level:metric:operations`; every output keeps job, instance, provider,\n"
    "# account and meter, and only meters with a positive cap produce one. The comments in\n"
    "# deploy/mixin/rules.libsonnet say why each rule is written the way it is.\n\n"
)


def alerts_header(config: dict[str, Any]) -> str:
    params = parameters(config)
    width = max(len(f"{k} = {v}") for k, v in params.items()) + 3
    lines = [
        f"#   {f'{name} = {value}'.ljust(width)}{_MEANINGS[name]}\n"
        for name, value in params.items()
    ]
    block = "".join(lines)
    return (
        "# Alert rules for saas-quota-exporter. Load together with saas-quota.rules.yml: the\n"
        "# quota alerts read its recorded ratios, burn rates and forecasts.\n" + _GENERATED + "#\n"
        "# Default thresholds and parameters (the mixin's _config; tests/e2e/deploy/test_rules.py\n"
        "# checks that the expressions use exactly these and docs/alerting.md lists them):\n"
        "#\n" + block + "#\n"
        "# Per-meter settings win over the defaults where the exporter exports them:\n"
        '#   saas_quota_alert_threshold_ratio{severity="warning"|"critical"}   used share for\n'
        "#     SaasQuotaAlmostExhausted; a critical threshold above 1 also silences\n"
        "#     SaasQuotaExhausted (the meter may run out by design).\n"
        "#   saas_quota_alert_forecast_horizon_seconds   horizon of meters without a reset;\n"
        "#     0 switches SaasQuotaPredictedExhaustion and SaasQuotaBurningTooFast off and\n"
        "#     makes SaasQuotaAlmostExhausted a plain level alert (the used share alone).\n"
        "# No expression names a vendor.\n"
        "#\n"
        "# Every alert carries `severity` (critical pages, warning tickets), a static `summary`,\n"
        "# a templated `description`, a `runbook_url` (its section of docs/runbooks.md)\n"
        "# and a `dashboard_url`.\n\n"
    )


def outputs(config: dict[str, Any] | None = None) -> dict[Path, str]:
    mixin = evaluate(config)
    files = {
        RULES_FILE: RULES_HEADER + _yaml(mixin["rules"]["groups"]),
        ALERTS_FILE: alerts_header(mixin["config"]) + _yaml(mixin["alerts"]["groups"]),
    }
    for name, board in mixin["dashboards"].items():
        files[DASHBOARDS_DIR / name] = json.dumps(board, indent=2, ensure_ascii=False) + "\n"
    return files


def stale_dashboards(wanted: dict[Path, str]) -> list[Path]:
    present = sorted(DASHBOARDS_DIR.glob("*.json")) if DASHBOARDS_DIR.is_dir() else []
    return [p for p in present if p not in wanted]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.deploy.generate_mixin",
        description="Regenerate deploy/prometheus/*.yml, grafana/dashboards/*.json and the"
        " Kubernetes and Helm copies from the jsonnet mixin in deploy/mixin/.",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is stale")
    args = parser.parse_args(argv)
    wanted = outputs()
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    orphans = stale_dashboards(wanted)
    for path in stale:
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(wanted[path])
        print(f"{'stale' if args.check else 'wrote'}: {path.relative_to(REPO)}", file=sys.stderr)
    for path in orphans:
        if not args.check:
            path.unlink()
        print(f"{'stale (no source)' if args.check else 'removed'}: {path}", file=sys.stderr)
    copies = generate_kubernetes.main(["--check"] if args.check else [])
    return 1 if args.check and (stale or orphans or copies) else 0


if __name__ == "__main__":
    raise SystemExit(main())
