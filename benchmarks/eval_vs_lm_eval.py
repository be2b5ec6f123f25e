"""odyssey evaluate vs lm-evaluation-harness on real text with the shipped base model.

Workloads, test splits of the default world (``$ODYSSEY_HOME/world``, else
``~/.cache/odyssey/world``; ``--world`` another):

- ``wiki-arts``: short documents (Wikipedia lead paragraphs of the topic Arts);
- ``general``: long documents, many longer than a window (the general corpus).

Both sides compute the same windows: stride = window = the model's maximum positions
(disjoint windows, lm-eval's only setting for rolling loglikelihoods, ``context_len=1``;
the last window of a long document reaches back a full window, in both), the same batch
size (windows per forward pass), fp32, the same torch threads. Per workload it prints
both bits per byte and their relative difference (they must agree to ``--tolerance``;
the script exits 1 otherwise), and two timings, medians of ``--repeats`` after one
warm-up, alternating the sides:

- whole process: a fresh ``odyssey evaluate`` vs ``lm-eval run`` (model ``hf``, a
  ``loglikelihood_rolling`` task over the same local JSONL file, offline);
- in process: ``evaluate_documents`` vs ``HFLM.loglikelihood_rolling`` on the model
  each has already loaded (tokenization included on both sides);

and each side's achieved GFLOP/s as a fraction of the machine's fp32 matmul rate,
measured in the same run (see ``bench_common``: the FLOPs of the work each side does;
lm-eval computes the LM head on every forwarded position, odyssey on the scored ones).

The README's figures, on a quiet machine (about 8 minutes on 2 cores):

    python benchmarks/eval_vs_lm_eval.py --repeats 3 --json eval-speed.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as bc  # noqa: E402

os.environ.update(bc.OFFLINE_ENV)
WORKLOADS = {"wiki-arts": ("wiki-arts", "test"), "general": ("general", "test")}


@dataclass
class Workload:
    name: str
    docs: list[dict]
    data_file: Path
    task: str


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", choices=[*WORKLOADS, "both"], default="both")
    ap.add_argument("--max-tokens", type=int, help="only the leading documents up to this many tokens "
                    "(smoke runs); default: the whole split")
    ap.add_argument("--world", help="world directory (default: the default world)")
    ap.add_argument("--model", help="model directory (default: the shipped default base)")
    ap.add_argument("--batch-size", type=int, default=16, help="windows per forward pass, both sides "
                    "(16: the study's test evaluations)")
    bc.add_common_args(ap, tolerance=1e-6, tolerance_help="largest relative difference of the bits per byte accepted")
    return ap.parse_args(argv)


def write_task(task_dir: Path, task: str, data_file: Path) -> None:
    """A loglikelihood_rolling task over a local JSONL file; the target is the raw text."""
    task_dir.mkdir(parents=True, exist_ok=True)
    (task_dir / f"{task}.yaml").write_text(f"""task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data_file}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: text
metric_list:
  - metric: bits_per_byte
    aggregation: bits_per_byte
    higher_is_better: false
metadata:
  version: 1.0
""")


def prepare(name: str, args, tokenizer, world: Path, work: Path) -> Workload:
    from odyssey.io import write_jsonl

    corpus, split = WORKLOADS[name]
    docs = bc.leading_documents(bc.read_split(world, corpus, split), tokenizer, args.max_tokens)
    data_file = work / f"{name}.jsonl"
    write_jsonl(data_file, docs)
    task = "odyssey_bench_" + name.replace("-", "_")
    write_task(work / "tasks", task, data_file)
    return Workload(name, docs, data_file, task)


def lm_eval_requests(workload: Workload, task_manager) -> list:
    """lm-eval's own requests for the task; its targets must be the raw documents."""
    from lm_eval.api.instance import Instance

    task = task_manager.load([workload.task])["tasks"][workload.task]
    docs = list(task.test_docs())
    targets = [task.doc_to_target(d) for d in docs]
    if targets != [d["text"] for d in workload.docs]:
        sys.exit(f"lm-eval's targets of {workload.task} are not the raw documents")
    return [Instance("loglikelihood_rolling", d, (t,), i) for i, (d, t) in enumerate(zip(docs, targets, strict=True))]


def in_process_sides(model, tokenizer, hflm, requests, workload: Workload, cfg) -> dict:
    from odyssey.evaluate import evaluate_documents

    def odyssey():
        t = time.perf_counter()
        result = evaluate_documents(model, tokenizer, workload.docs, cfg)
        return time.perf_counter() - t, result

    def lm_eval():
        t = time.perf_counter()
        lls = hflm.loglikelihood_rolling(requests, disable_tqdm=True)
        return time.perf_counter() - t, lls

    return {"odyssey": odyssey, "lm-eval": lm_eval}


