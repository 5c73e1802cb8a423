# avatarpipe: everything a fresh machine needs is installed by these targets.
# `make demo` renders the example script on the embedded emulator; `make test` runs the whole suite.

SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo python3 -m uv)
AZURITE_DIR := .tools/azurite
AZURITE := $(AZURITE_DIR)/node_modules/.bin/azurite-blob
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
PYTEST_ARGS ?=
CHROMIUM ?= /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: help setup uv azurite chromium postgres demo test lint fmt bench up stack down clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

uv: ## install uv with pip when it is missing
	@$(UV) --version >/dev/null 2>&1 || { echo "installing uv with pip"; python3 -m pip install --quiet uv; }

setup: uv ## create .venv from uv.lock (frozen)
	@$(UV) sync --frozen --quiet

azurite: ## install Azurite (the Blob Storage emulator) from npm into .tools/
	@test -x $(AZURITE) || npm install --prefix $(AZURITE_DIR) azurite@3 --no-audit --no-fund --silent

chromium: ## install Chromium (Debian package; the review-page tests play videos in it) when missing
	@test -x $(CHROMIUM) || { echo "installing chromium with apt-get"; \
		$(SUDO) apt-get update -qq >/dev/null && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
postgres: ## install PostgreSQL's server (OS package) when missing: the scale-out stack's database
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || command -v postgres >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing postgresql with apt-get"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends postgresql >/dev/null; \
	  else \
	    echo "PostgreSQL is missing: install the postgresql package (as root: apt-get install postgresql)" >&2; \
	    exit 1; \
	  fi; }

demo: setup ## render the example product-update script on the embedded emulator
	@$(UV) run --frozen avatarpipe run templates/scripts/product-update.yaml

test: setup azurite chromium postgres ## run the whole test suite
	@$(UV) run --frozen pytest $(PYTEST_ARGS)

lint: setup ## ruff check, ruff format --check, mypy --strict
	@$(UV) run --frozen ruff check src flows tests benchmarks tools
	@$(UV) run --frozen ruff format --check src flows tests benchmarks tools
	@$(UV) run --frozen mypy

fmt: setup ## format the code
	@$(UV) run --frozen ruff format src flows tests benchmarks tools
	@$(UV) run --frozen ruff check --fix src flows tests benchmarks tools

bench: setup ## run the benchmarks (installs moviepy for the comparison)
	@$(UV) sync --frozen --quiet --group bench
	@for b in benchmarks/*.py; do echo "== $$b"; $(UV) run --frozen --group bench python $$b || exit 1; done

up: setup azurite ## start Prefect server + UI, emulator, Azurite and the served deployments (logs in .stack/)
	@$(UV) run --frozen python -m avatarpipe.cli.stack up

stack: setup azurite postgres ## the production shape: PostgreSQL, Prefect server, a work pool and 3 workers
	@$(UV) run --frozen python -m avatarpipe.cli.stack up --workers 3 --postgres

down: ## stop exactly what `make up` or `make stack` started
	@$(UV) run --frozen python -m avatarpipe.cli.stack down

clean: ## remove caches and local tools (keeps outputs/)
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache
