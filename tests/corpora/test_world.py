"""The embedded default world, built small: kinds of corpora, provenance, no leakage,
determinism, idempotence, and the errors a user can cause."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from odyssey.config import resolve
from odyssey.corpora.sources import get_source
from odyssey.corpora.store import SPLITS, iter_split, read_manifest
from odyssey.corpora.world import (
    HELDOUT_TOPICS,
    IN_DISTRIBUTION,
    SEEN,
    WorldConfig,
    build_world,
    content_hash,
    default_world_dir,
    load_world,
)
from odyssey.errors import ConfigError, DataError, WriteError
from odyssey.io import sha256_text

# Small enough for a second per build; the same code paths as the default world.
SMALL = {"domain_max_bytes": 12_000, "domain_chunk_bytes": 1_000, "general_max_bytes": 100_000,
         "in_distribution_bytes": 12_000, "seen_bytes": 12_000}
SHA256 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    return build_world(out, WorldConfig(**SMALL), progress=False)


def corpora(world: dict) -> list[dict]:
    return [world["general"], *world["domains"]]


def split_hashes(corpus: dict, split: str) -> set[str]:
    return {sha256_text(d["text"]) for d in iter_split(corpus["dir"], split)}


def test_world_has_a_general_corpus_and_at_least_8_domains_of_both_kinds(small_world):
    kinds = [d["kind"] for d in small_world["domains"]]
    assert small_world["general"]["kind"] == "general"
    assert len(kinds) >= 10
    assert kinds.count("wikipedia-topic") >= 4 and kinds.count("register") >= 4
    assert kinds.count("in-distribution") == 1 and kinds.count("seen") == 1
    names = {d["name"] for d in small_world["domains"]}
    assert {"licenses", "shakespeare", "python-docs", "python-source", "sotu-1790-1816"} <= names
    for c in corpora(small_world):
        assert all(c["splits"][s]["documents"] >= 1 for s in SPLITS), c["name"]
        expected = "general" if c["kind"] == "general" else f"domains/{c['name']}"
        assert c["path"] == expected and c["dir"].endswith(expected)
    assert small_world["config"] == WorldConfig(**SMALL).model_dump(mode="json")


def test_every_manifest_records_package_version_license_and_hashes(small_world):
    for c in corpora(small_world):
        manifest = read_manifest(c["dir"])
        assert manifest["sources"], c["name"]
        for source in manifest["sources"]:
            assert source["package"] and source["version"] and source["license"], (c["name"], source)
            assert SHA256.match(source["sha256"])
            assert source["files"] and all(SHA256.match(f["sha256"]) for f in source["files"])
        assert manifest["documents"] == c["documents"] and manifest["bytes"] == c["bytes"]
        for split in SPLITS:
            assert manifest["splits"][split]["sha256"] == c["splits"][split]["sha256"]


def is_seen_test(corpus: dict, split: str) -> bool:
    """The one deliberate exception to the no-leakage rule."""
    return corpus["name"] == SEEN and split == "test"


def test_no_test_or_valid_document_is_in_any_train_split(small_world):
    train = set().union(*(split_hashes(c, "train") for c in corpora(small_world)))
    for c in corpora(small_world):
        for split in ("valid", "test"):
            if not is_seen_test(c, split):
                assert not split_hashes(c, split) & train, f"{c['name']}:{split} leaks into a train split"


def test_no_text_is_in_two_corpora(small_world):
    seen: dict[str, str] = {}
    for c in corpora(small_world):
        for split in SPLITS:
            if is_seen_test(c, split):
                continue
            for digest in split_hashes(c, split):
                assert digest not in seen, f"{c['name']}:{split} repeats a text of {seen[digest]}"
                seen[digest] = f"{c['name']}:{split}"


def test_seen_control_tests_exactly_on_general_train_documents_and_nothing_else_has_them(small_world):
    by_name = {c["name"]: c for c in corpora(small_world)}
    seen_test = split_hashes(by_name[SEEN], "test")
    assert seen_test and seen_test <= split_hashes(small_world["general"], "train")
    for c in corpora(small_world):
        for split in SPLITS:
            if c["name"] != "general" and not is_seen_test(c, split):
                assert not split_hashes(c, split) & seen_test, f"{c['name']}:{split} has a seen test text"
    # its own train and valid splits are unseen: in no general split
    general = set().union(*(split_hashes(small_world["general"], s) for s in SPLITS))
    assert not (split_hashes(by_name[SEEN], "train") | split_hashes(by_name[SEEN], "valid")) & general
    manifest = read_manifest(by_name[SEEN]["dir"])
    assert manifest["seen_in_pretraining"] == by_name[SEEN]["seen_in_pretraining"]
    assert manifest["seen_in_pretraining"]["documents"] == by_name[SEEN]["splits"]["test"]["documents"]


def test_in_distribution_control_comes_from_the_general_sources_and_topics(small_world):
    by_name = {c["name"]: c for c in corpora(small_world)}
    control = by_name[IN_DISTRIBUTION]
    assert control["kind"] == "in-distribution" and by_name[SEEN]["kind"] == "seen"
    docs = [d for s in SPLITS for d in iter_split(control["dir"], s)]
    general = [d for s in SPLITS for d in iter_split(small_world["general"]["dir"], s)]
    topics = lambda ds: {d["meta"]["topic"] for d in ds if d["id"].startswith("wikipedia:")}  # noqa: E731
    assert topics(docs) and topics(docs) <= topics(general)
    assert all(d["meta"]["year"] > 1816 for d in docs if d["id"].startswith("sotu:"))


def test_world_records_a_content_hash_that_follows_the_splits(small_world):
    assert SHA256.match(small_world["content_sha256"])
    assert content_hash(corpora(small_world)) == small_world["content_sha256"]
    changed = [dict(c) for c in corpora(small_world)]
    changed[1] = {**changed[1], "splits": {**changed[1]["splits"], "test": {"sha256": "0" * 64}}}
    assert content_hash(changed) != small_world["content_sha256"]


def test_heldout_topics_and_era_are_absent_from_the_general_corpus(small_world):
    wiki, _ = get_source("wikipedia").documents()
    heldout_titles = {d["meta"]["title"] for d in wiki if d["meta"]["topic"] in HELDOUT_TOPICS}
    assert len(heldout_titles) > 2000
    general = [d for s in SPLITS for d in iter_split(small_world["general"]["dir"], s)]
    wiki_general = [d for d in general if d["id"].startswith("wikipedia:")]
    sotu_general = [d for d in general if d["id"].startswith("sotu:")]
    assert wiki_general and sotu_general
    assert not {d["meta"]["title"] for d in wiki_general} & heldout_titles
    assert all(d["meta"]["year"] > 1816 for d in sotu_general)
    by_topic = {d["name"]: {x["meta"]["topic"] for s in SPLITS for x in iter_split(d["dir"], s)}
                for d in small_world["domains"] if d["kind"] == "wikipedia-topic"}
    assert sorted(t for topics in by_topic.values() for t in topics) == sorted(HELDOUT_TOPICS)


def test_domains_are_capped_and_chunked(small_world):
    for d in small_world["domains"]:
        # the last chunk sampled may go past the cap, by at most one chunk (of the general corpus's
        # size for the controls, whose seen domain is sampled in two parts)
        over = 2 * SMALL["domain_chunk_bytes"] if d["kind"] not in ("in-distribution", "seen") else 4 * 4_000
        assert SMALL["domain_max_bytes"] <= d["bytes"] < SMALL["domain_max_bytes"] + over, d["name"]
        if d["kind"] in ("register",):
            sizes = [len(x["text"].encode()) for x in iter_split(d["dir"], "train")]
            assert max(sizes) <= 2 * SMALL["domain_chunk_bytes"], d["name"]


def test_build_is_deterministic(small_world, tmp_path):
    again = build_world(tmp_path / "again", WorldConfig(**SMALL), progress=False)
    for a, b in zip(corpora(small_world), corpora(again), strict=True):
        assert a["name"] == b["name"]
        assert a["splits"] == b["splits"], a["name"]
    shard = "domains/python-docs/test/shard-00000.jsonl"
    root_a, root_b = small_world["root"], again["root"]
    assert open(f"{root_a}/{shard}", "rb").read() == open(f"{root_b}/{shard}", "rb").read()


def test_build_is_idempotent_and_refuses_another_config(small_world):
    root = small_world["root"]
    before = open(f"{root}/world.json", "rb").read()
    assert build_world(root, WorldConfig(**SMALL), progress=False) == small_world
    assert open(f"{root}/world.json", "rb").read() == before
    with pytest.raises(WriteError, match="another config"):
        build_world(root, WorldConfig(**{**SMALL, "seed": 1}), progress=False)
    assert load_world(root) == small_world


def test_load_world_without_a_world_says_how_to_build_it(tmp_path):
    with pytest.raises(DataError) as err:
        load_world(tmp_path / "nothing")
    assert "odyssey world build" in err.value.hint


def test_default_world_dir_follows_odyssey_home(monkeypatch, tmp_path):
    monkeypatch.setenv("ODYSSEY_HOME", str(tmp_path))
    assert default_world_dir() == tmp_path / "world"
    monkeypatch.delenv("ODYSSEY_HOME")
    assert default_world_dir().parts[-3:] == (".cache", "odyssey", "world")


def test_unknown_names_get_did_you_mean():
    with pytest.raises(ConfigError, match="did you mean 'shakespeare'"):
        get_source("shakspeare")
    with pytest.raises(ValidationError, match="did you mean 'licenses'"):
        WorldConfig(registers=["licences"])
    with pytest.raises(ConfigError, match="did you mean 'python-docs'"):
        resolve(WorldConfig, overrides=["registers=[python-doc]"])
    with pytest.raises(ConfigError, match="did you mean 'Arts'"):
        build_world("unused", WorldConfig(heldout_topics=["Art"]), progress=False)


@pytest.mark.parametrize("values, problem", [
    ({"registers": ["sotu"]}, "feeds the general corpus"),
    ({"registers": ["licenses", "licenses"]}, "listed twice"),
    ({"heldout_era": (1820, 1800)}, "starts after it ends"),
    ({"domain_ratios": [0.5, 0.2, 0.2]}, "sum to 1"),
])
def test_invalid_configs_are_refused(values, problem):
    with pytest.raises(ValidationError, match=problem):
        WorldConfig(**values)


def test_cli_build_and_show(small_world, capsys):
    from odyssey.cli import run

    overrides = [f"{k}={v}" for k, v in SMALL.items()]
    assert run(["world", "build", "--out", small_world["root"], "--no-progress", *overrides]) == 0
    assert run(["world", "show", "--out", small_world["root"]]) == 0
    assert "wiki-arts" in capsys.readouterr().out
    assert run(["world", "build", "--out", small_world["root"], "registers=[shakspeare]"]) == 2
    assert "did you mean 'shakespeare'" in capsys.readouterr().err


def test_a_fresh_default_world_matches_the_recorded_hashes(tmp_path):
    """The world every machine builds: each corpus's split hashes and the content hash equal
    the recorded ones wherever the package versions are the recorded ones, and any corpus
    that differs is explained by a package version."""
    from odyssey.corpora.world import EXPECTED_FILE, compare_with_expected
    from odyssey.io import read_json

    expected = read_json(EXPECTED_FILE)
    world = build_world(tmp_path / "world", WorldConfig(), progress=False)
    assert world["config"] == expected["config"]
    same_inputs = world["inputs"] == expected["inputs"]
    for name, splits in expected["corpora"].items():
        corpus = next(c for c in corpora(world) if c["name"] == name)
        if all(world["inputs"][s] == expected["inputs"][s] for s in expected["sources"][name]):
            assert {s: v["sha256"] for s, v in corpus["splits"].items()} == splits, name
    if same_inputs:
        assert world["content_sha256"] == expected["content_sha256"]
    assert not [line for line in compare_with_expected(world) if "report this as a bug" in line]


def test_a_differing_world_names_the_corpus_and_the_package_version(small_world):
    from odyssey.corpora.world import compare_with_expected, expected_record

    expected = expected_record(small_world)
    changed = {**small_world, "inputs": {**small_world["inputs"], "licenses": "0.0-other"},
               "domains": [{**d, "splits": {**d["splits"], "test": {**d["splits"]["test"], "sha256": "0" * 64}}}
                           if d["name"] == "licenses" else d for d in small_world["domains"]]}
    assert compare_with_expected(small_world, expected) == []
    assert compare_with_expected(changed, expected) == [
        f"licenses: test split differs, built from licenses 0.0-other (expected {small_world['inputs']['licenses']})"]
    same_versions = {**changed, "inputs": small_world["inputs"]}
    assert "report this as a bug" in compare_with_expected(same_versions, expected)[0]
