"""The unit tier: in-process tests that mirror the exporter package (make check)."""
