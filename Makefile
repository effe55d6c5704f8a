# Inkless — the two commands a newcomer needs: `make run` and `make test`.
# Both create a project virtual environment (.venv) and install into it, so Debian's and Ubuntu's
# system Python ("externally-managed-environment") is enough. PYTHON=... uses that interpreter instead
# (as is: no venv is made; it gets `pip install -e '.[dev]'`).
VENV ?= .venv
# The Python that makes the venv. The venv sees its site-packages too: what is installed there already
# (CI installs the requirements first) is not downloaded again; pip puts the rest in .venv.
BASE_PYTHON ?= python3
DATA ?= ./instance
PORT ?= 5000
# Test processes (pytest-xdist); each test builds its own app and database, so they run in parallel.
JOBS ?= auto

.PHONY: install assets run test test-sqlite test-postgres test-dates test-api-fuzz lint bench clean translations

ifeq ($(origin PYTHON),undefined)
PYTHON := $(VENV)/bin/python
install: $(VENV)/.installed
# Re-installed when the dependencies change.
$(VENV)/.installed: pyproject.toml
	@test -x $(PYTHON) || $(BASE_PYTHON) -m venv --system-site-packages $(VENV) || { \
	  echo "could not create $(VENV): on Debian/Ubuntu install python3-venv (apt install python3-venv)"; exit 1; }
	$(PYTHON) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@
else
install:
	$(PYTHON) -m pip install -q -e '.[dev]'
endif
PIP ?= $(PYTHON) -m pip
INKLESS = $(PYTHON) -m service.cli

# The browser bundles (bpmn-js viewer/modeler, charts) from npm, rebuilt when a source changes.
ASSETS_STAMP = service/static/build/.stamp
assets: $(ASSETS_STAMP)
$(ASSETS_STAMP): package.json package-lock.json build.mjs $(wildcard service/static/src/*)
	npm ci --no-audit --no-fund --loglevel=error
	npm run --silent build
	touch $@

# Set up a fresh SQLite database with demo data (passwords are printed once) and serve on :$(PORT).
# A local demo: plain HTTP cookies, and the mandatory second factor for administrators off
# (MFA=1 turns it on, as `inkless serve` has it by default) so the README's curl tour runs as is.
MFA ?= 0
run: install assets
	INKLESS_DATA_DIR=$(DATA) INKLESS_INSECURE_COOKIES=1 $(INKLESS) init --demo
	INKLESS_DATA_DIR=$(DATA) INKLESS_INSECURE_COOKIES=1 INKLESS_MFA_ENFORCED=$(MFA) $(INKLESS) serve --host 127.0.0.1 --port $(PORT)

# The whole suite on SQLite; set DATABASE_URL=postgresql://… to run it on PostgreSQL.
test: install assets
	$(PYTHON) -m pytest -n $(JOBS)

# The suite with the platform clock started at other moments (tests/conftest.py --clock): the first
# day of a quarter, a minute before midnight at the end of a month and year in Beijing, a year on.
CLOCKS ?= 2027-04-01T00:00:00+08:00 2026-12-31T23:59:00+08:00 2027-12-03T09:30:00+08:00
test-dates: install assets
	for moment in $(CLOCKS); do echo "== clock $$moment =="; $(PYTHON) -m pytest -n $(JOBS) --clock=$$moment || exit 1; done

test-sqlite: install assets
	env -u DATABASE_URL $(PYTHON) -m pytest -n $(JOBS)

test-postgres: install assets
	DATABASE_URL=$${PG_URL:-postgresql://postgres@127.0.0.1:5432/test} $(PYTHON) -m pytest -n $(JOBS)

# schemathesis over /api/openapi.json against a live server on a fresh SQLite database, as a plain
# user and as a system administrator; fails on any 5xx or answer not matching the document.
test-api-fuzz: install
	env -u DATABASE_URL $(PYTHON) -m tests.api_fuzz

lint: install
	$(PYTHON) -m ruff check engine service tests bench

translations:
	pybabel extract -F babel.cfg -k N_ -k _ -o service/translations/messages.pot .
	pybabel update -i service/translations/messages.pot -d service/translations
	pybabel compile -d service/translations

bench: install
	$(PYTHON) bench/complete_task.py

clean:
	rm -rf $(DATA) .pytest_cache service/static/build node_modules $(VENV)
