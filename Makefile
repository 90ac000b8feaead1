# Two commands for a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test test-browser bench check clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,postgres,redis,server,browser]"
	touch $(STAMP)

install: $(STAMP)

# A local demo: SQLite and local memory unless DATABASE_URL / CACHE_URL say otherwise.
run: install
	DEBUG=true $(BIN)/python manage.py migrate --noinput
	DEBUG=true $(BIN)/python manage.py loaddemo
	@echo "Serving on http://$(HOST):$(PORT)/  (admin: http://$(HOST):$(PORT)/admin/)"
	DEBUG=true $(BIN)/python manage.py runserver $(HOST):$(PORT)

# The whole suite, on SQLite by default, on PostgreSQL/Redis when DATABASE_URL/CACHE_URL are set.
test: install
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

check: install
	$(BIN)/python manage.py makemigrations --check --dry-run
	DEBUG=true $(BIN)/python manage.py check

clean:
	rm -rf $(VENV) db.sqlite3 artifacts
