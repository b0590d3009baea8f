# Two commands do all the set-up on a fresh machine (Python >= 3.10):
#   make demo   - create .venv if missing, install, run the main job on the embedded demo corpus
#   make test   - create .venv if missing, install, run the whole test suite
#   make docs   - the documentation site (MkDocs), built strictly into site/
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.cl-spoof-installed

.PHONY: demo test lint bench docs clean-venv

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "cl-spoof needs Python >= 3.10")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cl-spoof demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto  # one worker per core (pytest-xdist)

lint: $(STAMP)
	$(BIN)/ruff check cl_spoof tests benchmarks examples
	$(BIN)/mypy

DOCS_STAMP := $(VENV)/.cl-spoof-docs-installed

$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	@touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)  # pages generated from the code and benchmarks/results/, then the site
	$(BIN)/python docs/gen_pages.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: $(STAMP)  # every speed benchmark of benchmarks/speed/ (benchmarks/README.md)
	$(BIN)/python -m benchmarks.run_all

clean-venv:
	rm -rf $(VENV)
