# referrals: `make run` to try it, `make test` to check it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app app
PORT   ?= 5000
export PORT

.PHONY: run test test-pg smoke bench lint fmt db-upgrade clean

$(VENV)/ok-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	@touch $@

$(VENV)/ok-run: $(VENV)/ok-python pyproject.toml requirements.lock
	$(BIN)/pip install --quiet -c requirements.lock -e .
	@touch $@

$(VENV)/ok-dev: $(VENV)/ok-run
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	@touch $@

## Set up, migrate, seed demo data (when empty) and serve with a worker on http://127.0.0.1:$(PORT)
run: $(VENV)/ok-run
	REFERRALS_ENV=$${REFERRALS_ENV:-development} $(FLASK) db-upgrade
	REFERRALS_ENV=$${REFERRALS_ENV:-development} $(FLASK) seed-demo --if-empty
	REFERRALS_ENV=$${REFERRALS_ENV:-development} $(FLASK) serve --port $(PORT)

## The whole test suite (SQLite; set TEST_DATABASE_URL for PostgreSQL)
test: $(VENV)/ok-dev
	$(BIN)/pytest $(PYTEST_ARGS)

## The production smoke test: docs/production.sh on a fresh PostgreSQL database (PG_ADMIN_URL)
smoke: $(VENV)/ok-dev
	$(BIN)/python -m tests.smoke.production $(if $(PG_ADMIN_URL),--admin-url $(PG_ADMIN_URL))

## Benchmarks: print figures, never fail on timing
bench: $(VENV)/ok-dev
	$(BIN)/pytest tests/bench -m bench -s -q $(PYTEST_ARGS)

lint: $(VENV)/ok-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check referrals tests app.py

fmt: $(VENV)/ok-dev
	$(BIN)/ruff format referrals tests app.py
	$(BIN)/ruff check --fix .

db-upgrade: $(VENV)/ok-run
	$(FLASK) db-upgrade

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
