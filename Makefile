# Quick start: `make demo` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HASH := $(shell cksum pyproject.toml | cut -d' ' -f1)
# Two stamps: the demo needs the runtime dependencies only, the suite the [test]
# extra as well (validators, linters); both are redone when pyproject.toml changes.
RUN_STAMP := $(VENV)/.installed-run-$(HASH)
TEST_STAMP := $(VENV)/.installed-test-$(HASH)
LISTEN ?= 127.0.0.1:9877

.PHONY: demo check test lint typecheck pytest install clean bench bench-chaos mixin backtest bench-scale

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml $(VENV)/bin/python
	$(PY) -m pip install --quiet --editable .
	rm -f $(VENV)/.installed-run-*
	touch $@

$(TEST_STAMP): pyproject.toml $(VENV)/bin/python
	$(PY) -m pip install --quiet --editable '.[test]'
	rm -f $(VENV)/.installed-test-*
	touch $@

install: $(TEST_STAMP)

## demo: run the exporter against simulated vendors on loopback (no keys needed)
demo: $(RUN_STAMP)
	$(VENV)/bin/saas-quota-exporter demo --web.listen-address $(LISTEN)

## check: the fast loop: lint, types and the unit tier (tests/unit, tests/support) on both cores
# PYTHONHASHSEED=0: pytest-xdist's workers must collect the same parametrised ids;
# HYPOTHESIS_PROFILE=check: a fifth of each property's examples (make test runs them all).
check: lint typecheck
	PYTHONHASHSEED=0 HYPOTHESIS_PROFILE=check $(PY) -m pytest -q -n 2 tests/unit tests/support $(PYTEST_ARGS)

## test: lint, type-check and run the whole suite
test: lint typecheck pytest

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check exporter tests benchmarks
	$(VENV)/bin/ruff format --check exporter tests benchmarks

typecheck: $(TEST_STAMP)
	$(VENV)/bin/mypy

pytest: $(TEST_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

## bench: /metrics latency with a slow vendor, the 60 s load and soak run, then the chaos soak
bench: $(TEST_STAMP)
	$(PY) -m benchmarks.scrape_latency
	$(PY) -m benchmarks.soak
	$(MAKE) bench-chaos

## bench-chaos: 3 minutes of every vendor fault, held connections and SIGHUPs (CHAOS_ARGS=--duration 60)
bench-chaos: $(TEST_STAMP)
	$(PY) -m benchmarks.chaos $(CHAOS_ARGS)

## mixin: regenerate deploy/prometheus/*.yml, grafana/dashboards/*.json and their Kubernetes and Helm copies from deploy/mixin/
mixin: $(TEST_STAMP)
	$(PY) -m tests.deploy.generate_mixin

## backtest: replay 30-day usage traces through the shipped rules in promtool + Prometheus (BACKTEST_ARGS=--scenario steady-exhausts)
backtest: $(TEST_STAMP)
	$(PY) -m benchmarks.backtest $(BACKTEST_ARGS)

## bench-scale: issue 11's table at 100..10,000 accounts (SCALE_ARGS=--quick, or --accounts 100,1000)
bench-scale: $(TEST_STAMP)
	$(PY) -m benchmarks.scale $(SCALE_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
