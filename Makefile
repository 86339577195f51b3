# The README's two commands are `make demo` and `make test`; each bootstraps .venv when missing.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed
# checkov in an environment of its own: it installs a fork of python-hcl2 under the same module
# name, and pins a termcolor older than Airflow's (requirements-checkov.in).
CHECKOV_VENV := $(VENV)/checkov

# First interpreter of a supported version (3.12 is what MWAA runs; 3.11 also works).
# pyenv installs versions without a shim on PATH, so look there too.
PYTHON ?= $(shell for p in python3.12 $$(pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12 \
	python3.11 $$(pyenv root 2>/dev/null)/versions/3.11*/bin/python3.11 python3; do \
	$$p -c 'import sys; assert sys.version_info[:2] in ((3, 11), (3, 12))' 2>/dev/null \
	&& { echo $$p; break; }; done)

.PHONY: venv test demo lint format lock bench airflow screenshots clean package coldstart lambda-python

venv: $(STAMP)

$(STAMP): requirements-dev.lock requirements-checkov.lock pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 or 3.12 is required" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode -r requirements-dev.lock
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode --no-deps -e .
	test -x $(CHECKOV_VENV)/bin/python || $(BIN)/python -m venv $(CHECKOV_VENV)
	$(BIN)/uv pip install --python $(CHECKOV_VENV)/bin/python -r requirements-checkov.lock
	touch $@

# The Lambda runtime's Python (3.12): the build compiles bytecode with it and the artifact tests
# run the built functions in it. Found on the machine (PATH, pyenv, uv's); where there is none
# (a 3.11-only CI image), uv installs its own build of CPython 3.12.
lambda-python: venv
	@$(BIN)/python -c 'from totes_dev.package.interpreter import runtime_python, uv_command; \
	  print("Lambda runtime Python:", runtime_python(uv_command()))' 2>/dev/null \
	  || $(BIN)/uv python install 3.12

test: venv lambda-python
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2 --dist loadgroup

demo: venv
	$(BIN)/totes demo

# Every deployable artifact from the lock: build/functions/*.zip, build/layers/*.zip,
# build/mwaa/plugins.zip and requirements.txt, and build/artifacts.json, which Terraform reads
# (docs/packaging.md). The same inputs give the same bytes.
package: venv lambda-python
	$(BIN)/python -m totes_dev.package build

# Each handler's cold start from its built artifact, in a fresh process as on Lambda.
coldstart: package
	$(BIN)/python -m totes_dev.package coldstart

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lock: venv
	$(BIN)/uv pip compile requirements-dev.in --universal --python-version 3.11 -o requirements-dev.lock
	$(BIN)/uv pip compile requirements-checkov.in --universal --python-version 3.11 -o requirements-checkov.lock

# Airflow UI (standalone, login disabled) at http://127.0.0.1:8080 on the local stack; Ctrl-C stops.
airflow: venv
	$(BIN)/python -m totes_dev.devstack.airflow

# make airflow in headless Chromium (Debian's, installed with apt-get when missing; Playwright
# drives it, no browser download): triggers a run from the UI and photographs the grid, the
# Assets graph and a run's summary into docs/screenshots/. make test runs the same test into a
# temporary directory.
screenshots: venv
	TOTES_SCREENSHOT_DIR=docs/screenshots $(BIN)/python -m pytest tests/dags/test_screenshots.py -m screenshots -p no:xdist

# Not part of `make test`: minutes of generated data and repeated runs (docs/performance.md).
# Options through BENCH_ARGS, e.g. `make bench BENCH_ARGS=--quick`; see `python -m benchmarks -h`.
BENCH_ARGS ?=
bench: venv
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .hypothesis build