def whole_process_sides(model_dir: Path, workload: Workload, args, L: int, work: Path) -> dict:
    """Fresh CLI processes; each returns (wall seconds, bits per byte it printed or wrote)."""
    env = bc.thread_env(args.threads)
    env["HF_DATASETS_CACHE"] = str(work / "hf-datasets")
    odyssey_argv = [bc.executable("odyssey"), "evaluate", "--model", str(model_dir), "--data",
                    str(workload.data_file), "--context-length", str(L), "--stride", str(L),
                    "--batch-size", str(args.batch_size), "--no-progress", "--json"]
    out = work / f"lm-eval-out-{workload.name}"
    lm_eval_argv = [bc.executable("lm-eval"), "run", "--model", "hf", "--model_args",
                    f"pretrained={model_dir},dtype=float32", "--tasks", workload.task, "--include_path",
                    str(work / "tasks"), "--batch_size", str(args.batch_size), "--device", "cpu",
                    "--output_path", str(out)]

    def odyssey():
        seconds, stdout = bc.run_process(odyssey_argv, env)
        return seconds, json.loads(stdout.strip().splitlines()[-1])["bits_per_byte"]

    def lm_eval():
        shutil.rmtree(out, ignore_errors=True)
        seconds, _ = bc.run_process(lm_eval_argv, env)
        results = json.loads(next(out.rglob("results_*.json")).read_text())["results"]
        return seconds, results[workload.task]["bits_per_byte,none"]

    return {"odyssey": odyssey, "lm-eval": lm_eval}


def eval_flops(shape: bc.ModelShape, token_counts: list[int], L: int) -> dict[str, int]:
    """FLOPs of each side: the same windows; the LM head on scored positions (odyssey) or
    on every forwarded position (lm-eval's model call)."""
    from odyssey.evaluate import rolling_windows

    windows = [w for n in token_counts for w in rolling_windows(n, L, L)]
    lengths = [w.n_inputs for w in windows]
    return {"odyssey": bc.forward_flops(shape, lengths, sum(w.n_scored for w in windows)),
            "lm-eval": bc.forward_flops(shape, lengths, sum(lengths)), "windows": len(windows),
            "forwarded_tokens": sum(lengths)}


def agreement(result, lls: list[float]) -> dict:
    """Bits per byte of both sides (the same bytes) and their relative differences."""
    lm_bpb = -sum(lls) / math.log(2) / result.bytes
    per_doc = max(abs(-ll - d["nll_sum"]) / max(1e-12, abs(d["nll_sum"]))
                  for ll, d in zip(lls, result.per_document, strict=True))
    return {"odyssey": result.bits_per_byte, "lm-eval": lm_bpb,
            "relative_difference": abs(result.bits_per_byte - lm_bpb) / lm_bpb,
            "max_per_document_relative_difference": per_doc}


def run_workload(workload: Workload, loaded: dict, args, rate: float, work: Path) -> dict:
    from lm_eval.tasks import TaskManager

    from odyssey.evaluate import EvalConfig

    L = loaded["L"]
    cfg = EvalConfig(context_length=L, stride=L, batch_size=args.batch_size, progress=False)
    requests = lm_eval_requests(workload, TaskManager(include_path=str(work / "tasks"), include_defaults=False))
    sides = in_process_sides(loaded["model"], loaded["tokenizer"], loaded["hflm"], requests, workload, cfg)
    payloads, times = bc.interleaved(sides, args.repeats)
    result = payloads["odyssey"]
    flops = eval_flops(loaded["shape"], [d["tokens"] for d in result.per_document], L)
    report = {"documents": result.documents, "tokens": result.tokens, "bytes": result.bytes,
              "windows": flops["windows"], "forwarded_tokens": flops["forwarded_tokens"],
              "window": L, "batch_size": args.batch_size,
              "gflop": {side: flops[side] / 1e9 for side in sides},
              "bits_per_byte": agreement(result, payloads["lm-eval"]),
              "in_process": {side: bc.speed(times[side], flops[side], rate, result.tokens) for side in sides}}
    if not args.in_process_only:
        sides = whole_process_sides(loaded["model_dir"], workload, args, L, work)
        payloads, times = bc.interleaved(sides, args.repeats)
        report["whole_process"] = {side: bc.speed(times[side], flops[side], rate, result.tokens) for side in sides}
        bpb = payloads
        report["whole_process_bits_per_byte"] = {**bpb, "relative_difference":
                                                 abs(bpb["odyssey"] - bpb["lm-eval"]) / bpb["lm-eval"]}
    return report


