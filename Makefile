# vaekit: every target does its own set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
RUN ?= runs/demo

.PHONY: setup data test demo lint bench clean help

help:  ## list the targets
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup: $(STAMP)  ## create .venv and install vaekit with the pinned versions

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned, so that nothing pulls the multi-GB CUDA build
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

data: setup  ## make Fashion-MNIST available (cache, Debian package, or download)
	@bash scripts/fetch-data.sh $(PY)

test: setup data  ## run the whole test suite
	@bash scripts/test-deps.sh
	$(PY) -m pytest -q

demo: setup data  ## the main job: train a VAE on Fashion-MNIST and report
	@bash scripts/demo.sh $(PY) $(RUN)

lint: setup  ## ruff and mypy
	$(PY) -m ruff check src tests bench
	$(PY) -m mypy

bench: setup data  ## benchmarks against peers and the compute bound (not run by CI)
	$(PY) bench/train_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
