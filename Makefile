# samlab: `make lab` to learn, `make test` to check, `make bench` to measure.
# Every target installs what it needs into .venv first; stamps make re-runs instant
# until pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LAB_ARGS ?=
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help lab test bench gpu-check notebooks exercises clean distclean

help: ## list the targets
	@echo "make <target>   (extra arguments: LAB_ARGS='...', PYTEST_ARGS='...')"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

# An existing .venv (made by hand or by an older Makefile) is kept, not rebuilt.
$(VENV)/.stamp-venv:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	touch $@

$(VENV)/.stamp-lab: pyproject.toml $(VENV)/.stamp-venv
	$(BIN)/python -m pip install -e '.[lab]'
	touch $@

# The test extra includes the lab extra, so it satisfies the lab stamp too.
$(VENV)/.stamp-test: pyproject.toml $(VENV)/.stamp-venv
	$(BIN)/python -m pip install -e '.[test]'
	touch $(VENV)/.stamp-lab $@

# Jupyter refuses to start as root unless told; containers and CI machines often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(VENV)/.stamp-lab ## start JupyterLab on notebooks/ (token auth on; saving strips outputs)
	$(BIN)/jupyter lab --notebook-dir=notebooks --config=jupyter_server_config.py $(ROOT_FLAG) $(LAB_ARGS)

test: $(VENV)/.stamp-test ## ruff, then pytest (all tests, notebooks included)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.stamp-test ## run the benchmarks; results go to benchmarks/results/
	$(BIN)/python -m benchmarks

# PY=python3 runs it with an interpreter as it is (a lent GPU machine: its own torch, no
# network, the rest from benchmarks/gpu_bundle.py), without making .venv. GPU_ARGS: more
# arguments (python -m benchmarks gpu --help).
PY ?=
GPU_ARGS ?=
gpu-check: $(if $(PY),,$(VENV)/.stamp-test) ## time the GPU half in ~6 min (without CUDA: a dry run); benchmarks/results/gpu.json
	$(or $(PY),$(BIN)/python) -m benchmarks gpu $(GPU_ARGS)

notebooks: $(VENV)/.stamp-test ## re-pair every notebooks/NN_name.py with its .ipynb (after editing the .py)
	$(VENV)/bin/jupytext --sync notebooks/[0-9][0-9]_*.py

exercises: $(VENV)/.stamp-lab ## write student copies of the notebooks into student/ (solutions replaced by stubs)
	$(BIN)/python -m samlab.exercises.handout --out student notebooks/[0-9][0-9]_*.py

clean: ## remove build artefacts, caches and test artifacts (keeps .venv)
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache tests/artifacts
	find . -path ./$(VENV) -prune -o -type d \( -name __pycache__ -o -name .ipynb_checkpoints \) \
		-prune -exec rm -rf {} +

distclean: clean ## clean, and remove .venv
	rm -rf $(VENV)
