# The Leer Lab portal. `make run` serves it on the embedded defaults,
# `make test` runs the whole suite. See README.md.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint audit loadtest translations venv dev-venv migrate worker beat serve clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

venv: $(VENV)/.installed

dev-venv: $(VENV)/.installed-dev

# Compiled translations (build output, gitignored), with Babel: no GNU
# gettext needed. Test settings: the command reads only LOCALE_PATHS.
translations: venv
	DJANGO_SETTINGS_MODULE=leerlab.settings_test $(BIN)/python manage.py compile_translations --verbosity 0

# The embedded default: SQLite, tasks in-process, email on the console.
run: export DJANGO_DEBUG ?= 1
run: venv translations
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py ensure_local_advisor
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

test: dev-venv translations
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: dev-venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DJANGO_SETTINGS_MODULE=leerlab.settings_test $(BIN)/python manage.py makemigrations --check --dry-run

# bandit on our code, pip-audit on requirements.txt (see .ci/audit).
audit: dev-venv
	PATH="$(CURDIR)/$(BIN):$$PATH" bash .ci/audit

# Load test (issue #3): 50 officers for 2 minutes against gunicorn, with
# PostgreSQL, Redis, a Celery worker, beat and an SMTP server; writes the
# figures to loadtest/results/latest.md. PostgreSQL and Redis must be
# running (as .ci/run starts them). Quick check:
#   LOADTEST_DURATION=20s LOADTEST_USERS=10 make loadtest
loadtest: venv
	$(BIN)/python loadtest/run.py

migrate: venv
	$(BIN)/python manage.py migrate --no-input

# Production processes; configure them through the environment (README).
serve: venv translations
	$(BIN)/python manage.py collectstatic --no-input
	$(BIN)/gunicorn leerlab.wsgi:application --bind $(HOST):$(PORT) --workers 3

worker: venv translations
	$(BIN)/celery -A leerlab worker --loglevel=INFO --concurrency=2

beat: venv
	$(BIN)/celery -A leerlab beat --loglevel=INFO --schedule=/tmp/leerlab-celerybeat-schedule

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles .pytest_cache
