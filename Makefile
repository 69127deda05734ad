# Two commands do everything on a fresh machine: `make run` and `make test`.
# Each step leaves a stamp under .make/ so re-running skips work already done.
SHELL := /bin/bash
PY := .venv/bin/python
FLASK := .venv/bin/flask
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
STAMP := .make
export FLASK_APP := app

.PHONY: install run test test-sqlite test-postgres test-browser lint bench clean

install: $(STAMP)/python $(STAMP)/npm

$(STAMP)/python: pyproject.toml
	@mkdir -p $(STAMP)
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

$(STAMP)/npm: package.json package-lock.json
	@mkdir -p $(STAMP)
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

bench: install
	$(PY) -m tests.bench.run

clean:
	rm -rf .venv node_modules $(STAMP) instance/test-*.db
