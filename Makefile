# Set-up is part of every target: a fresh clone needs only Python 3.13, Node 20 + npm, and make.
# The first Python 3.13 that actually runs (a pyenv shim on PATH may exist and still fail).
PYTHON ?= $(shell for p in $(HOME)/.pyenv/versions/3.13.*/bin/python3.13 python3.13; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && { echo "$$p"; break; }; done)
# Airflow 2.11 runs on Python 3.12 (the compatibility tests): the first 3.12 that runs.
PYTHON312 ?= $(shell for p in $(HOME)/.pyenv/versions/3.12.*/bin/python3.12 python3.12; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { echo "$$p"; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: sample test demo bench schema clean

sample: $(VENV)/.installed  ## run the bundled sample: a zip of nested JSONL -> CSVs in out/acme/
	$(PY) -m local_runner run samples/acme/events.json

test: $(VENV)/.installed node_modules/.installed .venv-airflow3/.installed .venv-airflow2/.installed  ## the whole test suite (starts Azurite itself)
	$(PY) -m pytest

demo: $(VENV)/.installed node_modules/.installed .venv-airflow3/.installed  ## the whole chain: Azurite, local APIs, serve, Airflow 3.3 (see demo/run.py); Ctrl-C stops it
	$(PY) -m demo

bench: $(VENV)/.installed  ## side-by-side throughput and peak memory (see bench/README.md)
	$(PY) -m bench.run

schema: $(VENV)/.installed  ## regenerate schema/processors.schema.json from the config models
	$(PY) -m local_runner schema --write schema/processors.schema.json

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -n "$(PYTHON)" || { echo "Python 3.13 not found: install it or run make PYTHON=/path/to/python3.13"; exit 1; }
	"$(PYTHON)" -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Real Airflow for tests/test_airflow.py, each in its own venv (Airflow's dependencies stay out of
# the Functions app's): Airflow 3 on Python 3.13, Airflow 2.11 on Python 3.12.
.venv-airflow3/.installed: tests/airflow/requirements-3.txt
	@test -n "$(PYTHON)" || { echo "Python 3.13 not found"; exit 1; }
	"$(PYTHON)" -m venv .venv-airflow3
	.venv-airflow3/bin/python -m pip install --quiet --disable-pip-version-check -r tests/airflow/requirements-3.txt
	touch $@

.venv-airflow2/.installed: tests/airflow/requirements-2.txt tests/airflow/requirements-2-legacy-http.txt
	@test -n "$(PYTHON312)" || { echo "Python 3.12 not found (Airflow 2.11 tests): install it or run make PYTHON312=/path/to/python3.12"; exit 1; }
	"$(PYTHON312)" -m venv .venv-airflow2
	.venv-airflow2/bin/python -m pip install --quiet --disable-pip-version-check -r tests/airflow/requirements-2.txt
	.venv-airflow2/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --upgrade \
		--target .venv-airflow2/legacy-http -r tests/airflow/requirements-2-legacy-http.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) .venv-airflow3 .venv-airflow2 node_modules out .pytest_cache .demo
