"""Token attribution against an independent computation on hand-made evaluations."""

import json
import math

import numpy as np
import pytest

from odyssey.analysis.categories import CATEGORIES, CATEGORY_INDEX, categorize
from odyssey.analysis.config import TokensConfig
from odyssey.analysis.token_html import render_token_html
from odyssey.analysis.tokens import Attribution, attribute, log_odds_z
from odyssey.cli import run
from odyssey.errors import DataError
from odyssey.evaluate.run import EvalResult, save_eval, tokenize

DOMAIN = [
    "The plaintiff filed a motion.\n\nThe court denied the motion of the plaintiff, and the plaintiff appealed.",
    "In 1990 the plaintiff sued; the defendant answered.\n  Indented: the plaintiff's claim, (see above).",
    "Plaintiff <script>alert('x')</script> & co. said: the plaintiff won.\n",
]
GENERAL = [
    "The river runs to the sea. A city stands on the river, and the people of the city fish.",
    "Music and film are arts. The king of the island built a church in the city.",
    "Water, light and energy: the theory of the system is a model of the market.",
] * 30


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    from odyssey.models.tokenizer_train import train_bpe_tokenizer

    out = tmp_path_factory.mktemp("tok")
    train_bpe_tokenizer(DOMAIN * 3 + GENERAL[:3] * 5, vocab_size=330, min_frequency=2).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tok(tok_dir):
    from odyssey.models import load_tokenizer

    return load_tokenizer(tok_dir)


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "general.txt"
    path.write_text("\n\n".join(GENERAL), encoding="utf-8")
    return path


def make_eval(ids: list[np.ndarray], nll: list[np.ndarray], model: str, sha: str = "same") -> EvalResult:
    per_doc = [{"id": f"d{i}", "tokens": len(x), "bytes": 1, "nll_sum": float(n.sum())}
               for i, (x, n) in enumerate(zip(ids, nll, strict=True))]
    total = float(sum(n.sum() for n in nll))
    tokens = sum(len(x) for x in ids)
    return EvalResult(perplexity=math.exp(total / tokens), bits_per_byte=1.0, nll_sum=total, tokens=tokens,
                      bytes=len(ids), documents=len(ids), context_length=64, stride=32, per_document=per_doc,
                      token_ids=[x.astype(np.int32) for x in ids], nll=[n.astype(np.float32) for n in nll],
                      model=model, data="hand", data_sha256=sha)


@pytest.fixture(scope="module")
def evals(tmp_path_factory, tok, tok_dir):
    """Before/after evaluations of DOMAIN: newlines and function words get worse by
    known amounts, everything else moves by seeded noise."""
    rng = np.random.default_rng(0)
    ids = tokenize(tok, DOMAIN)
    before = [rng.uniform(0.5, 6.0, len(x)).astype(np.float32) for x in ids]
    after = []
    for x, b in zip(ids, before, strict=True):
        cats = categorize([tok.decode([int(t)]) for t in x])
        bump = np.array([0.5 if c == "newline" else 0.2 if c == "function" else 0.0 for c in cats])
        after.append((b + bump + rng.normal(0, 0.05, len(x))).astype(np.float32))
    root = tmp_path_factory.mktemp("evals")
    save_eval(make_eval(ids, before, str(tok_dir)), root / "before")
    save_eval(make_eval(ids, after, str(tok_dir)), root / "after")
    return root / "before", root / "after", ids, before, after


