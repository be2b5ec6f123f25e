# Two entry points a newcomer needs: `make study` (main job) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup study test lint clean

setup: $(STAMP)

# torch is pinned first so that the CPU build is taken (a bare `torch` may pull a
# multi-GB CUDA build); `torch>=2.4` in pyproject then installs nothing more.
$(STAMP): pyproject.toml requirements-nodeps.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

study: $(STAMP)
	$(BIN)/odyssey study

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