def print_workload(name: str, r: dict) -> None:
    corpus, split = WORKLOADS[name]
    print(f"\n{corpus} {split}: {r['documents']} documents, {r['tokens']:,} tokens, {r['bytes']:,} bytes, "
          f"{r['windows']} windows of <= {r['window']} tokens, batch {r['batch_size']}")
    b = r["bits_per_byte"]
    print(f"  bits per byte: odyssey {b['odyssey']:.8f}, lm-eval {b['lm-eval']:.8f}, relative difference "
          f"{b['relative_difference']:.2e} (per document at most {b['max_per_document_relative_difference']:.2e})")
    print(f"  work: odyssey {r['gflop']['odyssey']:.1f} GFLOP, lm-eval {r['gflop']['lm-eval']:.1f} GFLOP")
    if "whole_process" in r:
        w = r["whole_process_bits_per_byte"]
        print(f"  whole-process bits per byte: odyssey {w['odyssey']:.8f}, lm-eval {w['lm-eval']:.8f}")
        bc.print_speeds("whole process (odyssey evaluate / lm-eval run, fresh CLI processes)",
                        r["whole_process"], "lm-eval")
    bc.print_speeds("in process (evaluate_documents / HFLM.loglikelihood_rolling, model loaded)",
                    r["in_process"], "lm-eval")


def load(model_dir: Path, args) -> dict:
    from lm_eval.models.huggingface import HFLM

    from odyssey.models import load_model, load_tokenizer, max_context

    tokenizer, model = load_tokenizer(str(model_dir)), load_model(str(model_dir))
    L = max_context(model)
    hflm = HFLM(pretrained=str(model_dir), dtype="float32", batch_size=args.batch_size, device="cpu")
    if hflm.max_length != L or hflm.prefix_token_id != tokenizer.eos_token_id:
        sys.exit(f"lm-eval's window ({hflm.max_length}, prefix {hflm.prefix_token_id}) is not odyssey's "
                 f"({L}, {tokenizer.eos_token_id})")
    return {"model_dir": model_dir, "tokenizer": tokenizer, "model": model, "hflm": hflm, "L": L,
            "shape": bc.model_shape(model)}


def disagreements(report: dict, tolerance: float) -> list[str]:
    bad = []
    for name, r in report["workloads"].items():
        for key in ("bits_per_byte", "whole_process_bits_per_byte"):
            if key in r and not r[key]["relative_difference"] <= tolerance:
                bad.append(f"{name} {key}: relative difference {r[key]['relative_difference']:.2e}")
    return bad


def main(argv=None) -> int:
    args = parse_args(argv)
    import datasets
    import lm_eval
    import torch
    from transformers.utils import logging as hf_logging

    from odyssey.corpora.world import default_world_dir
    from odyssey.models.presets import default_base_path

    torch.set_num_threads(args.threads)
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    work = Path(tempfile.mkdtemp(prefix="odyssey-eval-bench-"))
    os.environ["HF_DATASETS_CACHE"] = str(work / "hf-datasets")
    model_dir = Path(args.model) if args.model else default_base_path()
    world = Path(args.world) if args.world else default_world_dir()
    loaded = load(model_dir, args)
    rates = bc.matmul_rates(bc.matmul_shapes(loaded["shape"], args.batch_size * loaded["L"]), args.threads,
                              args.matmul_repeats)
    report = {"benchmark": "eval_vs_lm_eval", "argv": sys.argv[1:], "model": str(model_dir), "world": str(world),
              "lm_eval": lm_eval.__version__, "machine": bc.machine_info(args.threads), "matmul": rates,
              "model_shape": vars(loaded["shape"]), "workloads": {}}
    print(f"model {model_dir}: {loaded['shape']}\nlm-eval {lm_eval.__version__}, torch threads "
          f"{torch.get_num_threads()}, load average {os.getloadavg()}")
    bc.print_rate(rates)
    for name in WORKLOADS if args.workload == "both" else [args.workload]:
        workload = prepare(name, args, loaded["tokenizer"], world, work)
        report["workloads"][name] = run_workload(workload, loaded, args, rates["rate_gflops"], work)
        print_workload(name, report["workloads"][name])
    report["machine"]["load_average_at_end"] = os.getloadavg()
    report["machine"]["threads_at_end"] = torch.get_num_threads()
    bad = disagreements(report, args.tolerance)
    report["agree"] = not bad
    bc.write_report(args.json, report)
    shutil.rmtree(work, ignore_errors=True)
    if bad:
        print("DISAGREEMENT beyond", args.tolerance, "relative:", "; ".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
