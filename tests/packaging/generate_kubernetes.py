"""Generate the Kubernetes manifests (and Helm chart files) that copy other files.

    .venv/bin/python -m tests.packaging.generate_kubernetes          # rewrite them
    .venv/bin/python -m tests.packaging.generate_kubernetes --check  # exit 1 if stale

- deploy/kubernetes/base/prometheusrule.yaml: one PrometheusRule whose spec.groups are the
  groups of every rule file in deploy/prometheus/ (each top-level *.yml with a
  `groups:` key), in file-name order, unchanged.
- deploy/kubernetes/base/grafana-dashboards.yaml: one ConfigMap per grafana/dashboards/*.json,
  labelled for Grafana's dashboard sidecar, holding the file's text verbatim.

- deploy/helm/saas-quota-exporter/files/rules/ and files/dashboards/: byte-for-byte
  copies of the same rule files and dashboards, which the chart's templates turn into
  its PrometheusRule and dashboard ConfigMaps (`.Files.Glob`); a file in those folders
  that has no source any more is stale too, and removed.

Kustomize cannot do either itself: a PrometheusRule is not a ConfigMap, and a
kustomization may not read files outside its own directory. Helm can build both, but
only from files inside the chart, and `helm package` does not follow a symlink out of
it, hence plain copies.
tests/e2e/packaging/test_kubernetes.py and test_helm.py fail when the committed files are
stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Final

import yaml

REPO: Final = Path(__file__).resolve().parents[2]
RULES_DIR: Final = REPO / "deploy" / "prometheus"
DASHBOARDS_DIR: Final = REPO / "grafana" / "dashboards"
KUBERNETES_DIR: Final = REPO / "deploy" / "kubernetes" / "base"
PROMETHEUS_RULE: Final = KUBERNETES_DIR / "prometheusrule.yaml"
DASHBOARD_CONFIGMAPS: Final = KUBERNETES_DIR / "grafana-dashboards.yaml"
HELM_CHART: Final = REPO / "deploy" / "helm" / "saas-quota-exporter"
HELM_RULES_DIR: Final = HELM_CHART / "files" / "rules"
HELM_DASHBOARDS_DIR: Final = HELM_CHART / "files" / "dashboards"

NAME: Final = "saas-quota-exporter"
# The label (and value) Grafana's sidecar watches for by default (kube-prometheus-stack:
# grafana.sidecar.dashboards.label / labelValue).
DASHBOARD_LABEL: Final = ("grafana_dashboard", "1")
DASHBOARD_FOLDER: Final = "SaaS quotas"
COMMON_LABELS: Final = {"app.kubernetes.io/name": NAME}


class _Dumper(yaml.SafeDumper):
    """Block style, literal `|` for multi-line strings, no anchors, keys in order."""

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # lists indented under their key


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _dump(documents: list[dict[str, Any]], header: str) -> str:
    body = yaml.dump_all(
        documents, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=2**16
    )
    return header + body


def rule_files() -> list[Path]:
    files = []
    for path in sorted(RULES_DIR.glob("*.yml")) + sorted(RULES_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        if isinstance(data, dict) and "groups" in data:
            files.append(path)
    return sorted(files, key=lambda p: p.name)


def rule_groups() -> list[Any]:
    groups: list[Any] = []
    for path in rule_files():
        groups.extend(yaml.safe_load(path.read_text())["groups"])
    return groups


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def render_prometheus_rule() -> str:
    sources = ", ".join(str(p.relative_to(REPO)) for p in rule_files())
    document = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": NAME, "labels": dict(COMMON_LABELS)},
        "spec": {"groups": rule_groups()},
    }
    header = (
        f"# Generated from {sources} by\n"
        "# `python -m tests.packaging.generate_kubernetes`: edit those, not this.\n"
        "# kube-prometheus-stack only loads PrometheusRules labelled with its release name\n"
        "# unless ruleSelectorNilUsesHelmValues=false: add that label in an overlay.\n"
    )
    return _dump([document], header)


def configmap_name(path: Path) -> str:
    return f"{NAME}-dashboard-{path.stem}".lower().replace("_", "-")


def render_dashboards() -> str:
    label, value = DASHBOARD_LABEL
    documents = []
    for path in dashboard_files():
        documents.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": configmap_name(path),
                    "labels": {**COMMON_LABELS, label: value},
                    # Honoured when the sidecar's folderAnnotation is grafana_folder.
                    "annotations": {"grafana_folder": DASHBOARD_FOLDER},
                },
                "data": {path.name: path.read_text()},
            }
        )
    sources = str(DASHBOARDS_DIR.relative_to(REPO)) + "/*.json"
    header = (
        f"# Generated from {sources} by\n"
        "# `python -m tests.packaging.generate_kubernetes`: edit those, not this.\n"
        f"# Grafana's dashboard sidecar loads every ConfigMap labelled {label}={value}.\n"
    )
    return _dump(documents, header)


def helm_copies() -> dict[Path, str]:
    """The chart's copies of the rule files and dashboards: the same names and text."""
    copies = {HELM_RULES_DIR / path.name: path.read_text() for path in rule_files()}
    copies.update({HELM_DASHBOARDS_DIR / p.name: p.read_text() for p in dashboard_files()})
    return copies


def stale_helm_copies() -> list[Path]:
    """Files in the chart's copy folders that no source file produces any more."""
    wanted = helm_copies()
    present = [p for d in (HELM_RULES_DIR, HELM_DASHBOARDS_DIR) if d.is_dir() for p in d.iterdir()]
    return sorted(p for p in present if p not in wanted)


def outputs() -> dict[Path, str]:
    return {
        PROMETHEUS_RULE: render_prometheus_rule(),
        DASHBOARD_CONFIGMAPS: render_dashboards(),
        **helm_copies(),
    }


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO) if path.is_relative_to(REPO) else path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.packaging.generate_kubernetes",
        description="Regenerate the generated manifests in deploy/kubernetes/base and the"
        " copies in deploy/helm/saas-quota-exporter/files.",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for path in stale:
        verb = "stale" if args.check else "wrote"
        print(f"{verb}: {_shown(path)}", file=sys.stderr)
    orphans = stale_helm_copies()
    for path in orphans:
        if not args.check:
            path.unlink()
        verb = "stale (no source)" if args.check else "removed"
        print(f"{verb}: {_shown(path)}", file=sys.stderr)
    return 1 if args.check and (stale or orphans) else 0


if __name__ == "__main__":
    raise SystemExit(main())
