#!/usr/bin/env bash
# Every GPU check and benchmark of odyssey in one run: about 7 minutes on one H100.
#
#   scripts/gpu_checks.sh [OUT_DIR]        # default: $OUT, else gpu-results/
#
# Writes into OUT_DIR (5 files, as the device tool brings back at most 8):
#   summary.txt   one line per step: name, exit status, seconds
#   checks.log    every step's output (nvidia-smi, versions, tests, benchmark tables)
#   lmul.json     benchmarks/lmul_matmul_gpu.py: Triton L-Mul vs torch fp32 (TF32 off)
#   train.json    benchmarks/gpu_train_vs_trainer.py: odyssey adapt vs HF Trainer (+ compiled loops)
#   eval.json     benchmarks/gpu_eval_throughput.py: odyssey evaluate vs lm-eval vs training
#
# Each step has its own timeout and a failed step does not stop the others; the exit
# status is the number of failed steps.
#
# Python: the first of $PYTHON, .venv/bin/python, python3 whose torch sees a CUDA device.
# odyssey runs from src/ (PYTHONPATH), so nothing needs installing but what the image
# lacks. This workplace's GPU machines have CUDA torch, triton, transformers and accelerate
# but no network: send the wheels of what they lack with the call (scripts/gpu_wheels.sh
# writes them to .whl/, installed here with --no-index). Elsewhere, with PyPI reachable
# (an assumption to check on a new machine), missing packages are pip-installed instead;
# on a machine with a GPU but no CUDA torch, the script builds a venv outside the
# repository (/tmp/odyssey-gpu-venv: the project's .venv keeps its CPU torch) with
# `pip install torch` (PyPI's Linux wheel is the CUDA build) and odyssey.
#
# GPU_CHECKS_SMOKE=1 runs the same steps on a machine without a GPU, tiny (the benchmarks'
# --smoke, the GPU tests in Triton's CPU interpreter): a check of this script itself.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-gpu-results}}
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/checks.log"
SUMMARY="$OUT_DIR/summary.txt"
: >"$LOG"
: >"$SUMMARY"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
STARTED=$(date +%s)

has_cuda_torch() { "$1" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" >/dev/null 2>&1; }

PY=""
SMOKE=()
if [ "${GPU_CHECKS_SMOKE:-0}" = 1 ]; then
    PY=${PYTHON:-.venv/bin/python}
    SMOKE=(--smoke)
    export TRITON_INTERPRET=1
fi
for candidate in "${PYTHON:-}" .venv/bin/python python3; do
    [ -n "$PY" ] && break
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 && has_cuda_torch "$candidate"; then
        PY=$candidate
    fi
done
if [ -z "$PY" ] && command -v nvidia-smi >/dev/null 2>&1; then  # a GPU but no CUDA torch: PyPI's
    VENV=/tmp/odyssey-gpu-venv
    echo "no python with CUDA torch; building $VENV with pip install torch (needs PyPI)" | tee -a "$LOG"
    { python3 -m venv "$VENV" && timeout 900 "$VENV/bin/pip" install -q torch \
        && timeout 600 "$VENV/bin/pip" install -q --no-deps -r requirements-nodeps.txt \
        && timeout 600 "$VENV/bin/pip" install -q -e ".[dev]"; } >>"$LOG" 2>&1
    has_cuda_torch "$VENV/bin/python" && PY=$VENV/bin/python
fi
if [ -z "$PY" ]; then
    echo "no CUDA device or no CUDA build of torch: nothing to check" | tee -a "$LOG" "$SUMMARY"
    exit 1
fi

# What the image lacks, from .whl/ (no network) or PyPI.
SITE=/tmp/odyssey-gpu-site
export PYTHONPATH="$PWD/src:$SITE${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c "import pydantic, lm_eval" >/dev/null 2>&1; then
    if ls .whl/*.whl >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
            >>"$LOG" 2>&1
    else
        timeout 180 "$PY" -m pip install -q --target "$SITE" pydantic "lm-eval>=0.4.5" >>"$LOG" 2>&1
    fi
fi

FAILED=0
SCALE=1
[ ${#SMOKE[@]} -gt 0 ] && SCALE=4  # a CPU is slower at everything, even at tiny sizes
step() {  # step NAME SECONDS COMMAND...: run with a timeout, log, record status and time
    local name=$1 limit=$(($2 * SCALE)) t0 rc
    shift 2
    t0=$(date +%s)
    echo "===== $name (limit ${limit}s): $*" >>"$LOG"
    timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
    rc=$?
    [ $rc -ne 0 ] && FAILED=$((FAILED + 1))
    printf '%-12s rc=%-3s %4ss\n' "$name" "$rc" "$(($(date +%s) - t0))" | tee -a "$SUMMARY"
}

step env 30 bash -c "(nvidia-smi || true); $PY -c 'import sys, torch, triton, transformers, accelerate, pydantic; \
print(\"python\", sys.version.split()[0], \"torch\", torch.__version__, \"cuda\", torch.version.cuda, \
\"triton\", triton.__version__, \"transformers\", transformers.__version__, \"accelerate\", accelerate.__version__); \
print(torch.cuda.get_device_name() if torch.cuda.is_available() else \"no CUDA device\")'"
# GPU tests: the Triton L-Mul kernel bit for bit against the CPU kernel, and a patched model on CUDA.
step gpu-tests 100 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/lmul/test_lmul_triton.py
step lmul-bench 80 "$PY" benchmarks/lmul_matmul_gpu.py --repeats 10 --json "$OUT_DIR/lmul.json" "${SMOKE[@]}"
step train-bench 190 "$PY" benchmarks/gpu_train_vs_trainer.py --timeout 100 --json "$OUT_DIR/train.json" "${SMOKE[@]}"
step eval-bench 80 "$PY" benchmarks/gpu_eval_throughput.py --train-json "$OUT_DIR/train.json" \
    --json "$OUT_DIR/eval.json" "${SMOKE[@]}"

echo "total $(($(date +%s) - STARTED)) s, $FAILED step(s) failed" | tee -a "$SUMMARY"
exit "$FAILED"
