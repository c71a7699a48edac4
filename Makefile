PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8008

.PHONY: venv install test run lint openapi clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv install: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest -q -rs

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check twin_service bridge clients tests benchmarks

openapi: $(VENV)/.installed
	$(PY) -m twin_service.openapi_export openapi/openapi.json

run: $(VENV)/.installed
	$(PY) -m twin_service --port $(PORT)

clean:
	rm -rf $(VENV) .pytest_cache test-output
