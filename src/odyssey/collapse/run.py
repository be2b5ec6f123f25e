"""`odyssey collapse`: train each generation on text written by the previous one.

The published setup (Shumailov et al., Nature 2024): the real training text is cut
into ``P``-token blocks; generation 0 is the pretrained model adapted on those blocks;
each block then prompts generation g to write ``C`` tokens (5-way beam search), and
generation g + 1 is trained, from the same pretrained start, on those continuations,
with a fraction ``keep_real`` of the blocks replaced by their real text (a fresh seeded
sample each generation). The valid split is rewritten the same way and picks each
generation's best epoch. Every generation is measured on the real test split (see
:func:`Experiment.measure`).

Layout of ``OUT``::

    config.yaml, results.sqlite (ResultsStore: one run row per generation), results.json,
    report.html (+ perplexity.png, histograms.png), real-test.jsonl (the real test blocks)
    gen-00/                         generation 0 (shared by every series)
    keep-0.1/gen-03/                generation 3 of the series that keeps 10% real data
        data/                       its training corpus (train, valid)
        run/                        the adapt run (metrics.jsonl, result.json)
        model/                      the selected checkpoint (HF layout)
        generated-{train,valid,test}.npy   its continuations of the real prompts
        generated-test.jsonl        the test continuations as text (for odyssey detect)

Resumable per generation: a generation recorded as done in the store is skipped, an
interrupted one resumes its adapt run from its checkpoint and reuses what it wrote. One
process at a time writes an experiment (a lock in ``OUT``).

The pieces are the stages' own: the results store (:class:`odyssey.results_store.ResultsStore`),
the corpus writer (:func:`odyssey.corpora.build.write_corpus_splits`), the adapt loop with its
resume rules and step arithmetic (:func:`odyssey.adapt.schedule.steps_for`), and detection
(:mod:`odyssey.collapse.calibrate`).
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.text import Text

from odyssey import __version__
from odyssey.adapt.config import AdaptConfig
from odyssey.collapse import metrics
from odyssey.collapse.config import CollapseConfig, DetectConfig
from odyssey.collapse.generate import (
    block_documents,
    generate_continuations,
    prompt_blocks,
    resolve_device,
    sample_rows,
)
from odyssey.config import config_differences, load_yaml, save_config
from odyssey.corpora.store import is_corpus_dir, iter_split
from odyssey.errors import ConfigError, DataError
from odyssey.io import atomic_write, write_json, write_jsonl
from odyssey.machine import describe, elapsed
from odyssey.results_store import ResultsStore

# Settings that may change between a run and its continuation: more generations, more
# series, the detection step; anything else would mix incomparable generations.
RESUMABLE_CHANGES = ("generations", "keep_real", "detect", "detect_fpr", "detect_generations", "detect_model", "out")
SPLITS = ("train", "valid", "test")


def series_name(fraction: float) -> str:
    return f"keep-{fraction:g}"


def run_name(fraction: float | None, generation: int) -> str:
    """``gen-00`` for the shared generation 0, ``keep-0.1/gen-03`` after it."""
    return f"gen-{generation:02d}" if generation == 0 else f"{series_name(fraction)}/gen-{generation:02d}"


def real_positions(n: int, fraction: float, generation: int, seed: int) -> np.ndarray:
    """Which of the ``n`` training blocks of ``generation`` keep their real text: a fresh
    seeded sample of ``round(fraction * n)`` each generation."""
    k = int(round(fraction * n))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng([seed, generation, int(round(fraction * 1_000_000))])
    return np.sort(rng.choice(n, size=k, replace=False))


@dataclass
class Real:
    """The real text, cut into prompt blocks (``(n, P)`` token ids per split)."""

    blocks: dict[str, np.ndarray]
    test_documents: list[dict]


class Experiment:
    """Runs the generations, each recorded in the store and skipped when already done."""

    def __init__(self, cfg: CollapseConfig, console: Console | None = None, progress: bool = True):
        from odyssey.models import load_model, load_tokenizer
        from odyssey.models.presets import default_base_path

        self.cfg = cfg
        self.out = Path(cfg.out)
        self.console = console or Console(stderr=True)
        self.progress = progress
        self.device = resolve_device(cfg.device)
        self.base = cfg.model or str(default_base_path())
        kw = dict(allow_pickle=cfg.allow_pickle, trust_remote_code=cfg.trust_remote_code)
        self.tokenizer = load_tokenizer(self.base, trust_remote_code=cfg.trust_remote_code)
        if cfg.detect and cfg.detect_model:
            from odyssey.models.resolve import resolve_source

            resolve_source(cfg.detect_model)  # a wrong name fails now, not after the generations
        self.base_model = load_model(self.base, device=self.device, **kw)
        self.load_kw = kw
        self.real = self._real_text()
        self.store = ResultsStore(self.out / "results.sqlite")
        self._gen0 = None
        self._real_scores: dict[str, list[dict]] = {}
        self._detect_scorers = None  # detect_model's (model, tokenizer, reference, max_tokens), loaded once

    # -- inputs ---------------------------------------------------------------------
    def _real_text(self) -> Real:
        from odyssey.models import check_tokenizer_fits, max_context

        cfg, g = self.cfg, self.cfg.generation
        check_tokenizer_fits(self.base_model, self.tokenizer)
        if g.prompt_tokens + g.new_tokens > max_context(self.base_model):
            raise ConfigError(f"prompt_tokens + new_tokens = {g.prompt_tokens + g.new_tokens} exceeds the "
                              f"model's context of {max_context(self.base_model)}",
                              "lower generation.prompt_tokens or generation.new_tokens")
        path = Path(cfg.data)
        if not is_corpus_dir(path):
            raise DataError(f"{cfg.data} is not a corpus directory",
                            "build one with train, valid and test splits: odyssey corpus build")
        docs = {split: list(iter_split(path, split)) for split in SPLITS}
        caps = {"train": cfg.max_blocks, "valid": cfg.max_valid_blocks, "test": cfg.max_test_blocks}
        blocks = {}
        for split in SPLITS:
            all_blocks = prompt_blocks(docs[split], self.tokenizer, g.prompt_tokens)
            blocks[split] = all_blocks[sample_rows(len(all_blocks), caps[split], cfg.seed)]
        return Real(blocks, docs["test"])

    # -- one generation ---------------------------------------------------------------
    def gen_dir(self, fraction: float | None, generation: int) -> Path:
        return self.out / run_name(fraction, generation)

    def training_documents(self, fraction: float | None, generation: int) -> dict[str, list[dict]]:
        """Generation 0: the real blocks. Later: the previous generation's continuations,
        with ``fraction`` of the training blocks replaced by their real text."""
        real = self.real.blocks
        if generation == 0:
            return {split: block_documents(real[split], self.tokenizer, f"real-{split}-", {"source": "real"})
                    for split in ("train", "valid")}
        prev = (fraction, generation - 1)
        synthetic = self.continuations(*prev, "train")
        keep = set(real_positions(len(synthetic), fraction, generation, self.cfg.seed).tolist())
        kept = block_documents(real["train"], self.tokenizer, "real-train-", {"source": "real"})
        written = block_documents(synthetic, self.tokenizer, f"gen{generation - 1}-train-",
                                  {"source": f"generation {generation - 1}"})
        train = sorted([d for d in kept if d["meta"]["block"] in keep]
                       + [d for d in written if d["meta"]["block"] not in keep], key=lambda d: d["meta"]["block"])
        valid = block_documents(self.continuations(*prev, "valid"), self.tokenizer,
                                f"gen{generation - 1}-valid-", {"source": f"generation {generation - 1}"})
        return {"train": train, "valid": valid}

    def continuations(self, fraction: float | None, generation: int, split: str) -> np.ndarray:
        """A generation's continuations of the real ``split`` prompts, written once."""
        path = self.gen_dir(fraction, generation) / f"generated-{split}.npy"
        if path.is_file():
            return np.load(path)
        model = self.load(self.gen_dir(fraction, generation) / "model")
        seed = self.cfg.seed * 7919 + generation * 31 + SPLITS.index(split)
        label = f"{run_name(fraction, generation)} {split}"
        cont = generate_continuations(model, self.real.blocks[split], self.cfg.generation,
                                      eos_id=self.tokenizer.eos_token_id, seed=seed,
                                      progress=self.progress, label=label)
        with atomic_write(path, "wb") as f:
            np.save(f, cont)
        return cont

    def load(self, path: Path):
        from odyssey.models import load_model

        return load_model(path, device=self.device, **self.load_kw)

    def train(self, fraction: float | None, generation: int) -> dict:
        """Write the generation's corpus, adapt, and keep the selected checkpoint as ``model``."""
        from accelerate import PartialState

        from odyssey.adapt.loop import adapt
        from odyssey.adapt.schedule import steps_for
        from odyssey.blocks import pack_documents
        from odyssey.models import max_context
        from odyssey.report.model_card import write_model_card

        cfg, r = self.cfg, self.cfg.recipe
        gdir = self.gen_dir(fraction, generation)
        data = gdir / "data"
        if not is_corpus_dir(data):
            write_corpus(data, run_name(fraction, generation), self.training_documents(fraction, generation),
                         {"generation": generation, "keep_real": fraction, "source_corpus": cfg.data})
        block = r.train.block_size or min(max_context(self.base_model), 512)
        train_docs = list(iter_split(data, "train"))
        n_blocks = len(pack_documents(train_docs, self.tokenizer, block))  # cached: adapt reuses it
        # The adapt loop's own arithmetic: one optimizer step takes batch x processes x accumulation blocks.
        global_batch = r.train.batch_size * PartialState().num_processes * r.train.grad_accum
        per_epoch = steps_for(1.0, n_blocks, global_batch)
        total = r.train.max_steps or steps_for(r.train.epochs, n_blocks, global_batch)
        start = self.base if cfg.start == "base" or generation == 0 else \
            str(self.gen_dir(fraction, generation - 1) / "model")
        acfg = AdaptConfig(
            model=start, data=str(data), out=str(gdir / "run"), tokenizer=self.base,
            train=r.train.model_copy(update={"seed": r.train.seed + generation}), optim=r.optim,
            schedule=r.schedule, eval=r.eval, eval_every=per_epoch, save_every=per_epoch,
            keep_checkpoints=math.ceil(total / per_epoch) + 1, resume=True,
            allow_pickle=cfg.allow_pickle, trust_remote_code=cfg.trust_remote_code)
        trained = not (gdir / "run" / "result.json").is_file()  # else adapt reuses the finished run
        result = adapt(acfg, progress=self.progress)
        if trained:
            write_model_card(gdir / "run")  # the run's card, as odyssey adapt writes it
        chosen = select_model(gdir / "run", gdir / "model", cfg.select)
        return {"train_documents": len(train_docs), "train_steps": result.steps, "train_tokens": result.tokens,
                "train_seconds": result.seconds, **chosen}

    def gen0_model(self):
        if self._gen0 is None:
            self._gen0 = self.load(self.gen_dir(None, 0) / "model")
        return self._gen0

    def measure(self, fraction: float | None, generation: int) -> dict:
        """The generation on the real test split: perplexity of the real text, and its own
        continuations of the real test prompts scored by generation 0 (histogram, tail
        mass) with their distinct-n, vocabulary size and repetition rate."""
        from odyssey.evaluate.run import evaluate_documents

        gdir = self.gen_dir(fraction, generation)
        model = self.load(gdir / "model")
        ev = evaluate_documents(model, self.tokenizer, self.real.test_documents,
                                self.cfg.eval.model_copy(update={"device": str(self.device)}))
        doc_ppl = [d["perplexity"] for d in ev.per_document if d["perplexity"] is not None]
        test_cont = self.continuations(fraction, generation, "test")
        scorer = model if generation == 0 else self.gen0_model()
        seq_ppl = metrics.sequence_perplexity(
            metrics.continuation_nlls(scorer, self.real.blocks["test"], test_cont,
                                      batch_size=self.cfg.generation.batch_size))
        texts = block_documents(test_cont, self.tokenizer, f"{run_name(fraction, generation)}:test-",
                                {"source": f"generation {generation}"})
        write_jsonl(gdir / "generated-test.jsonl", texts)
        reference = seq_ppl if generation == 0 else self.store.get_run("gen-00")["seq_ppl"]
        return {
            "test_ppl": ev.perplexity, "test_bpb": ev.bits_per_byte, "test_tokens": ev.tokens,
            "mean_doc_ppl": float(np.mean(doc_ppl)) if doc_ppl else None,
            "seq_ppl": [round(float(v), 4) for v in seq_ppl],
            "seq_ppl_median": float(np.median(seq_ppl)),
            "tail_mass": metrics.tail_mass(seq_ppl, reference, self.cfg.tail_quantile),
            **metrics.text_stats([row for row in test_cont]),
            "samples": [d["text"] for d in texts[:3]],
        }

    def generation(self, fraction: float | None, generation: int, position: int) -> dict:
        name = run_name(fraction, generation)
        done = self.store.finished_run(name)
        if done:
            return done
        started = time.perf_counter()
        record = {"name": name, "generation": generation, "keep_real": fraction,
                  **self.train(fraction, generation), **self.measure(fraction, generation)}
        if generation > 0:
            record["real_blocks"] = len(real_positions(len(self.real.blocks["train"]), fraction, generation,
                                                       self.cfg.seed))
        record["seconds"] = time.perf_counter() - started
        for heavy in ("checkpoint", "model"):  # the selected weights live in gen-NN/model
            shutil.rmtree(self.gen_dir(fraction, generation) / "run" / heavy, ignore_errors=True)
        self.store.put_run(name, "done", record, position)
        return record

    # -- detection of a generation's text ------------------------------------------------
    def detection(self, fraction: float, generation: int) -> dict:
        """Real held-out blocks against the generation's continuations of the same real
        prompts (text no generation trained on). Scoring model: the pretrained start with
        generation 0 (the generator of generation 1's text) as reference (Fast-DetectGPT's
        sampling model, Binoculars' observer); or ``detect_model`` on its own.

        ``statistics``: every statistic on the test blocks, AUROC both ways. ``auto``: a
        detector fitted on the valid blocks (statistic by cross-validated AUROC, direction,
        threshold at ``detect_fpr``), then applied to the test blocks: what a user who
        labels a few documents gets, measured on text it did not see."""
        from odyssey.collapse.calibrate import (
            MIN_PER_CLASS,
            detector_on,
            evaluate_detection,
            fit_detector,
        )

        real = {split: self._real_scored(split) for split in ("valid", "test")}
        gen = {split: self._score(list(self.continuations(fraction, generation, split))) for split in ("valid", "test")}
        cfg = self._detect_config()
        entry = {"generation": generation, "scorer": cfg.model, "reference": cfg.reference,
                 "statistics": evaluate_detection(real["test"], gen["test"], self.cfg.detect_fpr)}
        if min(len(real["valid"]), len(gen["valid"])) >= MIN_PER_CLASS:
            det = fit_detector(real["valid"], gen["valid"], cfg)
            entry["auto"] = {**detector_on(det, real["test"], gen["test"]), "fit_on": "valid", "valid": det.fit}
        return entry

    def _detect_config(self) -> DetectConfig:
        own = self.cfg.detect_model is None
        return DetectConfig(model=self.base if own else self.cfg.detect_model,
                            reference=str(self.gen_dir(None, 0) / "model") if own else None,
                            fpr=self.cfg.detect_fpr, seed=self.cfg.seed, batch_size=self.cfg.generation.batch_size,
                            device=self.cfg.device, **self.load_kw)

    def _score(self, ids: list[np.ndarray]) -> list[dict]:
        """Detection scores of token rows: under the pretrained start and generation 0; or,
        with ``detect_model``, of their decoded text under that model (its own tokenizer)."""
        from odyssey.collapse.detect import load_scorers, score_documents, score_token_ids

        if self.cfg.detect_model is None:
            return score_token_ids(self.base_model, ids, eos_id=self.tokenizer.eos_token_id,
                                   reference=self.gen0_model(), batch_size=self.cfg.generation.batch_size)
        if self._detect_scorers is None:
            self._detect_scorers = load_scorers(self._detect_config())
        docs = [{"text": self.tokenizer.decode(np.asarray(r).tolist(), skip_special_tokens=True)} for r in ids]
        return score_documents(docs, self._detect_config(), scorers=self._detect_scorers, progress=False)

    def _real_scored(self, split: str) -> list[dict]:
        """The real blocks of ``split`` scored once (the same for every generation)."""
        if split not in self._real_scores:
            eos = self.tokenizer.eos_token_id
            self._real_scores[split] = self._score([_drop_eos(r, eos) for r in self.real.blocks[split]])
        return self._real_scores[split]

    def detect_series(self, fraction: float) -> dict:
        """Detection of each generation ``detect_generations`` names, computed once each;
        the series' entry is the last one's, with every one under ``by_generation``."""
        det = self.store.get_meta("detection", {})
        # Each scoring model's results under their own name: a stored result is reused only
        # for the scorer that computed it.
        key = series_name(fraction) + (f" @ {self.cfg.detect_model}" if self.cfg.detect_model else "")
        by_gen = dict(det.get(key, {}).get("by_generation", {}))
        for g in self.cfg.detected_generations():
            if str(g) not in by_gen:
                by_gen[str(g)] = self.detection(fraction, g)
                det[key] = {**by_gen[str(g)], "by_generation": by_gen}
                self.store.set_meta("detection", det)  # each generation's result kept as it comes
            self.console.print(detection_line(key, by_gen[str(g)]), highlight=False)
        last = str(max(self.cfg.detected_generations()))
        det[key] = {**by_gen[last], "by_generation": by_gen}
        self.store.set_meta("detection", det)
        return det[key]

    # -- the whole experiment ---------------------------------------------------------------
    def run(self) -> dict:
        cfg, started = self.cfg, time.perf_counter()
        self.store.set_meta("config", cfg.model_dump(mode="json"))
        self.store.set_meta("base", self.base)
        self.store.set_meta("real", {
            **metrics.text_stats([r for r in self.real.blocks["test"]]),
            "blocks": {k: len(v) for k, v in self.real.blocks.items()}})
        write_jsonl(self.out / "real-test.jsonl",
                    block_documents(self.real.blocks["test"], self.tokenizer, "real-test-", {"source": "real"}))
        series = [series_name(f) for f in cfg.keep_real]
        # Text, not markup: the data path is the user's (corpora/legal[v2] must print as it is).
        self.console.print(Text.assemble(("collapse", "bold"), f" {cfg.data}: generations 0..{cfg.generations}, "
                                         f"series {', '.join(series)}; {len(self.real.blocks['train'])} training "
                                         f"blocks of {cfg.generation.prompt_tokens} tokens"))
        gen0 = self._step(None, 0, 0, started, None)
        position = 1
        for fraction in cfg.keep_real:
            for g in range(1, cfg.generations + 1):
                self._step(fraction, g, position, started, gen0)
                position += 1
            if cfg.detect:
                self.detect_series(fraction)
        self.store.set_meta("seconds", self.store.get_meta("seconds", 0.0) + time.perf_counter() - started)
        return write_outputs(self.out, self.store)

    def _step(self, fraction, g, position, started, gen0) -> dict:
        name = run_name(fraction, g)
        done = self.store.finished_run(name)
        if done:
            self.console.print(f"  {name}: done earlier (test perplexity {done['test_ppl']:.2f})")
            return done
        self.console.print(f"  {name}: training ({elapsed(started)} elapsed)")
        rec = self.generation(fraction, g, position)
        change = "" if gen0 is None else f" ({100 * (rec['test_ppl'] / gen0['test_ppl'] - 1):+.1f}% vs gen 0)"
        self.console.print(f"  {name}: test perplexity {rec['test_ppl']:.2f}{change}, tail mass "
                           f"{rec['tail_mass']:.3f}, distinct-2 {rec['distinct_2']:.3f}, "
                           f"repetition {rec['repetition_rate']:.3f}, {rec['seconds']:.0f} s")
        return rec


