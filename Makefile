# deepfn — the same targets a person types are the ones CI runs.
#   make run    install into .venv, then `dvc repro` on the default profile
#   make test   install dev deps, run the test suite
#   make help   every target
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STORE ?= mlruns
# Stages call `python`/`dvc`: make them the venv's.
export PATH := $(BIN):$(PATH)
export MPLBACKEND := Agg
# Ray (compute.engine: ray, the tests' local cluster) sends no usage statistics
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: help setup setup-dev setup-cluster run smoke test test-fast lint typecheck params-doc ui \
	dashboard bench clean gpu-check tracking-server tracking-server-stop

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# torch: the build the package index serves (PyPI's Linux x86_64 wheel is the CUDA build, which
# also runs on a CPU).  For the small CPU-only build on a machine without a GPU:
#   make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
TORCH_PIN = $(shell grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')

$(VENV)/.installed: pyproject.toml
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found; install Python 3.11 or run make PY=python3"; exit 2; }
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/pip install -q "$(TORCH_PIN)" --index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e .
	$(BIN)/python -m deepfn.compute
	touch $@

# the tests run a local Ray cluster: dev tools + the cluster extra
$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[dev,cluster]"
	touch $@

$(VENV)/.installed-cluster: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[cluster]"
	touch $@

$(VENV)/.installed-dashboard: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[dashboard]"
	touch $@

setup: $(VENV)/.installed ## create .venv and install the pinned dependencies

setup-dev: $(VENV)/.installed-dev ## setup + the dev tools (pytest, ruff, mypy) and Ray

setup-cluster: $(VENV)/.installed-cluster ## setup + Ray, for compute.engine: ray (docs/cluster.md)

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

lint: setup-dev ## ruff on deepfn, pipelines, tests, benchmarks, research
	$(BIN)/ruff check deepfn pipelines tests benchmarks research

typecheck: setup-dev ## mypy, strict on deepfn/ (config: [tool.mypy] in pyproject.toml)
	$(BIN)/mypy

params-doc: setup ## regenerate docs/params.md from the settings' field descriptions
	$(BIN)/python -m deepfn.config.docs --out docs/params.md

ui: setup ## MLflow UI on http://127.0.0.1:5000 (bound to loopback); prints each experiment's runs link
	@$(BIN)/python -m deepfn.tracking.ui --uri sqlite:///$(STORE)/mlflow.db --base http://127.0.0.1:5000
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui \
		--backend-store-uri sqlite:///$(STORE)/mlflow.db --host 127.0.0.1 --port 5000

# `make tracking-server`: MLflow on PostgreSQL for many writers (deepfn/tracking/server.py).
TRACKING_DIR ?= .tracking
TRACKING_HOST ?= 127.0.0.1
TRACKING_PORT ?= 5001
TRACKING_PG_PORT ?= 5433
tracking-server: setup ## MLflow server + PostgreSQL on 127.0.0.1:5001 (foreground, Ctrl-C stops); prints MLFLOW_TRACKING_URI
	$(BIN)/python -m deepfn.tracking.server --root $(TRACKING_DIR) --host $(TRACKING_HOST) \
		--port $(TRACKING_PORT) --pg-port $(TRACKING_PG_PORT)

tracking-server-stop: setup ## stop a tracking server left running in .tracking (started with &, or killed)
	$(BIN)/python -m deepfn.tracking.server --root $(TRACKING_DIR) --stop

dashboard: $(VENV)/.installed-dashboard ## optuna-dashboard on .optuna/journal.log (http://127.0.0.1:8080)
	@test -f .optuna/journal.log || { echo "error: .optuna/journal.log not found; run a study first (docs/tuning.md)"; exit 2; }
	$(BIN)/optuna-dashboard --host 127.0.0.1 --port 8080 .optuna/journal.log

bench: setup ## benchmarks -> benchmarks/results/*.json
	$(BIN)/python benchmarks/bench_render.py
	$(BIN)/python benchmarks/bench_normalizer.py
	$(BIN)/python benchmarks/bench_trainer.py

# `git clean -X` removes only git-ignored files, so tracked ones (mlruns/README.md) stay; -ff also
# removes the nested git repository of .smoke/
clean: ## remove generated data, models, reports and the MLflow store (keeps .venv)
	git clean -ffdXq -- data models results reports/normalization reports/figures reports/plots \
		reports/tuning mlruns .deepfn .optuna .smoke .smoke.tmp .tracking

gpu-check: ## GPU check (<= 8 min) -> benchmarks/results/gpu_check.json; torch + numpy suffice; ARGS="--device cpu --tiny" on a CPU
	python3 benchmarks/gpu_check.py $(ARGS)
