"""Downstream tasks through lm-evaluation-harness: the offline task files odyssey builds,
loaded by the harness's own TaskManager, scored on a loaded model, and checked against
a naive scoring loop; lm-eval's word and byte perplexity beside odyssey's."""

import json
import math

import pytest
import torch
import yaml

from conftest import write_corpus_dir
from helpers import make_documents
from odyssey.errors import ConfigError, DataError
from odyssey.evaluate.harness import parse_tasks, summarize, task_accuracy
from odyssey.evaluate.tasksets import TaskSetConfig, continuation_items, sentences, write_task_set
from odyssey.models import load_model, load_tokenizer

pytest.importorskip("lm_eval")

SMALL = TaskSetConfig(items=12, min_words=5, context_words=12)


@pytest.fixture(scope="module")
def prose_corpus(tmp_path_factory):
    """Longer documents than the shared fixture, so the test split has enough sentences."""
    path = tmp_path_factory.mktemp("prose") / "general"
    write_corpus_dir(path, make_documents(40, seed=3, min_words=80, max_words=160))
    return path


@pytest.fixture(scope="module")
def llama(tiny_llama_dir):
    return load_model(tiny_llama_dir), load_tokenizer(tiny_llama_dir)


def test_sentences_and_items_are_deterministic():
    assert sentences("One two. Three four! Five? six. 7 up") == ["One two.", "Three four!", "Five? six.", "7 up"]
    docs = [{"id": f"d{i}", "text": t} for i, t in enumerate(make_documents(12, seed=5, min_words=80))]
    a, b = continuation_items(docs, SMALL), continuation_items(docs, SMALL)
    assert a == b and len(a) == SMALL.items
    for item in a:
        assert len(item["choices"]) == SMALL.choices and len(set(item["choices"])) == SMALL.choices
        true = item["choices"][item["label"]]
        source = next(d["text"] for d in docs if d["id"] == item["doc_id"])
        assert f"{item['context'].split()[-1]} {true}" in " ".join(source.split())  # the real second half
        for j, wrong in enumerate(item["choices"]):  # distractors come from other documents
            if j != item["label"]:
                assert wrong not in " ".join(source.split())


def test_task_files_pass_the_harness_loader(tmp_path, prose_corpus):
    from lm_eval.tasks import TaskManager, get_task_dict

    files = write_task_set(prose_corpus, tmp_path, config=SMALL)
    assert files.tasks == ["odyssey-general-continuation", "odyssey-general-cloze"]
    manager = TaskManager(include_path=str(files.folder), include_defaults=False)
    assert {"odyssey-general", *files.tasks} <= set(manager.all_tasks)
    tasks = get_task_dict(files.tasks, manager)
    cont = tasks["odyssey-general-continuation"]
    docs = list(cont.test_docs())
    assert len(docs) == files.items["odyssey-general-continuation"] == SMALL.items
    assert cont.OUTPUT_TYPE == "multiple_choice" and cont.doc_to_choice(docs[0]) == docs[0]["choices"]
    assert cont.doc_to_target(docs[0]) == docs[0]["label"]
    cloze = tasks["odyssey-general-cloze"]
    assert cloze.OUTPUT_TYPE == "loglikelihood" and cloze.doc_to_target(next(iter(cloze.test_docs()))).startswith(" ")
    meta = json.loads((files.folder / "task_set.json").read_text())
    assert meta["split"] == "test" and meta["config"]["items"] == SMALL.items
    group = yaml.safe_load((files.folder / "odyssey-general.yaml").read_text())
    assert group == {"group": "odyssey-general", "task": files.tasks}


def _logprob(model, ctx_ids, cont_ids):
    """log P(cont | ctx) and whether greedy decoding gives cont, by one plain forward pass."""
    ids = torch.tensor([ctx_ids + cont_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].double(), -1)
    pos = range(len(ctx_ids) - 1, len(ctx_ids) + len(cont_ids) - 1)
    total = sum(float(logp[p, t]) for p, t in zip(pos, cont_ids, strict=True))
    greedy = all(int(logp[p].argmax()) == t for p, t in zip(pos, cont_ids, strict=True))
    return total, greedy


def _split_encode(tok, ctx, cont):
    """As the harness's HFLM does: encode the whole, cut where the context's tokens end."""
    whole = tok(ctx + cont, add_special_tokens=False).input_ids
    n = len(tok(ctx, add_special_tokens=False).input_ids)
    return whole[:n], whole[n:]


def test_task_accuracy_matches_a_naive_scoring_loop(tmp_path, prose_corpus, llama):
    model, tok = llama
    acc = task_accuracy(model, tok, "odyssey-general", corpus=prose_corpus, task_set=SMALL, work_dir=tmp_path)
    folder = tmp_path / "odyssey-general"
    rows = [json.loads(line) for line in (folder / "odyssey-general-continuation.jsonl").read_text().splitlines()]
    right = right_norm = 0
    for r in rows:
        scores = [_logprob(model, *_split_encode(tok, r["context"], " " + c))[0] for c in r["choices"]]
        norm = [s / len(c) for s, c in zip(scores, r["choices"], strict=True)]  # the harness: characters
        right += max(range(len(scores)), key=scores.__getitem__) == r["label"]
        right_norm += max(range(len(norm)), key=norm.__getitem__) == r["label"]
    cont = acc["odyssey-general-continuation"]
    assert cont["n"] == len(rows)
    assert cont["acc"] == pytest.approx(right / len(rows)) and cont["acc_norm"] == pytest.approx(right_norm / len(rows))
    p = cont["acc"]
    assert cont["acc_stderr"] == pytest.approx(math.sqrt(p * (1 - p) / (len(rows) - 1)))
    rows = [json.loads(line) for line in (folder / "odyssey-general-cloze.jsonl").read_text().splitlines()]
    greedy = sum(_logprob(model, *_split_encode(tok, r["context"], r["target"]))[1] for r in rows)
    assert acc["odyssey-general-cloze"]["acc"] == pytest.approx(greedy / len(rows))
    assert model.training is False


