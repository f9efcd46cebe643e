# The two commands a newcomer needs: `make run` and `make test`. Every target creates the
# environment it needs (uv, the virtualenv from uv.lock) on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
RUN := $(UV) run --frozen
PYTEST_ARGS ?=

.PHONY: help env browser run migrate test lint typecheck contracts

help:
	@echo "make run        start every service against local PostgreSQL and RabbitMQ"
	@echo "make test       lint, type check, then every test against the real broker and databases"
	@echo "make lint       ruff + mypy only"
	@echo "make contracts  regenerate the published JSON Schemas from the event models"
	@echo "make migrate    create the databases if missing and apply migrations"

.venv/.synced: uv.lock pyproject.toml $(wildcard */pyproject.toml services/*/pyproject.toml)
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check uv
	$(UV) sync --frozen --all-packages
	@touch $@

env: .venv/.synced

# Debian's Chromium for the dashboard's browser test (Playwright drives it; no browser download).
browser:
	@bash scripts/install-chromium.sh

run: env
	$(RUN) python -m eventkit.devrun

migrate: env
	@for service in intake scheduling billing reporting; do \
		if $(RUN) python -c "import $$service" 2>/dev/null; then $(RUN) python -m $$service migrate || exit 2; fi; \
	done

# mypy runs once per package root: each service has its own `tests` package.
TYPED_ROOTS := contracts $(wildcard services/*)
lint: env
	$(RUN) ruff check .
	@set -e; for root in $(TYPED_ROOTS); do echo "mypy $$root"; (cd $$root && $(RUN) mypy --config-file $(CURDIR)/pyproject.toml .); done
	$(RUN) mypy tests conftest.py

typecheck: lint

test: lint browser
	@$(RUN) python -m eventkit.preflight
	$(RUN) pytest $(PYTEST_ARGS)

contracts: env
	$(RUN) python -m secondopinion_contracts.schemas
