# neurocredit: `make demo` and `make test` build the virtual environment when it is missing.
SHELL := /bin/bash
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# A Python 3.10 interpreter: PYTHON=... wins, then python3.10 on PATH, then pyenv's 3.10.x.
PYTHON ?= $(shell for c in python3.10 $$(ls -d $$(pyenv root 2>/dev/null)/versions/3.10*/bin/python3.10 2>/dev/null | sort -V | tail -1); do \
	  if $$c -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then echo $$c; break; fi; done)

.PHONY: venv demo test clean-venv

# Test processes (pytest-xdist): one per core, at most 4 (each imports torch, Lava and Brian2).
TEST_WORKERS ?= auto

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@if [ -z "$(PYTHON)" ]; then \
	  echo "error: neurocredit needs Python 3.10 (lava-nc 0.10.0 supports only 3.10) and none was found." >&2; \
	  echo "Install it (e.g. 'pyenv install 3.10.13', or your distribution's python3.10 + python3.10-venv)," >&2; \
	  echo "or point to one: make PYTHON=/path/to/python3.10 ..." >&2; exit 2; fi
	@echo "Building $(VENV) with $(PYTHON) (first time: several minutes; torch brings ~5 GB of CUDA libraries)"
	@[ -x $(VPY) ] || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip setuptools wheel
	$(VPY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VPY) -m neurocredit.demo

test: $(STAMP)
	$(VPY) -m pytest -q --durations=15 -n $(TEST_WORKERS) --maxprocesses 4 tests

clean-venv:
	rm -rf $(VENV)
