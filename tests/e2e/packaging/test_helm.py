"""deploy/helm/saas-quota-exporter: rendered and linted by Helm, validated offline.

- Helm is helm-python-sdk (the [test] extra): Helm's own v4 Go SDK in a native library.
  `Chart.render` is `helm template` (values merged with values.yaml and checked
  against values.schema.json first), `lint(strict=True)` is `helm lint --strict`.
- Every rendered object, with the default values and with every toggle on, is
  validated exactly as tests/e2e/packaging/test_kubernetes.py validates the kustomize
  base: kubernetes-validate's strict schemas for core kinds, cloudcoil's Prometheus
  Operator models for ServiceMonitor and PrometheusRule.
- The PrometheusRule and the dashboard ConfigMaps are proven to hold deploy/prometheus/
  and grafana/dashboards/ (the chart reads its generated copies in files/), the pod is
  proven to run exactly as the kustomize base's does, and the values schema is proven
  to reject bad values and to agree with the exporter's own config rules.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import re
import subprocess
import textwrap
from functools import cache
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

import exporter
from exporter import config as exporter_config
from exporter.durations import parse_duration
from exporter.log import FORMATS, LEVELS
from exporter.providers import PROVIDERS
from tests.e2e.packaging import test_kubernetes as kustomize
from tests.e2e.packaging.test_kubernetes import (
    CORE_KINDS,
    OPERATOR_KINDS,
    validate_core,
    validate_operator,
)
from tests.packaging import generate_kubernetes as gen
from tests.support.processes import exporter_command, require_binary

CHART: Final = gen.HELM_CHART
RELEASE: Final = "saas-quota-exporter"
NAMESPACE: Final = "monitoring"
KEY_DIR: Final = "/run/secrets/saas-quota-exporter"
SCHEMA: Final = json.loads((CHART / "values.schema.json").read_text())
DEFAULTS: Final = yaml.safe_load((CHART / "values.yaml").read_text())

Doc = dict[str, Any]
Values = dict[str, Any]

ACCOUNT_KEYS: Final = {
    Path(a["api_key_file"]).name: f"test-key-{Path(a['api_key_file']).name}"
    for a in DEFAULTS["config"]["accounts"]
}
# Every toggle on, and every optional block filled in, so each template branch renders.
ALL_ON: Final[Values] = {
    "image": {"registry": "registry.example.com", "tag": "9.9.9"},
    "imagePullSecrets": [{"name": "pull"}],
    "apiKeys": {"create": True, "keys": ACCOUNT_KEYS},
    "extraArgs": ["--web.config.file=/etc/web/web.yml"],
    "serviceAccount": {"annotations": {"example.com/role": "quota"}},
    "podAnnotations": {"example.com/team": "platform"},
    "podLabels": {"team": "platform"},
    "priorityClassName": "low",
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 1,
                    "preference": {
                        "matchExpressions": [
                            {"key": "pool", "operator": "In", "values": ["monitoring"]}
                        ]
                    },
                }
            ]
        }
    },
    "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}
    ],
    "extraVolumes": [{"name": "web", "secret": {"secretName": "web-config"}}],
    "extraVolumeMounts": [{"name": "web", "mountPath": "/etc/web", "readOnly": True}],
    "service": {"annotations": {"example.com/scrape": "false"}, "labels": {"tier": "ops"}},
    "serviceMonitor": {
        "enabled": True,
        "additionalLabels": {"release": "kube-prometheus-stack"},
        "relabelings": [{"action": "replace", "targetLabel": "cluster", "replacement": "c1"}],
        "metricRelabelings": [{"action": "drop", "sourceLabels": ["__name__"], "regex": "x"}],
    },
    "prometheusRule": {
        "enabled": True,
        "additionalLabels": {"release": "kube-prometheus-stack"},
    },
    "dashboards": {"enabled": True, "namespace": "grafana"},
}
VALUE_SETS: Final = {"default": {}, "all-on": ALL_ON}


# --- Helm ----------------------------------------------------------------------------


def merged(defaults: Values, values: Values) -> Values:
    """Helm's merge of user values over values.yaml: maps merge, anything else replaces."""
    out = dict(defaults)
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def helm() -> Any:
    """helm_python, else skip (fail under REQUIRE_E2E), as tests.e2e.require_binary."""
    try:
        return importlib.import_module("helm_python")
    except ImportError:
        message = "helm-python-sdk is not installed (pip install -e '.[test]')"
        if os.environ.get("REQUIRE_E2E"):
            pytest.fail(f"REQUIRE_E2E is set but {message}")
        pytest.skip(message)


