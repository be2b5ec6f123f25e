#!/usr/bin/env bash
# Wheels that odyssey's GPU checks need and this workplace's GPU machines lack.
#
# Those machines have a python3 with CUDA torch, triton, transformers, accelerate, numba,
# typer, rich, ... but no network at all, and lack pydantic (odyssey's configs) and
# lm-eval (the evaluation benchmark's baseline). Run this here (where PyPI is reachable),
# then send .whl/ (ignored by git) with the GPU call; scripts/gpu_checks.sh installs from
# it with --no-index. Versions: the ones installed in .venv; Python 3.12, x86-64 Linux.
#
#   scripts/gpu_wheels.sh          # -> .whl/*.whl (about 5 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ver() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl \
    "pydantic==$(ver pydantic)" "pydantic-core==$(ver pydantic_core)" "annotated-types==$(ver annotated-types)" \
    "typing-inspection==$(ver typing-inspection)" "dill==$(ver dill)" "lm-eval==$(ver lm_eval)"
ls -la .whl
du -sh .whl