def detection_line(series: str, entry: dict) -> str:
    """One console line: each statistic's AUROC both ways, and the fitted detector on test."""
    stats = entry["statistics"]
    line = (f"  {series}: generation {entry['generation']} text vs real, AUROC generated higher/lower: "
            + ", ".join(f"{s} {v['auroc_higher']:.3f}/{v['auroc_lower']:.3f}" for s, v in stats.items()))
    auto = entry.get("auto")
    if auto:
        line += (f"; fitted on valid: {auto['statistic']} ({auto['direction']}), test AUROC {auto['auroc']:.3f}, "
                 f"TPR {auto['tpr']:.0%} at FPR {auto['fpr']:.0%}")
    return line


def _drop_eos(row: np.ndarray, eos: int) -> np.ndarray:
    """A real block without its document-boundary EOS tokens (the scorer adds its own)."""
    return row[row != eos]


# -- files ---------------------------------------------------------------------------------
def write_corpus(out_dir: Path, name: str, splits: dict[str, list[dict]], provenance: dict) -> None:
    """A generation's corpus, exactly as given (no cleaning, no dedup: repeated generated
    text is part of what is measured), written by the corpus stage's writer."""
    from odyssey.corpora.build import write_corpus_splits

    if not splits.get("train"):
        raise DataError(f"generation corpus {name} has no training text",
                        "the previous generation wrote only whitespace; check its samples")
    write_corpus_splits(name, splits, out_dir, sources=[provenance], overwrite=True)


