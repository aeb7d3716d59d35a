# root-mfa-runbook: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed
# apt needs root: sudo when not already root
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.DEFAULT_GOAL := help
.PHONY: help setup bytecode demo test lint typecheck notebooks chromium openssh pytest sandbox bench lock wheel clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# uv installs exactly the locked set (--no-deps: the lock is complete) in seconds;
	@# --compile-bytecode because PYTHONDONTWRITEBYTECODE
	@# may be set, and without .pyc files papermill and jupyter import several times slower.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode --no-deps -r requirements.lock
	@# the lock holds the [sandbox] and dev extras; the checkout itself, editable (its notebooks/
	@# and policies/ are the data packages runbook_lib._notebooks / _policies: pyproject.toml)
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode --no-deps -e '.[sandbox,dev]'
	@touch $@

# The checkout's own packages are imported from source (editable install): compiled here, as a
# wheel's install compiles them, else with PYTHONDONTWRITEBYTECODE every process (each CLI call,
# sandbox, test worker) compiles them again (~0.15 s). Up-to-date files are skipped.
bytecode: setup
	@PYTHONDONTWRITEBYTECODE= $(BIN)/python -m compileall -q runbook_lib runbook_sandbox runbook_demo tests bench >/dev/null

setup: $(STAMP) ## Create .venv and install the pinned packages (requirements.lock)

demo: setup bytecode openssh ## Set up, then run the main job on the local AWS sandbox
	$(BIN)/runbook demo

test: setup lint typecheck chromium openssh pytest ## Set up, then lint, type-check and run the whole test suite

lint: setup ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup ## mypy on runbook_lib
	$(BIN)/mypy

notebooks: setup ## Regenerate the notebooks' parameters cells and parameters/*.yml from runbook_lib/schema.py
	$(BIN)/python -m runbook_lib.generate --write

chromium: ## Debian's chromium for the browser test (apt; only when /usr/bin/chromium is missing)
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }

openssh: ## OpenSSH's ssh-keygen (approvals and seals are SSH signatures; apt when missing)
	@command -v ssh-keygen >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y openssh-client; }

# pytest-xdist workers: more than the cores, because a run's test waits much of its time (for
# CloudTrail's paced lookups, a kernel, the sandbox), so the cores stay busy (bench/SPEED_NOTES.md)
WORKERS ?= 4

pytest: setup bytecode ## The test suite only: WORKERS (4) in parallel, then the browser tests alone
	@# Chromium + JupyterLab + a kernel are timing-sensitive under busy workers: alone, after.
	@# PYTHONDONTWRITEBYTECODE unset for pytest: its assertion-rewritten test modules are
	@# cached (else every worker rewrites and compiles them all again).
	@# worksteal: an idle worker takes queued tests from a busy one (durations vary 0.01-12 s)
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -n $(WORKERS) --dist worksteal -m "not browser"
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -m browser tests/browser

sandbox: setup ## Serve the sandbox in the foreground (SCENARIO=standalone PORT=0)
	$(BIN)/runbook sandbox --scenario $(or $(SCENARIO),standalone) --port $(or $(PORT),0)

bench: setup bytecode ## Benchmarks (not tests); figures go to bench/*RESULTS.md
	$(BIN)/python bench/sandbox_bench.py
	$(BIN)/python bench/runbook_bench.py
	$(BIN)/python bench/scan_bench.py
	$(BIN)/python bench/fleet_bench.py
	$(BIN)/python bench/suite_bench.py

lock: ## Re-resolve requirements.lock from pyproject.toml (needs uv)
	@# rfc3987-syntax (and lark, only it needs it) is left out: jsonschema treats it as optional
	@# (IRI format checks) and importing it costs ~2.3 s in every papermill and kernel start.
	uv pip compile pyproject.toml --extra dev -o requirements.lock --python-version 3.11 -q \
		--no-emit-package rfc3987-syntax --no-emit-package lark

wheel: setup ## Build the wheel into dist/ (production: pip install dist/*.whl, no sandbox)
	$(BIN)/uv build --wheel --out-dir dist

clean: ## Remove the venv and caches (never runs/)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