def test_unknown_task_and_bad_corpus_are_clear_errors(tmp_path, llama, monkeypatch):
    from functools import partial

    import lm_eval.tasks

    # the harness's own thousands of task files are indexed for an unknown name: not needed here
    monkeypatch.setattr(lm_eval.tasks, "TaskManager", partial(lm_eval.tasks.TaskManager, include_defaults=False))
    model, tok = llama
    with pytest.raises(ConfigError, match="unknown task.*did you mean odyssey-general"):
        task_accuracy(model, tok, ["odyssey-generl"], include_path=tmp_path)
    with pytest.raises(ConfigError, match="no task"):
        task_accuracy(model, tok, " , ")
    with pytest.raises(DataError, match="not a corpus directory"):
        write_task_set(tmp_path, tmp_path / "out")
    assert parse_tasks("a, b,a") == ["a", "b"]


def test_word_and_byte_perplexity_agree_with_lm_eval(tmp_path, llama):
    """lm-eval's loglikelihood_rolling task (as its wikitext task) on the same documents."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from odyssey.evaluate import EvalConfig, evaluate_documents

    model, tok = llama
    texts = [" ".join(t.split()) for t in make_documents(6, seed=7, min_words=10, max_words=40)]
    texts[0] = texts[0] + "\n\nA second paragraph, after a blank line."
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    (tmp_path / "ppl.yaml").write_text(yaml.safe_dump({
        "task": "odyssey-test-ppl", "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(tmp_path / "docs.jsonl")}}, "test_split": "test",
        "output_type": "loglikelihood_rolling", "doc_to_text": "", "doc_to_target": "text",
        "metric_list": [{"metric": m} for m in ("word_perplexity", "byte_perplexity", "bits_per_byte")]}))
    lm = HFLM(pretrained=model, tokenizer=tok, backend="causal", batch_size=4, max_length=128, device="cpu")
    ref = simple_evaluate(model=lm, tasks=["odyssey-test-ppl"], log_samples=False,
                          task_manager=TaskManager(include_path=str(tmp_path), include_defaults=False))
    ref = {k.split(",")[0]: v for k, v in ref["results"]["odyssey-test-ppl"].items()}
    ours = evaluate_documents(model, tok, [{"text": t, "id": str(i)} for i, t in enumerate(texts)],
                              EvalConfig(context_length=128, stride=128, progress=False))
    assert ours.tokens < 128 * len(texts)  # every document fits one window: the same windows as lm-eval's
    assert ours.word_perplexity == pytest.approx(ref["word_perplexity"], rel=1e-5)
    assert ours.byte_perplexity == pytest.approx(ref["byte_perplexity"], rel=1e-5)
    assert ours.bits_per_byte == pytest.approx(ref["bits_per_byte"], rel=1e-5)
    assert ours.words == sum(len(t.split()) for t in texts)  # no leading/trailing whitespace here


def test_cli_evaluate_with_tasks(tmp_path, capsys, monkeypatch, tiny_llama_dir, prose_corpus):
    import odyssey.evaluate.harness as harness
    from odyssey.cli import run

    monkeypatch.setattr(harness, "default_task_corpus", lambda: prose_corpus)  # the world's general, in a test
    out = tmp_path / "ev"
    code = run(["evaluate", "--model", str(tiny_llama_dir), "--data", f"{prose_corpus}:test", "--out", str(out),
                "--tasks", "odyssey-general", "--task-limit", "5", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    printed, saved = json.loads(captured.out), json.loads((out / "eval.json").read_text())
    assert printed["tasks"] == saved["tasks"]
    assert set(saved["tasks"]) == {"odyssey-general-continuation", "odyssey-general-cloze"}
    assert all(row["n"] == 5 and 0 <= row["acc"] <= 1 for row in saved["tasks"].values())
    assert (out / "tasks" / "odyssey-general" / "odyssey-general-cloze.yaml").is_file()  # beside the results
    code = run(["evaluate", "--model", str(tiny_llama_dir), "--data", f"{prose_corpus}:test", "--no-progress",
                "--tasks", "odyssey-general", "--task-limit", "3"])
    table = capsys.readouterr().out
    assert code == 0 and "odyssey-general-continuation" in table and "acc_norm" in table


def test_summarize_marks_a_group_aggregate():
    out = {"results": {"grp": {"alias": "grp", "acc,none": 0.5, "acc_stderr,none": "N/A"},
                       "t1": {"alias": " - t1", "acc,none": 0.25, "acc_stderr,none": 0.1}},
           "groups": {"grp": {"acc,none": 0.5}}, "group_subtasks": {"grp": ["t1"]},
           "n-samples": {"t1": {"original": 8, "effective": 4}}}
    rows = summarize(out)
    assert rows["grp"] == {"acc": 0.5, "acc_stderr": None, "n": None, "higher_is_better": {}, "group": True}
    assert rows["t1"] == {"acc": 0.25, "acc_stderr": 0.1, "n": 4, "higher_is_better": {}}
