"""Deploy tests: rules, alerts, dashboards and the mixin, against real Prometheus and
Alertmanager."""
