"""odyssey evaluate vs lm-evaluation-harness (``hf`` model, ``loglikelihood_rolling``).

Same model, same documents, same window (L = the model's max length, disjoint windows:
lm-eval's only setting for rolling loglikelihoods, ``context_len=1``, is odyssey's
stride L), same machine, same torch threads. Prints both bits-per-byte figures and
their relative difference, per-document agreement, median wall times and the ratio:

- end to end: ``lm_eval.simple_evaluate`` (model load, local-JSON task, evaluation)
  vs ``odyssey.evaluate.evaluate`` (model load, JSONL read, evaluation);
- core: ``HFLM.loglikelihood_rolling`` on the task's requests vs
  ``evaluate_documents`` on the loaded model (also with the CPU head's GEMM left to
  torch, to show how much of the gain is the OpenBLAS route and how much the rest).

The text is real: module docstrings of the Python standard library (read with ``ast``,
nothing imported). The default model is a random-initialized GPT-2 shape (4 layers,
hidden 256, GPT-2's max length 1024) with GPT-2's real tokenizer, built offline.

    python benchmarks/eval_vs_lm_eval.py --tokens 8000 --repeats 3
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

# Offline: HF datasets reads the local JSON task; nothing may reach the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TASK = "odyssey_bench_docs"


def stdlib_docstrings(max_tokens: int, tokenizer) -> list[dict]:
    """Module docstrings of the standard library, sorted by path, until ``max_tokens``."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs, total = [], 0
    for path in sorted(root.glob("*.py")):
        try:
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")), clean=True)
        except (SyntaxError, UnicodeDecodeError):
            continue
        if not doc or len(doc) < 40:
            continue
        docs.append({"id": path.name, "text": doc})
        total += len(tokenizer(doc, add_special_tokens=False, verbose=False).input_ids)
        if total >= max_tokens:
            break
    return docs


def build_model(out: Path, n_positions: int, seed: int = 0) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from odyssey.models.gpt2_tokenizer import gpt2_tokenizer

    tok = gpt2_tokenizer()
    torch.manual_seed(seed)
    # A wider init than GPT-2's 0.02 makes the random model's predictions depend on
    # the context, so that a window mismatch would show in the comparison.
    cfg = GPT2Config(vocab_size=len(tok), n_embd=256, n_layer=4, n_head=4, n_positions=n_positions,
                     initializer_range=0.1, bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def write_task(task_dir: Path, data_file: Path) -> None:
    """A loglikelihood_rolling task over a local JSONL file; the target is the raw text."""
    task_dir.mkdir(parents=True, exist_ok=True)
    (task_dir / f"{TASK}.yaml").write_text(f"""task: {TASK}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data_file}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: text
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
metadata:
  version: 1.0
""")


def interleaved(fns: dict, repeats: int, warm_ups: dict | None = None) -> tuple[dict, dict]:
    """Untimed warm-up calls (one-time library setup), then ``repeats`` rounds alternating
    between ``fns``, so that a busy neighbour on a shared machine slows all sides alike."""
    for fn in (warm_ups or {}).values():
        fn()
    outs = {}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            outs[name] = fn()
            times[name].append(time.perf_counter() - t)
    return outs, times


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="local HF model directory (default: build a random GPT-2 shape)")
    ap.add_argument("--tokens", type=int, default=8000, help="about this many target tokens of text")
    ap.add_argument("--max-length", type=int, default=1024, help="n_positions of the built model (GPT-2's)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for both sides (1 is steadiest on a shared machine)")
    ap.add_argument("--skip-end-to-end", action="store_true")
    return ap.parse_args(argv)


def time_core(model, tok, docs, cfg, hflm, requests, repeats: int) -> tuple[dict, dict]:
    """``HFLM.loglikelihood_rolling`` vs ``evaluate_documents`` (twice: as shipped, and
    with the CPU head's GEMM left to torch, to show what the OpenBLAS route adds)."""
    from odyssey.evaluate import evaluate_documents
    from odyssey.evaluate import nll as nll_mod

    def odyssey_torch_gemm():
        wrap = nll_mod._CpuHead.wrap
        nll_mod._CpuHead.wrap = staticmethod(lambda head, device, rows: head)
        try:
            return evaluate_documents(model, tok, docs, cfg)
        finally:
            nll_mod._CpuHead.wrap = wrap

    return interleaved(
        {"lm-eval": lambda: hflm.loglikelihood_rolling(requests, disable_tqdm=True),
         "odyssey": lambda: evaluate_documents(model, tok, docs, cfg),
         "odyssey, torch GEMM": odyssey_torch_gemm},
        repeats,
        warm_ups={"lm-eval": lambda: hflm.loglikelihood_rolling(requests[:3], disable_tqdm=True),
                  "odyssey": lambda: evaluate_documents(model, tok, docs[:3], cfg)})


def time_end_to_end(model_dir, data_file, cfg, task_manager, batch_size: int, repeats: int):
    import lm_eval

    from odyssey.evaluate import evaluate

    def run_lm_eval():
        return lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={model_dir},dtype=float32",
                                       tasks=[TASK], batch_size=batch_size, device="cpu",
                                       task_manager=task_manager, log_samples=False)

    return interleaved({"lm-eval": run_lm_eval,
                        "odyssey": lambda: evaluate(str(model_dir), str(data_file), cfg)}, repeats)