def template(values: Values, release: str = RELEASE) -> dict[str, str]:
    """`helm template RELEASE CHART -n NAMESPACE -f values`: template path -> text."""
    sdk = helm()
    with sdk.Chart.load(str(CHART)) as chart:
        manifests: dict[str, str] = chart.render(
            values, name=release, namespace=NAMESPACE, is_install=True
        )
    return manifests


@cache
def _rendered(values_json: str, release: str) -> tuple[Doc, ...]:
    docs: list[Doc] = []
    for path, text in sorted(template(json.loads(values_json), release).items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return tuple(docs)


def rendered(values: Values | None = None, release: str = RELEASE) -> tuple[Doc, ...]:
    return _rendered(json.dumps(values or {}, sort_keys=True), release)


def notes(values: Values | None = None) -> str:
    [text] = [t for p, t in template(values or {}).items() if p.endswith("NOTES.txt")]
    return text


def lint(values: Values | None = None) -> dict[str, Any]:
    """`helm lint --strict`: its report (messages with severity, errors)."""
    report: dict[str, Any] = helm().lint(str(CHART), values or {}, strict=True, namespace=NAMESPACE)
    return report


def render_error(values: Values) -> str:
    """The message `helm template` fails with for `values` (the test fails if it renders)."""
    sdk = helm()
    with pytest.raises(sdk.HelmError) as info:
        template(values)
    return str(info.value)


def of_kind(kind: str, values: Values | None = None) -> list[Doc]:
    return [doc for doc in rendered(values) if doc["kind"] == kind]


def one(kind: str, values: Values | None = None) -> Doc:
    found = of_kind(kind, values)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def pod_spec(values: Values | None = None) -> Doc:
    spec: Doc = one("Deployment", values)["spec"]["template"]["spec"]
    return spec


def container(values: Values | None = None) -> Doc:
    [only] = pod_spec(values)["containers"]
    assert isinstance(only, dict)
    return only


def dashboard_configmaps(values: Values) -> dict[str, Doc]:
    label = merged(DEFAULTS, values)["dashboards"]["label"]
    return {
        doc["metadata"]["name"]: doc
        for doc in of_kind("ConfigMap", values)
        if label in doc["metadata"].get("labels", {})
    }


# --- lint and schemas ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_lint_strict_is_clean(name: str) -> None:
    report = lint(VALUE_SETS[name])
    assert report["errors"] == []
    # Severity 1 is INFO ("icon is recommended"): strict fails on warnings (2) and up.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
    assert report["total_charts_linted"] == 1


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_rendered_object_fits_the_schemas(name: str) -> None:
    docs = rendered(VALUE_SETS[name])
    kinds = {doc["kind"] for doc in docs}
    assert kinds <= CORE_KINDS | OPERATOR_KINDS | {"ServiceAccount"}
    for doc in docs:
        if doc["kind"] in OPERATOR_KINDS:
            validate_operator(doc)
        else:
            assert validate_core(doc) == []


def test_default_values_render_the_exporter_only() -> None:
    """Off by default: objects that need the Prometheus Operator's CRDs, and any Secret."""
    kinds = sorted(doc["kind"] for doc in rendered())
    assert kinds == ["ConfigMap", "Deployment", "Service", "ServiceAccount"]


def test_packaged_chart_renders_the_same(tmp_path: Path) -> None:
    """`helm package` keeps files/ (.helmignore drops nothing the templates read)."""
    sdk = helm()
    archive = sdk.package(str(CHART), destination=str(tmp_path))
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
    assert Path(archive).name == f"saas-quota-exporter-{version}.tgz"
    with sdk.Chart.load(archive) as chart:
        packaged = chart.render(ALL_ON, name=RELEASE, namespace=NAMESPACE, is_install=True)
    assert packaged == template(ALL_ON)


def test_every_toggle_renders_its_objects() -> None:
    kinds = [doc["kind"] for doc in rendered(ALL_ON)]
    assert kinds.count("ServiceMonitor") == kinds.count("PrometheusRule") == 1
    assert kinds.count("Secret") == 1
    assert len(dashboard_configmaps(ALL_ON)) == len(gen.dashboard_files())


def test_the_validators_see_the_rendered_fields() -> None:
    """Control: a slip in a rendered object fails the same validators."""
    deployment = json.loads(json.dumps(one("Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUsr"] = 1
    assert any("runAsUsr" in e for e in validate_core(deployment))
    pydantic = importlib.import_module("pydantic")
    monitor = json.loads(json.dumps(one("ServiceMonitor", ALL_ON)))
    monitor["spec"]["endpoints"][0]["scrapeTimeout"] = "ten seconds"
    with pytest.raises(pydantic.ValidationError):
        validate_operator(monitor)


# --- values.schema.json ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"service": {"port": "metrics"}}, "/service/port"),
        ({"serviceMonitr": {"enabled": True}}, "serviceMonitr"),
        ({"serviceMonitor": {"interval": "1 minute"}}, "/serviceMonitor/interval"),
        ({"log": {"level": "verbose"}}, "/log/level"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"dashboards": {"labelValue": 1}}, "/dashboards/labelValue"),
        ({"config": {"global": {"interval": "300"}}}, "/config/global/interval"),
        (
            {
                "config": {
                    "accounts": [{"provider": "pictori", "account": "a", "api_key_file": "/"}]
                }
            },
            "/config/accounts/0/provider",
        ),
        (
            {"config": {"accounts": [{"provider": "pictory", "account": "a", "api_key": "sk"}]}},
            "api_key",
        ),
        ({"config": {"accounts": []}}, "/config/accounts"),
        ({"apiKeys": {"keys": {"pictory": "sk"}}}, "/apiKeys/keys"),
        ({"apiKeys": {"create": True}}, "/apiKeys/keys"),
        (
            {"apiKeys": {"create": True, "existingSecret": "mine", "keys": {"pictory": "sk"}}},
            "/apiKeys/existingSecret",
        ),
        ({"apiKeys": {"existingSecret": "Keys_1"}}, "/apiKeys/existingSecret"),
    ],
)
def test_values_schema_rejects_bad_values(values: Values, where: str) -> None:
    """`helm template` and `helm lint --strict` both fail, naming the bad value."""
    assert where in render_error(values)
    report = lint(values)
    assert any(where in e for e in report["errors"]), report


