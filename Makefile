# Fleet Platform — the two commands are `make run` and `make test`; everything else supports them.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint format bootstrap bootstrap-dev db-start db-stop db-clean migrate superuser check bench

# Start the private cluster only when DATABASE_URL is unset (the embedded default).
define ensure_db
	@if [[ -z "$$DATABASE_URL" ]]; then bin/pg start; fi
endef

bootstrap:
	@bin/bootstrap base

bootstrap-dev:
	@bin/bootstrap dev

db-start:
	@bin/pg start && bin/pg status

db-stop:
	@bin/pg stop

db-clean:
	@bin/pg clean

migrate: bootstrap
	$(ensure_db)
	@$(PY) manage.py migrate --no-input -v 0

## make run — set up everything, then gateway + worker + cron in the foreground (Ctrl-C stops all).
## On the embedded database it also runs the demo fleet's simulator; `make run SIMULATE=0` leaves it off.
SIMULATE ?= 1
export SIMULATE
run: bootstrap
	@bin/run

## make test — set up everything, then lint, type-check and the whole test suite against real PostGIS.
test: bootstrap-dev
	$(ensure_db)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy
	@$(PY) manage.py makemigrations --check --dry-run -v 0 || (echo "model changes without a migration" >&2; exit 1)
	@$(VENV)/bin/pytest $(PYTEST_ARGS); s=$$?; if [[ $$s -eq 5 ]]; then echo "pytest collected no tests" >&2; fi; exit $$s

lint: bootstrap-dev
	@$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

format: bootstrap-dev
	@$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .
