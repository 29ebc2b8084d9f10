# Dragon's two everyday commands: `make run` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The suite runs a second time on PostgreSQL when this names a database (.ci/run sets it).
DRAGON_TEST_POSTGRES_URL ?=

# The contract tests' mock server (Prism) and GitHub's OpenAPI description, pinned by the lock.
CONTRACT := tests/contract
CONTRACT_STAMP := $(CONTRACT)/node_modules/.package-lock.json

.PHONY: install run test lint unit-test bench bench-ingest bench-triage bench-runs clean contract-deps

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

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

unit-test: install contract-deps
	env -u DRAGON_DATABASE_URL $(BIN)/pytest

test: lint contract-deps
	@echo "== test suite on SQLite =="
	env -u DRAGON_DATABASE_URL $(BIN)/pytest
	@if [ -n "$(DRAGON_TEST_POSTGRES_URL)" ]; then \
		echo "== test suite on PostgreSQL =="; \
		DRAGON_DATABASE_URL="$(DRAGON_TEST_POSTGRES_URL)" $(BIN)/pytest; \
	else \
		echo "== PostgreSQL run skipped: set DRAGON_TEST_POSTGRES_URL to include it =="; \
	fi

bench-ingest: install
	$(BIN)/python bench/bench_ingest.py

bench-triage: install
	$(BIN)/python bench/bench_triage.py

bench-runs: install
	$(BIN)/python bench/bench_runs.py

bench: bench-ingest bench-triage bench-runs
	$(BIN)/python bench/bench_core.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache $(CONTRACT)/node_modules
