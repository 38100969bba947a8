# Every target bootstraps .venv on first use; later runs skip the install (stamp file).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.aeflow-installed

.PHONY: run test test-fast lint format clean results server deploy worker bench-serve bench soak

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## Train a denoising lesson autoencoder on scikit-learn's digits (offline), export ONNX, track in MLflow.
run: $(STAMP)
	$(BIN)/aeflow run --preset lesson-denoise

## Lint, type-check and run the whole test suite (slow end-to-end tests included).
test: $(STAMP) lint
	$(BIN)/python -m pytest -q

## Unit tests only (skips the end-to-end flow tests).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

## Retrain every model kind on the MNIST subset and rewrite RESULTS.md (about an hour on 2 cores).
MNIST_ROOT ?= ../shared/data/mnist
results: $(STAMP)
	$(BIN)/python -m benchmarks.results --data-root $(MNIST_ROOT) $(if $(ONLY),--only $(ONLY))

## Training speed, pipeline overhead, inference engines, scaling → BENCHMARKS.md (~12 min on 2 cores).
## Uses the MNIST subset when BENCH_DATA holds MNIST/raw, else scikit-learn's digits (offline).
BENCH_DATA ?= ../shared/data/mnist
bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench --data-root $(BENCH_DATA) --out BENCHMARKS.md

## Serving speed: torch eager vs onnxruntime, and the HTTP service under load → BENCH_SERVE.md (about 2 min).
bench-serve: $(STAMP)
	$(BIN)/python -m benchmarks.serve --out BENCH_SERVE.md

## A bounded soak of `aeflow serve` (16 clients, 5 minutes; MINUTES=1 for a short one) → SOAK.md.
soak: $(STAMP)
	$(BIN)/python -m benchmarks.soak --out SOAK.md $(if $(MINUTES),--minutes $(MINUTES))

lint: $(STAMP)
	$(BIN)/ruff check components flows tests benchmarks
	$(BIN)/ruff format --check components flows tests benchmarks
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format components flows tests benchmarks
	$(BIN)/ruff check --fix components flows tests benchmarks

clean:
	rm -rf .cache .prefect mlflow.db mlflow.db-wal mlflow.db-shm mlflow.db.init-lock mlartifacts exported/*/ .pytest_cache .mypy_cache .ruff_cache

## Prefect + MLflow servers on 127.0.0.1 (schedules fire only with a server); Ctrl-C stops them.
server: $(STAMP)
	$(BIN)/aeflow server

## Register prefect.yaml's deployments (needs PREFECT_API_URL, e.g. http://127.0.0.1:4200/api).
deploy: $(STAMP)
	$(BIN)/aeflow deploy

## Run the work pool's flow runs on this machine.
worker: $(STAMP)
	$(BIN)/aeflow worker