def select_model(run_dir: Path, model_dir: Path, select: str) -> dict:
    """Copy the chosen checkpoint of an adapt run to ``model_dir`` (once): the evaluation
    with the lowest validation perplexity after step 0, or the last."""
    from odyssey.adapt.tracking import read_metrics
    from odyssey.io import read_json

    evals = [r for r in read_metrics(run_dir) if r.get("kind") == "eval" and r.get("split") == "valid"
             and r.get("step", 0) > 0 and r.get("perplexity") is not None]
    final = read_json(run_dir / "result.json")["steps"]
    best = min(evals, key=lambda r: r["perplexity"]) if evals and select == "best" else None
    step = best["step"] if best else final
    valid = {r["step"]: r["perplexity"] for r in evals}
    chosen = {"selected_step": step, "valid_ppl": valid.get(step), "valid_curve": valid}
    if (model_dir / "config.json").is_file():
        return chosen
    src = run_dir / "checkpoint" / f"step-{step:06d}" if step != final else run_dir / "model"
    if not (src / "config.json").is_file():
        raise DataError(f"the checkpoint of step {step} is missing from {run_dir}",
                        "delete this generation's folder and run again")
    tmp = model_dir.with_name(model_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("optimizer.pt", "rng-*.pt", "state.json"))
    tmp.rename(model_dir)
    return chosen