def main(argv=None) -> int:
    args = parse_args(argv)
    import lm_eval
    import torch
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from transformers.utils import logging as hf_logging

    from odyssey.evaluate import EvalConfig, evaluate_documents
    from odyssey.io import write_jsonl
    from odyssey.models import load_model, load_tokenizer, max_context

    torch.set_num_threads(args.threads)
    hf_logging.disable_progress_bar()
    work = Path(tempfile.mkdtemp(prefix="odyssey-bench-"))
    os.environ.setdefault("HF_DATASETS_CACHE", str(work / "hf-datasets"))
    model_dir = Path(args.model) if args.model else build_model(work / "model", args.max_length)
    tok, model = load_tokenizer(model_dir), load_model(model_dir)
    L = max_context(model)
    docs = stdlib_docstrings(args.tokens, tok)
    data_file = work / "docs.jsonl"
    write_jsonl(data_file, docs)
    write_task(work / "tasks", data_file)
    task_manager = TaskManager(include_path=str(work / "tasks"))
    cfg = EvalConfig(context_length=L, stride=L, batch_size=args.batch_size, progress=False)
    print(f"model {model_dir} (max length {L}), {len(docs)} documents, "
          f"{sum(len(d['text'].encode()) for d in docs):,} bytes, torch threads {torch.get_num_threads()}, "
          f"batch size {args.batch_size}, lm-eval {lm_eval.__version__}, load average {os.getloadavg()}",
          flush=True)

    # lm-eval's own view of the task: its targets must be the raw documents
    task = lm_eval.tasks.get_task_dict([TASK], task_manager)[TASK]
    task_docs = list(task.test_docs())
    targets = [task.doc_to_target(d) for d in task_docs]
    assert targets == [d["text"] for d in docs], "lm-eval's targets are not the raw documents"
    hflm = HFLM(pretrained=str(model_dir), dtype="float32", batch_size=args.batch_size, device="cpu")
    assert hflm.max_length == L and hflm.prefix_token_id == tok.eos_token_id
    requests = [Instance("loglikelihood_rolling", d, (t,), i)
                for i, (d, t) in enumerate(zip(task_docs, targets, strict=True))]

    outs, core = time_core(model, tok, docs, cfg, hflm, requests, args.repeats)
    lm_ll, od = outs["lm-eval"], outs["odyssey"]
    n_bytes = sum(len(t.encode("utf-8")) for t in targets)
    per_doc = max(abs(-a - b["nll_sum"]) / max(1e-9, abs(b["nll_sum"]))
                  for a, b in zip(lm_ll, od.per_document, strict=True))
    half = evaluate_documents(model, tok, docs, cfg.model_copy(update={"stride": L // 2}))
    e2e, lm_metrics, od_res = {}, {}, od
    if not args.skip_end_to_end:
        outs, e2e = time_end_to_end(model_dir, data_file, cfg, task_manager, args.batch_size, args.repeats)
        lm_metrics, od_res = outs["lm-eval"]["results"][TASK], outs["odyssey"]
    lm_bpb = lm_metrics.get("bits_per_byte,none", -sum(lm_ll) / math.log(2) / n_bytes)

    med = statistics.median
    rows = {
        "tokens (odyssey)": od.tokens,
        "bytes": n_bytes,
        "lm-eval bits_per_byte": lm_bpb,
        "lm-eval byte_perplexity": lm_metrics.get("byte_perplexity,none"),
        "lm-eval word_perplexity": lm_metrics.get("word_perplexity,none"),
        "odyssey bits_per_byte": od_res.bits_per_byte,
        "odyssey token perplexity": od_res.perplexity,
        "bits_per_byte rel. difference": abs(od_res.bits_per_byte - lm_bpb) / lm_bpb,
        "max per-document NLL rel. difference": per_doc,
        f"context sensitivity: token ppl at stride {L // 2} vs {L}": half.perplexity / od.perplexity - 1,
        "core median s  lm-eval loglikelihood_rolling": med(core["lm-eval"]),
        "core median s  odyssey evaluate_documents": med(core["odyssey"]),
        "core speed-up": med(core["lm-eval"]) / med(core["odyssey"]),
        "core median s  odyssey, head GEMM left to torch": med(core["odyssey, torch GEMM"]),
        "core speed-up, head GEMM left to torch": med(core["lm-eval"]) / med(core["odyssey, torch GEMM"]),
    }
    if e2e:
        rows.update({
            "end-to-end median s  lm_eval.simple_evaluate": med(e2e["lm-eval"]),
            "end-to-end median s  odyssey evaluate": med(e2e["odyssey"]),
            "end-to-end speed-up": med(e2e["lm-eval"]) / med(e2e["odyssey"]),
        })
    width = max(len(k) for k in rows)
    for k, v in rows.items():
        print(f"{k:<{width}}  {v:.6g}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    print("raw times (s):", json.dumps({**{f"core {k}": v for k, v in core.items()},
                                        **{f"end-to-end {k}": v for k, v in e2e.items()}}))
    print(f"torch threads at the end {torch.get_num_threads()}, load average {os.getloadavg()}")
    ok = rows["bits_per_byte rel. difference"] < 1e-3 and per_doc < 1e-3
    print("agreement < 0.1%:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
