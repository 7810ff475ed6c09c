# Two commands do all setup on a fresh machine:
#   make demo   -> the end-to-end demo on the embedded procedural scenes
#   make test   -> the test suite
# Both create or refresh .venv idempotently: the install step re-runs only when
# pyproject.toml changes (or the venv is missing).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUTPUT ?= demo-output

.PHONY: demo test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch==2.13.0 first: it is the CPU build in pip's find-links here, and once it is in,
# the project's wider torch range is already satisfied (no multi-GB CUDA wheel).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/scenegan demo --output $(DEMO_OUTPUT)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/imaging.py

clean:
	rm -rf $(VENV) $(DEMO_OUTPUT) .pytest_cache .ruff_cache

# --- Google Cloud (deploy/; settings from the environment, see deploy/config.sh) ----------
# DRY_RUN=1 make <target> prints the exact commands instead of running them.
# make dataflow-ingest ARGS="input=gs://b/photos/* domain=photo output=gs://b/dataset"
# make dataflow-stylize ARGS="model=gs://b/registry/painting/latest input=gs://b/in/* output=gs://b/out"
.PHONY: image templates dataflow-ingest dataflow-stylize train-vertex nightly

image:
	deploy/build_image.sh

templates: $(STAMP)
	PYTHON=$(BIN)/python deploy/build_templates.sh

dataflow-ingest:
	deploy/run_dataflow.sh ingest $(ARGS)

dataflow-stylize:
	deploy/run_dataflow.sh stylize $(ARGS)

train-vertex: $(STAMP)
	SCENEGAN=$(BIN)/scenegan deploy/submit_training.sh $(ARGS)

nightly: $(STAMP)
	PYTHON=$(BIN)/python deploy/nightly/schedule.sh
