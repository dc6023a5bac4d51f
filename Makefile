# One entry point for people, CI and Jenkins. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: help venv lint test train bench-train clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

venv: $(STAMP) ## Create .venv with every dependency group (re-made when pyproject.toml changes)
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (set PYTHON=...)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --group dev
	rm -f $(VENV)/.installed-* && touch $@

lint: venv ## Ruff: lint and formatting
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint ## Lint, then every test (the README's test command)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

SAMPLE_DIR := var/sample-data

train: venv ## Train and publish to var/models, on generated sample data or DATA_DIR=dir (users.csv [hotels.csv] [flights.csv])
	$(if $(DATA_DIR),,$(BIN)/python -m model.sample_data --out $(SAMPLE_DIR))
	$(BIN)/python -m model.train --data-dir $(or $(DATA_DIR),$(SAMPLE_DIR)) --model-dir var/models

bench-train: venv ## Benchmark: training on the real data, and model.predict on 1,000,000 generated users
	$(BIN)/python -m tests.bench.bench_train

clean: ## Remove var/ (local models, data, logs) and caches
	rm -rf var .pytest_cache .ruff_cache reports
