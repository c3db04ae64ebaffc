# Set-up is part of every target: a fresh clone needs only Python 3.13, Node 20 + npm, and make.
# The first Python 3.13 that actually runs (a pyenv shim on PATH may exist and still fail).
PYTHON ?= $(shell for p in $(HOME)/.pyenv/versions/3.13.*/bin/python3.13 python3.13; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && { echo "$$p"; break; }; done)
# Airflow 2.11 runs on Python 3.12 (the compatibility tests): the first 3.12 that runs.
PYTHON312 ?= $(shell for p in $(HOME)/.pyenv/versions/3.12.*/bin/python3.12 python3.12; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { echo "$$p"; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: sample test lint lock demo bench schema package clean

sample: $(VENV)/.installed $(VENV)/.native  ## run the bundled sample: a zip of nested JSONL -> CSVs in out/acme/
	$(PY) -m local_runner run samples/acme/events.json

test: $(VENV)/.installed $(VENV)/.native node_modules/.installed .venv-airflow3/.installed .venv-airflow2/.installed  ## lint, then the whole test suite (starts Azurite itself)
	@status=0; $(MAKE) --no-print-directory lint || status=1; SOURCEMART_REQUIRE_NATIVE=$$(test -e $(VENV)/.native-missing && echo 0 || echo 1) $(PY) -m pytest || status=1; exit $$status


# Lint: `make lint` runs ruff (a focused rule set: pyflakes, syntax errors, bugbear's likely bugs) on
# the whole tree and mypy on the core packages (not strict), both configured in pyproject.toml.
# `make test` runs it first and fails if it fails. `.venv/bin/ruff check --fix .` fixes what ruff can.
lint: $(VENV)/.installed  ## ruff + mypy (pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The deploy lock: requirements.lock pins, with hashes, everything requirements.txt installs on
# Azure (Linux x86_64, Python 3.13), resolved by uv from the package index. Regenerate it whenever
# requirements.txt changes (a test fails until then: it compares the sha256 noted on its first line).
# requirements.txt stays what the Functions remote build installs; .venv is installed from the lock.
lock: .venv-lock/.installed  ## regenerate requirements.lock from requirements.txt
	.venv-lock/bin/uv pip compile requirements.txt --quiet --generate-hashes --python-version 3.13 \
		--python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" -o requirements.lock.tmp
	{ echo "# requirements.txt sha256: $$(sha256sum requirements.txt | cut -d' ' -f1)"; cat requirements.lock.tmp; } > requirements.lock
	rm -f requirements.lock.tmp

demo: $(VENV)/.installed $(VENV)/.native node_modules/.installed .venv-airflow3/.installed  ## the whole chain: Azurite, local APIs, serve, Airflow 3.3 (see demo/run.py); Ctrl-C stops it
	$(PY) -m demo

bench: $(VENV)/.installed $(VENV)/.native  ## side-by-side throughput and peak memory (see bench/README.md)
	$(PY) -m bench.run

# What `func azure functionapp publish <app> --no-build` ships: the app's requirements for Linux
# x86-64 / CPython 3.13 in .python_packages/lib/site-packages (where the Functions host loads them
# from), with the kernel as a manylinux wheel built here and repaired/tagged by auditwheel.
MANYLINUX := $(foreach v,2_34 2_28 2_17 2014 2_5 1,--platform manylinux$(if $(filter 2014 1,$(v)),$(v),_$(v))_x86_64)
package: $(VENV)/.installed  ## the deployable: dist/ (the kernel's manylinux wheel) + .python_packages/
	rm -rf dist .python_packages native/build
	$(PY) -m pip wheel --quiet --disable-pip-version-check --no-deps -w dist/raw ./native
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/auditwheel repair -w dist dist/raw/*.whl
	rm -rf dist/raw native/build
	$(PY) -m pip install --quiet --disable-pip-version-check --target .python_packages/lib/site-packages \
	  $(MANYLINUX) --implementation cp --python-version 3.13 --only-binary=:all: \
	  -r requirements.txt dist/sourcemart_kernel-*.whl
	@echo "deploy with: func azure functionapp publish <app-name> --no-build"

schema: $(VENV)/.installed  ## regenerate schema/processors.schema.json from the config models
	$(PY) -m local_runner schema --write schema/processors.schema.json

# uv in a venv of its own: .venv is installed from the lock, so it cannot be what makes the lock.
.venv-lock/.installed:
	@test -n "$(PYTHON)" || { echo "Python 3.13 not found"; exit 1; }
	"$(PYTHON)" -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --disable-pip-version-check "uv>=0.6,<1"
	touch $@

# What Azure installs comes from the lock (versions and hashes checked), so the tests run what a
# deploy runs; the test and lint tools come after it, constrained by it.
$(VENV)/.installed: requirements.txt requirements-dev.txt requirements.lock pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.13 not found: install it or run make PYTHON=/path/to/python3.13"; exit 1; }
	"$(PYTHON)" -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	sed -n 's/^\([A-Za-z0-9._-]*==[^ ]*\).*/\1/p' requirements.lock > $(VENV)/lock-pins.txt  # pins without hashes
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c $(VENV)/lock-pins.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .  # the `sourcemart` command
	touch $@

# The native JSONL -> CSV kernel (native/, C++ against the CPython C API; g++ and Python's headers).
# Without it the transform runs its pure-Python path, so outside CI a failed build is a warning
# (and `make test` then does not require the kernel); in CI (CI set) it is an error.
$(VENV)/.native: $(VENV)/.installed native/pyproject.toml native/setup.py native/src/sourcemart_kernel.cpp
	@if $(PY) -m pip install --quiet --disable-pip-version-check ./native; then rm -f $(VENV)/.native-missing; \
	elif [ -n "$$CI" ]; then echo "the native kernel failed to build (required in CI)"; exit 1; \
	else echo "WARNING: the native kernel failed to build; the transform runs its pure-Python path"; \
	  touch $(VENV)/.native-missing; fi
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
	rm -rf $(VENV) .venv-airflow3 .venv-airflow2 .venv-lock node_modules out .pytest_cache .mypy_cache .ruff_cache *.egg-info .demo dist .python_packages native/build
