# Two commands do everything on a fresh machine: `make run` and `make test`.
# Each install leaves a stamp inside what it installed (.venv/, node_modules/), so
# re-running skips work already done, and deleting either folder makes it run again.
SHELL := /bin/bash
PY := .venv/bin/python
FLASK := .venv/bin/flask
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
STAMP := .make
PY_STAMP := .venv/.make-installed
NPM_STAMP := node_modules/.make-installed
export FLASK_APP := app

.PHONY: install run test test-sqlite test-postgres test-browser db-check lint bench clean

install: $(PY_STAMP) $(NPM_STAMP)

$(PY_STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

instance:
	mkdir -p instance

migrate: install instance
	$(FLASK) db upgrade

run: migrate
	$(FLASK) demo seed
	$(FLASK) serve --host 127.0.0.1 --port 5000

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check app booking emergency tests

# The suite runs on SQLite, then again on PostgreSQL when one is reachable.
test: install
	.venv/bin/ruff check .
	$(MAKE) --no-print-directory db-check
	$(MAKE) --no-print-directory test-sqlite
	@if $(PY) -m tests.pg_reachable "$(PG_URL)"; then \
		$(MAKE) --no-print-directory test-postgres; \
	else \
		echo "PostgreSQL not reachable at $(PG_URL): skipped the PostgreSQL run"; \
	fi

test-sqlite: install
	TEST_DATABASE_URL= $(PY) -m pytest -p no:cacheprovider -q

test-postgres: install
	TEST_DATABASE_URL="$(PG_URL)" $(PY) -m pytest -p no:cacheprovider -q --ignore=tests/browser
	@mkdir -p $(STAMP) && date -u +%FT%TZ > $(STAMP)/postgres-ran

# The models and the migrations agree: `flask db check` on a fresh SQLite database
# (tests/test_migrations.py checks the same on PostgreSQL).
DB_CHECK_URL := sqlite:///$(CURDIR)/instance/test-db-check.db
db-check: install instance
	@rm -f instance/test-db-check.db
	@DATABASE_URL=$(DB_CHECK_URL) $(FLASK) db upgrade >instance/test-db-check.log 2>&1 \
		|| { cat instance/test-db-check.log; exit 1; }
	DATABASE_URL=$(DB_CHECK_URL) $(FLASK) db check
	@rm -f instance/test-db-check.db instance/test-db-check.log

bench: install
	$(PY) -m tests.bench.run

clean:
	rm -rf .venv node_modules $(STAMP) instance/test-*.db instance/test-db-check.log
