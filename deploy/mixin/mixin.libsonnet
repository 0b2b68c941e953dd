// The saas-quota-exporter monitoring mixin: prometheusRules (recording rules),
// prometheusAlerts and grafanaDashboards, all parameterised by _config
// (config.libsonnet). Plain jsonnet, no jsonnet-bundler dependencies.
//
// deploy/prometheus/*.yml, grafana/dashboards/*.json and the Kubernetes and Helm copies
// are generated from this with `make mixin` (tests/deploy/generate_mixin.py).
(import 'config.libsonnet') +
(import 'rules.libsonnet') +
(import 'alerts.libsonnet') +
(import 'dashboards.libsonnet')
