"""The README's "Python API" examples, run as doctests as they are written: in a folder
where the names they use (`smollm2-135m`, `corpora/legal`, `world/general`,
`HuggingFaceTB/SmolLM2-135M`) are tiny models and corpora made here."""

import doctest
import re
import shutil
from pathlib import Path

import pytest

from conftest import write_corpus_dir
from helpers import make_documents
from odyssey.models import catalog

README = Path(__file__).resolve().parents[1] / "README.md"


def python_api_examples() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the README's Python API section has no python blocks"
    return "\n".join(blocks)


@pytest.fixture
def readme_world(tmp_path, monkeypatch, tiny_gguf, tiny_llama_dir):
    """The README's names, as tiny stand-ins, in a fresh working directory."""
    import importlib

    import odyssey.evaluate.harness as harness

    docs = make_documents(60, seed=11, min_words=60, max_words=140)  # long enough for 20 task items
    write_corpus_dir(tmp_path / "corpora" / "legal", docs)
    write_corpus_dir(tmp_path / "world" / "general", make_documents(40, seed=12, min_words=60, max_words=140))
    shutil.copytree(tiny_llama_dir, tmp_path / "HuggingFaceTB" / "SmolLM2-135M")
    pkg = tmp_path / "site" / "odyssey_readme_tiny_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    shutil.copy(tiny_gguf, pkg / "tiny.Q4_1.gguf")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    real = catalog.CATALOG["smollm2-135m"]
    monkeypatch.setitem(catalog.CATALOG, "smollm2-135m", catalog.PackagedModel(
        **{**real.__dict__, "module": "odyssey_readme_tiny_pkg", "file": "tiny.Q4_1.gguf"}))
    monkeypatch.setattr(harness, "default_task_corpus", lambda: tmp_path / "world" / "general")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_readme_python_api_examples(readme_world):
    examples = python_api_examples()
    test = doctest.DocTestParser().get_doctest(examples, {}, "README.md: Python API", str(README), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out = []
    runner.run(test, out=out.append)
    assert runner.failures == 0, "".join(out)
    assert runner.tries >= 10