def check_resumable(cfg: CollapseConfig, out: Path) -> None:
    """Refuse to continue an experiment with settings that would change finished generations
    (the adapt loop's rule: compare with the saved config; fields since removed do not count)."""
    saved = out / "config.yaml"
    if not saved.is_file():
        return
    now = cfg.model_dump(mode="json")
    before = {k: v for k, v in load_yaml(saved).items() if k in now}
    changed = config_differences(before, now, ignore=RESUMABLE_CHANGES)
    if changed:
        raise ConfigError(f"cannot continue {out}: these settings differ from its config.yaml ({'; '.join(changed)})",
                          "use the same settings (only generations, keep_real and the detection settings may "
                          "change), or another --out")


# -- results ---------------------------------------------------------------------------------
def collect_results(store: ResultsStore) -> dict:
    """The content of ``results.json``, from the store alone."""
    cfg = store.get_meta("config", {})
    runs = store.runs("done")
    gen0 = next((r for r in runs if r["generation"] == 0), None)
    series = []
    for fraction in cfg.get("keep_real", []):
        gens = [gen0] if gen0 else []
        gens += sorted((r for r in runs if r["generation"] > 0 and r["keep_real"] == fraction),
                       key=lambda r: r["generation"])
        rows = []
        for r in gens:
            change = None if not gen0 else 100 * (r["test_ppl"] / gen0["test_ppl"] - 1)
            rows.append({**r, "ppl_change_pct": change})
        series.append({"name": series_name(fraction), "keep_real": fraction, "generations": rows})
    return {
        "experiment": {"model": store.get_meta("base"), "data": cfg.get("data"), "config": cfg,
                       "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "odyssey_version": __version__,
                       "seconds": store.get_meta("seconds"),
                       "machine": describe()},
        "real": store.get_meta("real", {}),
        "series": series,
        "detection": store.get_meta("detection", {}),
    }


def write_outputs(out: Path, store: ResultsStore) -> dict:
    """``results.json`` and ``report.html`` from the store."""
    from odyssey.collapse.report import render_report

    results = collect_results(store)
    write_json(out / "results.json", results)
    render_report(results, out / "report.html", figures_dir=out)
    return results


def run_collapse(cfg: CollapseConfig, *, progress: bool = True, console: Console | None = None) -> dict:
    """Run (or continue) a collapse experiment; return the results.json content.

    >>> results = run_collapse(CollapseConfig(data="world/domains/wiki-history", out="collapse", generations=5))
    """
    from odyssey.runlock import run_lock

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    with run_lock(out, what="collapse experiment"):  # one writer per experiment directory
        check_resumable(cfg, out)
        exp = Experiment(cfg, console=console, progress=progress)
        save_config(cfg, out / "config.yaml")
        try:
            return exp.run()
        finally:
            exp.store.close()