def test_category_sums_match_a_direct_loop(evals, tok, reference_file):
    before_dir, after_dir, ids, before, after = evals
    att = attribute(before_dir, after_dir, reference=reference_file)  # tokenizer from eval.json
    assert "plaintiff" in dict(att.domain_terms)
    summary = att.summary()

    sums, counts, abs_sums = dict.fromkeys(CATEGORIES, 0.0), dict.fromkeys(CATEGORIES, 0), dict.fromkeys(CATEGORIES, 0.0)
    terms = {w for w, _ in att.domain_terms}
    for x, b, a in zip(ids, before, after, strict=True):
        strings = [tok.decode([int(t)]) for t in x]  # independent decoding, one token at a time
        cats = categorize(strings, terms)
        cats = ["other" if int(t) in tok.all_special_ids else c for t, c in zip(x, cats, strict=True)]
        for c, db, da in zip(cats, b.tolist(), a.tolist(), strict=True):
            sums[c] += da - db
            abs_sums[c] += abs(da - db)
            counts[c] += 1
    total = sum(sums.values())
    total_abs = sum(abs_sums.values())
    assert summary["total_delta"] == pytest.approx(total, abs=1e-6)
    for c in CATEGORIES:
        row = summary["by_category"][c]
        assert row["tokens"] == counts[c], c
        assert row["delta"] == pytest.approx(sums[c], abs=1e-6), c
        assert row["share"] == pytest.approx(sums[c] / total, abs=1e-9), c
        assert row["abs_share"] == pytest.approx(abs_sums[c] / total_abs, abs=1e-9), c
    assert sum(r["share"] for r in summary["by_category"].values()) == pytest.approx(1.0)
    assert sum(r["abs_share"] for r in summary["by_category"].values()) == pytest.approx(1.0)
    assert sum(r["tokens"] for r in summary["by_category"].values()) == summary["tokens"]
    # the designed bumps: newlines and function words carry the change
    by = summary["by_category"]
    assert by["newline"]["mean_delta"] == pytest.approx(0.5, abs=0.05)
    assert by["function"]["mean_delta"] == pytest.approx(0.2, abs=0.05)
    assert by["domain"]["tokens"] > 0 and abs(by["domain"]["mean_delta"]) < 0.05


def hand_attribution() -> Attribution:
    # types:        0 (" the")  1 ("\n")  2 (",")  3 (" court")
    # contribution:   +4.0       +3.0      -2.0      +1.0       |.| total 10, half 5
    ids = np.array([0, 0, 1, 2, 3, 1, 0])
    delta = np.array([1.5, 2.0, 1.0, -2.0, 1.0, 2.0, 0.5])
    before = np.full(len(ids), 3.0)
    cats = np.array([CATEGORY_INDEX[c] for c in
                     ("function", "function", "newline", "punctuation", "content", "newline", "function")],
                    dtype=np.int8)
    return Attribution(token_ids=ids, nll_before=before, nll_after=before + delta, doc_offsets=np.array([0, 4, 7]),
                       doc_ids=["a", "b"], categories=cats,
                       strings={0: " the", 1: "\n", 2: ",", 3: " court"}, top_k=2)


def test_half_mass_and_top_types_on_a_hand_example():
    s = hand_attribution().summary()
    # sorted |contribution|: 4, 3, 2, 1 -> 4 < 5, 4 + 3 >= 5: two types of four
    assert (s["half_mass_types"], s["half_mass_share"]) == (2, 0.5)
    assert s["total_delta"] == pytest.approx(6.0)
    assert [t["token"] for t in s["top_types"]["worse"]] == [" the", "\n"]
    assert [t["token"] for t in s["top_types"]["better"]] == [","]
    assert s["top_types"]["worse"][0] == {"token_id": 0, "token": " the", "category": "function", "count": 3,
                                          "delta": pytest.approx(4.0), "mean_delta": pytest.approx(4 / 3)}
    by = s["by_category"]
    assert by["function"]["delta"] == pytest.approx(4.0) and by["function"]["share"] == pytest.approx(4 / 6)
    assert by["punctuation"]["abs_share"] == pytest.approx(2 / 10)
    assert by["digits"] == {"delta": 0.0, "share": 0.0, "abs_share": 0.0, "tokens": 0, "mean_delta": None}


def test_half_mass_of_one_dominant_type():
    att = hand_attribution()
    att.nll_after = att.nll_before + np.array([9.0, 0, 0, 0.5, 0.5, 0, 0])
    assert att.half_mass() == (1, 0.25)
    att.nll_after = att.nll_before.copy()
    assert att.half_mass() == (0, 0.0) and att.summary()["by_category"]["newline"]["share"] is None


