"""deploy/kubernetes/sharded/: the StatefulSet overlay, rendered and validated like the
base (tests/e2e/packaging/test_kubernetes.py), and wired so every shard is scraped."""

from __future__ import annotations

from typing import Any, Final

import yaml

import exporter
from exporter.sharding import Shard
from tests.e2e.packaging.test_kubernetes import (
    OPERATOR_KINDS,
    rendered,
    validate_core,
    validate_operator,
)
from tests.packaging.podman import REPO

SHARDED: Final = REPO / "deploy" / "kubernetes" / "sharded"


def _one(kind: str) -> dict[str, Any]:
    found = [doc for doc in rendered(SHARDED) if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def test_sharded_objects_fit_the_schemas() -> None:
    kinds = set()
    for doc in rendered(SHARDED):
        kinds.add(doc["kind"])
        if doc["kind"] in OPERATOR_KINDS:
            validate_operator(doc)
        else:
            assert validate_core(doc) == []
    assert "Deployment" not in kinds, "the base's Deployment would poll every account again"
    assert {"StatefulSet", "Service", "ServiceMonitor"} <= kinds


def test_replicas_and_shard_count_agree_and_each_pod_takes_its_ordinal() -> None:
    statefulset = _one("StatefulSet")
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    counts = [a.split("=", 1)[1] for a in args if a.startswith("--shard.count=")]
    assert counts == [str(statefulset["spec"]["replicas"])]
    assert "--shard.index-from-hostname" in args
    # Every pod name the StatefulSet makes is a valid shard of that count.
    replicas = statefulset["spec"]["replicas"]
    for ordinal in range(replicas):
        Shard(ordinal, int(counts[0]))
    assert container["image"] == f"saas-quota-exporter:{exporter.__version__}"


def test_the_servicemonitor_scrapes_every_shard() -> None:
    """A headless Service governing the StatefulSet: one endpoint per pod, each a
    ServiceMonitor target, and no second Service the monitor would scrape twice."""
    statefulset, service, monitor = _one("StatefulSet"), _one("Service"), _one("ServiceMonitor")
    assert service["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    assert {p["name"] for p in container["ports"]} >= {endpoint["port"]}


def test_the_config_map_reference_follows_the_generated_name() -> None:
    statefulset = _one("StatefulSet")
    [config] = [
        d
        for d in rendered(SHARDED)
        if d["kind"] == "ConfigMap"
        and d["metadata"]["name"].startswith("saas-quota-exporter-config")
    ]
    volumes = {v["name"]: v for v in statefulset["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config["metadata"]["name"]
    assert "config.yml" in config["data"]
    yaml.safe_load(config["data"]["config.yml"])