def test_inline_api_key_is_refused_with_the_reason() -> None:
    """The config lands in a ConfigMap: the schema says why api_key is not allowed."""
    account = SCHEMA["properties"]["config"]["properties"]["accounts"]["items"]
    assert "api_key" not in account["properties"]
    assert "never api_key" in account["description"]


def test_values_yaml_passes_its_schema() -> None:
    jsonschema = importlib.import_module("jsonschema")
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.Draft7Validator(SCHEMA).validate(DEFAULTS)
    jsonschema.Draft7Validator(SCHEMA).validate(merged(DEFAULTS, ALL_ON))


def test_schema_agrees_with_the_exporters_config_rules() -> None:
    """The schema's names are the exporter's: a new provider or key updates both."""
    config = SCHEMA["properties"]["config"]["properties"]
    account = config["accounts"]["items"]["properties"]
    assert sorted(account["provider"]["enum"]) == sorted(PROVIDERS)
    assert set(account) == set(exporter_config._ACCOUNT_KEYS) - {"api_key"}
    assert set(config["global"]["properties"]) == set(exporter_config._GLOBAL_KEYS)
    assert set(config) == set(exporter_config._TOP_KEYS)
    assert account["account"]["pattern"] == exporter_config._ACCOUNT_NAME.pattern
    log = SCHEMA["properties"]["log"]["properties"]
    assert log["level"]["enum"] == list(LEVELS)
    assert log["format"]["enum"] == list(FORMATS)


