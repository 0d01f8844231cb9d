# The README's two commands: `make run` and `make test`. Each sets up .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup lint bench clean-outputs

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name backfill-runbook --display-name "backfill-runbook (.venv)" >/dev/null
	@touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/runbook seed --env local --if-missing
	$(BIN)/runbook run --env local

test: $(STAMP)
	$(BIN)/ruff check runbook_lib tests bench
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -n auto --dist worksteal

lint: $(STAMP)
	$(BIN)/ruff check runbook_lib tests bench
	$(BIN)/ruff format --check runbook_lib tests bench

bench: $(STAMP)
	$(BIN)/python bench/run_all.py
