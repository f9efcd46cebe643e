# The two commands a newcomer needs: `make run` and `make test`. Every target creates the
# environment it needs (uv, the virtualenv from uv.lock) on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
RUN := $(UV) run --frozen
PYTEST_ARGS ?=
TEST_WORKERS ?= 2

.PHONY: help env browser node-tools fonts documents run migrate test lint typecheck contracts bench chaos

help:
	@echo "make run        start every service and the desk console (http://localhost:8000) against local"
	@echo "                PostgreSQL and RabbitMQ"
	@echo "make test       lint, type check, then every test against the real broker and databases"
	@echo "make lint       ruff + mypy only"
	@echo "make documents  print each document the desk hands over and keep a page of each in docs/documents/"
	@echo "make contracts  regenerate the published JSON Schemas from the event models"
	@echo "make migrate    set up the broker's users, create the databases if missing and apply migrations"
	@echo "make chaos      long fault-injection soak (docs/reliability.md): make chaos N=100000 sends about N"
	@echo "                commands while killing the broker, PostgreSQL and consumers; prints what was lost"
	@echo "make bench      benchmarks against the local broker and databases (docs/BENCHMARKS.md), e.g."
	@echo "                make bench CASES=200 RATE=20  (RATE: cases/s, 'flat', or a list such as 1,flat)"

.venv/.synced: uv.lock pyproject.toml $(wildcard */pyproject.toml services/*/pyproject.toml)
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check uv
	$(UV) sync --frozen --all-packages
	@touch $@

env: .venv/.synced

# The Node.js projects the tests run, exactly as their package-lock.json pins them, from the npm registry: the
# contract checks (tests/contracts: AsyncAPI parser, ajv, CloudEvents SDK), the example subscriber, and the desk
# console's test tools (services/desk/tests/node: a real OpenID provider, axe-core).
NODE_TOOLS := tests/contracts/node_modules/.installed contracts/examples/node/node_modules/.installed \
	services/desk/tests/node/node_modules/.installed
%/node_modules/.installed: %/package.json %/package-lock.json
	npm ci --prefix $* --no-audit --no-fund
	@touch $@

node-tools: $(NODE_TOOLS)

# Debian's Chromium for the desk's and the API docs pages' browser tests (Playwright drives it; no browser download).
browser:
	@bash scripts/install-chromium.sh

# The IPAex fonts the printed documents embed, and poppler-utils, with which the tests read them back.
fonts:
	@bash scripts/install-fonts.sh

run: env fonts
	$(RUN) python -m eventkit.devrun

migrate: env
	$(RUN) python -m eventkit.broker_users
	@for service in intake scheduling billing reporting desk; do \
		if $(RUN) python -c "import $$service" 2>/dev/null; then $(RUN) python -m $$service migrate || exit 2; fi; \
	done

# mypy runs once per package root: each service has its own `tests` package.
TYPED_ROOTS := contracts $(wildcard services/*)
lint: env
	$(RUN) ruff check .
	@set -e; for root in $(TYPED_ROOTS); do echo "mypy $$root"; (cd $$root && $(RUN) mypy --config-file $(CURDIR)/pyproject.toml .); done
	$(RUN) mypy tests conftest.py
	$(RUN) --group bench mypy bench

typecheck: lint

# Two workers for the tests that share the machine politely (own databases and vhosts); then the browser tests one
# at a time; then, by themselves, the ones that restart the whole broker and database (see conftest.py). A phase
# with no test selected (PYTEST_ARGS naming a few) is no failure.
test: lint browser node-tools fonts
	@$(RUN) python -m eventkit.preflight
	$(RUN) pytest -n $(TEST_WORKERS) --dist loadgroup -m "not alone and not browser" $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(RUN) pytest -m browser $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(RUN) pytest -m alone $(PYTEST_ARGS) || [ $$? -eq 5 ]

contracts: env
	$(RUN) python -m secondopinion_contracts.schemas

# Prints every document through the services' routes (tests/e2e/test_documents.py) and keeps a page of each as PNG.
documents: env fonts
	@$(RUN) python -m eventkit.preflight
	DOCUMENTS_PNG_DIR=$(CURDIR)/docs/documents $(RUN) pytest tests/e2e/test_documents.py -q

# The long fault-injection soak (tests/faults/soak.py; `make test` runs the short scenarios). N: about how
# many commands; the broker is killed 10 times, PostgreSQL restarted 3 times and consumers killed 20 times
# per 100,000. It restarts the machine's own RabbitMQ and PostgreSQL, waiting until no other test runs.
N ?= 100000
chaos: env
	@$(RUN) python -m eventkit.preflight
	$(RUN) python -m tests.faults.soak $(N)

# Benchmarks (bench/, docs/BENCHMARKS.md). Every parameter is optional; the defaults finish in a few minutes:
# CASES, RATE (cases/s, 'flat' or a list like 1,flat), CONCURRENCY (cases in flight when flat out),
# FLOOR_EVENTS, CONSUMER_EVENTS, STATEMENT_EVENTS, STORE_EVENTS, REBUILD_EVENTS, ONLY (sections),
# PROFILE (a folder for py-spy profiles), OUT (the JSON results file).
# The bench dependency group (eventsourcing, py-spy) is installed on top of the environment by `--group bench`.
BENCH_ARGS = $(if $(CASES),--cases $(CASES)) $(if $(RATE),--rate $(RATE)) \
	$(if $(CONCURRENCY),--concurrency $(CONCURRENCY)) $(if $(FLOOR_EVENTS),--floor-events $(FLOOR_EVENTS)) \
	$(if $(CONSUMER_EVENTS),--consumer-events $(CONSUMER_EVENTS)) \
	$(if $(STATEMENT_EVENTS),--statement-events $(STATEMENT_EVENTS)) \
	$(if $(STORE_EVENTS),--store-events $(STORE_EVENTS)) $(if $(REBUILD_EVENTS),--rebuild-events $(REBUILD_EVENTS)) \
	$(if $(ONLY),--only $(ONLY)) $(if $(PROFILE),--profile $(PROFILE)) $(if $(OUT),--out $(OUT))
bench: env
	@$(RUN) python -m eventkit.preflight
	$(RUN) --group bench python -m bench $(BENCH_ARGS)
