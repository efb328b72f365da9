# Two entry points for a fresh machine: `make quickstart` (the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# pytest-xdist workers for `make test`: the suite mostly waits on real services (Ray, MLflow,
# Slurm), so more workers than cores keep the cores busy (see README, "Tests").
WORKERS ?= 3

.PHONY: quickstart test test-fast lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,server]'
	touch $(STAMP)

quickstart: $(STAMP)
	$(BIN)/dropattack sweep quickstart

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m tests.debian
	$(BIN)/pytest -q -n $(WORKERS) --durations=15

# The inner loop: everything that needs no real service (no Ray, MLflow server, browser, Slurm).
test-fast: $(STAMP)
	$(BIN)/pytest -q -n 2 -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/engine_step.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
