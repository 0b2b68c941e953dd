"""saas-quota-exporter: a Prometheus exporter for the quotas of paid SaaS APIs."""

__version__ = "0.1.0"
