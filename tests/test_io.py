"""The shared file helpers: NaN-safe JSON."""

import json
import math

from odyssey.io import json_safe, read_json, write_json


def test_json_safe_makes_every_non_finite_float_null_and_keeps_the_rest():
    obj = {"ppl": math.nan, "bpb": 1.25, "runs": [1, math.inf, (-math.inf, "x")], "ok": True,
           "nested": {"deep": [{"v": math.nan}]}, "_path": "fit.json"}
    safe = json_safe(obj)
    assert safe == {"ppl": None, "bpb": 1.25, "runs": [1, None, [None, "x"]], "ok": True,
                    "nested": {"deep": [{"v": None}]}, "_path": "fit.json"}
    # Strict JSON: a writer that refuses NaN and infinity accepts the result.
    assert json.loads(json.dumps(safe, allow_nan=False)) == safe
    assert obj["ppl"] != obj["ppl"]  # the input is left as it was


def test_json_safe_can_drop_private_keys_at_any_depth():
    safe = json_safe({"_path": "x", "fit": {"_cache": 1, "a": 2}, "rows": [{"_x": 0, "b": 3}]}, drop_private=True)
    assert safe == {"fit": {"a": 2}, "rows": [{"b": 3}]}


def test_written_json_reads_back(tmp_path):
    write_json(tmp_path / "r.json", json_safe({"ppl": math.nan, "name": "wiki-arts"}))
    assert read_json(tmp_path / "r.json") == {"ppl": None, "name": "wiki-arts"}
