# Dragon's two everyday commands: `make run` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# axe-core for the browser tests' accessibility check: the npm package, pinned, in var/npm.
AXE_CORE_VERSION := 4.14.1
AXE := var/npm/node_modules/axe-core/axe.min.js
# The suite runs a second time on PostgreSQL when this names a database (.ci/run sets it): the
# tests whose outcome can depend on the store, the others having run on SQLite already; a few
# heavy store tests run in one of the two passes only (`one_pass` marker). The rules are in
# tests/support/store_selection.py and docs/decisions/0019-store-tests-on-postgres.md.
DRAGON_TEST_POSTGRES_URL ?=
# The suite runs on parallel pytest-xdist workers, each with a store of its own (tests/conftest.py:
# SQLite files, or a PostgreSQL database per worker beside the named one), one per core: the suite
# is CPU-bound. Files go to workers whole, in collection order: xdist's default sends the files
# with the most tests first, which leaves the long process tests (a few per file) to the end,
# run by one worker while the other idles (docs/decisions/0018-ci-parallel-tests.md).
TEST_WORKERS ?= 2
PYTEST_ARGS ?= -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15

# The contract tests' mock server (Prism) and GitHub's OpenAPI description, pinned by the lock.
CONTRACT := tests/contract
CONTRACT_STAMP := $(CONTRACT)/node_modules/.package-lock.json

.PHONY: install run test lint unit-test bench bench-ingest bench-triage bench-console bench-notifications bench-runs bench-production clean contract-deps

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

$(AXE): Makefile
	mkdir -p var/npm
	npm install --no-save --no-audit --no-fund --prefix var/npm axe-core@$(AXE_CORE_VERSION)
	touch $(AXE)

$(CONTRACT_STAMP): $(CONTRACT)/package.json $(CONTRACT)/package-lock.json
	npm ci --prefix $(CONTRACT) --no-audit --no-fund --loglevel=error
	touch $(CONTRACT_STAMP)

contract-deps: $(CONTRACT_STAMP)

run: install
	$(BIN)/dragon migrate
	$(BIN)/dragon serve

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/bandit --quiet --configfile pyproject.toml --recursive src
	$(BIN)/python .ci/audit_dependencies.py

unit-test: install contract-deps $(AXE)
	env -u DRAGON_DATABASE_URL $(BIN)/pytest $(PYTEST_ARGS)

test: lint contract-deps $(AXE)
	@echo "== test suite on SQLite =="
	env -u DRAGON_DATABASE_URL $(BIN)/pytest $(PYTEST_ARGS) $(if $(DRAGON_TEST_POSTGRES_URL),--postgres-pass-follows)
	@if [ -n "$(DRAGON_TEST_POSTGRES_URL)" ]; then \
		echo "== store tests on PostgreSQL =="; \
		DRAGON_DATABASE_URL="$(DRAGON_TEST_POSTGRES_URL)" $(BIN)/pytest $(PYTEST_ARGS) --store-tests-only; \
	else \
		echo "== PostgreSQL run skipped: set DRAGON_TEST_POSTGRES_URL to include it =="; \
	fi

bench-ingest: install
	$(BIN)/python bench/bench_ingest.py

bench-console: install
	$(BIN)/python bench/bench_console.py

bench-notifications: install
	$(BIN)/python bench/bench_notifications.py

bench-triage: install
	$(BIN)/python bench/bench_triage.py

bench-production: install
	$(BIN)/python bench/bench_production.py

bench-runs: install
	$(BIN)/python bench/bench_runs.py

bench: bench-ingest bench-triage bench-console bench-notifications bench-runs bench-production
	$(BIN)/python bench/bench_core.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache $(CONTRACT)/node_modules
