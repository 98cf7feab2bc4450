# The README's two commands: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
FLASK := $(VENV)/bin/flask --app app

.PHONY: run test lint bench clean

# Without TNT_ENV the app is production (real keys, https-only endpoints): these targets are
# development. (The tests set it themselves, in tests/conftest.py.)
run bench: export TNT_ENV := development

$(VENV)/.run-deps: requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev-deps: $(VENV)/.run-deps requirements-dev.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

## run: the web app on http://127.0.0.1:5000, a worker, a demo receiver and, without REDIS_URL,
## a bundled Redis; SQLite under instance/ without DATABASE_URL. Ctrl-C stops them all.
run: $(VENV)/.run-deps
	$(FLASK) db upgrade
	$(FLASK) tnt demo
	$(FLASK) tnt run

## test: the whole suite; TEST_DATABASE_URL / TEST_REDIS_URL pick PostgreSQL / a Redis server.
test: $(VENV)/.dev-deps
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

## lint: ruff (lint + format check) on everything; mypy --strict on the engine, transport, netguard.
lint: $(VENV)/.dev-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(VENV)/.dev-deps
	$(VENV)/bin/python bench/throughput.py

clean:
	rm -rf $(VENV) instance