@pytest.mark.parametrize(
    "text",
    ["0", "5m", "10s", "250ms", "1h30m", "1y2w3d4h5m6s7ms", "5ms", "", "5", "m", "1.5m",
     "5m1h", "5m5m", "1 m", "0s", "00m", "5M", "1h0m", "٣s", "5mss"],
)  # fmt: skip
def test_duration_pattern_is_the_exporters_grammar(text: str) -> None:
    """values.schema.json accepts a duration exactly when the exporter's parser does."""
    definition = SCHEMA["definitions"]["duration"]
    by_schema = len(text) >= definition["minLength"] and bool(
        re.search(definition["pattern"], text, re.ASCII)
    )
    try:
        parse_duration(text)
        by_exporter = True
    except ValueError:
        by_exporter = False
    assert by_schema == by_exporter


# --- copies of other files ---------------------------------------------------------------


def test_chart_copies_are_the_source_files() -> None:
    copies = gen.helm_copies()
    assert {p.parent for p in copies} == {gen.HELM_RULES_DIR, gen.HELM_DASHBOARDS_DIR}
    for path, text in copies.items():
        assert path.read_text() == text, (
            f"{path.relative_to(gen.REPO)} is stale: run "
            "`.venv/bin/python -m tests.packaging.generate_kubernetes` and commit it"
        )
    assert gen.stale_helm_copies() == [], "copies whose source is gone: rerun the generator"
    files = {p for p in (CHART / "files").rglob("*") if p.is_file()}
    assert files == set(copies)


