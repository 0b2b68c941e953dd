"""The bundled Prometheus rules, Alertmanager config and Grafana dashboards."""