def test_log_odds_z_by_hand():
    counts = {"plaintiff": 20, "the": 50, "court": 30}
    ref = {"the": 500, "court": 10, "river": 490}
    z = log_odds_z(counts, ref, prior_flat=0.5, prior_share=0.5)
    n, m, v = 100, 1000, 4
    a0 = 0.5 * v + 0.5 * 100
    a = 0.5 + 50 * (20 + 0) / (n + m)
    d = math.log((20 + a) / (n + a0 - 20 - a)) - math.log((0 + a) / (m + a0 - 0 - a))
    assert z["plaintiff"] == pytest.approx(d / math.sqrt(1 / (20 + a) + 1 / (0 + a)))
    assert z["plaintiff"] > 3 and z["court"] > 3 and abs(z["the"]) < 0.5  # 50% in both
    same = log_odds_z({"a": 10, "b": 90}, {"a": 100, "b": 900})
    assert abs(same["a"]) < 0.5 and abs(same["b"]) < 0.5  # the prior biases small corpora a little


def test_different_text_is_an_error(tmp_path, evals, tok_dir):
    before_dir, _, ids, before, _ = evals
    other = [x.copy() for x in ids]
    other[0][0] = (other[0][0] + 1) % 300
    save_eval(make_eval(other, before, str(tok_dir)), tmp_path / "other")
    with pytest.raises(DataError, match="different token ids in document 0"):
        attribute(before_dir, tmp_path / "other")
    save_eval(make_eval(ids, before, str(tok_dir), sha="elsewhere"), tmp_path / "sha")
    with pytest.raises(DataError, match="data_sha256"):
        attribute(before_dir, tmp_path / "sha")
    save_eval(make_eval(ids[:2], before[:2], str(tok_dir)), tmp_path / "short")
    with pytest.raises(DataError, match="documents"):
        attribute(before_dir, tmp_path / "short")


def test_html_escapes_token_text(tmp_path, evals, reference_file):
    att = attribute(evals[0], evals[1], reference=reference_file, config=TokensConfig(top_k=5))
    out = tmp_path / "view.html"
    render_token_html(att, out, max_documents=3)
    page = out.read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert "&lt;</span>" in page and "&amp;" in page and ">script</span>" in page
    assert page.count('class="doc"') == 3 and "title=" in page and "rgba(220,40,40" in page


def test_cli_tokens_json_and_html(tmp_path, capsys, evals, tok_dir, reference_file):
    out = tmp_path / "t.html"
    code = run(["tokens", str(evals[0]), str(evals[1]), "--reference", str(reference_file), "--tokenizer",
                str(tok_dir), "--html", str(out), "--json", "top_k=3"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert set(summary["by_category"]) == set(CATEGORIES)
    assert len(summary["top_types"]["worse"]) <= 3 and summary["html"] == str(out) and out.is_file()
    assert run(["tokens", str(evals[0]), str(evals[1])]) == 0  # table view, wordfreq reference
    assert "half of the |change|" in capsys.readouterr().out


def test_cli_tokens_mismatch_exits_2(tmp_path, capsys, evals, tok_dir):
    _, _, ids, before, _ = evals
    save_eval(make_eval(ids[:1], before[:1], str(tok_dir)), tmp_path / "one")
    assert run(["tokens", str(evals[0]), str(tmp_path / "one")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "hint:" in err and "Traceback" not in err


def test_token_strings_keep_the_leading_space_of_sentencepiece_tokens():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from odyssey.analysis.tokens import token_strings

    vocab = {"▁the": 0, "▁a": 1, "a": 2, "▁river": 3, "<unk>": 4, "ory": 5}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer, backend.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")
    assert tok.decode([0]) == "the"  # the decoder drops the first token's space...
    assert token_strings(tok, range(6)) == {0: " the", 1: " a", 2: "a", 3: " river", 4: "<unk>", 5: "ory"}
