# Quick start: `make demo` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
LISTEN ?= 127.0.0.1:9877

.PHONY: demo test lint typecheck pytest install clean bench

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --editable '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

## demo: run the exporter against simulated vendors on loopback (no keys needed)
demo: $(STAMP)
	$(VENV)/bin/saas-quota-exporter demo --web.listen-address $(LISTEN)

## test: lint, type-check and run the whole suite
test: lint typecheck pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check exporter tests benchmarks
	$(VENV)/bin/ruff format --check exporter tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

## bench: /metrics latency with a slow vendor, then the 60 s load and soak run
bench: $(STAMP)
	$(PY) -m benchmarks.scrape_latency
	$(PY) -m benchmarks.soak

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