def test_generator_writes_and_prunes_the_chart_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--check fails on a missing, changed or orphaned copy; a run repairs all three."""
    for name in ("PROMETHEUS_RULE", "DASHBOARD_CONFIGMAPS"):
        monkeypatch.setattr(gen, name, tmp_path / "kustomize" / Path(getattr(gen, name)).name)
    (tmp_path / "kustomize").mkdir()
    monkeypatch.setattr(gen, "HELM_RULES_DIR", tmp_path / "files" / "rules")
    monkeypatch.setattr(gen, "HELM_DASHBOARDS_DIR", tmp_path / "files" / "dashboards")
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0
    rules = sorted((tmp_path / "files" / "rules").iterdir())
    assert [p.name for p in rules] == [p.name for p in gen.rule_files()]

    rules[0].write_text("groups: []\n")
    orphan = tmp_path / "files" / "dashboards" / "removed-dashboard.json"
    orphan.write_text("{}")
    assert gen.main(["--check"]) == 1
    assert orphan.exists()
    assert gen.main([]) == 0
    assert not orphan.exists()
    assert rules[0].read_text() == gen.rule_files()[0].read_text()
    assert gen.main(["--check"]) == 0


def test_prometheus_rule_groups_are_the_rule_files() -> None:
    groups = []
    for path in gen.rule_files():  # deploy/prometheus/, not the chart's copy
        groups.extend(yaml.safe_load(path.read_text())["groups"])
    assert groups
    assert one("PrometheusRule", ALL_ON)["spec"]["groups"] == groups
    assert one("PrometheusRule", ALL_ON)["spec"] == kustomize.one("PrometheusRule")["spec"]


def test_prometheus_rule_groups_pass_promtool(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": one("PrometheusRule", ALL_ON)["spec"]["groups"]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "dashboards",
    [
        {"enabled": True},
        {"enabled": True, "label": "my_dashboards", "labelValue": "yes", "namespace": "grafana"},
    ],
)
def test_dashboard_configmaps_hold_exactly_the_dashboards(dashboards: Values) -> None:
    values = {"dashboards": dashboards}
    settings = merged(DEFAULTS["dashboards"], dashboards)
    configmaps = dashboard_configmaps(values)
    sources = gen.dashboard_files()
    assert sources
    assert set(configmaps) == {gen.configmap_name(p) for p in sources}
    for path in sources:
        configmap = configmaps[gen.configmap_name(path)]
        metadata = configmap["metadata"]
        assert metadata["labels"][settings["label"]] == settings["labelValue"]
        assert metadata["annotations"] == {"grafana_folder": "SaaS quotas"}
        assert metadata["namespace"] == (settings["namespace"] or NAMESPACE)
        assert configmap["data"] == {path.name: path.read_text()}
        # `kubectl apply` (client side) keeps a copy in an annotation capped at 256 KiB.
        assert len(json.dumps(configmap).encode()) < 256 * 1024


# --- keys ------------------------------------------------------------------------------


def test_no_secret_and_no_key_by_default() -> None:
    """The keys come from a Secret the user creates; nothing in the release holds one."""
    assert of_kind("Secret") == []
    text = "\n".join(template({}).values())
    assert "api_key:" not in text
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    assert volumes["api-keys"]["secret"] == {
        "secretName": "saas-quota-exporter-keys",
        "defaultMode": 0o440,
    }
    annotations = one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/api-keys" not in annotations


def test_existing_secret_is_the_one_mounted() -> None:
    values = {"apiKeys": {"existingSecret": "quota-keys"}}
    volumes = {v["name"]: v for v in pod_spec(values)["volumes"]}
    assert volumes["api-keys"]["secret"]["secretName"] == "quota-keys"
    assert of_kind("Secret", values) == []
    assert "secret generic quota-keys" in notes(values)


def test_opt_in_secret_holds_the_keys_and_is_mounted() -> None:
    secret = one("Secret", ALL_ON)
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == ACCOUNT_KEYS
    volumes = {v["name"]: v for v in pod_spec(ALL_ON)["volumes"]}
    assert volumes["api-keys"]["secret"]["secretName"] == secret["metadata"]["name"]
    annotations = one("Deployment", ALL_ON)["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/api-keys" in annotations
    assert "stored in the Helm release" in notes(ALL_ON)


def test_release_name_names_every_object() -> None:
    docs = rendered({}, release="quota")
    assert {d["metadata"]["name"] for d in docs} == {
        "quota-saas-quota-exporter",
        "quota-saas-quota-exporter-config",
    }
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["api-keys"]["secret"]["secretName"] == "quota-saas-quota-exporter-keys"


# --- the pod runs as the kustomize base's does --------------------------------------------


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_pod_runs_as_the_kustomize_base_does(name: str) -> None:
    values = VALUE_SETS[name]
    base_pod = kustomize.one("Deployment")["spec"]["template"]["spec"]
    base = kustomize.deployment_container()
    pod, chart = pod_spec(values), container(values)
    assert pod["securityContext"] == base_pod["securityContext"]
    assert chart["securityContext"] == base["securityContext"]
    assert chart["resources"] == base["resources"]
    assert chart["resources"]["limits"]["memory"] == "128Mi"
    for key in ("automountServiceAccountToken", "enableServiceLinks"):
        assert pod[key] == base_pod[key]
    for key in ("livenessProbe", "readinessProbe", "ports"):
        assert chart[key] == base[key]
    assert [a for a in chart["args"] if not a.startswith("--log.level")][:3] == base["args"]
    base_mounts = {m["name"]: m for m in base["volumeMounts"]}
    mounts = {m["name"]: m for m in chart["volumeMounts"]}
    assert {k: mounts[k] for k in base_mounts} == base_mounts
    base_modes = {v["name"]: v.get("secret", {}).get("defaultMode") for v in base_pod["volumes"]}
    modes = {v["name"]: v.get("secret", {}).get("defaultMode") for v in pod["volumes"]}
    assert {k: modes[k] for k in base_modes} == base_modes
    spec, base_spec = one("Deployment", values)["spec"], kustomize.one("Deployment")["spec"]
    for key in ("replicas", "strategy", "revisionHistoryLimit"):
        assert spec[key] == base_spec[key]
    assert one("ServiceAccount", values)["automountServiceAccountToken"] is False


def test_probes_hit_health_and_readiness() -> None:
    probes = container()
    assert probes["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "metrics"}
    assert probes["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "metrics"}


# --- config and wiring ------------------------------------------------------------------


def config_text(values: Values | None = None) -> str:
    [(file_name, text)] = one("ConfigMap", values)["data"].items()
    assert file_name == "config.yml"
    assert isinstance(text, str)
    return text


def test_default_config_is_the_kustomize_bases() -> None:
    base = yaml.safe_load((kustomize.BASE / "config.yml").read_text())
    assert yaml.safe_load(config_text()) == base == DEFAULTS["config"]


def test_config_and_keys_are_mounted_where_the_config_says() -> None:
    pod = pod_spec()
    mounts = {m["name"]: m["mountPath"] for m in container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == one("ConfigMap")["metadata"]["name"]
    assert f"--config.file={mounts['config']}/config.yml" in container()["args"]
    assert mounts["api-keys"] == KEY_DIR
    key_files = {a["api_key_file"] for a in yaml.safe_load(config_text())["accounts"]}
    assert key_files == {f"{KEY_DIR}/{key}" for key in ACCOUNT_KEYS}
    # NOTES.txt's `kubectl create secret` line makes exactly these keys.
    made = set(re.findall(r"--from-file=([^=\s]+)=", notes()))
    assert made == set(ACCOUNT_KEYS)


def test_rendered_config_passes_config_check(tmp_path: Path) -> None:
    """The ConfigMap's config, with the Secret's files in place, is a valid config."""
    for key, value in ACCOUNT_KEYS.items():
        (tmp_path / key).write_text(value)
    config = tmp_path / "config.yml"
    config.write_text(config_text().replace(KEY_DIR, str(tmp_path)))
    result = subprocess.run(
        [*exporter_command(), f"--config.file={config}", "--config.check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"OK ({len(ACCOUNT_KEYS)} accounts)" in result.stdout


def test_config_change_rolls_the_pod() -> None:
    def checksum(values: Values) -> str:
        annotations = one("Deployment", values)["spec"]["template"]["metadata"]["annotations"]
        value = annotations["checksum/config"]
        assert isinstance(value, str)
        return value

    assert checksum({}) != checksum({"config": {"global": {"interval": "10m"}}})


def test_service_and_servicemonitor_select_the_exporter() -> None:
    deployment = one("Deployment", ALL_ON)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    service = one("Service", ALL_ON)
    assert service["spec"]["selector"].items() <= pod_labels.items()
    monitor = one("ServiceMonitor", ALL_ON)
    service_labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service_labels.items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9877, "targetPort": "metrics", "protocol": "TCP"}
    ]
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert one(kind, ALL_ON)["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_scrape_job_is_the_one_the_alerts_select() -> None:
    jobs = set()
    for group in one("PrometheusRule", ALL_ON)["spec"]["groups"]:
        for rule in group["rules"]:
            jobs.update(re.findall(r'\bjob="([^"%]+)"', rule["expr"]))
    assert jobs
    relabel = one("ServiceMonitor", ALL_ON)["spec"]["endpoints"][0]["relabelings"]
    set_job = [r["replacement"] for r in relabel if r.get("targetLabel") == "job"]
    assert set_job == sorted(jobs)
    # The user's relabelings come after the chart's, so they cannot drop it by accident.
    assert relabel[0]["targetLabel"] == "job"


def test_image_defaults_to_the_exporter_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == exporter.__version__
    assert container()["image"] == f"saas-quota-exporter:{exporter.__version__}"
    assert container(ALL_ON)["image"] == "registry.example.com/saas-quota-exporter:9.9.9"


def test_notes_say_how_to_reach_metrics_and_the_status_page() -> None:
    text = notes()
    assert f"kubectl -n {NAMESPACE} port-forward service/{RELEASE} 9877:9877" in text
    assert "http://127.0.0.1:9877/ " in text
    assert "http://127.0.0.1:9877/metrics" in text
    assert f"http://{RELEASE}.{NAMESPACE}.svc:9877/metrics" in text
    assert f"kubectl -n {NAMESPACE} create secret generic {RELEASE}-keys" in text
    assert "serviceMonitor.enabled=true" in text
    assert "serviceMonitor.enabled=true" not in notes(ALL_ON)


def test_chart_readme_example_values_install() -> None:
    """The values file the chart's README shows renders and fits the schemas."""
    readme = (CHART / "README.md").read_text()
    [example] = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    values = yaml.safe_load(textwrap.dedent(example))
    docs = rendered(values)
    assert {d["kind"] for d in docs} >= OPERATOR_KINDS
    for doc in docs:
        if doc["kind"] in OPERATOR_KINDS:
            validate_operator(doc)
        else:
            assert validate_core(doc) == []
