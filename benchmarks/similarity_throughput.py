"""Throughput and peak memory of the non-embedding similarity measures.

odyssey's streaming pass (word counter + a fixed-size Bloom filter of word n-gram
hashes, :mod:`odyssey.analysis.similarity`) against what a user would otherwise
write: exact Python sets of n-gram tuples and a ``Counter``. Both read the same text
with the same word tokenizer and compute the same measures (unigram JS divergence,
n-gram overlap for n=1..4, rare-word rate). Each method runs in its own subprocess so
its peak RSS is its own.

Text: the default world (``odyssey world build``): the general corpus's train split
as the reference (capped by ``--max-mb``), every domain's train split as data.

    nice -n 19 python benchmarks/similarity_throughput.py --max-mb 5

Prints MB/s of the reference pass and of the data pass for both methods, the ratio,
peak memory, and the largest difference between the two methods' measures (the Bloom
filter can only over-count the overlap, by at most its false-positive rate).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections import Counter


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _world(path: str | None) -> dict:
    from odyssey.corpora.world import build_world, load_world

    try:
        return load_world(path)
    except Exception:  # not built yet: build it (seconds)
        return build_world(path, progress=False)


def _texts(spec: str, max_bytes: int | None) -> list[str]:
    from odyssey.analysis.similarity import iter_texts

    return list(iter_texts(spec, "train", max_bytes))


def run_odyssey(ref_texts: list[str], domains: dict[str, list[str]], orders: list[int]) -> dict:
    """The library's own passes, fed from memory so that only the measures are timed."""
    import importlib

    sim = importlib.import_module("odyssey.analysis.similarity")
    from odyssey.analysis.config import SimilarityConfig

    cfg = SimilarityConfig(embeddings=False, progress=False, ngram_orders=orders)
    real_iter = sim.iter_texts
    feeds = {"@reference": ref_texts, **domains}
    sim.iter_texts = lambda spec, split="train", max_bytes=None: iter(feeds[str(spec)])
    try:
        t0 = time.perf_counter()
        ref = sim.build_reference("@reference", config=cfg)
        t_ref = time.perf_counter() - t0
        t0 = time.perf_counter()
        results = {name: sim.similarity(name, ref, config=cfg) for name in domains}
        t_data = time.perf_counter() - t0
    finally:
        sim.iter_texts = real_iter
    keep = ("js_divergence", "ngram_overlap", "rare_token_rate")
    return {"t_ref": t_ref, "t_data": t_data, "peak_mb": _peak_mb(),
            "fp_rate": ref.bloom.false_positive_rate(),
            "measures": {n: {k: r[k] for k in keep} for n, r in results.items()}}


def run_exact(ref_texts: list[str], domains: dict[str, list[str]], orders: list[int]) -> dict:
    """The obvious exact version: a Counter and one set of n-gram tuples per order."""
    from odyssey.analysis.similarity import js_divergence, rare_rate, words

    t0 = time.perf_counter()
    ref_counts: Counter[str] = Counter()
    grams: dict[int, set] = {n: set() for n in orders}
    for text in ref_texts:
        ws = words(text)
        ref_counts.update(ws)
        for n in orders:
            grams[n].update(zip(*(ws[i:] for i in range(n)), strict=False))
    total = sum(ref_counts.values())
    freq = {w: c / total for w, c in ref_counts.items()}
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    measures = {}
    for name, texts in domains.items():
        counts: Counter[str] = Counter()
        hits, seen = dict.fromkeys(orders, 0), dict.fromkeys(orders, 0)
        for text in texts:
            ws = words(text)
            counts.update(ws)
            for n in orders:
                for g in zip(*(ws[i:] for i in range(n)), strict=False):
                    seen[n] += 1
                    hits[n] += g in grams[n]
        overlap = sum(hits[n] / seen[n] for n in orders if seen[n]) / sum(1 for n in orders if seen[n])
        measures[name] = {"js_divergence": js_divergence(counts, freq), "ngram_overlap": overlap,
                          "rare_token_rate": rare_rate(counts, freq, 1e-6)}
    t_data = time.perf_counter() - t0
    return {"t_ref": t_ref, "t_data": t_data, "peak_mb": _peak_mb(), "measures": measures}


def worker(args) -> None:
    world = _world(args.world)
    root = world["root"]
    ref_texts = _texts(f"{root}/{world['general']['path']}", int(args.max_mb * 1e6))
    domains = {d["name"]: _texts(f"{root}/{d['path']}", None) for d in world["domains"]}
    base_mb = _peak_mb()
    out = (run_odyssey if args.worker == "odyssey" else run_exact)(ref_texts, domains, args.orders)
    out.update(ref_mb=sum(len(t.encode()) for t in ref_texts) / 1e6,
               data_mb=sum(len(t.encode()) for ts in domains.values() for t in ts) / 1e6,
               peak_mb_over_text=out["peak_mb"] - base_mb)
    print(json.dumps(out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--world", default=None, help="world directory (default: the default world)")
    p.add_argument("--max-mb", type=float, default=5.0, help="MB of the general corpus used as reference")
    p.add_argument("--orders", type=int, nargs="+", default=[1, 2, 3, 4])
    p.add_argument("--worker", choices=["odyssey", "exact"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    res = {}
    for method in ("odyssey", "exact"):
        cmd = [sys.executable, __file__, "--worker", method, "--max-mb", str(args.max_mb),
               "--orders", *map(str, args.orders)] + (["--world", args.world] if args.world else [])
        res[method] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    o, e = res["odyssey"], res["exact"]
    print(f"reference: {o['ref_mb']:.2f} MB of the general corpus; data: {o['data_mb']:.2f} MB "
          f"(train splits of {len(o['measures'])} domains); n-gram orders {args.orders}")
    print(f"{'':28}{'odyssey':>12}{'exact sets':>12}{'ratio':>8}")
    for label, key, mb in (("reference pass MB/s", "t_ref", "ref_mb"), ("data pass MB/s", "t_data", "data_mb")):
        a, b = o[mb] / o[key], e[mb] / e[key]
        print(f"{label:28}{a:12.2f}{b:12.2f}{a / b:8.2f}")
    a, b = (o["ref_mb"] + o["data_mb"]) / (o["t_ref"] + o["t_data"]), (e["ref_mb"] + e["data_mb"]) / (e["t_ref"] + e["t_data"])
    print(f"{'overall MB/s':28}{a:12.2f}{b:12.2f}{a / b:8.2f}")
    print(f"{'peak RSS over the text, MB':28}{o['peak_mb_over_text']:12.0f}{e['peak_mb_over_text']:12.0f}")
    diff = {k: max(abs(o["measures"][d][k] - e["measures"][d][k]) for d in o["measures"])
            for k in ("js_divergence", "ngram_overlap", "rare_token_rate")}
    print(f"largest |odyssey - exact| over domains: {diff}  (Bloom false-positive rate {o['fp_rate']:.2e})")
    print(json.dumps({"odyssey": {k: v for k, v in o.items() if k != "measures"},
                      "exact": {k: v for k, v in e.items() if k != "measures"}, "max_abs_diff": diff}))


if __name__ == "__main__":
    main()
