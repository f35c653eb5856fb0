# The two commands: `make run` and `make test`. Everything else is optional configuration
# through environment variables (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
# Local development defaults; production sets DEBUG=false with SECRET_KEY and CTE_ENCRYPTION_KEY.
export DEBUG ?= true

.PHONY: run test lint benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.requirements: $(BIN)/python requirements.txt
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.requirements-dev: $(VENV)/.requirements requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

run: $(VENV)/.requirements
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py ensure_admin
	$(BIN)/python manage.py demo --base-url http://127.0.0.1:$(PORT)
	$(BIN)/python manage.py setup_schedules
	$(BIN)/python manage.py start --port $(PORT)

test: $(VENV)/.requirements-dev
	CTE_LOG_LEVEL=$${CTE_LOG_LEVEL:-CRITICAL} $(BIN)/python manage.py test tests --noinput --parallel $${TEST_PARALLEL:-2} $(TESTS)

lint: $(VENV)/.requirements-dev
	$(BIN)/ruff check .

benchmark: $(VENV)/.requirements-dev
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/sharing.py
	$(BIN)/python benchmarks/taxii.py

clean:
	rm -rf $(VENV) var staticfiles
