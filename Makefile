# deepfn — the same targets a person types are the ones CI runs.
#   make run    install into .venv, then `dvc repro` on the default profile
#   make test   install dev deps, run the test suite
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STORE ?= mlruns
# Stages call `python`/`dvc`: make them the venv's.
export PATH := $(BIN):$(PATH)
export MPLBACKEND := Agg

.PHONY: setup setup-dev run smoke test test-fast lint typecheck ui dashboard bench postgres clean help

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found; install Python 3.11 or run make PY=python3"; exit 2; }
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed ## create .venv and install the pinned dependencies

setup-dev: $(VENV)/.installed-dev

.dvc/config:
	$(BIN)/dvc init -q 2>/dev/null || true

run: setup ## run the whole pipeline (dvc repro) on the profile in params.yaml
	$(BIN)/dvc repro
	@echo "report: reports/report.md   MLflow UI: make ui"

smoke: setup ## the whole pipeline at smoke scale (smoke profile, 14-subject roster) in .smoke/
	$(BIN)/deepfn smoke-project .smoke
	cd .smoke && $(BIN)/dvc repro
	@echo "report: .smoke/reports/report.md   MLflow UI: make ui STORE=.smoke/mlruns"

test: setup-dev ## run the test suite
	$(BIN)/pytest -q

test-fast: setup-dev ## the suite without the end-to-end dvc repro tests
	$(BIN)/pytest -q -m "not slow"

lint: setup-dev ## ruff
	$(BIN)/ruff check deepfn pipelines tests benchmarks

ui: setup ## MLflow UI on http://127.0.0.1:5000 (bound to loopback); prints each experiment's runs link
	@$(BIN)/python -m deepfn.tracking.ui --uri sqlite:///$(STORE)/mlflow.db --base http://127.0.0.1:5000
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui \
		--backend-store-uri sqlite:///$(STORE)/mlflow.db --host 127.0.0.1 --port 5000

dashboard: setup ## optuna-dashboard on the default study storage (http://127.0.0.1:8080)
	$(BIN)/optuna-dashboard --host 127.0.0.1 --port 8080 .optuna/journal.log

bench: setup ## benchmarks -> benchmarks/results/*.json
	$(BIN)/python benchmarks/bench_render.py
	$(BIN)/python benchmarks/bench_normalizer.py
	$(BIN)/python benchmarks/bench_trainer.py

clean: ## remove generated data, models, reports and the MLflow store (keeps .venv)
	rm -rf data models results reports/normalization reports/figures reports/plots mlruns .deepfn .optuna .smoke
