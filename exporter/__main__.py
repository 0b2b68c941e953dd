"""`python -m exporter`: the `saas-quota-exporter` command."""

from exporter.cli import main

raise SystemExit(main())
