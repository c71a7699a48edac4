PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8008

.PHONY: venv install test run check-deploy lint format openapi bench bench-peers-venv validate fmu clean

# The service, bridge and clients (what `make run` needs).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

# Test tools, Playwright (drives the system Chromium), the deploy linters and beamngpy, so the
# BeamNG adapter runs its real code against the fake simulator.
$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test,beamng,fmu,logs]'
	touch $@

venv install: $(VENV)/.installed

test: $(VENV)/.installed-test
	$(PY) -m pytest -q -rs

LINT_DIRS := twin_service bridge clients tests benchmarks validation scripts

# ruff (lint and format) over everything, mypy (with the pydantic plugin) on the service and
# the bridge; `make format` applies ruff's formatting.
lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check $(LINT_DIRS)
	$(VENV)/bin/ruff format --check $(LINT_DIRS)
	$(VENV)/bin/mypy twin_service bridge

format: $(VENV)/.installed-test
	$(VENV)/bin/ruff format $(LINT_DIRS)
	$(VENV)/bin/ruff check --fix $(LINT_DIRS)

openapi: $(VENV)/.installed
	$(PY) -m twin_service.openapi_export openapi/openapi.json

run: $(VENV)/.installed
	$(PY) scripts/run_demo.py --port $(PORT) $(RUN_ARGS)

check-deploy: $(VENV)/.installed-test
	$(PY) -m pytest -q -rs tests/test_deploy_checks.py tests/test_deploy_k8s.py tests/test_deploy_run.py tests/test_deploy_e2e.py

# Benchmarks: prints the tables and records them in docs/performance.md (wrk for the HTTP table;
# the peers run only when `make bench-peers-venv` has been done).
bench: $(VENV)/.installed
	$(PY) -m benchmarks.run_all

bench-peers-venv:
	$(PYTHON) -m venv .venv-peers
	.venv-peers/bin/pip install -q --upgrade pip
	.venv-peers/bin/pip install -q -r benchmarks/peers_requirements.txt

# Validation report (docs/validation.md, docs/img/validation_*.png).
validate: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[validate]'
	$(PY) -m validation.run

# The FMI 2.0 co-simulation FMU of the pack (docs/fmu.md), checked with fmpy.validate.
fmu: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[fmu]'
	$(PY) -m twin_service.fmu --out dist/EVBatteryTwin.fmu

clean:
	rm -rf $(VENV) .pytest_cache test-output dist
